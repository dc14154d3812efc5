//! Severity ordering is checked on a store seeded with one group of each
//! class, through the real proxy: backends that differ on five routes in
//! five ways (a status, a type, a missing member, a value, a header), the
//! less severe ones the more often, so that the groups API's order is the
//! classes' and not the counts'. Then the real binary's gate: `--fail-on`
//! fails on exactly the classes it names that had mismatches in groups not
//! triaged `expected`, from the database and through the report API, and
//! every format shows the mismatches by class.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use shadowdiff::sampling::SampleRate;

use crate::support::{self, binary as shadowdiff};

const TOKEN: &str = "severity-t0ken";

/// The routes, most severe first, with how often each is asked.
const ROUTES: [(&str, usize); 5] = [
    ("/status", 1),
    ("/structure", 2),
    ("/membership", 3),
    ("/value", 4),
    ("/headers", 5),
];

/// One side's answers: the candidate differs on every route, each in its way.
async fn backend(candidate: bool) -> support::Backend {
    let json = |body: Value| ([("content-type", "application/json")], body.to_string());
    let router =
        Router::new()
            .route(
                "/status",
                get(move || async move {
                    let status = if candidate { 503 } else { 200 };
                    (
                        http::StatusCode::from_u16(status).unwrap(),
                        json(json!({"id": 1})),
                    )
                }),
            )
            .route(
                "/structure",
                get(move || async move {
                    json(match candidate {
                        true => json!({"id": 1, "total": "30"}),
                        false => json!({"id": 1, "total": 30}),
                    })
                }),
            )
            .route(
                "/membership",
                get(move || async move {
                    json(match candidate {
                        true => json!({"id": 1}),
                        false => json!({"id": 1, "coupon": "x"}),
                    })
                }),
            )
            .route(
                "/value",
                get(move || async move {
                    json(json!({"id": 1, "total": if candidate { 31 } else { 30 }}))
                }),
            )
            .route(
                "/headers",
                get(move || async move {
                    let build = if candidate { "2" } else { "1" };
                    (
                        [("content-type", "application/json"), ("x-build", build)],
                        json!({"id": 1}).to_string(),
                    )
                }),
            );
    support::backend(router).await
}

async fn ask(method: &str, url: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = support::client()
        .request(method.parse().unwrap(), url)
        .bearer_auth(TOKEN);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Waits (bounded) until the store holds `n` comparisons, all written.
async fn stored(base: &str, n: i64) {
    for _ in 0..200 {
        let (status, summary) = ask("GET", &format!("{base}/api/v1/summary?since=1h"), None).await;
        if status == 200
            && summary["totals"]["compared"].as_i64() == Some(n)
            && summary["store"]["unwritten"] == 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store never held {n} comparisons");
}

/// The gate through the real binary; its exit code and standard output.
async fn gate(source: &[&str], more: &[&str]) -> (Option<i32>, String) {
    let mut args: Vec<String> = ["gate", "--since", "1h", "--min-parity", "0"]
        .iter()
        .chain(source)
        .chain(more)
        .map(|s| s.to_string())
        .collect();
    if source[0] == "--report-url" {
        args.extend(["--report-token".into(), TOKEN.into()]);
    }
    let out = shadowdiff(args).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (out.status.code(), format!("{stdout}{stderr}"))
}

// Long by design: one seeded store, then the API's order and every gate on it.
#[tokio::test(flavor = "multi_thread")]
async fn severity_ordering_is_checked_on_a_store_seeded_with_one_group_of_each_class() {
    let (primary, candidate) = (backend(false).await, backend(true).await);
    for db in support::databases().await {
        let mut settings = support::settings(&primary, candidate.url());
        settings.database_url = Some(db.url.clone());
        settings.sample_rate = SampleRate::ALL;
        settings.report_token = Some(TOKEN.parse().unwrap());
        let proxy = support::start_with_report(settings).await;
        let base = format!("http://{}", proxy.report.unwrap());
        for (route, times) in ROUTES {
            for _ in 0..times {
                support::client()
                    .get(proxy.url(route))
                    .send()
                    .await
                    .unwrap();
            }
        }
        stored(&base, 15).await;

        let (status, groups) = ask("GET", &format!("{base}/api/v1/groups"), None).await;
        assert_eq!(status, 200, "{}: {groups}", db.name);
        let listed: Vec<(&str, &str, i64)> = groups
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                let endpoint = g["endpoint"].as_str().unwrap();
                (
                    g["severity"].as_str().unwrap(),
                    endpoint,
                    g["count"].as_i64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            listed,
            vec![
                ("status", "GET /status", 1),
                ("structure", "GET /structure", 2),
                ("membership", "GET /membership", 3),
                ("value", "GET /value", 4),
                ("headers", "GET /headers", 5),
            ],
            "{}: most severe first, whatever the counts",
            db.name
        );
        let url = format!("{base}/api/v1/groups?severity=value,membership");
        let (_, some) = ask("GET", &url, None).await;
        let classes: Vec<&str> = some
            .as_array()
            .unwrap()
            .iter()
            .map(|g| g["severity"].as_str().unwrap())
            .collect();
        assert_eq!(classes, ["membership", "value"], "{}", db.name);
        let (status, refused) =
            ask("GET", &format!("{base}/api/v1/groups?severity=bad"), None).await;
        assert_eq!(
            (status, &refused["error"]["parameter"]),
            (400, &json!("severity"))
        );

        let db_url = db.url.to_string();
        let database = ["--database-url", db_url.as_str()];
        let remote = ["--report-url", base.as_str()];
        for source in [&database[..], &remote[..]] {
            let name = format!("{} via {}", db.name, source[0]);
            // Without --fail-on the classes are shown, never judged.
            let (code, out) = gate(source, &["--format", "json"]).await;
            assert_eq!(code, Some(0), "{name}: {out}");
            let report: Value = serde_json::from_str(&out).unwrap();
            let shown = &report["total"]["severity"];
            assert_eq!(
                shown,
                &json!({"verdict": null, "status": 1, "structure": 2, "membership": 3,
                        "value": 4, "headers": 5, "unknown": 0}),
                "{name}"
            );
            // A class with mismatches fails the gate; so does the least
            // severe, named on its own: fail_on lists classes, it is no
            // threshold.
            for classes in ["structure", "status,structure", "headers"] {
                let (code, out) = gate(source, &["--fail-on", classes]).await;
                assert_eq!(code, Some(1), "{name} --fail-on {classes}: {out}");
                assert!(
                    out.contains("mismatches of a class the gate fails on"),
                    "{out}"
                );
            }
            for format in ["text", "markdown", "junit"] {
                let (code, out) = gate(source, &["--fail-on", "value", "--format", format]).await;
                assert_eq!(code, Some(1), "{name} {format}: {out}");
                let line = "status 1, structure 2, membership 3, value 4, headers 5";
                assert!(out.contains(line), "{name} {format}: {out}");
                assert!(out.contains("fail on value"), "{name} {format}: {out}");
            }
        }

        // Triaged expected, the headers group no longer fails a gate on
        // headers, and is no longer counted; the others still fail theirs.
        let headers = groups[4]["fingerprint"].as_str().unwrap();
        let triage = json!({"status": "expected", "note": "new build header"});
        let url = format!("{base}/api/v1/groups/{headers}");
        assert_eq!(ask("PATCH", &url, Some(triage)).await.0, 200);
        for source in [&database[..], &remote[..]] {
            let name = format!("{} via {}", db.name, source[0]);
            let (code, out) = gate(source, &["--fail-on", "headers", "--format", "json"]).await;
            assert_eq!(code, Some(0), "{name}: {out}");
            let report: Value = serde_json::from_str(&out).unwrap();
            assert_eq!(report["total"]["severity"]["headers"], 0, "{name}");
            assert_eq!(report["total"]["severity"]["verdict"], "pass", "{name}");
            assert_eq!(report["criteria"]["fail_on"], json!(["headers"]), "{name}");
            let (code, out) = gate(source, &["--fail-on", "membership,headers"]).await;
            assert_eq!(code, Some(1), "{name}: {out}");
        }
        // A class the gate does not know is refused, naming the flag.
        let (code, out) = gate(&database, &["--fail-on", "status,worst"]).await;
        assert_eq!(code, Some(2), "{out}");
        assert!(out.contains("--fail-on"), "{out}");
        proxy.stop().await;
    }
}
