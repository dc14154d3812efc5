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
    assert!(
        value("shadowdiff_requests_total").is_some_and(|n| n >= 5.0),
        "{text}"
    );
    for (difference, n) in [("body", 2.0), ("status", 0.0), ("headers", 0.0)] {
        assert_eq!(
            value(&format!(
                "shadowdiff_mismatches_total{{{users},difference=\"{difference}\"}}"
            )),
            Some(n),
            "{difference}: {text}"
        );
    }
    assert_eq!(
        value(&format!("shadowdiff_byte_equal_total{{{users}}}")),
        Some(3.0),
        "{text}"
    );
    // {"total":30} is 12 bytes, {"total":3} 11.
    for (backend, bytes) in [("primary", 60.0), ("candidate", 58.0)] {
        let series = format!("{{{users},backend=\"{backend}\"}}");
        assert_eq!(
            value(&format!("shadowdiff_backend_response_bytes_total{series}")),
            Some(bytes),
            "{text}"
        );
        assert_eq!(
            value(&format!("shadowdiff_backend_5xx_total{series}")),
            Some(0.0),
            "{text}"
        );
        // The histogram: 226 cumulative buckets ending in +Inf, each at
        // least the one before, all five requests counted.
        let prefix = format!(
            "shadowdiff_backend_latency_seconds_bucket{{{users},backend=\"{backend}\",le=\""
        );
        let buckets: Vec<(String, f64)> = text
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .map(|rest| {
                let (le, n) = rest.split_once("\"} ").unwrap();
                (le.to_string(), n.parse().unwrap())
            })
            .collect();
        assert_eq!(buckets.len(), 226, "{backend}: {text}");
        assert_eq!(buckets.last().unwrap(), &("+Inf".to_string(), 5.0));
        assert!(buckets.windows(2).all(|w| w[0].1 <= w[1].1), "{buckets:?}");
        let bounds: Vec<f64> = buckets[..225]
            .iter()
            .map(|(le, _)| le.parse().unwrap())
            .collect();
        assert!(
            (bounds[0] - 0.001).abs() < 1e-12 && bounds.windows(2).all(|w| w[1] / w[0] < 1.045)
        );
        assert_eq!(
            value(&format!("shadowdiff_backend_latency_seconds_count{series}")),
            Some(5.0)
        );
        assert!(
            value(&format!("shadowdiff_backend_latency_seconds_sum{series}"))
                .is_some_and(|s| s > 0.0)
        );
    }
    assert_eq!(value("shadowdiff_comparisons_total"), Some(5.0), "{text}");
    assert_eq!(value("shadowdiff_shadow_queue_depth"), Some(0.0), "{text}");
    assert!(value("shadowdiff_shadows_in_flight").is_some(), "{text}");
    // A job's count ends just after its outcome is recorded: soon none.
    let mut in_flight = String::new();
    for _ in 0..100 {
        let r = support::client()
            .get(&url)
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        in_flight = r.text().await.unwrap();
        if in_flight
            .lines()
            .any(|l| l == "shadowdiff_shadows_in_flight 0")
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        in_flight
            .lines()
            .any(|l| l == "shadowdiff_shadows_in_flight 0"),
        "{in_flight}"
    );
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
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| name.strip_suffix(suffix))
            .filter(|f| declared.iter().any(|d| d == f))
            .unwrap_or(name);
        assert!(
            declared.iter().any(|d| d == family),
            "{name} has no TYPE line: {text}"
        );
        let labels = line
            .split_once('{')
            .map_or("", |(_, rest)| rest.split('}').next().unwrap());
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let key = pair.split('=').next().unwrap();
            assert!(
                [
                    "endpoint",
                    "outcome",
                    "event",
                    "reason",
                    "version",
                    "difference",
                    "backend",
                    "le",
                    "route",
                    "side",
                    "result"
                ]
                .contains(&key),
                "label {key} is not documented: {line}"
            );
        }
    }
    proxy.stop().await;
}

/// The endpoint label takes at most `max_endpoints` values, then `other`,
/// however many paths the traffic names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_labels_stay_within_the_endpoint_cap() {
    let answer = || async { ([("content-type", "application/json")], "{}") };
    let routes = || Router::new().fallback(get(answer));
    let primary = support::backend(routes()).await;
    let candidate = support::backend(routes()).await;
    let mut settings = support::settings(&primary, candidate.url());
    settings.sample_rate = SampleRate::ALL;
    settings.max_endpoints = std::num::NonZeroUsize::new(2).unwrap();
    let proxy = support::start_with_report(settings).await;
    for name in ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"] {
        let r = support::client()
            .get(proxy.url(&format!("/{name}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    proxy.recorder.wait_for(6).await;
    let text = proxy.metrics().await;
    let mut endpoints: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once("endpoint=\"")?.1.split('"').next())
        .collect();
    endpoints.sort();
    endpoints.dedup();
    assert_eq!(endpoints.len(), 3, "{endpoints:?}");
    assert!(
        endpoints.iter().any(|e| e.contains("other")),
        "{endpoints:?}"
    );
    let histogram_lines = text
        .lines()
        .filter(|l| l.starts_with("shadowdiff_backend_latency_seconds_bucket"))
        .count();
    assert_eq!(histogram_lines, 3 * 2 * 226, "the documented series budget");
    // Nothing mismatched, yet the series is there, at 0: PromQL ratios over
    // it are numbers, not empty.
    assert!(
        text.lines().any(|l| l.starts_with(
            "shadowdiff_samples_total{endpoint=\"GET /alpha\",outcome=\"mismatched\"} 0"
        )),
        "{text}"
    );
    proxy.stop().await;
}
