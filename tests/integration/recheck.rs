//! Rechecks: a mismatch of a safe request, called again on both backends
//! after `recheck_delay_ms`, ends `skipped/transient` when the difference
//! has gone, and stays the mismatch first found when it has not.
//!
//! The data moves by the requests themselves, never by the clock, so the
//! outcomes do not depend on how loaded the machine is: the primary's first
//! answer to each request asks a background writer for a new version, and
//! the candidate's first call for that request waits until it has landed,
//! as if it had come a little later than the primary. Every later call (the
//! recheck) reads the version as it now is, on both sides.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;
use shadowdiff::outcome::{DropReason, OutcomeKey, SkipReason, Tally};
use shadowdiff::Settings;
use tokio::sync::{mpsc, watch};

use crate::support::{self, Backend, RunningProxy, TestDatabase};

const TRANSIENT: OutcomeKey = OutcomeKey::Skipped(SkipReason::Transient);

/// One call a backend received.
#[derive(Clone, Debug)]
struct Call {
    candidate: bool,
    /// `METHOD /path`.
    request: String,
    role: Option<String>,
    at: Instant,
}

/// A version both backends read, moved on by a writer task.
struct Moving {
    version: AtomicU64,
    /// Requests whose primary answer asked for a new version.
    asked: Mutex<HashSet<String>>,
    /// Requests the candidate has answered once.
    answered: Mutex<HashSet<String>>,
    /// Requests whose new version has landed.
    landed: watch::Sender<HashSet<String>>,
    writer: mpsc::UnboundedSender<String>,
    calls: Mutex<Vec<Call>>,
}

impl Moving {
    fn start() -> Arc<Moving> {
        let (writer, mut asks) = mpsc::unbounded_channel::<String>();
        let moving = Arc::new(Moving {
            version: AtomicU64::new(0),
            asked: Mutex::default(),
            answered: Mutex::default(),
            landed: watch::Sender::new(HashSet::new()),
            writer,
            calls: Mutex::default(),
        });
        // The writer: data that changes while a request is being shadowed.
        let data = Arc::downgrade(&moving);
        tokio::spawn(async move {
            while let Some(request) = asks.recv().await {
                let Some(data) = data.upgrade() else { return };
                data.version.fetch_add(1, Ordering::SeqCst);
                data.landed.send_modify(|landed| {
                    landed.insert(request);
                });
            }
        });
        moving
    }

    /// What a backend answers. Under `/real/` the candidate has a real bug
    /// (a field too many); under `/broken/` its second answer breaks off
    /// mid-body, which fails the call at once (no timeout to wait for);
    /// under `/flaky/` its first answer is a 500.
    async fn answer(self: Arc<Self>, candidate: bool, request: Request) -> Response {
        let path = request.uri().path().to_string();
        let key = format!("{} {path}", request.method());
        let role = request
            .headers()
            .get("x-shadowdiff-role")
            .map(|v| v.to_str().unwrap().to_string());
        self.calls.lock().unwrap().push(Call {
            candidate,
            request: key.clone(),
            role,
            at: Instant::now(),
        });
        if !candidate {
            let version = self.version.load(Ordering::SeqCst);
            if self.asked.lock().unwrap().insert(key.clone()) {
                self.writer.send(key).unwrap();
            }
            return json(format!("{{\"version\":{version}}}"));
        }
        if self.answered.lock().unwrap().insert(key.clone()) {
            let mut landed = self.landed.subscribe();
            let waited = tokio::time::timeout(
                Duration::from_secs(20),
                landed.wait_for(|l| l.contains(&key)),
            );
            assert!(waited.await.is_ok(), "{key}: the primary never answered");
            if path.starts_with("/flaky/") {
                let failed = (http::StatusCode::INTERNAL_SERVER_ERROR, json("{}"));
                return failed.into_response();
            }
        } else if path.starts_with("/broken/") {
            let broken = futures_util::stream::iter([
                Ok(bytes::Bytes::from_static(b"{\"version\":")),
                Err(std::io::Error::other("the candidate broke off")),
            ]);
            return json(Body::from_stream(broken));
        }
        let version = self.version.load(Ordering::SeqCst);
        json(match path.starts_with("/real/") {
            true => format!("{{\"version\":{version},\"bug\":true}}"),
            false => format!("{{\"version\":{version}}}"),
        })
    }

    /// The calls `side` received for `request`, in order.
    fn calls(&self, candidate: bool, request: &str) -> Vec<Call> {
        let calls = self.calls.lock().unwrap();
        let of = |c: &&Call| c.candidate == candidate && c.request == request;
        calls.iter().filter(of).cloned().collect()
    }
}

/// A JSON response with `body`.
fn json(body: impl Into<Body>) -> Response {
    ([("content-type", "application/json")], body.into()).into_response()
}

/// The primary and the candidate, both reading `moving`.
async fn backends(moving: &Arc<Moving>) -> (Backend, Backend) {
    let side = |candidate: bool| {
        let moving = Arc::clone(moving);
        Router::new().fallback(move |request: Request| {
            let moving = Arc::clone(&moving);
            async move { moving.answer(candidate, request).await }
        })
    };
    (
        support::backend(side(false)).await,
        support::backend(side(true)).await,
    )
}

/// Settings with a store, `recheck` as given globally, and `routes`.
fn with_recheck(
    (primary, candidate): &(Backend, Backend),
    db: &TestDatabase,
    recheck: bool,
    routes: &str,
) -> Settings {
    let mut settings = support::settings(primary, candidate.url());
    settings.database_url = Some(db.url.clone());
    settings.recheck = recheck;
    settings.recheck_delay = Duration::from_millis(150);
    if !routes.is_empty() {
        let layer = shadowdiff::config::Layer::from_toml(routes).unwrap();
        settings.routes = layer.routes.unwrap();
    }
    settings
}

/// Sends each request in turn, waiting for its outcome before the next,
/// so that one request's new version never lands during another's.
async fn send_each(proxy: &RunningProxy, requests: &[(&str, String)]) -> Tally {
    for (i, (method, target)) in requests.iter().enumerate() {
        let method = http::Method::from_bytes(method.as_bytes()).unwrap();
        let response = support::client()
            .request(method, proxy.url(target))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{target}");
        proxy.outcomes(i as u64 + 1).await;
    }
    proxy.recorder.tally()
}

/// The report API's JSON at `path`.
async fn api(proxy: &RunningProxy, path: &str) -> Value {
    let url = format!("http://{}{path}", proxy.report.unwrap());
    let response = support::client().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// The summary once all `n` outcomes are in the store.
async fn stored_summary(proxy: &RunningProxy, n: i64) -> Value {
    let mut summary = Value::Null;
    for _ in 0..400 {
        summary = api(proxy, "/api/v1/summary?since=1h").await;
        let totals = &summary["totals"];
        let stored = ["compared", "skipped", "candidate_errors", "dropped"]
            .iter()
            .map(|k| totals[k].as_i64().unwrap_or(0))
            .sum::<i64>();
        if stored == n && summary["store"]["unwritten"] == 0 {
            return summary;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{n} outcomes never all reached the store: {summary}");
}

/// The value of one metrics series, if it is there.
fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn items(prefix: &str, n: usize) -> Vec<(&'static str, String)> {
    (1..=n).map(|i| ("GET", format!("{prefix}{i}"))).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_bumped_between_the_calls_is_transient_with_recheck_and_a_mismatch_without() {
    const N: usize = 5;
    for recheck in [true, false] {
        let moving = Moving::start();
        let backends = backends(&moving).await;
        let db = support::sqlite_database();
        let settings = with_recheck(&backends, &db, recheck, "");
        let delay = settings.recheck_delay;
        let proxy = support::start_with_report(settings).await;
        let tally = send_each(&proxy, &items("/item/", N)).await;
        let summary = stored_summary(&proxy, N as i64).await;
        let groups = api(&proxy, "/api/v1/groups?since=1h").await;
        let metrics = proxy.metrics().await;
        let endpoint = "endpoint=\"GET /item/{id}\"";
        let samples = |outcome: &str| {
            let series = format!("shadowdiff_samples_total{{{endpoint},outcome=\"{outcome}\"}}");
            metric(&metrics, &series)
        };
        let rechecks = |result: &str| {
            let series = format!("shadowdiff_rechecks_total{{result=\"{result}\"}}");
            metric(&metrics, &series)
        };
        if recheck {
            assert_eq!(tally.count(TRANSIENT), N as u64, "{tally:?}");
            assert_eq!(tally.total(), N as u64, "{tally:?}");
            assert_eq!(summary["totals"]["outcomes"]["skipped/transient"], N);
            assert_eq!(summary["totals"]["mismatched"], 0, "{summary}");
            assert_eq!(summary["totals"]["parity"], Value::Null, "{summary}");
            assert_eq!(groups, Value::Array(vec![]), "no mismatch group is stored");
            assert_eq!(samples("skipped/transient"), Some(N as f64), "{metrics}");
            assert_eq!(samples("mismatched"), Some(0.0), "{metrics}");
            assert_eq!(rechecks("transient"), Some(N as f64), "{metrics}");
            assert_eq!(rechecks("differing"), Some(0.0), "{metrics}");
            assert_eq!(metric(&metrics, "shadowdiff_rechecks_waiting"), Some(0.0));
        } else {
            assert_eq!(tally.count(OutcomeKey::Mismatched), N as u64, "{tally:?}");
            assert_eq!(tally.total(), N as u64, "{tally:?}");
            assert_eq!(summary["totals"]["mismatched"], N, "{summary}");
            assert_eq!(
                summary["totals"]["outcomes"]["skipped/transient"],
                Value::Null
            );
            let groups = groups.as_array().unwrap();
            assert_eq!(groups.len(), 1, "one difference, one group: {groups:?}");
            assert_eq!(groups[0]["count"], N, "{groups:?}");
            assert_eq!(rechecks("transient"), Some(0.0), "{metrics}");
        }
        for i in 1..=N {
            let request = format!("GET /item/{i}");
            let primary = moving.calls(false, &request);
            let candidate = moving.calls(true, &request);
            let calls = if recheck { 2 } else { 1 };
            assert_eq!(primary.len(), calls, "{request}: {primary:?}");
            assert_eq!(candidate.len(), calls, "{request}: {candidate:?}");
            // The client's own call carries no role header; every shadow
            // call, the recheck's primary call included, does.
            assert_eq!(primary[0].role, None, "{request}");
            assert!(candidate
                .iter()
                .all(|c| c.role.as_deref() == Some("shadow")));
            if recheck {
                assert_eq!(primary[1].role.as_deref(), Some("shadow"), "{request}");
                // Called again no sooner than the delay after the first
                // candidate call began (a lower bound: never late-sensitive).
                for second in [&primary[1], &candidate[1]] {
                    let waited = second.at.duration_since(candidate[0].at);
                    assert!(waited >= delay, "{request}: again after {waited:?}");
                }
            }
        }
        proxy.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_difference_and_a_write_stay_mismatches_with_recheck_on() {
    let moving = Moving::start();
    let backends = backends(&moving).await;
    let db = support::sqlite_database();
    // Off globally: the routes' own keys turn it on.
    let routes = r#"
        [[route]]
        match = "GET /real/{id}"
        recheck = true
        [[route]]
        match = "POST /item/{id}"
        mirror_unsafe = true
        recheck = true
        [[route]]
        match = "GET /item/{id}"
    "#;
    let settings = with_recheck(&backends, &db, false, routes);
    let proxy = support::start_with_report(settings).await;
    let requests = [
        ("GET", "/real/1".to_string()),
        ("POST", "/item/1".to_string()),
        ("GET", "/item/2".to_string()),
    ];
    let tally = send_each(&proxy, &requests).await;
    assert_eq!(tally.count(OutcomeKey::Mismatched), 3, "{tally:?}");
    assert_eq!(tally.count(TRANSIENT), 0, "{tally:?}");
    stored_summary(&proxy, 3).await;

    // The real bug was called again, and still differed.
    assert_eq!(moving.calls(false, "GET /real/1").len(), 2);
    assert_eq!(moving.calls(true, "GET /real/1").len(), 2);
    // A write is never sent twice; a route without `recheck` is not rechecked.
    for request in ["POST /item/1", "GET /item/2"] {
        assert_eq!(moving.calls(false, request).len(), 1, "{request}");
        assert_eq!(moving.calls(true, request).len(), 1, "{request}");
    }
    let metrics = proxy.metrics().await;
    let rechecks = |result: &str| {
        metric(
            &metrics,
            &format!("shadowdiff_rechecks_total{{result=\"{result}\"}}"),
        )
    };
    assert_eq!(rechecks("differing"), Some(1.0), "{metrics}");
    assert_eq!(rechecks("transient"), Some(0.0), "{metrics}");

    // The stored exemplar is the first exchange (version 0 against 1), not
    // the recheck's (1 against 1): the second verdict only decided.
    let list = api(
        &proxy,
        "/api/v1/mismatches?since=1h&endpoint=GET%20/real/%7Bid%7D",
    )
    .await;
    let items = list["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{list}");
    let id = items[0]["id"].as_i64().unwrap();
    let detail = api(&proxy, &format!("/api/v1/mismatches/{id}")).await;
    assert_eq!(
        detail["primary"]["body"]["data"], "{\"version\":0}",
        "{detail}"
    );
    assert_eq!(
        detail["candidate"]["body"]["data"], "{\"version\":1,\"bug\":true}",
        "{detail}"
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recheck_that_cannot_complete_leaves_the_mismatch() {
    let moving = Moving::start();
    let backends = backends(&moving).await;
    let db = support::sqlite_database();
    let settings = with_recheck(&backends, &db, true, "");
    let proxy = support::start_with_report(settings).await;
    let tally = send_each(&proxy, &items("/broken/", 1)).await;
    assert_eq!(tally.count(OutcomeKey::Mismatched), 1, "{tally:?}");
    assert_eq!(moving.calls(true, "GET /broken/1").len(), 2);
    let metrics = proxy.metrics().await;
    let incomplete = "shadowdiff_rechecks_total{result=\"incomplete\"}";
    assert_eq!(metric(&metrics, incomplete), Some(1.0), "{metrics}");
    stored_summary(&proxy, 1).await;
    let groups = api(&proxy, "/api/v1/groups?since=1h").await;
    assert_eq!(groups.as_array().unwrap().len(), 1, "{groups}");
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_candidates_server_error_is_never_cleared_by_a_recheck() {
    let moving = Moving::start();
    let backends = backends(&moving).await;
    let db = support::sqlite_database();
    let settings = with_recheck(&backends, &db, true, "");
    let proxy = support::start_with_report(settings).await;
    let tally = send_each(&proxy, &items("/flaky/", 2)).await;
    assert_eq!(tally.count(OutcomeKey::Mismatched), 2, "{tally:?}");
    assert_eq!(tally.count(TRANSIENT), 0, "{tally:?}");
    // Not called again: its next answer would have agreed.
    assert_eq!(moving.calls(true, "GET /flaky/1").len(), 1);
    proxy.stop().await;
}

/// A sample waiting in its recheck delay when the drain's deadline comes
/// ends as one outcome: the mismatch first found, not abandoned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recheck_waiting_at_shutdown_ends_as_its_mismatch() {
    let moving = Moving::start();
    let backends = backends(&moving).await;
    let db = support::sqlite_database();
    let mut settings = with_recheck(&backends, &db, true, "");
    settings.recheck_delay = Duration::from_secs(60);
    settings.drain_timeout = Duration::from_millis(200);
    let proxy = support::start_with_report(settings).await;
    let response = support::client()
        .get(proxy.url("/item/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut metrics = String::new();
    for _ in 0..400 {
        metrics = proxy.metrics().await;
        if metric(&metrics, "shadowdiff_rechecks_waiting") == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        metric(&metrics, "shadowdiff_rechecks_waiting"),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(
        proxy.recorder.tally().total(),
        0,
        "decided before its recheck"
    );
    let tally = proxy.stop().await;
    assert_eq!(tally.total(), 1, "{tally:?}");
    assert_eq!(tally.count(OutcomeKey::Mismatched), 1, "{tally:?}");
    assert_eq!(
        tally.count(OutcomeKey::Dropped(DropReason::Abandoned)),
        0,
        "{tally:?}"
    );
    assert_eq!(
        moving.calls(false, "GET /item/1").len(),
        1,
        "never called again"
    );
}

/// `serve` with `config` (and a clean environment but `env`), given `flags`:
/// its exit code and stderr.
async fn serve_refuses(
    config: &str,
    flags: &[&str],
    env: &[(&str, &str)],
) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = format!(
        "primary = \"http://127.0.0.1:9\"\ncandidate = \"http://127.0.0.1:9\"\nlisten = \"127.0.0.1:0\"\nreport_listen = \"127.0.0.1:0\"\ndatabase_url = \"sqlite://{}\"\n{config}",
        dir.path().join("never.db").display()
    );
    std::fs::write(&path, text).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shadowdiff"));
    command
        .args(["serve", "--config", path.to_str().unwrap()])
        .args(flags)
        .env_clear()
        .envs(env.iter().copied());
    let out = tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap();
    assert!(
        !dir.path().join("never.db").exists(),
        "{config}: a database was made"
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// What is given besides the file: flags, and environment variables.
type Besides<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);

#[tokio::test]
async fn rechecks_that_cannot_work_are_refused_at_start() {
    let route = "[[route]]\nmatch = \"GET /a\"\n";
    let none: Besides = (&[], &[]);
    let flag: Besides = (&["--recheck-delay-ms", "3600000"], &[]);
    let variable: Besides = (&[], &[("SHADOWDIFF_RECHECK_DELAY_MS", "90000")]);
    let collector_route = format!("mode = \"collector\"\n{route}recheck = true");
    let no_candidate = format!("{route}candidate = false\nrecheck = true");
    let cases = [
        (
            "recheck_delay_ms = 60001",
            none,
            "recheck_delay_ms",
            "at most 60000",
        ),
        ("", flag, "--recheck-delay-ms", "at most 60000"),
        ("", variable, "SHADOWDIFF_RECHECK_DELAY_MS", "at most 60000"),
        (
            "mode = \"collector\"\nrecheck = true",
            none,
            "recheck",
            "collector mode",
        ),
        (&collector_route, none, "route[0].recheck", "collector mode"),
        (&no_candidate, none, "route[0].recheck", "no candidate"),
    ];
    for (config, (flags, env), key, words) in cases {
        let (code, stderr) = serve_refuses(config, flags, env).await;
        assert_eq!(code, Some(2), "{config} {flags:?} {env:?}: {stderr}");
        assert!(stderr.contains(key), "{config}: no {key} in {stderr}");
        assert!(stderr.contains(words), "{config}: no {words:?} in {stderr}");
    }
}
