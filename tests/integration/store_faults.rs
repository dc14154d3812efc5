//! The store under real faults, end to end: a read-only database fixed
//! mid-run, a small disk filled mid-run, a storm of big mismatches against
//! the exemplar byte budget (and, in `lifecycle`, the edges of a run).
//! Nothing may be lost silently: what is stored is counted exactly,
//! and what is not is counted as lost and shown with the store's health.

use std::process::Command;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use shadowdiff::store::{
    Batch, CounterDelta, DatabaseUrl, MismatchFilter, SqlStore, Store, Window,
};

use crate::support::{self, binary, TestDatabase};

/// Bytes of each side's body on `/big/{id}`.
mod lifecycle;

const BIG: usize = 100 * 1024;

/// The old service: `/items/{id}` small JSON, `/big/{id}` about 100 KB.
async fn primary() -> support::Backend {
    support::backend(
        Router::new()
            .route(
                "/items/{id}",
                get(|Path(id): Path<u32>| async move { axum::Json(json!({"id": id, "n": 1})) }),
            )
            .route(
                "/big/{id}",
                get(|Path(id): Path<u32>| async move {
                    axum::Json(json!({"id": id, "blob": "a".repeat(BIG)}))
                }),
            ),
    )
    .await
}

/// The new service: even items differ; every big body differs.
async fn candidate() -> support::Backend {
    support::backend(
        Router::new()
            .route(
                "/items/{id}",
                get(|Path(id): Path<u32>| async move {
                    axum::Json(json!({"id": id, "n": if id % 2 == 0 { 2 } else { 1 }}))
                }),
            )
            .route(
                "/big/{id}",
                get(|Path(id): Path<u32>| async move {
                    axum::Json(json!({"id": id, "blob": "b".repeat(BIG)}))
                }),
            ),
    )
    .await
}

async fn get_ok(proxy: &support::RunningProxy, target: &str) {
    let response = support::client()
        .get(proxy.url(target))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{target}");
}

async fn api(report: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let response = support::client()
        .get(format!("http://{report}{path}"))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Polls the summary (bounded) until `done` holds, and returns it. A store
/// that cannot be read answers 503, with the writer's health as `store`
/// beside the error: `done` sees that body too.
async fn summary_until(report: std::net::SocketAddr, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..300 {
        let (status, summary) = api(report, "/api/v1/summary?since=1h").await;
        if (status == 200 || summary["error"]["code"] == "store_unavailable") && done(&summary) {
            return summary;
        }
        last = json!({"status": status, "body": summary});
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the summary never got there; last: {last}");
}

fn all_time() -> Window {
    Window {
        since_ms: 0,
        until_ms: i64::MAX / 2,
    }
}

/// Comparisons (matched + mismatched) the store holds for live traffic.
async fn stored_comparisons(store: &SqlStore) -> i64 {
    store
        .counts(all_time(), "", None)
        .await
        .unwrap()
        .iter()
        .flat_map(|c| c.outcomes.iter())
        .filter(|(k, _)| *k == "matched" || *k == "mismatched")
        .map(|(_, v)| v)
        .sum()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn run(program: &str, args: &[&str]) {
    let status = Command::new(program).args(args).status().unwrap();
    assert!(status.success(), "{program} {args:?} failed");
}

/// A file system of the test's own: a size-limited tmpfs that can be made
/// read-only and filled, whoever runs the test (root included, whom file
/// permissions do not stop). Needs root to mount; unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// `None` (with a notice) where it cannot be mounted, but never under CI.
    fn mount(size: &str) -> Option<SmallDisk> {
        if !running_as_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "the small-disk tests need root under CI (to mount a tmpfs)"
            );
            eprintln!("notice: not root, cannot mount a small disk; skipping this test");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap().to_string();
        run(
            "mount",
            &["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", &path],
        );
        Some(SmallDisk { dir })
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }

    fn url(&self) -> DatabaseUrl {
        format!("sqlite://{}", self.path().join("shadowdiff.db").display())
            .parse()
            .unwrap()
    }

    fn read_only(&self, on: bool) {
        let mode = if on { "remount,ro" } else { "remount,rw" };
        run("mount", &["-o", mode, self.path().to_str().unwrap()]);
    }

    /// Fills the disk with a file until no byte is left.
    fn fill(&self) {
        use std::io::Write;
        let mut file = std::fs::File::create(self.path().join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let _ = file.sync_all();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        // Lazy: whatever still holds a file there, the mount goes.
        let _ = Command::new("umount")
            .args(["-l", self.dir.path().to_str().unwrap()])
            .status();
    }
}

/// A database made (migrated) and closed, ready to be made read-only.
async fn migrated(url: &DatabaseUrl) {
    let store = SqlStore::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    store.checkpoint_and_close().await;
}

/// Makes a PostgreSQL database read-only for new sessions, or writable again.
async fn postgres_read_only(url: &DatabaseUrl, on: bool) {
    let raw = url.to_string();
    let name = raw.rsplit('/').next().unwrap().split('?').next().unwrap();
    // From the server's own database: a session of this one would be read-only.
    let admin = support::postgres_admin_url();
    let pool = sqlx::PgPool::connect(&admin).await.unwrap();
    sqlx::query(&format!(
        "ALTER DATABASE {name} SET default_transaction_read_only = {}",
        if on { "on" } else { "off" }
    ))
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

// Long by design: one fault's whole course (before, during, after the fix) on each database.
#[tokio::test]
async fn a_read_only_database_is_written_again_once_fixed_and_gated_meanwhile() {
    let (primary, candidate) = (primary().await, candidate().await);
    let disk = match running_as_root() {
        true => SmallDisk::mount("16m"),
        false => None,
    };
    let mut databases: Vec<(&str, DatabaseUrl, Option<TestDatabase>)> = Vec::new();
    let plain = support::sqlite_database();
    match &disk {
        Some(disk) => databases.push(("sqlite (read-only file system)", disk.url(), None)),
        None => databases.push(("sqlite (read-only file)", plain.url.clone(), None)),
    }
    let pg = support::postgres_database().await;
    databases.push(("postgres (read-only database)", pg.url.clone(), Some(pg)));
    let disk = &disk;
    for (name, url, _guard) in &databases {
        migrated(url).await;
        let make_read_only = |on: bool| async move {
            match (url.sqlite_path(), disk) {
                (Some(_), Some(disk)) => disk.read_only(on),
                (Some(file), None) => {
                    let mode = if on { "a-w" } else { "u+w" };
                    run("chmod", &[mode, file.to_str().unwrap()]);
                    run("chmod", &[mode, file.parent().unwrap().to_str().unwrap()]);
                }
                (None, _) => postgres_read_only(url, on).await,
            }
        };
        make_read_only(true).await;

        let mut config = support::settings(&primary, candidate.url());
        config.database_url = Some(url.clone());
        let proxy = support::start_with_report(config).await;
        let report = proxy.report.unwrap();
        for id in 0..40 {
            get_ok(&proxy, &format!("/items/{id}")).await;
        }
        proxy.outcomes(40).await;
        let failing = summary_until(report, |s| {
            s["store"]["status"] == "failing" && s["store"]["unwritten"].as_i64() > Some(0)
        })
        .await;
        assert_eq!(
            failing["store"]["last_error"], "read_only",
            "{name}: {failing}"
        );
        // The cause stays on the server: no SQL, no path.
        let text = failing["store"].to_string();
        assert!(
            !text.contains("shadowdiff.db") && !text.contains("INSERT"),
            "{text}"
        );
        // Meanwhile the gate gives no verdict, through the API and the CLI.
        let (status, body) = api(report, "/api/v1/gate?since=1h").await;
        assert_eq!(status, 503, "{name}: {body}");
        assert_eq!(body["error"]["code"], "store_unhealthy", "{name}: {body}");
        let out = binary(vec![
            "gate".into(),
            "--report-url".into(),
            format!("http://{report}"),
        ])
        .await;
        assert_eq!(out.status.code(), Some(2), "{name}: {out:?}");
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("unhealthy"),
            "{name}: {out:?}"
        );

        // Fixed mid-run: more traffic, then every outcome is stored, exactly.
        make_read_only(false).await;
        for id in 40..60 {
            get_ok(&proxy, &format!("/items/{id}")).await;
        }
        proxy.outcomes(60).await;
        let healthy = summary_until(report, |s| {
            s["store"]["status"] == "ok" && s["totals"]["compared"] == 60
        })
        .await;
        assert_eq!(healthy["totals"]["mismatched"], 30, "{name}: {healthy}");
        assert_eq!(healthy["store"]["lost"], 0, "{name}: {healthy}");
        assert_eq!(healthy["lost_records"], 0, "{name}: {healthy}");
        proxy.stop().await;
        let store = SqlStore::connect(url).await.unwrap();
        assert_eq!(stored_comparisons(&store).await, 60, "{name}");
        // The group's hourly quota of exemplars: none was lost to the outage.
        let exemplars = store
            .mismatches(MismatchFilter::default(), None, 100)
            .await
            .unwrap();
        assert_eq!(exemplars.len(), 20, "{name}");
        store.checkpoint_and_close().await;
    }
}

#[tokio::test]
async fn a_full_disk_keeps_counts_written_and_counts_the_exemplars_it_drops() {
    let Some(disk) = SmallDisk::mount("8m") else {
        return;
    };
    let (primary, candidate) = (primary().await, candidate().await);
    let mut config = support::settings(&primary, candidate.url());
    config.database_url = Some(disk.url());
    let proxy = support::start_with_report(config).await;
    let report = proxy.report.unwrap();
    for id in 0..20 {
        get_ok(&proxy, &format!("/items/{id}")).await;
    }
    proxy.outcomes(20).await;
    summary_until(report, |s| s["totals"]["compared"] == 20).await;

    disk.fill();
    // Big mismatches cannot be stored any more; small counts still can.
    for id in 0..10 {
        get_ok(&proxy, &format!("/big/{id}")).await;
    }
    for id in 20..40 {
        get_ok(&proxy, &format!("/items/{id}")).await;
    }
    proxy.outcomes(50).await;
    // Every exemplar is then either stored or counted as lost: none waits.
    let summary = summary_until(report, |s| {
        s["totals"]["compared"] == 50
            && s["store"]["lost"].as_i64() > Some(0)
            && s["store"]["unwritten"] == 0
    })
    .await;
    let store = &summary["store"];
    assert_eq!(store["last_error"], "disk_full", "{summary}");
    // The reserve kept beside the database gave the counts their room.
    assert!(!disk.path().join("shadowdiff.db-reserve").exists());
    let lost = store["lost"].as_i64().unwrap();
    // Every mismatch is either stored as an exemplar or counted as lost.
    let db = SqlStore::connect(&disk.url()).await.unwrap();
    let exemplars = db
        .mismatches(MismatchFilter::default(), None, 1000)
        .await
        .unwrap()
        .len() as i64;
    assert_eq!(exemplars + lost, 30, "{summary}");
    let big_stored = db
        .mismatches(
            MismatchFilter {
                endpoint: Some("GET /big/{id}"),
                ..MismatchFilter::default()
            },
            None,
            1000,
        )
        .await
        .unwrap()
        .len();
    assert!(
        big_stored < 10,
        "{big_stored} big exemplars fit a full disk"
    );
    db.checkpoint_and_close().await;
    // The gate says the store is unhealthy rather than deciding.
    let (status, body) = api(report, "/api/v1/gate?since=1h").await;
    assert_eq!(status, 503, "{body}");
    proxy.stop().await;
}

#[tokio::test]
async fn a_storm_of_big_mismatches_stays_within_the_exemplar_byte_budget() {
    const BUDGET: usize = 1024 * 1024;
    let (primary, candidate) = (primary().await, candidate().await);
    for db in support::databases().await {
        let mut config = support::settings(&primary, candidate.url());
        config.database_url = Some(db.url.clone());
        config.store_exemplar_bytes_per_hour = BUDGET.try_into().unwrap();
        let proxy = support::start_with_report(config).await;
        let report = proxy.report.unwrap();
        // One group, so the 20-per-hour quota admits 20 of them; each is
        // over 200 KB stored, so the budget admits only a few.
        for id in 0..30 {
            get_ok(&proxy, &format!("/big/{id}")).await;
        }
        proxy.outcomes(30).await;
        let summary = summary_until(report, |s| {
            s["totals"]["mismatched"] == 30 && s["store"]["unwritten"] == 0
        })
        .await;
        let lost = summary["store"]["lost_by_reason"]["exemplar_byte_budget"]
            .as_i64()
            .unwrap_or(0);
        let store = SqlStore::connect(&db.url).await.unwrap();
        let stored = store
            .mismatches(MismatchFilter::default(), None, 100)
            .await
            .unwrap();
        let bytes: usize = stored
            .iter()
            .map(|m| {
                let r = &m.record;
                r.request.body.bytes.len()
                    + r.primary.body.bytes.len()
                    + r.candidate.body.bytes.len()
            })
            .sum();
        assert!(bytes <= BUDGET, "{}: {bytes} bytes stored", db.name);
        assert!(!stored.is_empty() && lost > 0, "{}: {summary}", db.name);
        assert_eq!(stored.len() as i64 + lost, 20, "{}: {summary}", db.name);
        assert_eq!(summary["lost_records"], lost, "{}: {summary}", db.name);
        proxy.stop().await;
        store.checkpoint_and_close().await;
    }
}
