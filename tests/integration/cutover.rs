//! Progressive cutover on the client path: at a weight above 0 the route's
//! candidate serves a sticky, nested share of clients, and every sampled
//! request is still compared (the primary called in the background for the
//! candidate's clients); a candidate that cannot be reached costs safe
//! requests nothing with the fallback on; writes can stay on the primary.

use shadowdiff::outcome::{CandidateErrorKind, OutcomeKey};
use shadowdiff::sampling::{SampleRate, Weight};

use crate::support::{self, Hit};

const ROLE: &str = "x-shadowdiff-role";

/// The users whose requests `hits` got as clients' (not as shadow copies).
fn served_users(hits: &[Hit]) -> Vec<String> {
    hits.iter()
        .filter(|h| !h.headers.contains_key(ROLE))
        .map(|h| h.headers["x-user-id"].to_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_weighted_candidate_serves_its_cohort_and_every_sample_is_still_compared() {
    let (primary, primary_hits) = support::recording_backend().await;
    let (candidate, candidate_hits) = support::recording_backend().await;
    let db = support::sqlite_database();
    let mut settings = support::settings(&primary, candidate.url());
    settings.sample_rate = SampleRate::ALL;
    settings.sticky_key = Some("header:x-user-id".parse().unwrap());
    settings.weight = Weight::new(25.0).unwrap();
    settings.database_url = Some(db.url.clone());
    let proxy = support::start_with_report(settings).await;
    let client = support::client();
    for round in 0..2 {
        for user in 0..200 {
            let response = client
                .get(proxy.url(&format!("/items/{user}?round={round}")))
                .header("x-user-id", format!("user-{user}"))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(response.text().await.unwrap(), "{\"ok\":true}");
        }
    }
    let tally = proxy.outcomes(400).await;
    assert_eq!(tally.count(OutcomeKey::Matched), 400, "{tally:?}");
    let by_candidate = served_users(&candidate_hits.wait_for(400).await);
    let by_primary = served_users(&primary_hits.wait_for(400).await);
    assert_eq!(by_candidate.len() + by_primary.len(), 400);
    // Each user is served by one side only, both times.
    for user in &by_candidate {
        assert!(!by_primary.contains(user), "{user} was served by both");
        assert_eq!(
            by_candidate.iter().filter(|u| *u == user).count(),
            2,
            "{user}"
        );
    }
    let share = by_candidate.len() as f64 / 4.0;
    assert!(
        (15.0..35.0).contains(&share),
        "{share}% served by the candidate"
    );
    // The candidate's clients were compared through the primary's copy.
    let copies_to_primary = primary_hits
        .all()
        .iter()
        .filter(|h| h.headers.contains_key(ROLE))
        .count();
    assert_eq!(copies_to_primary, by_candidate.len());
    // The store says which side served each sample.
    let api = format!("http://{}/api/v1/summary?since=1h", proxy.report.unwrap());
    let mut summary = serde_json::Value::Null;
    for _ in 0..200 {
        summary = support::client()
            .get(&api)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if summary["totals"]["compared"] == 400 && summary["store"]["unwritten"] == 0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        summary["totals"]["served_by_candidate"],
        by_candidate.len(),
        "{summary}"
    );
    let metrics = proxy.metrics().await;
    let served = format!(
        "shadowdiff_served_requests_total{{side=\"candidate\"}} {}",
        by_candidate.len()
    );
    assert!(metrics.contains(&served), "{metrics}");
    assert!(
        metrics.contains("shadowdiff_rollout_weight_percent{route=\"*\"} 25"),
        "{metrics}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_candidate_serving_a_quarter_fails_no_safe_request_with_the_fallback() {
    let (primary, primary_hits) = support::recording_backend().await;
    let mut settings = support::settings(&primary, support::refusing_url().await);
    settings.sample_rate = SampleRate::ALL;
    settings.weight = Weight::new(25.0).unwrap();
    settings.fallback = shadowdiff::config::Fallback::Primary;
    let proxy = support::start_with_report(settings).await;
    let client = support::client();
    for i in 0..200 {
        let response = client
            .get(proxy.url(&format!("/items/{i}")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "request {i}");
        assert_eq!(response.text().await.unwrap(), "{\"ok\":true}");
    }
    let tally = proxy.outcomes(200).await;
    // Every request was answered by the primary, a quarter of them after
    // the candidate could not be reached; the candidate's shadow calls for
    // the rest fail too, until the breaker sheds them.
    let failed = tally.count(OutcomeKey::CandidateError(CandidateErrorKind::Connect))
        + tally.count(OutcomeKey::Skipped(
            shadowdiff::outcome::SkipReason::CandidateUnhealthy,
        ));
    assert_eq!(failed, 200, "{tally:?}");
    let served = primary_hits
        .all()
        .iter()
        .filter(|h| !h.headers.contains_key(ROLE))
        .count();
    assert_eq!(served, 200);
    let metrics = proxy.metrics().await;
    let fallbacks: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("shadowdiff_rollout_fallbacks_total "))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!((20..90).contains(&fallbacks), "{fallbacks} fallbacks");
    assert!(
        metrics.contains("shadowdiff_served_requests_total{side=\"primary\"} 200"),
        "{metrics}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_can_stay_on_the_primary_at_any_weight() {
    let (primary, primary_hits) = support::recording_backend().await;
    let (candidate, candidate_hits) = support::recording_backend().await;
    let mut settings = support::settings(&primary, candidate.url());
    settings.weight = Weight::new(100.0).unwrap();
    settings.writes = shadowdiff::config::Writes::Primary;
    let proxy = support::start(settings).await;
    let client = support::client();
    let read = client.get(proxy.url("/orders/1")).send().await.unwrap();
    assert_eq!(read.status(), 200);
    let write = client
        .post(proxy.url("/orders"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 200);
    proxy.outcomes(2).await;
    let served = |hits: &[Hit]| -> Vec<String> {
        hits.iter()
            .filter(|h| !h.headers.contains_key(ROLE))
            .map(|h| format!("{} {}", h.method, h.target))
            .collect()
    };
    assert_eq!(served(&candidate_hits.wait_for(1).await), ["GET /orders/1"]);
    assert_eq!(served(&primary_hits.wait_for(2).await), ["POST /orders"]);
    proxy.stop().await;
}
