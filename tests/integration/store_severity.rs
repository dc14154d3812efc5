//! The store contract for severity classes, on SQLite and the real
//! PostgreSQL: a group keeps the most severe class any write gave it (a
//! smaller rank, 0 never winning), groups are read most severe first
//! (unknown last), then most frequent, and each group's class over a window
//! is its own or, for a replay's mismatches that have no group, its counts'.

use shadowdiff::store::{Batch, GroupCountDelta, GroupDelta, SqlStore, Store, Window};

use crate::support::{self, TestDatabase};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;
const HOUR: i64 = 3_600_000;

/// The store's ranks: 0 unknown, then most severe first.
const UNKNOWN: i64 = 0;
const STATUS: i64 = 1;
const STRUCTURE: i64 = 2;
const MEMBERSHIP: i64 = 3;
const VALUE: i64 = 4;
const HEADERS: i64 = 5;

async fn open(db: &TestDatabase) -> SqlStore {
    db.store().await
}

fn group(fingerprint: &str, count: i64, severity: i64) -> GroupDelta {
    GroupDelta {
        fingerprint: fingerprint.into(),
        endpoint: "GET /a".into(),
        first_seen: T0,
        last_seen: T0,
        count,
        severity,
        ..GroupDelta::default()
    }
}

fn counted(fingerprint: &str, count: i64, severity: i64) -> GroupCountDelta {
    GroupCountDelta {
        minute: T0 / 60_000,
        endpoint: "GET /a".into(),
        fingerprint: fingerprint.into(),
        count,
        severity,
    }
}

/// Writes groups alone, as live traffic's.
async fn write_groups(store: &SqlStore, groups: Vec<GroupDelta>) {
    let batch = Batch {
        groups,
        ..Batch::default()
    };
    write(store, "", batch).await;
}

async fn write(store: &SqlStore, run: &str, batch: Batch) {
    store.write("one", run, &batch).await.unwrap();
}

#[tokio::test]
async fn groups_keep_their_most_severe_class_and_are_read_most_severe_first() {
    for db in support::databases().await {
        let store = open(&db).await;
        let groups = vec![
            group("unknown", 500, UNKNOWN),
            group("headers", 100, HEADERS),
            group("value", 10, VALUE),
            group("membership-few", 2, MEMBERSHIP),
            group("membership-many", 5, MEMBERSHIP),
            group("status", 1, STATUS),
        ];
        write_groups(&store, groups).await;
        // "value" turns out to change a type too; later writes of a less
        // severe class, or of none (an earlier release), change nothing.
        for severity in [STRUCTURE, UNKNOWN, HEADERS, VALUE] {
            let groups = vec![group("value", 1, severity)];
            write_groups(&store, groups).await;
        }
        // A group of no known class takes the first class it is given.
        let groups = vec![group("unknown", 1, UNKNOWN), group("headers", 1, UNKNOWN)];
        write_groups(&store, groups).await;
        let read: Vec<(String, i64, i64)> = store
            .groups(None, None)
            .await
            .unwrap()
            .into_iter()
            .map(|g| (g.fingerprint, g.severity, g.count))
            .collect();
        let want = [
            ("status", STATUS, 1),
            ("value", STRUCTURE, 14),
            ("membership-many", MEMBERSHIP, 5),
            ("membership-few", MEMBERSHIP, 2),
            ("headers", HEADERS, 101),
            ("unknown", UNKNOWN, 501),
        ];
        let want: Vec<(String, i64, i64)> = want
            .iter()
            .map(|(f, s, n)| (f.to_string(), *s, *n))
            .collect();
        assert_eq!(read, want, "{}", db.name);
        let later = vec![group("unknown", 1, VALUE)];
        write(
            &store,
            "",
            Batch {
                groups: later,
                ..Batch::default()
            },
        )
        .await;
        let unknown = store.groups(None, None).await.unwrap();
        let unknown = unknown.iter().find(|g| g.fingerprint == "unknown").unwrap();
        assert_eq!(unknown.severity, VALUE, "{}", db.name);
    }
}

#[tokio::test]
async fn a_group_in_a_window_has_its_class_or_its_counts_class() {
    for db in support::databases().await {
        let store = open(&db).await;
        let live = Batch {
            groups: vec![group("typed", 3, STRUCTURE), group("known", 2, VALUE)],
            group_counts: vec![
                counted("typed", 3, VALUE),
                counted("known", 2, VALUE),
                // Counted of no class (an earlier release): its group's.
                counted("old", 4, UNKNOWN),
            ],
            ..Batch::default()
        };
        write(&store, "", live).await;
        // The same minute again: the counts add, the worst class stays.
        let again = Batch {
            group_counts: vec![counted("known", 1, HEADERS), counted("typed", 1, STATUS)],
            groups: vec![group("known", 1, HEADERS), group("typed", 1, STATUS)],
            ..Batch::default()
        };
        write(&store, "", again).await;
        // A replay's mismatches are counted, never grouped.
        let replay = Batch {
            group_counts: vec![
                counted("replayed", 6, MEMBERSHIP),
                counted("known", 1, HEADERS),
            ],
            groups: vec![group("replayed", 6, MEMBERSHIP)],
            ..Batch::default()
        };
        write(&store, "run-1", replay).await;
        let change = shadowdiff::store::TriageChange {
            fingerprint: "known",
            status: "expected",
            note: "",
            reviewer: "",
            at_ms: T0,
        };
        assert!(store.triage(&change).await.unwrap());
        let window = Window {
            since_ms: T0,
            until_ms: T0 + HOUR,
        };
        let read = |run: &'static str| {
            let store = &store;
            async move {
                let rows = store.groups_in_window(window, run).await.unwrap();
                rows.into_iter()
                    .map(|g| (g.fingerprint, g.count, g.severity, g.expected))
                    .collect::<Vec<_>>()
            }
        };
        let row = |f: &str, n, s, e| (f.to_string(), n, s, e);
        assert_eq!(
            read("").await,
            vec![
                row("known", 3, VALUE, true),
                row("old", 4, UNKNOWN, false),
                row("typed", 4, STATUS, false),
            ],
            "{}",
            db.name
        );
        assert_eq!(
            read("run-1").await,
            vec![
                row("known", 1, VALUE, true),
                row("replayed", 6, MEMBERSHIP, false)
            ],
            "{}: a replay's group is its counts' class, a live group's its own",
            db.name
        );
        assert!(
            store
                .groups(None, None)
                .await
                .unwrap()
                .iter()
                .all(|g| g.fingerprint != "replayed"),
            "{}: a replay makes no group",
            db.name
        );
    }
}
