//! Whatever the candidate does, the client sees the primary's answer, on
//! time; each shadow outcome says what the candidate did.

use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;
use http::StatusCode;
use shadowdiff::config::BackendUrl;
use shadowdiff::outcome::{CandidateErrorKind, DropReason, OutcomeKey, SkipReason};

use crate::support::{self, Backend};

const BODY: &str = r#"{"id":1,"items":[1,2,3]}"#;

async fn primary() -> Backend {
    support::backend(Router::new().route(
        "/items",
        get(|| async {
            (
                [
                    ("content-type", "application/json"),
                    ("x-served-by", "primary"),
                ],
                BODY,
            )
        }),
    ))
    .await
}

/// A candidate that takes `delay` before answering the same body.
async fn sleepy(delay: Duration) -> Backend {
    support::backend(Router::new().route(
        "/items",
        get(move || async move {
            tokio::time::sleep(delay).await;
            ([("content-type", "application/json")], BODY)
        }),
    ))
    .await
}

async fn client_sees_primary_despite(
    candidate: BackendUrl,
    timeout: Duration,
    expected: OutcomeKey,
    slow: bool,
) {
    let primary = primary().await;
    let mut settings = support::settings(&primary, candidate);
    settings.candidate_timeout = timeout;
    let proxy = support::start(settings).await;
    let client = support::client();
    const N: u64 = 5;
    for _ in 0..N {
        let started = Instant::now();
        let response = client.get(proxy.url("/items")).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-served-by"], "primary");
        assert_eq!(response.text().await.unwrap(), BODY);
        // Not a benchmark: a bound far below the slow candidate's delay and
        // timeout, which the client would only reach by waiting on it.
        if slow {
            assert!(
                started.elapsed() < Duration::from_millis(1_500),
                "client waited {:?}",
                started.elapsed()
            );
        }
    }
    let tally = proxy.outcomes(N).await;
    assert_eq!(tally.count(expected), N, "{tally:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn candidate_down() {
    let url = support::refusing_url().await;
    client_sees_primary_despite(
        url,
        Duration::from_secs(5),
        OutcomeKey::CandidateError(CandidateErrorKind::Connect),
        false,
    )
    .await;
}

#[tokio::test]
async fn candidate_sleeping_five_seconds() {
    let candidate = sleepy(Duration::from_secs(5)).await;
    client_sees_primary_despite(
        candidate.url(),
        Duration::from_secs(2),
        OutcomeKey::CandidateError(CandidateErrorKind::Timeout),
        true,
    )
    .await;
}

#[tokio::test]
async fn candidate_resetting_connections() {
    let url = support::resetting_url().await;
    client_sees_primary_despite(
        url,
        Duration::from_secs(5),
        OutcomeKey::CandidateError(CandidateErrorKind::Reset),
        false,
    )
    .await;
}

#[tokio::test]
async fn candidate_answering_garbage() {
    let url = support::garbage_url().await;
    client_sees_primary_despite(
        url,
        Duration::from_secs(5),
        OutcomeKey::CandidateError(CandidateErrorKind::Protocol),
        false,
    )
    .await;
}

/// Sends a response head of 100 KiB: more than a shadow call reads
/// (64 KiB), which keeps each call in flight to a bounded size.
async fn head_of_100_kib(mut socket: tokio::net::TcpStream) {
    use tokio::io::AsyncWriteExt;
    let line = format!("X-Padding: {}\r\n", "h".repeat(1_000));
    let head = format!(
        "HTTP/1.1 200 OK\r\n{}Content-Length: 2\r\n\r\n[]",
        line.repeat(100)
    );
    let _ = socket.write_all(head.as_bytes()).await;
    let _ = socket.shutdown().await;
}

#[tokio::test]
async fn candidate_sending_a_head_over_64_kib() {
    let url = support::raw_backend(head_of_100_kib).await;
    client_sees_primary_despite(
        url,
        Duration::from_secs(5),
        OutcomeKey::CandidateError(CandidateErrorKind::Protocol),
        false,
    )
    .await;
}

#[tokio::test]
async fn a_full_queue_drops_and_counts_every_sample() {
    let primary = primary().await;
    let candidate = sleepy(Duration::from_millis(1_500)).await;
    let mut settings = support::settings(&primary, candidate.url());
    settings.queue = 1.try_into().unwrap();
    settings.max_in_flight = 1.try_into().unwrap();
    let proxy = support::start(settings).await;
    let client = support::client();
    const N: u64 = 6;
    for _ in 0..N {
        let response = client.get(proxy.url("/items")).send().await.unwrap();
        assert_eq!(response.text().await.unwrap(), BODY);
    }
    // One runs, at most one waits; the rest find the queue full.
    let tally = proxy.outcomes(N).await;
    let dropped = tally.count(OutcomeKey::Dropped(DropReason::QueueFull));
    let compared = tally.count(OutcomeKey::Matched) + tally.count(OutcomeKey::Mismatched);
    assert!(dropped >= N - 2, "{tally:?}");
    assert_eq!(dropped + compared, N, "{tally:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn the_candidate_gets_the_role_header_and_writes_only_with_opt_in() {
    let (primary, primary_hits) = support::recording_backend().await;
    let (candidate, candidate_hits) = support::recording_backend().await;
    let mut settings = support::settings(&primary, candidate.url());
    settings.routes = shadowdiff::config::Layer::from_toml(
        "[[route]]\nmatch = \"POST /orders\"\nmirror_unsafe = true",
    )
    .unwrap()
    .routes
    .unwrap();
    let proxy = support::start(settings).await;
    let client = support::client();

    client
        .get(proxy.url("/users/1?x=1&x=2"))
        .header("x-user", "7")
        .send()
        .await
        .unwrap();
    client
        .post(proxy.url("/payments"))
        .body("pay")
        .send()
        .await
        .unwrap();
    client
        .post(proxy.url("/orders"))
        .body("order-1")
        .send()
        .await
        .unwrap();

    let tally = proxy.outcomes(3).await;
    assert_eq!(
        tally.count(OutcomeKey::Skipped(SkipReason::UnsafeMethod)),
        1,
        "{tally:?}"
    );
    assert_eq!(tally.count(OutcomeKey::Matched), 2, "{tally:?}");

    let to_candidate = candidate_hits.all();
    assert_eq!(to_candidate.len(), 2, "{to_candidate:?}");
    let get = &to_candidate
        .iter()
        .find(|h| h.method == http::Method::GET)
        .unwrap();
    assert_eq!(get.target, "/users/1?x=1&x=2");
    assert_eq!(get.headers["x-shadowdiff-role"], "shadow");
    assert_eq!(get.headers["x-user"], "7");
    let post = &to_candidate
        .iter()
        .find(|h| h.method == http::Method::POST)
        .unwrap();
    assert_eq!(post.target, "/orders");
    assert_eq!(&post.body[..], b"order-1");
    assert!(to_candidate.iter().all(|h| h.target != "/payments"));

    let to_primary = primary_hits.all();
    assert_eq!(to_primary.len(), 3);
    assert!(to_primary
        .iter()
        .all(|h| !h.headers.contains_key("x-shadowdiff-role")));
    proxy.stop().await;
}

#[tokio::test]
async fn mirror_mode_answers_202_and_compares_both() {
    let (primary, primary_hits) = support::recording_backend().await;
    let differing = support::backend(
        Router::new()
            .fallback(|| async { ([("content-type", "application/json")], "{\"ok\":false}") }),
    )
    .await;
    let mut settings = support::settings(&primary, differing.url());
    settings.mode = shadowdiff::config::Mode::Mirror;
    let proxy = support::start(settings).await;
    let client = support::client();
    let response = client.get(proxy.url("/users/9")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.content_length(), Some(0));
    let posted = client
        .post(proxy.url("/orders"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), StatusCode::ACCEPTED);

    let tally = proxy.outcomes(2).await;
    assert_eq!(tally.count(OutcomeKey::Mismatched), 1, "{tally:?}");
    assert_eq!(
        tally.count(OutcomeKey::Skipped(SkipReason::UnsafeMethod)),
        1,
        "{tally:?}"
    );
    // The mirrored POST must not be replayed to the primary either.
    let hits = primary_hits.all();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].headers["x-shadowdiff-role"], "shadow");
    proxy.stop().await;
}

#[tokio::test]
async fn shutdown_gives_up_on_shadow_work_at_the_deadline_and_counts_it() {
    let primary = primary().await;
    let candidate = sleepy(Duration::from_secs(30)).await;
    let mut settings = support::settings(&primary, candidate.url());
    settings.candidate_timeout = Duration::from_secs(60);
    settings.drain_timeout = Duration::from_millis(300);
    let proxy = support::start(settings).await;
    let response = support::client()
        .get(proxy.url("/items"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), BODY);
    let stopping = Instant::now();
    let tally = proxy.stop().await;
    assert!(
        stopping.elapsed() < Duration::from_secs(10),
        "shutdown waited {:?}",
        stopping.elapsed()
    );
    assert_eq!(
        tally.count(OutcomeKey::Dropped(DropReason::Abandoned)),
        1,
        "{tally:?}"
    );
    assert_eq!(tally.total(), 1);
}
