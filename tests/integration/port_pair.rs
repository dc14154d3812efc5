//! A Python service and its Go port, as two small backends: every harmless
//! difference kind the rules forgive, next to two seeded real bugs. With the
//! narrowest rules, the real binary reports no false mismatch and each bug
//! as one group; `rejudge` finds the same from a store filled without those
//! rules, sending no request.

use std::time::Duration;

use axum::extract::{Path, Query};
use axum::routing::get;
use axum::Router;
use http::StatusCode;
use serde_json::{json, Value};
use shadowdiff::store::{DatabaseUrl, SqlStore, Store};

use crate::support;

/// What Flask answers.
fn python() -> Router {
    Router::new()
        .route("/search", get(|Query(q): Query<Vec<(String, String)>>| async move {
            let args: serde_json::Map<String, Value> =
                q.into_iter().map(|(k, v)| (k, Value::String(v))).collect();
            axum::Json(json!({ "args": args }))
        }))
        .route("/echo-headers", get(|| async {
            axum::Json(json!({ "accept": "text/html, application/json" }))
        }))
        .route("/users/{id}", get(|Path(id): Path<u32>| async move {
            axum::Json(json!({ "id": id, "name": "Ann", "nickname": "" }))
        }))
        .route("/orders/{id}", get(|Path(id): Path<u32>| async move {
            axum::Json(json!({ "id": id, "total": "10.00" }))
        }))
        .route("/random", get(|| async {
            ([("content-type", "application/octet-stream")], rand::random::<[u8; 32]>().to_vec())
        }))
        .route("/robots.txt", get(|| async {
            ([("content-type", "text/plain")], "User-agent: *\r\nDisallow: /admin\r\n")
        }))
        .route("/events", get(|| async {
            (
                [("content-type", "application/x-ndjson")],
                "{\"id\": 1, \"price\": \"2.50\"}\n{\"id\": 2, \"price\": \"3.00\"}\n",
            )
        }))
        .route("/old", get(|| async {
            (
                StatusCode::FOUND,
                [("location", "/new"), ("content-type", "text/html; charset=utf-8")],
                "<title>Redirecting...</title><h1>Redirecting...</h1>",
            )
        }))
        .route("/empty", get(|| async {
            (StatusCode::NO_CONTENT, [("content-type", "text/html; charset=utf-8")])
        }))
        .route("/ping", get(|| async { ([("content-type", "text/html; charset=utf-8")], "pong") }))
        .route("/report", get(|| async {
            let at = httpdate::fmt_http_date(std::time::SystemTime::now());
            ([("x-generated-at", at)], axum::Json(json!({ "rows": 3 })))
        }))
}

/// What the Go port answers: each harmless difference, and two bugs.
fn go() -> Router {
    Router::new()
        .route(
            "/search",
            get(|Query(q): Query<Vec<(String, String)>>| async move {
                let boots = q.iter().any(|(k, v)| k == "q" && v == "boots");
                let args: serde_json::Map<String, Value> = q
                    .into_iter()
                    .map(|(k, v)| {
                        // Bug 1: the second page of "boots" is off by one.
                        let v = if boots && k == "page" {
                            "3".to_string()
                        } else {
                            v
                        };
                        (k, json!([v]))
                    })
                    .collect();
                axum::Json(json!({ "args": args }))
            }),
        )
        .route(
            "/echo-headers",
            get(|| async { axum::Json(json!({ "accept": ["text/html", "application/json"] })) }),
        )
        .route(
            "/users/{id}",
            get(|Path(id): Path<u32>| async move {
                axum::Json(json!({ "etag": "W/\"1\"", "id": id, "name": "Ann" }))
            }),
        )
        // Bug 2: a total that is not the primary's.
        .route(
            "/orders/{id}",
            get(|Path(id): Path<u32>| async move { axum::Json(json!({ "id": id, "total": 12 })) }),
        )
        .route(
            "/random",
            get(|| async {
                (
                    [("content-type", "application/octet-stream")],
                    rand::random::<[u8; 32]>().to_vec(),
                )
            }),
        )
        .route(
            "/robots.txt",
            get(|| async {
                (
                    [("content-type", "text/plain; charset=utf-8")],
                    "User-agent: *\nDisallow: /admin",
                )
            }),
        )
        .route(
            "/events",
            get(|| async {
                (
                    [("content-type", "application/x-ndjson")],
                    "{\"price\":2.5,\"id\":1}\n{\"price\":3,\"id\":2}\n",
                )
            }),
        )
        .route(
            "/old",
            get(|| async { (StatusCode::FOUND, [("location", "/new")]) }),
        )
        .route("/empty", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/ping",
            get(|| async { ([("content-type", "text/plain; charset=utf-8")], "pong") }),
        )
        .route(
            "/report",
            get(|| async {
                let later = std::time::SystemTime::now() + Duration::from_secs(1);
                (
                    [("x-generated-at", httpdate::fmt_http_date(later))],
                    axum::Json(json!({ "rows": 3 })),
                )
            }),
        )
}

/// The narrowest rules: each forgives one difference of one route.
const NARROW: &str = r#"
[compare]
preset = "python-go"

[[route]]
match = "GET /search"
[route.compare]
scalar_as_array = ["/args/*"]

[[route]]
match = "GET /echo-headers"
[route.compare]
comma_joined = ["/accept"]

[[route]]
match = "GET /users/{id}"
[route.compare]
candidate_may_omit = ["/nickname"]
candidate_may_add = ["/etag"]

[[route]]
match = "GET /random"
[route.compare]
body = "length"

[[route]]
match = "GET /robots.txt"
[route.compare]
normalise_text = ["line_endings", "final_newline"]

[[route]]
match = "GET /ping"
[route.compare]
media_types_equal = [["text/html", "text/plain"]]

[[route]]
match = "GET /report"
[route.compare]
header_mask = { "x-generated-at" = "http-date" }
"#;

/// The same routes with only the preset: what a first run starts with.
const PRESET_ONLY: &str = "[compare]\npreset = \"python-go\"\n";

const TARGETS: &[&str] = &[
    "/search?q=shoes&page=2",
    "/search?q=boots&page=2",
    "/echo-headers",
    "/users/7",
    "/orders/7",
    "/random",
    "/robots.txt",
    "/events",
    "/old",
    "/empty",
    "/ping",
    "/report",
];

/// Serves the pair under `config` with a store at `db`, sends every target
/// three times, and stops (so every outcome is written).
async fn run(config: &str, db: &std::path::Path) {
    let (primary, candidate) = (
        support::backend(python()).await,
        support::backend(go()).await,
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("shadowdiff.toml");
    std::fs::write(&file, config).unwrap();
    let database = format!("sqlite://{}", db.display());
    let proxy = support::ServeProcess::start(
        &[
            "--config",
            file.to_str().unwrap(),
            "--primary",
            &primary.url().to_string(),
            "--candidate",
            &candidate.url().to_string(),
            "--database-url",
            &database,
        ],
        None,
    )
    .await;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    for _ in 0..3 {
        for target in TARGETS {
            let response = client.get(proxy.url(target)).send().await.unwrap();
            assert!(
                response.status().as_u16() < 400,
                "{target}: {}",
                response.status()
            );
        }
    }
    // Shadow work finishes (and is written) on a graceful stop.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (code, log) = proxy.terminate();
    assert_eq!(code, Some(0), "{log}");
}

/// `shadowdiff rejudge --config CONFIG --database-url DATABASE` and more flags.
async fn rejudge(config: &std::path::Path, database: &str, more: &[&str]) -> std::process::Output {
    let mut args = vec![
        "rejudge",
        "--config",
        config.to_str().unwrap(),
        "--database-url",
        database,
    ];
    args.extend_from_slice(more);
    support::binary(args.into_iter().map(String::from).collect()).await
}

async fn groups(db: &std::path::Path) -> Vec<(String, i64)> {
    let url: DatabaseUrl = format!("sqlite://{}", db.display()).parse().unwrap();
    let store = SqlStore::open_existing(&url).await.unwrap();
    let mut found: Vec<(String, i64)> = store
        .groups(None, None)
        .await
        .unwrap()
        .into_iter()
        .map(|g| (g.endpoint, g.count))
        .collect();
    found.sort();
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_narrowest_rules_leave_only_the_two_real_bugs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("narrow.db");
    run(NARROW, &db).await;
    // Each bug is one group of its three requests; nothing else differs.
    assert_eq!(
        groups(&db).await,
        vec![
            ("GET /orders/{id}".to_string(), 3),
            ("GET /search".to_string(), 3)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rejudge_finds_the_same_from_the_store_without_a_request() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("first-run.db");
    run(PRESET_ONLY, &db).await;
    let before = groups(&db).await;
    assert!(before.len() >= 8, "{before:?}");
    let config = dir.path().join("narrow.toml");
    std::fs::write(&config, NARROW).unwrap();
    let database = format!("sqlite://{}", db.display());
    let out = rejudge(&config, &database, &["--format", "json"]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let fates: Vec<(String, String)> = report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            (
                g["endpoint"].as_str().unwrap().to_string(),
                g["fate"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let mut kept: Vec<&(String, String)> = fates
        .iter()
        .filter(|(_, fate)| fate != "vanishes")
        .collect();
    kept.sort();
    // The order total still differs as before; the search bug, seen without
    // the rule beside the scalar-as-array difference, now stands alone.
    assert_eq!(
        kept,
        vec![
            &("GET /orders/{id}".to_string(), "still_differs".to_string()),
            &("GET /search".to_string(), "changes".to_string()),
        ],
        "{fates:?}"
    );
    // 36 compared; under the narrow rules, only the 6 bug requests differ.
    assert_eq!(report["compared"], 36, "{report}");
    let after = report["parity_after"].as_f64().unwrap();
    assert!((after - 30.0 / 36.0).abs() < 1e-9, "{report}");
    // The report API gives the same, from the config's text.
    let url: DatabaseUrl = database.parse().unwrap();
    let api = crate::gate::report_api(&url).await;
    let client = reqwest::Client::new();
    let post = |body: Value| {
        client
            .post(format!("http://{api}/api/v1/rejudge"))
            .bearer_auth(crate::gate::TOKEN)
            .json(&body)
            .send()
    };
    let response = post(json!({ "config": NARROW, "since": "1h" }))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let served: Value = response.json().await.unwrap();
    assert_eq!(served, report, "the API and the CLI disagree");
    let response = post(json!({ "config": "[compare]\nbody = 1\n" }))
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["error"]["parameter"], "config", "{error}");
    // The same as text for people, and a store that is not there: exit 2.
    let out = rejudge(&config, &database, &[]).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("would vanish") && text.contains("still differs"),
        "{text}"
    );
    assert!(text.contains("parity: "), "{text}");
    let missing = format!("sqlite://{}", dir.path().join("none.db").display());
    let out = rejudge(&config, &missing, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        !dir.path().join("none.db").exists(),
        "rejudge must not create a store"
    );
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "[compare]\nbody = \"sometimes\"\n").unwrap();
    let out = rejudge(&bad, &database, &[]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sometimes"),
        "{out:?}"
    );
}
