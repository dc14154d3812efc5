//! Collector mode: 1,000 request/response pairs the primary already
//! answered, posted to `/collect`, are compared with the candidate with the
//! same verdicts (outcomes, groups, each group's count) as inline mode on
//! the same traffic, and the primary receives no request at all. The same
//! pairs as a HAR replay with `--recorded-primary` the same way.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use shadowdiff::config::Mode;
use shadowdiff::sampling::SampleRate;

use crate::support::{self, TestDatabase};

const PAIRS: u64 = 1_000;

/// The monolith: every item, counting the requests it gets.
async fn primary() -> (support::Backend, Arc<AtomicU64>) {
    let hits = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&hits);
    let backend = support::backend(Router::new().route(
        "/items/{id}",
        get(move |Path(id): Path<u64>| {
            counted.fetch_add(1, Ordering::Relaxed);
            async move {
                (
                    [("content-type", "application/json")],
                    json!({"id": id, "name": format!("item-{id}"), "tags": ["a", "b"]}).to_string(),
                )
            }
        }),
    ))
    .await;
    (backend, hits)
}

/// The port: a name off on every 7th item, every 11th missing.
async fn candidate() -> support::Backend {
    support::backend(Router::new().route(
        "/items/{id}",
        get(|Path(id): Path<u64>| async move {
            let status = if id % 11 == 0 { 404 } else { 200 };
            let name = if id % 7 == 0 {
                format!("Item {id}")
            } else {
                format!("item-{id}")
            };
            (
                http::StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json")],
                json!({"id": id, "name": name, "tags": ["a", "b"]}).to_string(),
            )
        }),
    ))
    .await
}

/// What a run stored: outcome totals, and each group's count.
#[derive(Debug, PartialEq)]
struct Verdicts {
    outcomes: Value,
    groups: BTreeMap<String, i64>,
}

/// Waits until the store holds `n` comparisons' outcomes, and reads them.
async fn stored(report: std::net::SocketAddr, n: u64) -> Verdicts {
    let api = format!("http://{report}/api/v1");
    let mut summary = Value::Null;
    for _ in 0..300 {
        let response = support::client()
            .get(format!("{api}/summary?since=1h"))
            .send()
            .await
            .unwrap();
        summary = response.json().await.unwrap();
        let done = summary["totals"]["compared"].as_u64().unwrap_or(0)
            + summary["totals"]["candidate_errors"].as_u64().unwrap_or(0);
        if done >= n && summary["store"]["unwritten"] == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let groups: Value = support::client()
        .get(format!("{api}/groups?since=1h"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    Verdicts {
        outcomes: summary["totals"]["outcomes"].clone(),
        groups: groups
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    g["fingerprint"].as_str().unwrap().to_string(),
                    g["count"].as_i64().unwrap(),
                )
            })
            .collect(),
    }
}

fn settings(
    primary: &support::Backend,
    candidate: &support::Backend,
    db: &TestDatabase,
) -> shadowdiff::Settings {
    let mut settings = support::settings(primary, candidate.url());
    settings.database_url = Some(db.url.clone());
    settings.sample_rate = SampleRate::ALL;
    settings
}

/// Sends every item through `url`, sixteen at a time.
async fn traffic(base: &str) {
    let clients: Vec<_> = (0..16)
        .map(|lane| {
            let base = base.to_string();
            tokio::spawn(async move {
                for id in (1 + lane..=PAIRS).step_by(16) {
                    let r = support::client()
                        .get(format!("{base}/items/{id}"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
}

/// Each request with the primary's answer, as a tap would capture it.
async fn captured_pairs(primary: &support::Backend) -> Vec<Value> {
    let mut pairs = Vec::new();
    for id in 1..=PAIRS {
        let path = format!("/items/{id}");
        let response = support::client()
            .get(format!("http://{}{path}", primary.addr))
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        let body = response.text().await.unwrap();
        pairs.push(json!({
            "method": "GET",
            "path": path,
            "headers": {"accept": "application/json"},
            "response": {
                "status": status,
                "headers": {"content-type": content_type},
                "body": body,
                "latency_ms": 2.5
            }
        }));
    }
    pairs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collected_pairs_get_the_verdicts_of_inline_mode_without_calling_the_primary() {
    let (primary, primary_hits) = primary().await;
    let candidate = candidate().await;

    let inline_db = support::sqlite_database();
    let inline = support::start_with_report(settings(&primary, &candidate, &inline_db)).await;
    traffic(&format!("http://{}", inline.addr)).await;
    inline.outcomes(PAIRS).await;
    let inline_verdicts = stored(inline.report.unwrap(), PAIRS).await;
    inline.stop().await;
    // 1,000 items: 142 sevenths, 90 elevenths, 12 both.
    assert_eq!(
        inline_verdicts.outcomes["matched"], 780,
        "{inline_verdicts:?}"
    );
    assert_eq!(inline_verdicts.groups.values().sum::<i64>(), 220);

    let pairs = captured_pairs(&primary).await;
    primary_hits.store(0, Ordering::Relaxed);
    let collector_db = support::sqlite_database();
    let mut collector_settings = settings(&primary, &candidate, &collector_db);
    collector_settings.mode = Mode::Collector;
    let collector = support::start_with_report(collector_settings).await;
    for batch in pairs.chunks(250) {
        let lines: String = batch.iter().map(|p| format!("{p}\n")).collect();
        let response = support::client()
            .post(collector.url("/collect"))
            .header("content-type", "application/x-ndjson")
            .body(lines)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer, json!({"accepted": 250, "problems": []}));
    }
    collector.outcomes(PAIRS).await;
    let collected_verdicts = stored(collector.report.unwrap(), PAIRS).await;
    assert_eq!(collected_verdicts, inline_verdicts);
    assert_eq!(
        primary_hits.load(Ordering::Relaxed),
        0,
        "the primary was called"
    );

    // A pair without its response is answered back, not taken; other paths
    // are not the collector's.
    let response = support::client()
        .post(collector.url("/collect"))
        .body("{\"path\": \"/items/1\"}\nnot json\n")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["accepted"], 0);
    assert_eq!(answer["problems"].as_array().unwrap().len(), 2, "{answer}");
    let other = support::client()
        .get(collector.url("/items/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    collector.stop().await;
    assert_eq!(
        primary_hits.load(Ordering::Relaxed),
        0,
        "the primary was called"
    );

    // The same pairs as a HAR, replayed against the recorded responses.
    let entries: Vec<Value> = pairs
        .iter()
        .map(|p| {
            let r = &p["response"];
            json!({
                "time": 3.0,
                "timings": {"wait": 2.5},
                "request": {
                    "method": "GET",
                    "url": format!("http://monolith.example{}", p["path"].as_str().unwrap()),
                    "headers": [{"name": "Accept", "value": "application/json"}]
                },
                "response": {
                    "status": r["status"],
                    "headers": [{"name": "Content-Type", "value": r["headers"]["content-type"]}],
                    "content": {"size": r["body"].as_str().unwrap().len(), "mimeType": "application/json", "text": r["body"]}
                }
            })
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let har = dir.path().join("export.har");
    std::fs::write(
        &har,
        json!({"log": {"version": "1.2", "entries": entries}}).to_string(),
    )
    .unwrap();
    let replay_db = support::sqlite_database();
    let out = support::binary(
        [
            "replay",
            "--input",
            har.to_str().unwrap(),
            "--recorded-primary",
            "--primary",
            &primary.url().to_string(),
            "--candidate",
            &candidate.url().to_string(),
            "--database-url",
            &replay_db.url.to_string(),
            "--format",
            "json",
            "--min-parity",
            "50",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    )
    .await;
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert_eq!(report["total"]["matched"], 780, "{report}");
    assert_eq!(report["total"]["mismatched"], 220, "{report}");
    assert_eq!(
        primary_hits.load(Ordering::Relaxed),
        0,
        "the replay called the primary"
    );
}
