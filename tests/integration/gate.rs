//! `shadowdiff gate` and /api/v1/gate end to end: stores seeded at 99.95%
//! (pass), 99.5% (fail) and with 20 comparisons (inconclusive), read by the
//! real binary from the database and through the report API, in every format,
//! on SQLite and on PostgreSQL; and latency percentiles, byte parity and
//! cost in every format.

use std::net::SocketAddr;
use std::sync::Arc;

use shadowdiff::config::BackendUrl;
use shadowdiff::gate::GateReport;
use shadowdiff::report::{self, ReportState};
use std::time::Duration;

use shadowdiff::store::{
    latency_bucket, Batch, CounterDelta, DatabaseUrl, LatencyDelta, SqlStore, Store,
};
use shadowdiff::time::format_millis;

use crate::support;

use support::binary as shadowdiff;

pub const TOKEN: &str = "gate-token";

/// The report API alone, on its own port, with a token.
pub async fn report_api(url: &DatabaseUrl) -> SocketAddr {
    let placeholder: BackendUrl = "http://127.0.0.1:9".parse().unwrap();
    let state = Arc::new(ReportState::new(
        Some(url.clone()),
        Some(TOKEN.parse().unwrap()),
        placeholder.clone(),
        placeholder,
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, report::router(state)).await });
    addr
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Three endpoints, one per scenario, ten minutes ago.
async fn seed(url: &DatabaseUrl) {
    let store = SqlStore::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    let minute = now_ms() / 60_000 - 10;
    let c = |endpoint: &str, outcome: &str, count| CounterDelta {
        minute,
        endpoint: endpoint.into(),
        outcome: outcome.into(),
        count,
    };
    let batch = Batch {
        counters: vec![
            c("GET /good/{id}", "matched", 19_990),
            c("GET /good/{id}", "mismatched", 10),
            c("GET /good/{id}", "skipped/unsafe_method", 7),
            c("GET /bad/{id}", "matched", 9_950),
            c("GET /bad/{id}", "mismatched", 40),
            c("GET /bad/{id}", "candidate_error/timeout", 10),
            c("GET /few", "matched", 20),
        ],
        ..Batch::default()
    };
    store.write("seed", "", &batch).await.unwrap();
}

struct Scenario {
    endpoint: &'static str,
    code: i32,
    verdict: &'static str,
    text: &'static str,
}

const SCENARIOS: [Scenario; 3] = [
    Scenario {
        endpoint: "GET /good/*",
        code: 0,
        verdict: "pass",
        text: "99.950%",
    },
    Scenario {
        endpoint: "GET /bad/*",
        code: 1,
        verdict: "fail",
        text: "99.500%",
    },
    Scenario {
        endpoint: "/few",
        code: 3,
        verdict: "inconclusive",
        text: "3818",
    },
];

// Long by design: one stored data set, then every format and both paths compared on it.
#[tokio::test(flavor = "multi_thread")]
async fn gate_verdicts_exit_codes_and_formats_agree_between_cli_and_api() {
    for db in support::databases().await {
        seed(&db.url).await;
        let api = report_api(&db.url).await;
        // Fixed bounds make both ways of asking decide over the same window.
        let since = format_millis(now_ms() - 3_600_000);
        let until = format_millis(now_ms() + 60_000);
        let window = |source: &[&str]| -> Vec<String> {
            let mut args: Vec<String> = vec!["gate".into()];
            args.extend(source.iter().map(|s| s.to_string()));
            args.extend([
                "--since".into(),
                since.clone(),
                "--until".into(),
                until.clone(),
            ]);
            args
        };
        // (No password in test URLs, so the displayed form is the URL.)
        let db_url = db.url.to_string();
        let database = ["--database-url", db_url.as_str()];
        let api_url = format!("http://{api}");
        let remote = ["--report-url", &api_url, "--report-token", TOKEN];

        for s in &SCENARIOS {
            let mut json_outputs = Vec::new();
            for source in [&database[..], &remote[..]] {
                for format in ["text", "json", "markdown", "junit"] {
                    let mut args = window(source);
                    args.extend([
                        "--endpoint".into(),
                        s.endpoint.into(),
                        "--format".into(),
                        format.into(),
                    ]);
                    let out = shadowdiff(args).await;
                    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                    assert_eq!(
                        out.status.code(),
                        Some(s.code),
                        "{} {} {format} via {}: {stdout}{}",
                        db.name,
                        s.verdict,
                        source[0],
                        String::from_utf8_lossy(&out.stderr)
                    );
                    match format {
                        "text" => {
                            assert!(
                                stdout.starts_with(&format!("gate: {}", s.verdict.to_uppercase())),
                                "{stdout}"
                            );
                            assert!(stdout.contains(s.text), "{stdout}");
                            assert!(stdout.contains("ENDPOINT"), "{stdout}");
                        }
                        "json" => {
                            let report: GateReport = serde_json::from_str(&stdout).unwrap();
                            assert_eq!(report.version, 1);
                            assert_eq!(report.verdict.as_str(), s.verdict);
                            assert_eq!(report.pass, s.code == 0);
                            json_outputs.push(stdout);
                        }
                        "markdown" => {
                            assert!(stdout.starts_with("### "), "{stdout}");
                            assert!(stdout.contains(&format!("shadowdiff gate: {}", s.verdict)));
                            assert!(stdout.contains(s.text), "{stdout}");
                        }
                        _ => {
                            assert!(stdout.starts_with("<?xml"), "{stdout}");
                            // The total and the one endpoint; only the total is enforced.
                            let failures = i32::from(s.code == 1);
                            assert!(
                                stdout.contains(&format!("tests=\"2\" failures=\"{failures}\"")),
                                "{stdout}"
                            );
                        }
                    }
                }
            }
            // The database and the API decide identically.
            assert_eq!(json_outputs[0], json_outputs[1], "{}", db.name);

            // The API itself, as Argo Rollouts or Flagger would call it.
            let response = support::client()
                .get(format!("http://{api}/api/v1/gate"))
                .bearer_auth(TOKEN)
                .query(&[
                    ("endpoint", s.endpoint),
                    ("since", &since),
                    ("until", &until),
                    ("strict", "true"),
                ])
                .send()
                .await
                .unwrap();
            assert_eq!(
                response.status().as_u16(),
                if s.code == 0 { 200 } else { 412 }
            );
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["pass"], s.code == 0);
            assert_eq!(body["verdict"], s.verdict);
        }

        // The fail names the failing endpoint only with --per-endpoint.
        let mut args = window(&database);
        args.extend(["--per-endpoint".into(), "--format".into(), "json".into()]);
        let out = shadowdiff(args).await;
        assert_eq!(out.status.code(), Some(1), "{}", db.name);
        let report: GateReport = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report.endpoints.len(), 3);
        assert!(report.reason.contains("GET /bad/{id}"), "{}", report.reason);

        // A wrong token, an unreachable API and bad flags are operational errors.
        let mut args = window(&["--report-url", &api_url, "--report-token", "wrong"]);
        args.push("--format=json".into());
        let out = shadowdiff(args).await;
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("refused the token"));
        let unreachable = support::refusing_url().await.to_string();
        let out = shadowdiff(window(&["--report-url", &unreachable])).await;
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the report API"));
    }
}

#[tokio::test]
async fn bad_gate_flags_and_parameters_are_named() {
    for (args, names) in [
        (
            vec![
                "gate",
                "--database-url",
                "sqlite://x.db",
                "--confidence",
                "95",
            ],
            "--confidence",
        ),
        (
            vec![
                "gate",
                "--database-url",
                "sqlite://x.db",
                "--min-parity",
                "101",
            ],
            "--min-parity",
        ),
        (
            vec![
                "gate",
                "--database-url",
                "sqlite://x.db",
                "--since",
                "yesterday",
            ],
            "--since",
        ),
        (
            vec![
                "gate",
                "--database-url",
                "sqlite://x.db",
                "--endpoint",
                "users",
            ],
            "--endpoint",
        ),
        (vec!["gate"], "--report-url"),
        (
            vec![
                "gate",
                "--database-url",
                "sqlite://x.db",
                "--max-latency-ratio",
                "p0=1.1",
            ],
            "--max-latency-ratio",
        ),
        (
            vec![
                "gate",
                "--database-url",
                "sqlite://x.db",
                "--max-p99-ratio",
                "1.1",
                "--max-latency-ratio",
                "p50=1.1",
            ],
            "--max-p99-ratio",
        ),
        (
            vec![
                "gate",
                "--database-url",
                "sqlite://x.db",
                "--min-byte-parity",
                "101",
            ],
            "--min-byte-parity",
        ),
        (
            vec![
                "gate",
                "--database-url",
                "sqlite:///nonexistent-dir/typo.db",
            ],
            "typo.db",
        ),
    ] {
        let out = shadowdiff(args.iter().map(|s| s.to_string()).collect()).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(names), "{args:?}: {stderr}");
    }
    let db = support::sqlite_database();
    let api = report_api(&db.url).await;
    for (query, parameter) in [
        ("confidence=95", "confidence"),
        ("min_parity=abc", "min_parity"),
        ("endpoint=users", "endpoint"),
        ("strict=maybe", "strict"),
        ("colour=red", "colour"),
        ("since=later", "since"),
        ("since=10000000000000w", "since"),
        ("min_parity=99&min_parity=98", "min_parity"),
        ("max_latency_ratio=p50", "max_latency_ratio"),
        (
            "max_latency_ratio=p50%3D1.1%2Cp50%3D1.2",
            "max_latency_ratio",
        ),
        (
            "max_p99_ratio=1.1&max_latency_ratio=p99%3D1.2",
            "max_latency_ratio",
        ),
        ("min_byte_parity=-1", "min_byte_parity"),
    ] {
        let response = support::client()
            .get(format!("http://{api}/api/v1/gate?{query}"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 400, "{query}");
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body["error"]["parameter"], parameter, "{query}: {body}");
    }
}

/// One endpoint whose candidate is 5% slower at p50 and 10% at p99, with 95%
/// of its pairs byte-equal.
async fn seed_latency(url: &DatabaseUrl) {
    let store = SqlStore::connect(url).await.unwrap();
    store.migrate().await.unwrap();
    let minute = now_ms() / 60_000 - 10;
    let c = |outcome: &str, count| CounterDelta {
        minute,
        endpoint: "GET /slow".into(),
        outcome: outcome.into(),
        count,
    };
    let l = |side, ms: u64, count| LatencyDelta {
        minute,
        endpoint: "GET /slow".into(),
        side,
        bucket: latency_bucket(Duration::from_millis(ms)),
        count,
    };
    let batch = Batch {
        counters: vec![
            c("matched", 1_000),
            c("byte_equal", 950),
            c("measured_pairs", 1_000),
            c("primary_bytes", 100_000),
            c("candidate_bytes", 100_000),
        ],
        latencies: vec![
            l("primary", 20, 980),
            l("primary", 100, 20),
            l("candidate", 21, 980),
            l("candidate", 110, 20),
        ],
        ..Batch::default()
    };
    store.write("seed", "", &batch).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn latency_percentiles_and_byte_parity_in_every_format() {
    for db in support::databases().await {
        seed_latency(&db.url).await;
        let api = report_api(&db.url).await;
        let db_url = db.url.to_string();
        let api_url = format!("http://{api}");
        // Fixed bounds make both ways of asking decide over the same window.
        let since = format_millis(now_ms() - 3_600_000);
        let until = format_millis(now_ms() + 60_000);
        let sources = [
            vec!["--database-url", db_url.as_str()],
            vec!["--report-url", &api_url, "--report-token", TOKEN],
        ];
        for (limits, byte_parity, code) in [
            ("p50=1.06,p99=1.11", "90", 0),
            ("p50=1.04,p99=1.11", "90", 1),
            ("p50=1.06,p99=1.09", "90", 1),
            ("p50=1.06,p99=1.11", "97", 1),
        ] {
            let mut json = Vec::new();
            for source in &sources {
                for format in ["text", "json", "markdown", "junit"] {
                    let mut args: Vec<String> = ["gate", "--since", &since, "--until", &until]
                        .map(String::from)
                        .to_vec();
                    args.extend(source.iter().map(|s| s.to_string()));
                    args.extend(
                        [
                            "--min-parity",
                            "99",
                            "--max-latency-ratio",
                            limits,
                            "--min-byte-parity",
                            byte_parity,
                            "--format",
                            format,
                        ]
                        .map(String::from),
                    );
                    let out = shadowdiff(args).await;
                    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
                    let what = format!(
                        "{} {limits} {byte_parity} {format} via {}",
                        db.name, source[0]
                    );
                    assert_eq!(out.status.code(), Some(code), "{what}: {stdout}");
                    if format == "json" {
                        json.push(stdout);
                        continue;
                    }
                    // Every format names both percentiles' ratios (a passing
                    // check as a note, a failing one as its reason), the
                    // byte parity and the cost.
                    assert!(
                        stdout.contains("p50") && stdout.contains("p99"),
                        "{what}: {stdout}"
                    );
                    assert!(stdout.contains("byte parity"), "{what}: {stdout}");
                    if format != "junit" {
                        assert!(stdout.contains("time ratio 1.0"), "{what}: {stdout}");
                    }
                }
            }
            assert_eq!(
                json[0], json[1],
                "{}: the database and the API agree",
                db.name
            );
            let report: GateReport = serde_json::from_str(&json[0]).unwrap();
            let latency = report.total.latency.as_ref().unwrap();
            let p50 = latency.percentiles[0].ratio.unwrap();
            let p99 = latency.percentiles[1].ratio.unwrap();
            assert!(
                (p50 - 1.05).abs() < 0.005 && (p99 - 1.10).abs() < 0.005,
                "{p50} {p99}"
            );
            let bytes = report.total.byte_parity.as_ref().unwrap();
            assert_eq!((bytes.byte_equal, bytes.pairs), (950, 1_000));
            let cost = report.total.cost.as_ref().unwrap();
            assert_eq!(cost.bytes_ratio, Some(1.0));
            assert_eq!(cost.primary.bytes_per_request, Some(100.0));
        }
    }
}
