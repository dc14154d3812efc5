//! Noise learning end to end, with NO ignore rules: two instances of the
//! old backend (the primary and the `secondary`) and a candidate with one
//! real bug, all answering with a random request id, the current time, a
//! randomly ordered array, a per-instance counter and a random trace id
//! beside a stable sibling, and a noisy member named like an index beside a
//! sibling with a bug. After a warm-up of `noise_min_samples` paired
//! requests, only the real bug is still a mismatch, and the noise report
//! lists exactly the volatile paths. A field noisy on one endpoint is no
//! noise on another. Without a secondary, the detector proposes masks for
//! the volatile values only.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use rand::seq::SliceRandom;
use rand::Rng;
use serde_json::{json, Value};
use shadowdiff::sampling::SampleRate;

use crate::support;

/// Paired samples before anything can be noise (the setting).
const WARM_UP: usize = 20;

fn uuid() -> String {
    let b: [u8; 16] = rand::rng().random();
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn now() -> String {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64;
    let text = shadowdiff::time::format_millis(micros / 1000);
    // Microseconds, as Python's isoformat gives them.
    format!("{}{:03}Z", text.trim_end_matches('Z'), micros % 1000)
}

/// One instance of a backend: `bug` adds 1 to every order's total and
/// gives users a random request id where the old code's is stable.
async fn instance(bug: bool) -> support::Backend {
    let hits = Arc::new(AtomicU64::new(rand::rng().random_range(1_000..1_000_000)));
    let orders = move |Path(id): Path<u64>| {
        let hits = hits.fetch_add(1, Ordering::Relaxed);
        async move {
            let mut items = vec!["a", "b", "c", "d"];
            items.shuffle(&mut rand::rng());
            let body = json!({
                "id": id,
                "request_id": uuid(),
                "now": now(),
                "items": items,
                "hits": hits,
                "meta": {"trace": uuid(), "version": "1"},
                "total": 10 * id + u64::from(bug),
            });
            ([("content-type", "application/json")], body.to_string())
        }
    };
    let users = move |Path(id): Path<u64>| async move {
        let request_id = if bug { uuid() } else { format!("user-{id}") };
        // A member named like an index (`2024`) is noisy; its sibling
        // `total` is a real bug, which learning `2024` must never hide.
        let stats = json!({"2024": uuid(), "total": 5 + u64::from(bug)});
        let body = json!({"id": id, "request_id": request_id, "stats": stats});
        ([("content-type", "application/json")], body.to_string())
    };
    support::backend(
        Router::new()
            .route("/api/orders/{id}", get(orders))
            .route("/api/users/{id}", get(users)),
    )
    .await
}

async fn api(base: &str, path: &str) -> Value {
    support::get_json(&format!("{base}{path}")).await
}

/// Sends `n` requests to each endpoint, one at a time, in a random order of ids.
async fn traffic(proxy: &support::RunningProxy, n: usize, done: &mut u64) {
    let mut ids: Vec<u64> = (1..=n as u64).map(|i| i * 7 + *done).collect();
    ids.shuffle(&mut rand::rng());
    for id in ids {
        for path in [format!("/api/orders/{id}"), format!("/api/users/{id}")] {
            let response = reqwest::get(proxy.url(&path)).await.unwrap();
            assert_eq!(response.status(), 200);
            *done += 1;
            proxy.outcomes(*done).await;
        }
    }
}

fn settings(
    primary: &support::Backend,
    candidate: &support::Backend,
    secondary: Option<&support::Backend>,
    db: &support::TestDatabase,
) -> shadowdiff::Settings {
    let mut s = support::settings(primary, candidate.url());
    s.database_url = Some(db.url.clone());
    s.sample_rate = SampleRate::ALL;
    s.secondary = secondary.map(support::Backend::url);
    s.noise_min_samples = std::num::NonZeroUsize::new(WARM_UP).unwrap();
    s
}

/// The paths of the endpoint's report, and its suggestion.
fn learned(report: &Value, endpoint: &str) -> (Vec<String>, String) {
    let e = report["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["endpoint"] == endpoint)
        .unwrap_or_else(|| panic!("{endpoint} not in {report}"));
    let paths = e["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap().to_string())
        .collect();
    (
        paths,
        e["suggestion"].as_str().unwrap_or_default().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn noise_learned_from_a_second_primary_leaves_only_the_real_bug() {
    let (primary, secondary, candidate) = (
        instance(false).await,
        instance(false).await,
        instance(true).await,
    );
    let db = support::sqlite_database();
    let proxy =
        support::start_with_report(settings(&primary, &candidate, Some(&secondary), &db)).await;
    let base = format!("http://{}", proxy.report.unwrap());
    let mut done = 0;
    traffic(&proxy, WARM_UP, &mut done).await;
    let warmed = shadowdiff::time::format_millis(shadowdiff::time::now_ms());
    tokio::time::sleep(Duration::from_millis(5)).await;
    traffic(&proxy, 30, &mut done).await;

    // After the warm-up, every order mismatch is the real bug alone, and
    // says what it discounted; users' request ids are still a bug there.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let page = api(
        &base,
        &format!("/api/v1/mismatches?since={warmed}&limit=500"),
    )
    .await;
    let items = page["items"].as_array().unwrap();
    assert!(!items.is_empty(), "the real bugs are still reported");
    for m in items {
        let paths: Vec<&str> = m["paths"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        match m["endpoint"].as_str().unwrap() {
            "GET /api/orders/{id}" => assert_eq!(paths, ["/total"], "{m}"),
            "GET /api/users/{id}" => assert_eq!(paths, ["/request_id", "/stats/total"], "{m}"),
            other => panic!("{other}"),
        }
    }
    // Each stored order says what it discounted; a shuffle that happened to
    // agree has nothing at `/items/*` to discount, so the union is checked.
    let mut reasons = String::new();
    for order in items
        .iter()
        .filter(|m| m["endpoint"] == "GET /api/orders/{id}")
        .take(5)
    {
        let detail = api(&base, &format!("/api/v1/mismatches/{}", order["id"])).await;
        reasons.push_str(&detail["verdict"]["reasons"].to_string());
    }
    for path in ["/request_id", "/now", "/items/*", "/hits", "/meta/trace"] {
        assert!(
            reasons.contains(&format!("discounted as noise: {path} ")),
            "{path}: {reasons}"
        );
    }

    // The noise report: exactly the volatile paths of orders; nothing on users.
    let report = api(&base, "/api/v1/noise").await;
    let (paths, suggestion) = learned(&report, "GET /api/orders/{id}");
    assert_eq!(
        paths,
        ["/hits", "/items/*", "/meta/trace", "/now", "/request_id"],
        "{report}"
    );
    assert!(
        !suggestion.contains("**") && !suggestion.contains("\"/meta\""),
        "{suggestion}"
    );
    assert!(
        !suggestion.contains("/meta/version") && !suggestion.contains("/total"),
        "{suggestion}"
    );
    let (paths, suggestion) = learned(&report, "GET /api/users/{id}");
    assert_eq!(
        paths,
        ["/stats/2024"],
        "noisy on orders is no noise on users"
    );
    assert!(!suggestion.contains("/stats/*"), "{suggestion}");
    shadowdiff::config::Layer::from_toml(&suggestion)
        .unwrap_or_else(|e| panic!("{suggestion}: {e:?}"));

    // What was learned is in the store: it survives a restart, and can be reset.
    proxy.stop().await;
    let proxy =
        support::start_with_report(settings(&primary, &candidate, Some(&secondary), &db)).await;
    let base = format!("http://{}", proxy.report.unwrap());
    let (paths, _) = learned(&api(&base, "/api/v1/noise").await, "GET /api/orders/{id}");
    assert_eq!(paths.len(), 5);
    let reset: Value = support::json_of(support::client().delete(format!(
        "{base}/api/v1/noise?endpoint=GET%20/api/orders/%7Bid%7D"
    )))
    .await;
    assert!(reset["removed"].as_u64().unwrap() > 0, "{reset}");
    let report = api(&base, "/api/v1/noise").await;
    assert!(
        !report["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["endpoint"] == "GET /api/orders/{id}"),
        "{report}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_secondary_the_detector_proposes_masks_for_volatile_values_only() {
    let (primary, candidate) = (instance(false).await, instance(true).await);
    let db = support::sqlite_database();
    let proxy = support::start_with_report(settings(&primary, &candidate, None, &db)).await;
    let base = format!("http://{}", proxy.report.unwrap());
    let mut done = 0;
    traffic(&proxy, 30, &mut done).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = api(&base, "/api/v1/noise").await;
    assert_eq!(report["secondary"], false);
    let (paths, suggestion) = learned(&report, "GET /api/orders/{id}");
    for volatile in ["/request_id", "/now"] {
        assert!(
            paths.contains(&volatile.to_string()),
            "{volatile}: {report}"
        );
    }
    for real in ["/total", "/items/*", "/meta/version", "/meta"] {
        assert!(
            !paths.contains(&real.to_string()),
            "{real} proposed: {report}"
        );
    }
    assert!(
        suggestion.contains("\"/request_id\" = \"uuid\""),
        "{suggestion}"
    );
    assert!(
        suggestion.contains("\"/now\" = \"timestamp\""),
        "{suggestion}"
    );
    assert!(
        !suggestion.contains("ignore") && !suggestion.contains("**"),
        "{suggestion}"
    );
    // Nothing is discounted without a secondary: every order still differs.
    let summary = api(&base, "/api/v1/summary").await;
    assert_eq!(summary["totals"]["matched"], 0, "{summary}");
    proxy.stop().await;
}

/// A secondary answering with an error teaches nothing: every path would
/// differ from the primary's and be learned as noise, hiding real bugs.
#[tokio::test(flavor = "multi_thread")]
async fn a_failing_secondary_teaches_nothing() {
    let (primary, candidate) = (instance(false).await, instance(true).await);
    let (failing, hits) = support::answering_backend(|_| {
        (
            http::StatusCode::SERVICE_UNAVAILABLE,
            "{\"error\":\"down\"}",
        )
    })
    .await;
    let db = support::sqlite_database();
    let proxy =
        support::start_with_report(settings(&primary, &candidate, Some(&failing), &db)).await;
    let base = format!("http://{}", proxy.report.unwrap());
    let mut done = 0;
    traffic(&proxy, WARM_UP + 5, &mut done).await;
    assert!(hits.all().len() >= WARM_UP, "the secondary was asked");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let report = api(&base, "/api/v1/noise").await;
    let (paths, _) = learned(&report, "GET /api/orders/{id}");
    assert!(paths.is_empty(), "{report}");
    let summary = api(&base, "/api/v1/summary").await;
    assert_eq!(
        summary["totals"]["matched"], 0,
        "nothing discounted: {summary}"
    );
    proxy.stop().await;
}

/// The secondary is a production instance of the old code: it never gets a
/// write, even where a route sends writes to the candidate, and never a
/// request whose route has a primary of its own.
#[tokio::test(flavor = "multi_thread")]
async fn the_secondary_gets_only_safe_requests_for_the_primary_it_mirrors() {
    let (primary, _) = support::recording_backend().await;
    let (secondary, secondary_hits) = support::recording_backend().await;
    let (candidate, candidate_hits) = support::recording_backend().await;
    let (other, _) = support::recording_backend().await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
        listen = "127.0.0.1:0"
        report_listen = "127.0.0.1:0"
        primary = "{}"
        secondary = "{}"
        candidate = "{}"
        database_url = "sqlite://{}/s.db"

        [backend.other]
        url = "{}"

        [[route]]
        match = "POST /orders"
        mirror_unsafe = true

        [[route]]
        match = "GET /search"
        primary = "other"
        "#,
        primary.url(),
        secondary.url(),
        candidate.url(),
        dir.path().display(),
        other.url(),
    );
    let (mut child, listen, _) = support::serve_config(dir.path(), "noise", &config, &[]).await;
    let client = support::client();
    let base = format!("http://127.0.0.1:{listen}");
    client
        .post(format!("{base}/orders"))
        .body("{}")
        .send()
        .await
        .unwrap();
    client
        .get(format!("{base}/search?q=x"))
        .send()
        .await
        .unwrap();
    client.get(format!("{base}/orders/1")).send().await.unwrap();
    // Every shadow call made: the POST and both GETs reach the candidate.
    candidate_hits.wait_for(3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let sent: Vec<String> = secondary_hits
        .all()
        .iter()
        .map(|h| format!("{} {}", h.method, h.target))
        .collect();
    assert_eq!(sent, ["GET /orders/1"]);
    child.kill().unwrap();
}
