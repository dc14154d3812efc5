//! GET /metrics after known traffic: the exposition's values, its format
//! and its label set, behind the report token.

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use shadowdiff::sampling::SampleRate;

use crate::support;

const TOKEN: &str = "metrics-t0ken";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_the_traffic_sent_behind_the_token() {
    let answer = |candidate: bool| {
        move |Path(id): Path<u32>| async move {
            let total = if candidate && id % 2 == 0 { 3 } else { 30 };
            (
                [("content-type", "application/json")],
                format!("{{\"total\":{total}}}"),
            )
        }
    };
    let primary = support::backend(Router::new().route("/users/{id}", get(answer(false)))).await;
    let candidate = support::backend(Router::new().route("/users/{id}", get(answer(true)))).await;
    let db = support::sqlite_database();
    let mut settings = support::settings(&primary, candidate.url());
    settings.database_url = Some(db.url.clone());
    settings.sample_rate = SampleRate::ALL;
    settings.report_token = Some(TOKEN.parse().unwrap());
    let proxy = support::start_with_report(settings).await;
    // Ids 1..=5: 3 odd ones match, 2 even ones differ.
    for id in 1..=5 {
        let response = support::client()
            .get(proxy.url(&format!("/users/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    proxy.recorder.wait_for(5).await;
    let url = format!("http://{}/metrics", proxy.report.unwrap());
    let refused = support::client().get(&url).send().await.unwrap();
    assert_eq!(refused.status(), 401, "no token, no metrics");
    let response = support::client()
        .get(&url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.text().await.unwrap();
    let value = |series: &str| -> Option<f64> {
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    };
    let users = "endpoint=\"GET /users/{id}\"";
    assert_eq!(
        value(&format!(
            "shadowdiff_samples_total{{{users},outcome=\"matched\"}}"
        )),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        value(&format!(
            "shadowdiff_samples_total{{{users},outcome=\"mismatched\"}}"
        )),
        Some(2.0),
        "{text}"
    );
    assert!(
        value("shadowdiff_client_connections_total{event=\"accepted\"}").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert!(value("shadowdiff_store_unwritten").is_some(), "{text}");
    assert!(text.contains("shadowdiff_build_info{version=\""), "{text}");
    // The format: every sample line belongs to a family declared with HELP
    // and TYPE before it, and carries only the documented labels.
    let mut declared = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            declared.push(rest.split(' ').next().unwrap().to_string());
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let name = line.split(['{', ' ']).next().unwrap();
        assert!(
            declared.iter().any(|d| d == name),
            "{name} has no TYPE line: {text}"
        );
        let labels = line
            .split_once('{')
            .map_or("", |(_, rest)| rest.split('}').next().unwrap());
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let key = pair.split('=').next().unwrap();
            assert!(
                ["endpoint", "outcome", "event", "reason", "version"].contains(&key),
                "label {key} is not documented: {line}"
            );
        }
    }
    proxy.stop().await;
}
