//! The candidate breaker: a candidate that keeps failing stops being
//! shadowed (every shed sample counted), and is shadowed again once a probe
//! finds it answering.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use shadowdiff::outcome::{CandidateErrorKind, OutcomeKey, SkipReason, Tally};
use tokio::io::AsyncWriteExt;

use crate::support;

/// A candidate that resets connections while `healthy` is false and answers
/// like the primary once it is true; it counts the requests it gets.
async fn flaky_candidate(
    healthy: Arc<AtomicBool>,
    hits: Arc<AtomicUsize>,
) -> shadowdiff::config::BackendUrl {
    support::raw_backend(move |mut socket| {
        let (healthy, hits) = (healthy.clone(), hits.clone());
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            if healthy.load(Ordering::SeqCst) {
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
                    )
                    .await;
                let _ = socket.shutdown().await;
            } else {
                #[allow(deprecated)]
                let _ = socket.set_linger(Some(Duration::ZERO));
            }
        }
    })
    .await
}

#[tokio::test]
async fn a_failing_candidate_is_shed_and_probed_until_it_answers() {
    let primary = support::backend(Router::new().route("/", get(|| async { "ok" }))).await;
    let (healthy, hits) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let candidate = flaky_candidate(healthy.clone(), hits.clone()).await;
    let mut settings = support::settings(&primary, candidate);
    settings.breaker_failures = std::num::NonZeroU32::new(3);
    let proxy = support::start(settings).await;
    let client = support::client();

    // One at a time, each outcome awaited: the breaker sees every failure
    // before the next request is sampled.
    let mut sent = 0;
    for _ in 0..20 {
        let response = client.get(proxy.url("/")).send().await.unwrap();
        assert_eq!(
            response.text().await.unwrap(),
            "ok",
            "the client never notices"
        );
        sent += 1;
        proxy.outcomes(sent).await;
    }
    let tally = proxy.recorder.tally();
    let errors = tally.count(OutcomeKey::CandidateError(CandidateErrorKind::Reset))
        + tally.count(OutcomeKey::CandidateError(CandidateErrorKind::Protocol));
    let shed = tally.count(OutcomeKey::Skipped(SkipReason::CandidateUnhealthy));
    assert!(errors >= 3, "{tally:?}");
    assert_eq!(errors + shed, 20, "every sample is one outcome: {tally:?}");
    // Only probes (one a second) reach the candidate once it is open.
    assert!(shed >= 10, "{tally:?}");
    assert_eq!(
        hits.load(Ordering::SeqCst) as u64,
        errors,
        "shed samples never reach it"
    );

    // Recovered: within a cooldown or two a probe finds it, and shadowing resumes.
    healthy.store(true, Ordering::SeqCst);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while compared(&proxy.recorder.tally()) == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no probe got through"
        );
        client.get(proxy.url("/")).send().await.unwrap();
        sent += 1;
        proxy.outcomes(sent).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let compared_before = compared(&proxy.recorder.tally());
    for _ in 0..10 {
        client.get(proxy.url("/")).send().await.unwrap();
        sent += 1;
        proxy.outcomes(sent).await;
    }
    let tally = proxy.stop().await;
    assert_eq!(
        compared(&tally),
        compared_before + 10,
        "closed again: {tally:?}"
    );
}

fn compared(tally: &Tally) -> u64 {
    tally.count(OutcomeKey::Matched) + tally.count(OutcomeKey::Mismatched)
}

#[tokio::test]
async fn with_the_breaker_off_every_sample_reaches_the_candidate() {
    let primary = support::backend(Router::new().route("/", get(|| async { "ok" }))).await;
    let (healthy, hits) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let candidate = flaky_candidate(healthy, hits.clone()).await;
    let mut settings = support::settings(&primary, candidate);
    settings.breaker_failures = None;
    let proxy = support::start(settings).await;
    let client = support::client();
    for n in 1..=12 {
        client.get(proxy.url("/")).send().await.unwrap();
        proxy.outcomes(n).await;
    }
    let tally = proxy.stop().await;
    assert_eq!(
        tally.count(OutcomeKey::Skipped(SkipReason::CandidateUnhealthy)),
        0
    );
    assert_eq!(hits.load(Ordering::SeqCst), 12, "{tally:?}");
}

#[tokio::test]
async fn work_queued_before_it_opened_is_shed_too() {
    let primary = support::backend(Router::new().route("/", get(|| async { "ok" }))).await;
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    // Slow to fail, so that the queue fills before the breaker opens.
    let candidate = support::raw_backend(move |socket| {
        let hits = counted.clone();
        async move {
            hits.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(100)).await;
            #[allow(deprecated)]
            let _ = socket.set_linger(Some(Duration::ZERO));
        }
    })
    .await;
    let mut settings = support::settings(&primary, candidate);
    settings.breaker_failures = std::num::NonZeroU32::new(3);
    settings.max_in_flight = std::num::NonZeroUsize::new(4).unwrap();
    let proxy = support::start(settings).await;
    let client = support::client();
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let (client, url) = (client.clone(), proxy.url("/"));
        requests.spawn(async move { client.get(url).send().await.unwrap().text().await.unwrap() });
    }
    while let Some(body) = requests.join_next().await {
        assert_eq!(body.unwrap(), "ok");
    }
    proxy.outcomes(100).await;
    let tally = proxy.stop().await;
    let shed = tally.count(OutcomeKey::Skipped(SkipReason::CandidateUnhealthy));
    // 4 at a time: the first round or two fail, then the queue is shed.
    assert!(shed >= 80, "{tally:?}");
    assert!(hits.load(Ordering::SeqCst) <= 20, "{tally:?}");
}
