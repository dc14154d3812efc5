//! End to end through the store: real backends, the proxy, the writer and
//! the database (SQLite and PostgreSQL). What the proxy saw is what the store
//! holds: exact counts, one group per bug, exemplars, and no secret in clear.

use axum::extract::Path;
use axum::routing::{get, post};
use axum::Router;
use serde_json::json;
use shadowdiff::sampling::SampleRate;
use shadowdiff::store::{MismatchFilter, SqlStore, Store, Window};
use sqlx::Row;

use crate::support::{self, TestDatabase};

pub const SECRETS: [&str; 6] = [
    "SECRET-bearer",
    "SECRET-cookie",
    "SECRET-query",
    "SECRET-password",
    "SECRET-set-cookie",
    "SECRET-api-key",
];

/// The old service: totals are right.
pub async fn primary() -> support::Backend {
    support::backend(
        Router::new()
            .route(
                "/users/{id}",
                get(|Path(id): Path<u32>| async move {
                    (
                        [
                            ("content-type", "application/json"),
                            ("set-cookie", "sid=SECRET-set-cookie; Path=/"),
                        ],
                        json!({"id": id, "total": 30.0, "password": "SECRET-password"}).to_string(),
                    )
                }),
            )
            .route(
                "/login",
                post(|| async { ([("content-type", "application/json")], "{\"ok\":true}") }),
            ),
    )
    .await
}

/// The new service: even ids get a wrong total, the seeded bug.
pub async fn candidate() -> support::Backend {
    support::backend(
        Router::new()
            .route(
                "/users/{id}",
                get(|Path(id): Path<u32>| async move {
                    let total = if id % 2 == 0 { 3 } else { 30 };
                    (
                        [
                            ("content-type", "application/json"),
                            ("set-cookie", "sid=SECRET-set-cookie; Path=/"),
                        ],
                        json!({"id": id, "total": total, "password": "SECRET-password"})
                            .to_string(),
                    )
                }),
            )
            .route(
                "/login",
                post(|| async { ([("content-type", "application/json")], "{\"ok\":false}") }),
            ),
    )
    .await
}

pub fn settings(
    primary: &support::Backend,
    candidate: &support::Backend,
    db: &TestDatabase,
    instance: &str,
) -> shadowdiff::Settings {
    let mut s = support::settings(primary, candidate.url());
    s.database_url = Some(db.url.clone());
    s.instance = instance.into();
    s.sample_rate = SampleRate::ALL;
    let config = r#"
        [redact]
        headers = ["x-api-key"]
        query = ["token"]
        json = ["/**/password"]
        key = "test-key"

        [[route]]
        match = "POST /login"
        mirror_unsafe = true
    "#;
    let layer = shadowdiff::config::Layer::from_toml(config).unwrap();
    s.redact = layer.redact.unwrap();
    s.routes = layer.routes.unwrap();
    s
}

pub async fn traffic(proxy: &support::RunningProxy, ids: std::ops::Range<u32>) {
    let client = support::client();
    for id in ids {
        let response = client
            .get(proxy.url(&format!("/users/{id}?token=SECRET-query&page=1")))
            .header("authorization", "Bearer SECRET-bearer")
            .header("cookie", "session=SECRET-cookie")
            .header("x-api-key", "SECRET-api-key")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
}

/// A login whose body carries a password, which must never be stored.
pub async fn login(proxy: &support::RunningProxy) {
    let response = support::client()
        .post(proxy.url("/login"))
        .header("content-type", "application/json")
        .body(r#"{"user":"ada","password":"SECRET-password"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

fn all_time() -> Window {
    Window {
        since_ms: 0,
        until_ms: i64::MAX / 2,
    }
}

/// Every text and binary column of every table, as one string per row.
async fn raw_rows(db: &TestDatabase) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url.to_string().replace("***", "")).await;
    let pool = match pool {
        Ok(pool) => pool,
        Err(_) => sqlx::AnyPool::connect(&db_url_raw(db)).await.unwrap(),
    };
    let mut out = Vec::new();
    for (table, columns) in [
        ("mismatches", "endpoint, fingerprint, method, path, query, request_headers, request_body, primary_headers, primary_body, candidate_headers, candidate_body, verdict"),
        ("mismatch_groups", "fingerprint, endpoint, paths, status, note"),
        ("counters", "endpoint, outcome, instance"),
    ] {
        let rows = sqlx::query(&format!("SELECT {columns} FROM {table}")).fetch_all(&pool).await.unwrap();
        for row in rows {
            let mut text = String::new();
            for i in 0..row.len() {
                match row.try_get::<String, _>(i) {
                    Ok(s) => text.push_str(&s),
                    Err(_) => text.push_str(&String::from_utf8_lossy(&row.try_get::<Vec<u8>, _>(i).unwrap())),
                }
                text.push('|');
            }
            out.push(text);
        }
    }
    out
}

fn db_url_raw(db: &TestDatabase) -> String {
    // The test's own URL carries no password; Display hides none then.
    db.url.to_string()
}

// Long by design: one traffic run, then the stored rows checked against it.
#[tokio::test]
async fn what_the_proxy_saw_is_stored_exactly_and_without_secrets() {
    let (primary, candidate) = (primary().await, candidate().await);
    for db in support::databases().await {
        let proxy = support::start(settings(&primary, &candidate, &db, "one")).await;
        traffic(&proxy, 0..10).await;
        login(&proxy).await;
        proxy.outcomes(11).await;
        // Stopping flushes the writer: the store then holds everything.
        proxy.stop().await;

        let store = SqlStore::connect(&db.url).await.unwrap();
        let counts = store.counts(all_time(), "", None).await.unwrap();
        let users = counts
            .iter()
            .find(|c| c.endpoint == "GET /users/{id}")
            .unwrap();
        assert_eq!(
            users.outcomes.get("matched"),
            Some(&5),
            "{}: {counts:?}",
            db.name
        );
        assert_eq!(
            users.outcomes.get("mismatched"),
            Some(&5),
            "{}: {counts:?}",
            db.name
        );
        let login = counts.iter().find(|c| c.endpoint == "POST /login").unwrap();
        assert_eq!(login.outcomes.get("mismatched"), Some(&1));

        let groups = store.groups(Some("GET /users/{id}"), None).await.unwrap();
        assert_eq!(
            groups.len(),
            1,
            "{}: one bug, one group: {groups:?}",
            db.name
        );
        assert_eq!(groups[0].count, 5);
        assert_eq!(groups[0].paths, vec!["/total".to_string()]);

        let stored = store
            .mismatches(
                MismatchFilter {
                    endpoint: Some("GET /users/{id}"),
                    ..Default::default()
                },
                None,
                100,
            )
            .await
            .unwrap();
        assert_eq!(stored.len(), 5, "{}", db.name);
        let patch = &stored[0].record.verdict["patch"];
        assert_eq!(
            patch,
            &json!([{"op": "replace", "path": "/total", "value": 3}]),
            "{}",
            db.name
        );
        assert_eq!(stored[0].record.query.split('&').nth(1), Some("page=1"));

        let latency = store
            .latencies(all_time(), "", Some("GET /users/{id}"))
            .await
            .unwrap();
        assert_eq!(latency[0].candidate.total(), 10, "{}", db.name);

        let rows = raw_rows(&db).await;
        assert!(rows.len() >= 8, "{}: {} rows", db.name, rows.len());
        for row in &rows {
            for secret in SECRETS {
                assert!(
                    !row.contains(secret),
                    "{}: {secret} reached the store: {row}",
                    db.name
                );
            }
        }
    }
}

#[tokio::test]
async fn two_instances_add_up_in_one_database_and_a_restart_keeps_everything() {
    let (primary, candidate) = (primary().await, candidate().await);
    for db in support::databases().await {
        let one = support::start(settings(&primary, &candidate, &db, "one")).await;
        let two = support::start(settings(&primary, &candidate, &db, "two")).await;
        traffic(&one, 0..6).await;
        traffic(&two, 6..10).await;
        one.outcomes(6).await;
        two.outcomes(4).await;
        one.stop().await;
        two.stop().await;
        // A restart on the same database adds to what is there.
        let again = support::start(settings(&primary, &candidate, &db, "one")).await;
        traffic(&again, 10..12).await;
        again.outcomes(2).await;
        again.stop().await;

        let store = SqlStore::connect(&db.url).await.unwrap();
        let counts = store
            .counts(all_time(), "", Some("GET /users/{id}"))
            .await
            .unwrap();
        assert_eq!(
            counts[0].outcomes.get("matched"),
            Some(&6),
            "{}: {counts:?}",
            db.name
        );
        assert_eq!(
            counts[0].outcomes.get("mismatched"),
            Some(&6),
            "{}: {counts:?}",
            db.name
        );
        let groups = store.groups(None, None).await.unwrap();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].count, 6);
        let instances: std::collections::BTreeSet<String> = store
            .mismatches(MismatchFilter::default(), None, 100)
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.instance)
            .collect();
        assert_eq!(
            instances.into_iter().collect::<Vec<_>>(),
            vec!["one", "two"],
            "{}",
            db.name
        );
    }
}

#[tokio::test]
async fn the_database_going_away_costs_clients_nothing_and_losses_are_counted() {
    let pg = support::ThrowawayPostgres::start();
    let (primary, candidate) = (primary().await, candidate().await);
    let db = support::sqlite_database();
    let mut config = settings(&primary, &candidate, &db, "one");
    config.database_url = Some(pg.url().parse().unwrap());
    config.store_queue = 3.try_into().unwrap();
    // With the report API, which shows the writer's health.
    let proxy = support::start_with_report(config).await;
    let url = pg.url().parse().unwrap();

    traffic(&proxy, 0..4).await;
    let store = wait_for_counts(&url, 4).await;
    // The exemplars follow the counts in a transaction of their own.
    assert_eq!(wait_for_exemplars(&store, 2).await, 2);
    drop(store);

    pg.stop();
    // While the database is down: every answer as usual, and quick.
    for id in 4..16 {
        let started = std::time::Instant::now();
        traffic(&proxy, id..id + 1).await;
        assert!(
            started.elapsed() < std::time::Duration::from_secs(1),
            "request {id} waited {:?}",
            started.elapsed()
        );
    }
    proxy.outcomes(16).await;
    // Once the writer has failed (so has had to keep what it could), bring
    // the database back.
    wait_for_failing_writer(&proxy).await;
    pg.start_again();

    let store = wait_for_counts(&url, 16).await;
    let counts = store
        .counts(all_time(), "", Some("GET /users/{id}"))
        .await
        .unwrap();
    assert_eq!(counts[0].outcomes.get("mismatched"), Some(&8), "{counts:?}");
    // 2 exemplars before the outage; of the 6 during it, 3 fit the queue.
    // Exemplars are written after the counts, in a transaction of their own.
    assert_eq!(wait_for_exemplars(&store, 5).await, 5);
    assert_eq!(store.lost(all_time()).await.unwrap(), 3);
    assert_eq!(store.groups(None, None).await.unwrap()[0].count, 8);
    proxy.stop().await;
}

/// Waits (bounded) until the store holds at least `n` exemplars; returns
/// how many it holds.
async fn wait_for_exemplars(store: &SqlStore, n: usize) -> usize {
    for _ in 0..100 {
        let stored = store
            .mismatches(MismatchFilter::default(), None, 100)
            .await
            .unwrap();
        if stored.len() >= n {
            return stored.len();
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the store never held {n} exemplars");
}

/// Waits (bounded) until the report API says that the store writer's writes
/// fail: it has tried the database since it went away.
async fn wait_for_failing_writer(proxy: &support::RunningProxy) {
    let summary = format!("http://{}/api/v1/summary", proxy.report.unwrap());
    let client = support::client();
    let started = std::time::Instant::now();
    let mut last = serde_json::Value::Null;
    // Each try can take the store's connect timeout (5 s) while it is down.
    while started.elapsed() < std::time::Duration::from_secs(60) {
        // Without its database the summary is a 503 that carries the health.
        let response = client.get(&summary).send().await.unwrap();
        last = response.json().await.unwrap();
        if last["store"]["status"] == "failing" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the writer never reported a failed write: {last}");
}

/// Waits (bounded) until the store holds `n` comparisons in all.
async fn wait_for_counts(url: &shadowdiff::store::DatabaseUrl, n: i64) -> SqlStore {
    for _ in 0..600 {
        if let Ok(store) = SqlStore::connect(url).await {
            if let Ok(counts) = store.counts(all_time(), "", None).await {
                let compared: i64 = counts
                    .iter()
                    .flat_map(|c| c.outcomes.iter())
                    .filter(|(k, _)| *k == "matched" || *k == "mismatched")
                    .map(|(_, v)| v)
                    .sum();
                if compared >= n {
                    return store;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the store never held {n} comparisons");
}
