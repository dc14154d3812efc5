//! Migrations: released files never change (their checksums are kept in
//! migrations/SHA256SUMS and SHA256SUMS.NNNN), and a database made by the previous release, with
//! either text migration 0002 had in it, upgrades to exactly the schema a new
//! database gets, its rows intact, on SQLite and on the real PostgreSQL.

use std::collections::BTreeSet;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use std::time::Duration;

use shadowdiff::store::{
    latency_bucket, Batch, GroupCountDelta, GroupDelta, LatencyDelta, SqlStore, Store, StoreError,
    Window,
};
use sqlx::migrate::{MigrateError, Migration, Migrator};
use sqlx::{AnyPool, Row};

use crate::support::{self, TestDatabase};

/// 2026-01-01T00:00:00Z.
const T0: i64 = 1_767_225_600_000;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The checksum lists: `SHA256SUMS` (the migrations up to 0003, frozen like
/// them) and one `SHA256SUMS.NNNN` per later migration, added with it, so
/// that no file a release shipped is ever edited.
fn checksum_lists(dir: &std::path::Path) -> Vec<(String, String)> {
    let mut lists: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name == "SHA256SUMS" || name.starts_with("SHA256SUMS."))
        .collect();
    lists.sort();
    assert_eq!(lists.first().map(String::as_str), Some("SHA256SUMS"));
    lists
        .into_iter()
        .map(|name| {
            let text = std::fs::read_to_string(dir.join(&name)).unwrap();
            (name, text)
        })
        .collect()
}

#[test]
fn released_migrations_never_change() {
    let dir = root().join("migrations");
    let mut listed = BTreeSet::new();
    for (list, sums) in checksum_lists(&dir) {
        for line in sums.lines().filter(|l| !l.trim().is_empty()) {
            let (sum, file) = line
                .split_once("  ")
                .unwrap_or_else(|| panic!("migrations/{list}: not `SUM  FILE`: {line:?}"));
            let bytes = std::fs::read(dir.join(file)).unwrap_or_else(|e| {
                panic!("migrations/{file} is listed in {list} but cannot be read ({e}): a released migration is never removed")
            });
            let found: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(
                found, sum,
                "migrations/{file} changed: a released migration never changes; add a new numbered one to both folders"
            );
            assert!(
                listed.insert(file.to_string()),
                "migrations/{file} is listed twice"
            );
        }
    }
    for backend in ["sqlite", "postgres"] {
        for entry in std::fs::read_dir(dir.join(backend)).unwrap() {
            let name = format!("{backend}/{}", entry.unwrap().file_name().to_string_lossy());
            assert!(
                listed.contains(&name),
                "migrations/{name} is in no checksum list: add one for its number, leaving the \
                 others as they are (cd migrations && sha256sum sqlite/NNNN_*.sql postgres/NNNN_*.sql > SHA256SUMS.NNNN)"
            );
        }
    }
}

/// Which text of migration 0002 the previous release ran.
#[derive(Clone, Copy, Debug)]
enum Previous {
    /// As first released: a prefix of today's text (see [`first_text`]).
    FirstText,
    /// With the group columns appended (the text on main since).
    Extended,
}

async fn raw_pool(db: &TestDatabase) -> AnyPool {
    sqlx::any::install_default_drivers();
    // The test's own URL carries no password; Display hides none then.
    AnyPool::connect(&db.url.to_string()).await.unwrap()
}

/// Another fresh database of the same kind as `db`.
async fn another(db: &TestDatabase) -> TestDatabase {
    match db.name {
        "sqlite" => support::sqlite_database(),
        _ => support::postgres_database().await,
    }
}

/// Migration 0002 as first released (commit 362df9c): the first bytes of
/// today's text, which only appended to it. The SHA-256 of the released file
/// pins the prefix, so this cannot drift from what was released.
fn first_text(backend: &str, today: &str) -> String {
    let (len, sha256) = match backend {
        "sqlite" => (
            2314,
            "cfa95099d876123b575c3f12db699d4719aa29962512c3ae509847ea1625ac08",
        ),
        _ => (
            1165,
            "580f3f0968b1bcc0c90b46b31e4e0f12f10585ae82777b7227426814d1a06e1f",
        ),
    };
    let text = &today[..len];
    let found: String = Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        found, sha256,
        "{backend}: 0002's first text is no longer a prefix of today's"
    );
    text.to_string()
}

/// A database as the previous release left it, with a counter, a triaged
/// group and the group's per-minute count (then an outcome `group/<fp>`).
async fn previous_release(db: &TestDatabase, previous: Previous) -> AnyPool {
    let pool = raw_pool(db).await;
    // 0001 never changed (SHA256SUMS holds it); 0002 had one of two texts.
    let mut migrator = Migrator::new(root().join("migrations").join(db.name))
        .await
        .unwrap();
    migrator.migrations = migrator
        .migrations
        .iter()
        .filter(|m| m.version <= 2)
        .map(|m| match previous {
            Previous::FirstText if m.version == 2 => Migration::new(
                m.version,
                m.description.clone(),
                m.migration_type,
                first_text(db.name, &m.sql).into(),
                m.no_tx,
            ),
            _ => m.clone(),
        })
        .collect();
    migrator
        .run(&pool)
        .await
        .unwrap_or_else(|e| panic!("{} {previous:?}: {e}", db.name));
    for statement in [
        format!(
            "INSERT INTO counters (minute, endpoint, outcome, instance, count) \
             VALUES ({}, 'GET /items/{{id}}', 'matched', 'old', 7)",
            T0 / 60_000
        ),
        format!(
            "INSERT INTO counters (minute, endpoint, outcome, instance, count) \
             VALUES ({}, 'GET /items/{{id}}', 'group/fp-old', 'old', 3)",
            T0 / 60_000
        ),
        // Bucket 57 of the coarse histogram: 19.03 to 23.17 ms.
        format!(
            "INSERT INTO latencies (minute, endpoint, side, bucket, instance, count) \
             VALUES ({}, 'GET /items/{{id}}', 'primary', 57, 'old', 5)",
            T0 / 60_000
        ),
        format!(
            "INSERT INTO mismatch_groups (fingerprint, endpoint, first_seen, last_seen, count, paths, status, note) \
             VALUES ('fp-old', 'GET /items/{{id}}', {T0}, {T0}, 3, '[\"/total\"]', 'expected', 'known')"
        ),
    ] {
        sqlx::query(&statement).execute(&pool).await.unwrap();
    }
    pool
}

/// The schema as text, `_sqlx_migrations` included (versions and checksums).
async fn schema(pool: &AnyPool, backend: &str) -> Vec<String> {
    let queries: &[&str] = match backend {
        "sqlite" => &[
            "SELECT type || ' ' || name || ' ' || tbl_name || ' ' || COALESCE(sql, '') AS line \
             FROM sqlite_master WHERE name <> '_sqlx_migrations' ORDER BY type, name",
        ],
        _ => &[
            "SELECT CAST(table_name AS TEXT) || ' ' || CAST(column_name AS TEXT) || ' ' || \
             CAST(ordinal_position AS TEXT) || ' ' || CAST(data_type AS TEXT) || ' ' || \
             COALESCE(CAST(column_default AS TEXT), '') || ' ' || CAST(is_nullable AS TEXT) AS line \
             FROM information_schema.columns WHERE table_schema = current_schema() \
             AND table_name <> '_sqlx_migrations' ORDER BY table_name, ordinal_position",
            "SELECT CAST(indexname AS TEXT) || ' ' || indexdef AS line FROM pg_indexes \
             WHERE schemaname = current_schema() ORDER BY indexname",
        ],
    };
    let mut lines = Vec::new();
    for query in queries {
        for row in sqlx::query(query).fetch_all(pool).await.unwrap() {
            lines.push(row.try_get::<String, _>("line").unwrap());
        }
    }
    let applied = sqlx::query("SELECT version, checksum FROM _sqlx_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .unwrap();
    for row in applied {
        let (version, checksum): (i64, Vec<u8>) = (
            row.try_get("version").unwrap(),
            row.try_get("checksum").unwrap(),
        );
        lines.push(format!("migration {version} {checksum:?}"));
    }
    lines
}

async fn upgrades(previous: Previous) {
    for db in support::databases().await {
        let (name, fresh) = (db.name, another(&db).await);
        let pool = previous_release(&db, previous).await;
        if let Previous::FirstText = previous {
            let refused = SqlStore::open_existing(&db.url).await.unwrap_err();
            assert!(
                refused.to_string().contains("shadowdiff migrate"),
                "{name}: {refused}"
            );
        }
        let store = SqlStore::connect(&db.url).await.unwrap();
        store
            .migrate()
            .await
            .unwrap_or_else(|e| panic!("{name} {previous:?}: {e}"));
        // Twice is as once.
        store.migrate().await.unwrap();
        SqlStore::open_existing(&db.url).await.unwrap();

        let window = Window {
            since_ms: T0,
            until_ms: T0 + 60_000,
        };
        let counts = store.counts(window, "", None).await.unwrap();
        assert_eq!(counts.len(), 1, "{name} {previous:?}: {counts:?}");
        assert_eq!(counts[0].outcomes.get("matched"), Some(&7), "{name}");
        assert_eq!(
            counts[0].outcomes.len(),
            1,
            "{name} {previous:?}: group counts moved out of the outcomes: {counts:?}"
        );
        let expected = store.expected(window, "").await.unwrap();
        assert_eq!(
            expected,
            vec![("GET /items/{id}".to_string(), 3)],
            "{name} {previous:?}: the moved group count"
        );
        let moved: i64 = sqlx::query(
            "SELECT CAST(SUM(count) AS BIGINT) AS n FROM group_counts \
             WHERE fingerprint = 'fp-old' AND instance = 'old' AND run = ''",
        )
        .fetch_one(&pool)
        .await
        .unwrap()
        .try_get("n")
        .unwrap();
        assert_eq!(moved, 3, "{name} {previous:?}: 0003 moves group counts");
        // Coarse latency rows are read at their bucket's midpoint.
        let latency = store.latencies(window, "", None).await.unwrap();
        assert_eq!(latency.len(), 1, "{name} {previous:?}: {latency:?}");
        assert_eq!(latency[0].primary.total(), 5, "{name}");
        let p50 = latency[0].primary.quantile(0.5).unwrap().as_secs_f64() * 1e3;
        assert!((19.03..23.17).contains(&p50), "{name}: {p50}");
        assert!(latency[0].candidate.is_empty(), "{name}");
        let groups = store.groups(None, None).await.unwrap();
        assert_eq!(groups.len(), 1, "{name} {previous:?}: {groups:?}");
        let old = &groups[0];
        assert_eq!(
            (&*old.fingerprint, old.count, &*old.status, &*old.note),
            ("fp-old", 3, "expected", "known"),
            "{name}"
        );
        assert_eq!(old.paths, vec!["/total".to_string()]);
        assert!(old.headers.is_empty() && old.statuses.is_none(), "{name}");
        assert_eq!(old.severity, 0, "{name}: stored before classes, of none");

        // What the current release writes fits the upgraded schema.
        let group = GroupDelta {
            fingerprint: "fp-new".into(),
            endpoint: "GET /items/{id}".into(),
            first_seen: T0,
            last_seen: T0,
            count: 1,
            paths: vec![],
            headers: vec!["etag".into()],
            statuses: Some((200, 500)),
            severity: 1,
        };
        let batch = Batch {
            groups: vec![group],
            latencies: vec![LatencyDelta {
                minute: T0 / 60_000,
                endpoint: "GET /items/{id}".into(),
                side: "primary",
                bucket: latency_bucket(Duration::from_millis(21)),
                count: 3,
            }],
            group_counts: vec![GroupCountDelta {
                minute: T0 / 60_000,
                endpoint: "GET /items/{id}".into(),
                fingerprint: "fp-old".into(),
                count: 4,
                severity: 4,
            }],
            ..Batch::default()
        };
        store.write("new", "", &batch).await.unwrap();
        // An instance of the previous release, still running during a
        // rolling upgrade, counts groups as outcomes: they are read too.
        sqlx::query(&format!(
            "INSERT INTO counters (minute, endpoint, outcome, instance, count) \
             VALUES ({}, 'GET /items/{{id}}', 'group/fp-old', 'still-old', 2)",
            T0 / 60_000
        ))
        .execute(&pool)
        .await
        .unwrap();
        let expected = store.expected(window, "").await.unwrap();
        assert_eq!(
            expected,
            vec![("GET /items/{id}".to_string(), 3 + 4 + 2)],
            "{name} {previous:?}"
        );
        // An instance of the previous release keeps writing coarse buckets.
        sqlx::query(&format!(
            "INSERT INTO latencies (minute, endpoint, side, bucket, instance, count, run) \
             VALUES ({}, 'GET /items/{{id}}', 'primary', 57, 'still-old', 2, '')",
            T0 / 60_000
        ))
        .execute(&pool)
        .await
        .unwrap();
        let latency = store.latencies(window, "", None).await.unwrap();
        assert_eq!(latency[0].primary.total(), 5 + 3 + 2, "{name}");
        let new = store.groups(None, Some("open")).await.unwrap();
        assert_eq!(new[0].headers, vec!["etag".to_string()], "{name}");
        assert_eq!(new[0].statuses, Some((200, 500)), "{name}");
        assert_eq!(new[0].severity, 1, "{name}");
        // The old group's class is its counts' since the upgrade; those
        // moved by 0003 and the previous release's are of none.
        let classes: Vec<_> = store.groups_in_window(window, "").await.unwrap();
        let classes: Vec<_> = classes
            .iter()
            .map(|g| (&*g.fingerprint, g.count, g.severity, g.expected))
            .collect();
        assert_eq!(classes, vec![("fp-old", 9, 4, true)], "{name}");

        let made_new = SqlStore::connect(&fresh.url).await.unwrap();
        made_new.migrate().await.unwrap();
        made_new.checkpoint_and_close().await;
        let fresh_pool = raw_pool(&fresh).await;
        assert_eq!(
            schema(&pool, name).await,
            schema(&fresh_pool, name).await,
            "{name} {previous:?}: the upgraded schema differs from a new database's"
        );
        store.checkpoint_and_close().await;
        pool.close().await;
        fresh_pool.close().await;
    }
}

#[tokio::test]
async fn a_database_that_ran_the_first_text_of_0002_upgrades() {
    upgrades(Previous::FirstText).await;
}

#[tokio::test]
async fn a_database_that_ran_the_extended_text_of_0002_upgrades() {
    upgrades(Previous::Extended).await;
}

/// Only the first text's own checksum is repaired: a database whose record
/// of 0002 matches neither text is refused, as sqlx refuses it.
#[tokio::test]
async fn an_unknown_text_of_0002_is_still_refused() {
    for db in support::databases().await {
        let pool = previous_release(&db, Previous::FirstText).await;
        sqlx::query(
            "UPDATE _sqlx_migrations SET checksum = \
             (SELECT checksum FROM _sqlx_migrations WHERE version = 1) WHERE version = 2",
        )
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
        let store = SqlStore::connect(&db.url).await.unwrap();
        let refused = store.migrate().await.unwrap_err();
        assert!(
            matches!(
                refused,
                StoreError::Migrate(MigrateError::VersionMismatch(2))
            ),
            "{}: {refused}",
            db.name
        );
        store.checkpoint_and_close().await;
    }
}
