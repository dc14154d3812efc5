//! Notifications to real HTTP receivers: a new mismatch group is posted once
//! (webhook JSON and Slack text), however often it recurs; the watched
//! gate's verdict is posted when it changes; a receiver that fails is
//! retried; one that is down never touches clients, and its failures are
//! counted in /metrics.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use serde_json::Value;
use shadowdiff::sampling::SampleRate;

use crate::support;

/// What a receiver got: (path, body), in order.
type Received = Arc<Mutex<Vec<(String, String)>>>;

/// A receiver on /{name} answering `fail_first` 500s, then 200s.
async fn receiver(fail_first: usize) -> (support::Backend, Received) {
    let received = Received::default();
    let state = (Arc::clone(&received), Arc::new(Mutex::new(fail_first)));
    let backend = support::backend(
        Router::new()
            .route(
                "/{name}",
                post(
                    |State((got, failing)): State<(Received, Arc<Mutex<usize>>)>,
                     Path(name): Path<String>,
                     body: String| async move {
                        let mut failing = failing.lock().unwrap();
                        if *failing > 0 {
                            *failing -= 1;
                            return StatusCode::INTERNAL_SERVER_ERROR;
                        }
                        got.lock().unwrap().push((name, body));
                        StatusCode::OK
                    },
                ),
            )
            .with_state(state),
    )
    .await;
    (backend, received)
}

/// A primary and a candidate that differ in `/total` on /orders/{id}.
async fn backends() -> (support::Backend, support::Backend) {
    let answer = |total: u32| {
        move |Path(id): Path<u32>| async move {
            (
                [("content-type", "application/json")],
                format!("{{\"id\":{id},\"total\":{total}}}"),
            )
        }
    };
    (
        support::backend(Router::new().route("/orders/{id}", get(answer(30)))).await,
        support::backend(Router::new().route("/orders/{id}", get(answer(31)))).await,
    )
}

/// GET /orders/{id} through the proxy: 200, and its JSON.
async fn order(url: String) -> Value {
    let r = support::client().get(url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

async fn wait_for(received: &Received, what: impl Fn(&[(String, String)]) -> bool) {
    for _ in 0..200 {
        if what(&received.lock().unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("never received: {:?}", received.lock().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_group_and_a_gate_change_are_posted_once_each() {
    // The first delivery fails: it is retried.
    let (hooks, received) = receiver(1).await;
    let (primary, candidate) = backends().await;
    let db = support::sqlite_database();
    let mut settings = support::settings(&primary, candidate.url());
    settings.database_url = Some(db.url.clone());
    settings.sample_rate = SampleRate::ALL;
    let base = hooks.url().to_string();
    settings.notify_webhook_url = Some(format!("{base}/webhook").parse().unwrap());
    settings.notify_slack_url = Some(format!("{base}/slack").parse().unwrap());
    settings.notify_gate = Some("min_parity=99&since=1h".parse().unwrap());
    settings.notify_gate_every = Duration::from_millis(200);
    let proxy = support::start_with_report(settings).await;
    // Twenty requests, one group, written over several batches.
    for id in 0..20 {
        order(proxy.url(&format!("/orders/{id}"))).await;
        if id == 9 {
            tokio::time::sleep(Duration::from_millis(700)).await;
        }
    }
    proxy.outcomes(20).await;
    let is = |path: &str, event: &str| {
        let (path, event) = (path.to_string(), event.to_string());
        move |(p, body): &(String, String)| *p == path && body.contains(&event)
    };
    wait_for(&received, |got| {
        got.iter().any(is("webhook", "new_mismatch_group"))
            && got.iter().any(is("slack", "new mismatch group"))
            && got.iter().any(is("webhook", "\"to\":\"fail\""))
    })
    .await;
    // Later batches of the same group announce nothing more.
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let got = received.lock().unwrap().clone();
    let groups: Vec<Value> = got
        .iter()
        .filter(|r| is("webhook", "new_mismatch_group")(r))
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(groups.len(), 1, "{got:?}");
    let group = &groups[0];
    assert_eq!(group["version"], 1);
    assert_eq!(group["group"]["endpoint"], "GET /orders/{id}");
    assert_eq!(group["group"]["paths"], serde_json::json!(["/total"]));
    assert_eq!(group["group"]["statuses"], Value::Null);
    assert!(
        !got.iter().any(|(_, b)| b.contains("\"total\":3")),
        "no bodies: {got:?}"
    );
    let slack: Vec<Value> = got
        .iter()
        .filter(|r| is("slack", "new mismatch group")(r))
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(slack.len(), 1, "{got:?}");
    assert!(
        slack[0]["text"]
            .as_str()
            .unwrap()
            .contains("`GET /orders/{id}`"),
        "{slack:?}"
    );
    // Parity 0% against 99%: a fail, posted once. A decision before the
    // first counts were written (inconclusive: no comparisons) may come
    // first; each posts a change, never the same verdict twice.
    let gates: Vec<Value> = got
        .iter()
        .filter(|r| is("webhook", "gate_verdict_changed")(r))
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    assert!((1..=2).contains(&gates.len()), "{got:?}");
    assert_eq!(gates[0]["gate"]["from"], Value::Null);
    let last = &gates[gates.len() - 1]["gate"];
    assert_eq!(last["to"], "fail", "{got:?}");
    if gates.len() == 2 {
        assert_eq!(gates[0]["gate"]["to"], "inconclusive", "{got:?}");
        assert_eq!(last["from"], "inconclusive", "{got:?}");
    }
    assert_eq!(last["criteria"], "min_parity=99&since=1h");

    let metrics = proxy.metrics().await;
    let retried = metrics.lines().any(|l| {
        l.starts_with("shadowdiff_notification_retries_total{target=\"") && !l.ends_with(" 0")
    });
    assert!(retried, "{metrics}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_never_touches_clients_and_is_counted() {
    let (primary, candidate) = backends().await;
    let db = support::sqlite_database();
    let mut settings = support::settings(&primary, candidate.url());
    settings.database_url = Some(db.url.clone());
    settings.sample_rate = SampleRate::ALL;
    let down = support::refusing_url().await.to_string();
    settings.notify_webhook_url = Some(format!("{down}/hook").parse().unwrap());
    let proxy = support::start_with_report(settings).await;
    let started = Instant::now();
    for id in 0..10 {
        let body = order(proxy.url(&format!("/orders/{id}"))).await;
        assert_eq!(body["total"], 30, "the primary's answer, untouched");
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    proxy.outcomes(10).await;
    // Four attempts over 3.5 s of backoff, then counted as failed.
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = proxy.metrics().await;
        if metrics
            .contains("shadowdiff_notifications_total{target=\"webhook\",result=\"failed\"} 1")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        metrics.contains("shadowdiff_notifications_total{target=\"webhook\",result=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shadowdiff_notification_retries_total{target=\"webhook\"} 3"),
        "{metrics}"
    );
    assert!(
        metrics.contains("shadowdiff_notifications_total{target=\"webhook\",result=\"sent\"} 0")
    );
    proxy.stop().await;
}

/// The log: one info line per new mismatch group (what differs, never a
/// body), and a summary line per endpoint every `log_summary_every_ms`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_groups_and_endpoint_summaries_are_logged() {
    let (primary, candidate) = backends().await;
    let (hooks, received) = receiver(0).await;
    let proxy = support::ServeProcess::shadowing(
        &primary.url().to_string(),
        &candidate.url().to_string(),
        &[
            "--database-url",
            "sqlite://store.db",
            "--log-summary-every-ms",
            "300",
            "--notify-webhook-url",
            &format!("{}/webhook", hooks.url()),
        ],
    )
    .await;
    for id in 0..6 {
        order(proxy.url(&format!("/orders/{id}"))).await;
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Shutdown delivers what is queued and waits for nothing more, though
    // the store writer still holds a sender.
    let stopping = Instant::now();
    let (code, log) = proxy.terminate();
    assert_eq!(code, Some(0), "{log}");
    assert!(
        stopping.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopping.elapsed()
    );
    assert!(!log.contains("undelivered"), "{log}");
    assert_eq!(received.lock().unwrap().len(), 1, "the new group, once");
    let groups: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("new mismatch group"))
        .collect();
    assert_eq!(groups.len(), 1, "{log}");
    assert!(
        groups[0].contains("endpoint=GET /orders/{id}") && groups[0].contains("/total"),
        "{log}"
    );
    assert!(!groups[0].contains("total\":"), "no body: {}", groups[0]);
    let summaries: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("endpoint summary"))
        .collect();
    assert!(!summaries.is_empty(), "{log}");
    // The requests may straddle two intervals: the lines add up.
    let total = |field: &str| -> u64 {
        summaries
            .iter()
            .filter_map(|l| {
                l.split(&format!("{field}="))
                    .nth(1)?
                    .split(' ')
                    .next()?
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    };
    assert_eq!((total("sampled"), total("mismatched")), (6, 6), "{log}");
}
