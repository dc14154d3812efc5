//! The store contract: one suite, run against SQLite and the real PostgreSQL.
//! Each test opens a fresh database, migrates it, and checks what the rest of
//! the program relies on: counts add up across instances, groups merge,
//! exemplars are capped, pagination is stable, data survives a reconnect,
//! and retention prunes.

use serde_json::json;
use shadowdiff::store::{
    Batch, CounterDelta, GroupCountDelta, GroupDelta, LatencyDelta, MismatchFilter, MismatchRecord,
    SqlStore, Store, TrendRow, TriageChange, TriageEntry, Window, EXEMPLARS_PER_GROUP_HOUR,
};

use crate::support::{self, TestDatabase};

const HOUR: i64 = 3_600_000;
/// 2026-01-01T00:00:00Z: a fixed clock makes windows exact.
const T0: i64 = 1_767_225_600_000;

async fn open(db: &TestDatabase) -> SqlStore {
    db.store().await
}

/// Triages a group as an anonymous reviewer at T0.
async fn triage(store: &SqlStore, fingerprint: &str, status: &str, note: &str) -> bool {
    let change = TriageChange {
        fingerprint,
        status,
        note,
        reviewer: "",
        at_ms: T0,
    };
    store.triage(&change).await.unwrap()
}

fn window(hours: i64) -> Window {
    Window {
        since_ms: T0,
        until_ms: T0 + hours * HOUR,
    }
}

fn counter(minute_offset: i64, endpoint: &str, outcome: &str, count: i64) -> CounterDelta {
    CounterDelta {
        minute: T0 / 60_000 + minute_offset,
        endpoint: endpoint.into(),
        outcome: outcome.into(),
        count,
    }
}

fn group_count(
    minute_offset: i64,
    endpoint: &str,
    fingerprint: &str,
    count: i64,
) -> GroupCountDelta {
    GroupCountDelta {
        minute: T0 / 60_000 + minute_offset,
        endpoint: endpoint.into(),
        fingerprint: fingerprint.into(),
        count,
        severity: 0,
    }
}

fn mismatch(at_ms: i64, fingerprint: &str, n: usize) -> MismatchRecord {
    let message = support::json_message;
    MismatchRecord {
        at_ms,
        endpoint: "GET /users/{id}".into(),
        fingerprint: fingerprint.into(),
        method: "GET".into(),
        path: format!("/users/{n}"),
        query: "a=1&a=2".into(),
        request: message(0, ""),
        primary: message(200, "{\"total\":30}"),
        candidate: message(200, "{\"total\":3}"),
        verdict: json!({"patch": [{"op": "replace", "path": "/total", "value": 3}], "paths": ["/total"]}),
        // As JSON, so that a new detail does not change this helper.
        details: serde_json::from_value(
            json!({"primary_latency_us": 1_250, "candidate_latency_us": n}),
        )
        .unwrap(),
    }
}

fn group(fingerprint: &str, first: i64, last: i64, count: i64) -> GroupDelta {
    GroupDelta {
        fingerprint: fingerprint.into(),
        endpoint: "GET /users/{id}".into(),
        first_seen: first,
        last_seen: last,
        count,
        paths: vec!["/total".into()],
        headers: vec!["vary".into()],
        statuses: Some((200, 500)),
        severity: 0,
    }
}

#[tokio::test]
async fn counts_from_several_instances_add_up() {
    for db in support::databases().await {
        let store = open(&db).await;
        // Migrating again is a no-op.
        store.migrate().await.unwrap();
        let batch = Batch {
            counters: vec![
                counter(0, "GET /a", "matched", 5),
                counter(1, "GET /a", "mismatched", 2),
                counter(0, "GET /b", "candidate_error/timeout", 1),
            ],
            ..Batch::default()
        };
        store.write("one", "", &batch).await.unwrap();
        store.write("two", "", &batch).await.unwrap();
        store
            .write(
                "one",
                "",
                &Batch {
                    counters: vec![counter(0, "GET /a", "matched", 1)],
                    ..Batch::default()
                },
            )
            .await
            .unwrap();
        let counts = store.counts(window(1), "", None).await.unwrap();
        assert_eq!(counts.len(), 2, "{}: {counts:?}", db.name);
        assert_eq!(counts[0].endpoint, "GET /a");
        assert_eq!(counts[0].outcomes["matched"], 11, "{}", db.name);
        assert_eq!(counts[0].outcomes["mismatched"], 4);
        assert_eq!(counts[1].outcomes["candidate_error/timeout"], 2);
        // A window that ends before the second minute leaves it out.
        let narrow = Window {
            since_ms: T0,
            until_ms: T0 + 60_000,
        };
        let counts = store.counts(narrow, "", Some("GET /a")).await.unwrap();
        assert_eq!(counts.len(), 1);
        assert_eq!(counts[0].outcomes.get("mismatched"), None, "{}", db.name);

        // Over time: per minute, then per five minutes, for one endpoint.
        let row = |minute_offset, outcome: &str, count| TrendRow {
            minute: T0 / 60_000 + minute_offset,
            outcome: outcome.into(),
            count,
        };
        assert_eq!(
            store.trend(window(1), "", None, 1).await.unwrap(),
            vec![
                row(0, "candidate_error/timeout", 2),
                row(0, "matched", 11),
                row(1, "mismatched", 4),
            ],
            "{}",
            db.name
        );
        assert_eq!(
            store.trend(window(1), "", Some("GET /a"), 5).await.unwrap(),
            vec![row(0, "matched", 11), row(0, "mismatched", 4)],
            "{}",
            db.name
        );
    }
}

#[tokio::test]
async fn latency_histograms_merge() {
    for db in support::databases().await {
        let store = open(&db).await;
        let delta = |bucket, count| LatencyDelta {
            minute: T0 / 60_000,
            endpoint: "GET /a".into(),
            side: "candidate",
            bucket,
            count,
        };
        let batch = Batch {
            latencies: vec![delta(3, 2), delta(7, 1)],
            ..Batch::default()
        };
        // One instance's row takes a second write's buckets in; another
        // instance's row adds up when read.
        store.write("one", "", &batch).await.unwrap();
        store.write("one", "", &batch).await.unwrap();
        store.write("two", "", &batch).await.unwrap();
        let latency = store
            .latencies(window(1), "", Some("GET /a"))
            .await
            .unwrap();
        assert_eq!(latency.len(), 1, "{}", db.name);
        assert_eq!(
            latency[0].candidate.rows().collect::<Vec<_>>(),
            vec![(3, 6), (7, 3)],
            "{}",
            db.name
        );
        assert!(latency[0].primary.is_empty());
        assert!(store
            .latencies(window(1), "", Some("GET /b"))
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn groups_merge_and_keep_their_triage() {
    for db in support::databases().await {
        let store = open(&db).await;
        let first = store
            .write(
                "one",
                "",
                &Batch {
                    groups: vec![group("aa", T0 + 10, T0 + 20, 3), group("bb", T0, T0, 1)],
                    ..Batch::default()
                },
            )
            .await
            .unwrap();
        // Each write says which groups it created: exactly one instance
        // announces a group.
        assert_eq!(first.new_groups, vec!["aa", "bb"], "{}", db.name);
        let second = store
            .write(
                "two",
                "",
                &Batch {
                    groups: vec![group("aa", T0 + 5, T0 + 15, 4)],
                    ..Batch::default()
                },
            )
            .await
            .unwrap();
        assert!(second.new_groups.is_empty(), "{}", db.name);
        let groups = store.groups(None, None).await.unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].fingerprint, "aa", "most frequent first");
        assert_eq!(
            (groups[0].first_seen, groups[0].last_seen, groups[0].count),
            (T0 + 5, T0 + 20, 7),
            "{}",
            db.name
        );
        assert_eq!(groups[0].status, "open");
        assert_eq!(groups[0].paths, vec!["/total".to_string()]);
        // What differs besides the body, for header-only or status-only groups.
        assert_eq!(
            (&groups[0].headers, groups[0].statuses),
            (&vec!["vary".to_string()], Some((200, 500)))
        );

        assert!(triage(&store, "aa", "expected", "rounding, fixed in v2").await);
        assert!(!triage(&store, "zz", "bug", "").await);
        // Each triage is kept, newest first, with who set it; none for a
        // group that does not exist.
        let reviewed = TriageChange {
            fingerprint: "aa",
            status: "bug",
            note: "not rounding after all",
            reviewer: "dana",
            at_ms: T0 + HOUR,
        };
        assert!(store.triage(&reviewed).await.unwrap());
        assert!(triage(&store, "aa", "expected", "rounding, fixed in v2").await);
        let history = store.triage_history("aa", 10).await.unwrap();
        let entry = |at_ms, status: &str, note: &str, reviewer: &str| TriageEntry {
            at_ms,
            status: status.into(),
            note: note.into(),
            reviewer: reviewer.into(),
        };
        assert_eq!(
            history,
            vec![
                entry(T0 + HOUR, "bug", "not rounding after all", "dana"),
                entry(T0, "expected", "rounding, fixed in v2", ""),
                entry(T0, "expected", "rounding, fixed in v2", ""),
            ],
            "{}",
            db.name
        );
        assert_eq!(store.triage_history("aa", 1).await.unwrap().len(), 1);
        assert!(store.triage_history("zz", 10).await.unwrap().is_empty());
        let expected = store.groups(None, Some("expected")).await.unwrap();
        assert_eq!(expected.len(), 1);
        assert_eq!(expected[0].note, "rounding, fixed in v2");
        // New occurrences do not reset a triage.
        store
            .write(
                "one",
                "",
                &Batch {
                    groups: vec![group("aa", T0, T0 + 30, 1)],
                    ..Batch::default()
                },
            )
            .await
            .unwrap();
        assert_eq!(
            store
                .groups(Some("GET /users/{id}"), Some("expected"))
                .await
                .unwrap()[0]
                .count,
            8
        );
    }
}

#[tokio::test]
async fn exemplars_are_capped_per_group_and_hour_and_paginate() {
    for db in support::databases().await {
        let store = open(&db).await;
        let n = EXEMPLARS_PER_GROUP_HOUR as usize + 5;
        let first: Vec<MismatchRecord> = (0..n).map(|i| mismatch(T0 + i as i64, "aa", i)).collect();
        store
            .write(
                "one",
                "",
                &Batch {
                    mismatches: first,
                    ..Batch::default()
                },
            )
            .await
            .unwrap();
        // Another hour and another group each get their own quota.
        let later = vec![mismatch(T0 + HOUR, "aa", 100), mismatch(T0 + 1, "bb", 200)];
        store
            .write(
                "two",
                "",
                &Batch {
                    mismatches: later,
                    ..Batch::default()
                },
            )
            .await
            .unwrap();

        let aa = store
            .mismatches(
                MismatchFilter {
                    fingerprint: Some("aa"),
                    ..Default::default()
                },
                None,
                1_000,
            )
            .await
            .unwrap();
        assert_eq!(
            aa.len(),
            EXEMPLARS_PER_GROUP_HOUR as usize + 1,
            "{}",
            db.name
        );

        // Newest first, and pages do not overlap or skip.
        let mut seen = Vec::new();
        let mut before = None;
        loop {
            let page = store
                .mismatches(MismatchFilter::default(), before, 7)
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            before = page.last().map(|m| m.id);
            seen.extend(page.into_iter().map(|m| m.id));
        }
        assert_eq!(seen.len(), EXEMPLARS_PER_GROUP_HOUR as usize + 2);
        assert!(
            seen.windows(2).all(|w| w[0] > w[1]),
            "{}: {seen:?}",
            db.name
        );

        let one = store.mismatch(seen[0]).await.unwrap().unwrap();
        assert_eq!(
            one.record,
            mismatch(T0 + 1, "bb", 200),
            "{}: the record round-trips",
            db.name
        );
        assert_eq!(one.instance, "two");
        assert!(store.mismatch(-1).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn everything_survives_a_reconnect_and_retention_prunes() {
    for db in support::databases().await {
        {
            let store = open(&db).await;
            let batch = Batch {
                counters: vec![
                    counter(0, "GET /old", "matched", 1),
                    counter(60 * 24 * 20, "GET /new", "matched", 2),
                ],
                mismatches: vec![
                    mismatch(T0, "old", 1),
                    mismatch(T0 + 20 * 24 * HOUR, "new", 2),
                ],
                groups: vec![
                    GroupDelta {
                        fingerprint: "old".into(),
                        endpoint: "GET /old".into(),
                        first_seen: T0,
                        last_seen: T0,
                        count: 1,
                        ..GroupDelta::default()
                    },
                    group("kept", T0, T0 + 20 * 24 * HOUR, 5),
                ],
                // A group seen on both sides of the retention: its old
                // minutes go, its recent ones stay.
                group_counts: vec![
                    group_count(0, "GET /a", "kept", 2),
                    group_count(60 * 24 * 20, "GET /a", "kept", 3),
                ],
                lost: vec![(T0 / 60_000, 3)],
                ..Batch::default()
            };
            store.write("one", "", &batch).await.unwrap();
        }
        // A new connection (a restart) sees everything.
        let store = open(&db).await;
        assert_eq!(
            store.counts(window(24 * 30), "", None).await.unwrap().len(),
            2,
            "{}",
            db.name
        );
        assert_eq!(store.lost(window(1)).await.unwrap(), 3);
        assert_eq!(
            store
                .mismatches(MismatchFilter::default(), None, 10)
                .await
                .unwrap()
                .len(),
            2
        );

        assert!(triage(&store, "kept", "expected", "").await);
        assert_eq!(
            store.expected(window(24 * 30), "").await.unwrap(),
            vec![("GET /a".to_string(), 5)],
            "{}",
            db.name
        );

        let removed = store.prune(T0 + 10 * 24 * HOUR).await.unwrap();
        assert!(removed >= 4, "{}: removed {removed}", db.name);
        let counts = store.counts(window(24 * 30), "", None).await.unwrap();
        assert_eq!(counts.len(), 1);
        assert_eq!(counts[0].endpoint, "GET /new");
        let left = store
            .mismatches(MismatchFilter::default(), None, 10)
            .await
            .unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].record.fingerprint, "new");
        let groups = store.groups(None, None).await.unwrap();
        assert_eq!(groups.len(), 1, "{}: {groups:?}", db.name);
        assert_eq!(groups[0].fingerprint, "kept");
        assert_eq!(
            store.expected(window(24 * 30), "").await.unwrap(),
            vec![("GET /a".to_string(), 3)],
            "{}: the group's counts before the retention are pruned",
            db.name
        );
        assert_eq!(store.lost(window(1)).await.unwrap(), 0);
    }
}

// Long by design: live and replayed rows written together, then each read checked.
#[tokio::test]
async fn replay_runs_are_counted_apart_and_expected_groups_per_window() {
    for db in support::databases().await {
        let store = open(&db).await;
        let live = Batch {
            counters: vec![counter(0, "GET /a", "mismatched", 3)],
            group_counts: vec![
                group_count(0, "GET /a", "aa", 2),
                group_count(0, "GET /a", "bb", 1),
                group_count(90, "GET /a", "aa", 7),
            ],
            groups: vec![group("aa", T0, T0, 9), group("bb", T0, T0, 1)],
            mismatches: vec![mismatch(T0, "aa", 1)],
            ..Batch::default()
        };
        store.write("one", "", &live).await.unwrap();
        let replay = Batch {
            counters: vec![counter(0, "GET /a", "matched", 40)],
            group_counts: vec![group_count(0, "GET /a", "aa", 5)],
            mismatches: vec![mismatch(T0 + 1, "aa", 2)],
            ..Batch::default()
        };
        // Same instance, same minute: the run keeps the rows apart.
        store.write("one", "run-1", &replay).await.unwrap();

        let live_counts = store.counts(window(1), "", None).await.unwrap();
        assert_eq!(live_counts[0].outcomes.get("matched"), None, "{}", db.name);
        let run_counts = store.counts(window(1), "run-1", None).await.unwrap();
        assert_eq!(run_counts[0].outcomes["matched"], 40, "{}", db.name);
        assert!(store
            .counts(window(1), "run-2", None)
            .await
            .unwrap()
            .is_empty());

        // Nothing is expected until a group is triaged so; then only its
        // occurrences inside the window count.
        assert!(store.expected(window(1), "").await.unwrap().is_empty());
        assert!(triage(&store, "aa", "expected", "float formatting").await);
        assert_eq!(
            store.expected(window(1), "").await.unwrap(),
            vec![("GET /a".to_string(), 2)],
            "{}",
            db.name
        );
        assert_eq!(
            store.expected(window(2), "").await.unwrap(),
            vec![("GET /a".to_string(), 9)]
        );
        assert_eq!(
            store.expected(window(1), "run-1").await.unwrap(),
            vec![("GET /a".to_string(), 5)]
        );

        let of_run = |run| MismatchFilter {
            run,
            ..MismatchFilter::default()
        };
        let ids = |v: Vec<shadowdiff::store::StoredMismatch>| -> Vec<String> {
            v.into_iter().map(|m| m.run).collect()
        };
        assert_eq!(
            ids(store.mismatches(of_run(Some("")), None, 10).await.unwrap()),
            [""]
        );
        assert_eq!(
            ids(store
                .mismatches(of_run(Some("run-1")), None, 10)
                .await
                .unwrap()),
            ["run-1"]
        );
        assert_eq!(
            store
                .mismatches(of_run(None), None, 10)
                .await
                .unwrap()
                .len(),
            2
        );
    }
}
