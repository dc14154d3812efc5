//! The cutover's control: a plan that moves a route 10% → 50% → 100% while
//! its gate passes, and rolls it back to 0 within seconds once a bug makes
//! the gate fail, the history saying why; commands through the real
//! binary's `rollout` command; the kill file; two instances on one
//! PostgreSQL applying a change within the sync interval.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};

use crate::support;

/// A port of the items endpoint; with `bug` set it answers a wrong name.
async fn port(bug: Arc<AtomicBool>) -> support::Backend {
    support::backend(Router::new().route(
        "/items/{id}",
        get(move |Path(id): Path<u64>| {
            let bug = bug.load(Ordering::Relaxed);
            async move {
                let name = if bug { "?" } else { "item" };
                (
                    [("content-type", "application/json")],
                    json!({"id": id, "name": name}).to_string(),
                )
            }
        }),
    ))
    .await
}

async fn monolith() -> support::Backend {
    support::backend(Router::new().route(
        "/items/{id}",
        get(|Path(id): Path<u64>| async move {
            (
                [("content-type", "application/json")],
                json!({"id": id, "name": "item"}).to_string(),
            )
        }),
    ))
    .await
}

/// The API's view of the cutover (with the token the second test's
/// instances require; an API without one ignores it).
async fn rollout_view(report: std::net::SocketAddr) -> Value {
    let url = format!("http://{report}/api/v1/rollout");
    support::json_of(support::client().get(url).bearer_auth("t0k3n")).await
}

/// Polls (bounded) until `done` holds for the rollout view.
async fn until(report: std::net::SocketAddr, seconds: u64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let view = rollout_view(report).await;
        if done(&view) || Instant::now() > deadline {
            return view;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_advances_while_its_gate_passes_and_rolls_back_when_it_fails() {
    for db in support::databases().await {
        let bug = Arc::new(AtomicBool::new(false));
        let (primary, candidate) = (monolith().await, port(bug.clone()).await);
        let text = format!(
            r#"
            primary = "{}"
            candidate = "{}"
            database_url = "{}"
            rollout_sync_ms = 200
            [[route]]
            match = "GET /items/{{id}}"
            [route.plan]
            steps = [10, 50, 100]
            hold = "1s"
            gate = "min_parity=90&min_samples=20"
            "#,
            primary.url(),
            candidate.url(),
            db.url
        );
        let settings = shadowdiff::config::Layer::from_toml(&text)
            .unwrap()
            .resolve()
            .unwrap();
        let proxy = support::start_with_report(settings).await;
        let report = proxy.report.unwrap();
        // Steady traffic, each answer checked, until told to stop.
        let stop = Arc::new(AtomicBool::new(false));
        let traffic = {
            let (stop, url) = (stop.clone(), proxy.url("/items/"));
            tokio::spawn(async move {
                let mut failures = 0;
                let mut id = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    id += 1;
                    let r = support::client().get(format!("{url}{id}")).send().await;
                    if !r.is_ok_and(|r| r.status() == 200) {
                        failures += 1;
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                failures
            })
        };
        let route = |v: &Value| v["routes"][1].clone();
        let at_100 = until(report, 60, |v| route(v)["weight"] == 100.0).await;
        assert_eq!(route(&at_100)["weight"], 100.0, "{}: {at_100}", db.name);
        let reasons: Vec<&str> = at_100["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["reason"].as_str().unwrap())
            .collect();
        assert_eq!(reasons, ["plan", "plan", "plan"], "{}: {at_100}", db.name);

        // The bug appears: the gate fails at 100%, and the route goes back to 0.
        bug.store(true, Ordering::Relaxed);
        let appeared = Instant::now();
        let rolled_back = until(report, 30, |v| route(v)["weight"] == 0.0).await;
        assert_eq!(
            route(&rolled_back)["weight"],
            0.0,
            "{}: {rolled_back}",
            db.name
        );
        let took = appeared.elapsed();
        let last = &rolled_back["history"][0];
        assert_eq!(last["reason"], "rollback", "{}: {rolled_back}", db.name);
        assert!(
            last["detail"].as_str().unwrap().contains("parity"),
            "{}: {last}",
            db.name
        );
        assert_eq!(route(&rolled_back)["stored"]["paused"], true);
        // From then on the primary serves everyone.
        let served_before = rolled_back["served"]["candidate"].as_u64().unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let later = rollout_view(report).await;
        assert_eq!(
            later["served"]["candidate"].as_u64().unwrap(),
            served_before
        );
        stop.store(true, Ordering::Relaxed);
        assert_eq!(
            traffic.await.unwrap(),
            0,
            "{}: a client request failed",
            db.name
        );
        proxy.stop().await;
        // Seconds, not minutes: the gate fails once enough bad samples are
        // stored (the writer's 500 ms), then the next sync rolls back.
        eprintln!("{}: rolled back {took:?} after the bug appeared", db.name);
        assert!(took < Duration::from_secs(10), "{}: {took:?}", db.name);
    }
}

/// `shadowdiff serve` with a config, its stderr in `dir`: the process and
/// its proxy and report ports.
async fn serve(dir: &std::path::Path, name: &str, config: &str) -> (std::process::Child, u16, u16) {
    support::serve_config(dir, name, config, &[]).await
}

/// `shadowdiff rollout ARGS` against `report`: exit code, stdout, stderr.
async fn rollout_command(
    report: u16,
    token: Option<&str>,
    args: &[&str],
) -> (Option<i32>, String, String) {
    support::api_command("rollout", (report, token), args).await
}

fn stop(mut child: std::process::Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_the_kill_file_and_two_instances_on_one_database() {
    let (primary, candidate) = (monolith().await, port(Arc::default()).await);
    let dir = tempfile::tempdir().unwrap();
    let db = support::postgres_database().await;
    let kill_file = dir.path().join("KILL");
    let config = |name: &str| {
        format!(
            r#"
            listen = "127.0.0.1:0"
            report_listen = "127.0.0.1:0"
            primary = "{}"
            candidate = "{}"
            database_url = "{}"
            report_token = "t0k3n"
            instance = "{name}"
            rollout_sync_ms = 200
            kill_file = "{}"
            [[route]]
            match = "GET /items/{{id}}"
            "#,
            primary.url(),
            candidate.url(),
            db.url,
            kill_file.display()
        )
    };
    let (a, _, report_a) = serve(dir.path(), "a", &config("a")).await;
    let (b, listen_b, report_b) = serve(dir.path(), "b", &config("b")).await;
    let token = Some("t0k3n");
    let route = "GET /items/{id}";

    // Refused, with exit code 2: no token, an unknown route, a weight out of range.
    let (code, _, err) = rollout_command(report_a, None, &["set", route, "25"]).await;
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = rollout_command(report_a, token, &["set", "GET /nowhere", "25"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no route is named"), "{err}");
    let (code, _, err) = rollout_command(report_a, token, &["set", route, "101"]).await;
    assert_eq!(code, Some(2), "{err}");
    let (code, _, err) = rollout_command(report_a, token, &["advance", route]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no plan"), "{err}");

    // Set on one instance, applied by the other within the sync interval.
    let (code, out, err) = rollout_command(report_a, token, &["set", route, "25"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("25%"), "{out}");
    let set_at = Instant::now();
    let report_b_addr: std::net::SocketAddr = format!("127.0.0.1:{report_b}").parse().unwrap();
    let on_b = until(report_b_addr, 5, |v| v["routes"][1]["weight"] == 25.0).await;
    assert_eq!(on_b["routes"][1]["weight"], 25.0, "{on_b}");
    assert!(
        set_at.elapsed() < Duration::from_secs(2),
        "{:?}",
        set_at.elapsed()
    );

    // The kill file: every weight 0 here while it exists.
    std::fs::write(&kill_file, "").unwrap();
    let killed = until(report_b_addr, 5, |v| {
        v["killed_by_file"] == true && v["routes"][1]["weight"] == 0.0
    })
    .await;
    assert_eq!(killed["routes"][1]["weight"], 0.0, "{killed}");
    for i in 0..20 {
        let r = support::client()
            .get(format!("http://127.0.0.1:{listen_b}/items/{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let after = rollout_view(report_b_addr).await;
    assert_eq!(after["served"]["candidate"], 0, "{after}");
    std::fs::remove_file(&kill_file).unwrap();
    let back = until(report_b_addr, 5, |v| v["routes"][1]["weight"] == 25.0).await;
    assert_eq!(back["routes"][1]["weight"], 25.0, "{back}");

    // The kill command: every weight 0 on every instance, and the history says why.
    let (code, out, err) = rollout_command(report_b, token, &["kill"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("kill"), "{out}");
    let report_a_addr: std::net::SocketAddr = format!("127.0.0.1:{report_a}").parse().unwrap();
    let on_a = until(report_a_addr, 5, |v| v["routes"][1]["weight"] == 0.0).await;
    assert_eq!(on_a["routes"][1]["weight"], 0.0, "{on_a}");
    let (code, out, _) = rollout_command(report_a, token, &["status", "--json"]).await;
    assert_eq!(code, Some(0));
    let status: Value = serde_json::from_str(&out).unwrap();
    let reasons: Vec<(&str, &str)> = status["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["route"].as_str().unwrap(), e["reason"].as_str().unwrap()))
        .collect();
    assert!(
        reasons.contains(&(route, "kill")) && reasons.contains(&("*", "kill")),
        "{reasons:?}"
    );
    assert!(reasons.contains(&(route, "command")), "{reasons:?}");
    stop(a);
    stop(b);
}

/// A restart keeps the cutover where it was: the stored weight applies
/// from the first request on, not the configured one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_stored_weights() {
    let (primary, candidate) = (monolith().await, port(Arc::default()).await);
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
        listen = "127.0.0.1:0"
        report_listen = "127.0.0.1:0"
        primary = "{}"
        candidate = "{}"
        database_url = "sqlite://{}"
        report_token = "t0k3n"
        "#,
        primary.url(),
        candidate.url(),
        dir.path().join("store.db").display()
    );
    let (first, _, report) = serve(dir.path(), "first", &config).await;
    let (code, _, err) = rollout_command(report, Some("t0k3n"), &["set", "*", "100"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap()
        .success());
    let mut first = first;
    assert!(first.wait().unwrap().success());
    let (second, listen, report) = serve(dir.path(), "second", &config).await;
    // The first request after the restart goes to the candidate, as all do at 100%.
    let r = support::client()
        .get(format!("http://127.0.0.1:{listen}/items/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let view = rollout_view(format!("127.0.0.1:{report}").parse().unwrap()).await;
    assert_eq!(view["routes"][0]["weight"], 100.0, "{view}");
    assert_eq!(view["served"]["candidate"], 1, "{view}");
    stop(second);
}
