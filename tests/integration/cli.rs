//! The real binary: config errors, check-config, and draining on SIGTERM.

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::Router;

use crate::support;

const BIN: &str = env!("CARGO_BIN_EXE_shadowdiff");

fn shadowdiff(args: &[&str]) -> std::process::Output {
    Command::new(BIN).args(args).env_clear().output().unwrap()
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

const GOOD: &str = r#"
primary = "http://127.0.0.1:8001"
candidate = "http://127.0.0.1:8002"
sample_rate = 0.5

[[route]]
match = "GET /api/users/{id}"
sample_rate = 0.1
"#;

#[test]
fn check_config_accepts_a_good_file() {
    let file = config_file(GOOD);
    let out = shadowdiff(&["check-config", file.path().to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok (1 routes)"),
        "{out:?}"
    );
}

#[test]
fn a_bad_key_is_named_with_its_file_and_exit_code_2() {
    let file = config_file("primary = \"http://127.0.0.1:8001\"\nsample_rate = 1.5\n");
    let path = file.path().to_str().unwrap();
    for args in [vec!["check-config", path], vec!["serve", "--config", path]] {
        let out = shadowdiff(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(path), "{stderr}");
        assert!(stderr.contains("key `sample_rate`"), "{stderr}");
        assert!(stderr.contains("from 0.0 to 1.0"), "{stderr}");
    }
}

#[test]
fn a_bad_route_pattern_is_named() {
    let file = config_file("[[route]]\nmatch = \"GET api/users\"\n");
    let out = shadowdiff(&["check-config", file.path().to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("route[0].match") && stderr.contains("must start with /"),
        "{stderr}"
    );
}

/// Asserts that the command was refused (exit 2) saying `why`.
fn refused(out: &std::process::Output, why: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(why), "{stderr}");
}

/// `serve` with two backends and one variable set, in a clean environment.
fn serve_with_env(var: &str, value: &str) -> std::process::Output {
    Command::new(BIN)
        .args([
            "serve",
            "--primary",
            "http://127.0.0.1:1",
            "--candidate",
            "http://127.0.0.1:2",
        ])
        .env_clear()
        .env(var, value)
        .output()
        .unwrap()
}

#[test]
fn a_bad_environment_variable_is_named() {
    let out = serve_with_env("SHADOWDIFF_QUEUE", "0");
    refused(&out, "SHADOWDIFF_QUEUE");
}

#[test]
fn unknown_prefixed_variables_are_warned_about_not_fatal() {
    // Kubernetes sets SHADOWDIFF_PORT for a Service named shadowdiff.
    let out = Command::new(BIN)
        .args(["serve"])
        .env_clear()
        .env("SHADOWDIFF_PORT", "tcp://10.0.0.1:80")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // It goes on to the next check (the missing backends), past the variable.
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("SHADOWDIFF_PORT") && stderr.contains("not a shadowdiff setting"),
        "{stderr}"
    );
    assert!(stderr.contains("no primary backend given"), "{stderr}");
}

#[test]
fn migrate_prepares_a_database_and_refuses_a_bad_url() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("fresh.db").display());
    let out = shadowdiff(&["migrate", "--database-url", &url]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(dir.path().join("fresh.db").exists());
    // Twice is fine: applied migrations are skipped.
    assert_eq!(
        shadowdiff(&["migrate", "--database-url", &url])
            .status
            .code(),
        Some(0)
    );
    let out = shadowdiff(&["migrate", "--database-url", "mysql://x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sqlite://"),
        "{out:?}"
    );
}

#[test]
fn missing_backends_and_bad_flags_exit_2() {
    let out = shadowdiff(&["serve"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--primary"));
    let out = shadowdiff(&["serve", "--primary", "localhost:80"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--primary"));
}

// Long by design: one process's shutdown, followed step by step.
#[tokio::test]
async fn sigterm_finishes_requests_drains_and_exits_0() {
    let arrived = Arc::new(AtomicBool::new(false));
    let seen = arrived.clone();
    let primary = support::backend(Router::new().route(
        "/slow",
        get(move || {
            seen.store(true, Ordering::SeqCst);
            async {
                tokio::time::sleep(Duration::from_millis(800)).await;
                "finally"
            }
        }),
    ))
    .await;
    // The default store, sqlite://shadowdiff.db, lands in the working directory.
    let workdir = tempfile::tempdir().unwrap();
    // Port 0, and the port read back from the log: a port found free here
    // could be taken by another test before the binary bound it.
    let mut child = tokio::process::Command::new(BIN)
        .current_dir(workdir.path())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--report-listen",
            "127.0.0.1:0",
        ])
        .args(["--primary", &primary.url().to_string()])
        .args(["--candidate", &primary.url().to_string()])
        .env_clear()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    let (listen, log) = tokio::time::timeout(
        Duration::from_secs(10),
        listening_address(child.stderr.take().unwrap()),
    )
    .await
    .expect("shadowdiff did not start");
    let url = format!("http://{listen}/slow");
    let in_flight = tokio::spawn(async move {
        support::client()
            .get(url)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    });
    // SIGTERM only once the request is in flight at the primary.
    while !arrived.load(Ordering::SeqCst) {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the request never reached the primary"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let pid = child.id().unwrap().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());

    assert_eq!(in_flight.await.unwrap(), "finally");
    let status = tokio::time::timeout(Duration::from_secs(15), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let stderr = log.await.unwrap();
    // The shadow copy of the in-flight request was compared before exit.
    assert!(
        stderr.contains("final tally") && stderr.contains("matched=1"),
        "{stderr}"
    );
    assert!(
        tokio::net::TcpStream::connect(&listen).await.is_err(),
        "still accepting after exit"
    );
    // The outcome was written to the default SQLite store before exit.
    let url = format!(
        "sqlite://{}",
        workdir.path().join("shadowdiff.db").display()
    );
    let store = shadowdiff::store::SqlStore::connect(&url.parse().unwrap())
        .await
        .unwrap();
    let window = shadowdiff::store::Window {
        since_ms: 0,
        until_ms: i64::MAX / 2,
    };
    let counts = shadowdiff::store::Store::counts(&store, window, "", None)
        .await
        .unwrap();
    assert_eq!(counts[0].outcomes.get("matched"), Some(&1), "{counts:?}");
}

/// Reads a starting `serve`'s log up to the line that says where it
/// listens; returns that address, and the whole log once the process ends.
async fn listening_address(
    stderr: tokio::process::ChildStderr,
) -> (std::net::SocketAddr, tokio::task::JoinHandle<String>) {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let mut log = String::new();
    while let Some(line) = lines.next_line().await.unwrap() {
        log.push_str(&line);
        log.push('\n');
        if let Some(address) = support::logged_address(&line, "shadowdiff listening") {
            let rest = tokio::spawn(async move {
                while let Some(line) = lines.next_line().await.unwrap() {
                    log.push_str(&line);
                    log.push('\n');
                }
                log
            });
            return (address, rest);
        }
    }
    panic!("shadowdiff exited before listening: {log}");
}

#[test]
fn negative_numbers_are_refused_by_flag_name() {
    for (flag, value, accepted) in [
        ("--sample-rate", "-0.5", "from 0.0 to 1.0"),
        ("--max-in-flight", "-1", "at least 1"),
        ("--queue", "-3", "at least 1"),
        ("--drain-timeout-ms", "-1", "0 or more"),
        ("--candidate-timeout-ms", "-5", "whole milliseconds"),
    ] {
        let out = shadowdiff(&[
            "serve",
            "--primary",
            "http://127.0.0.1:1",
            "--candidate",
            "http://127.0.0.1:2",
            flag,
            value,
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flag}: {stderr}");
        assert!(
            stderr.contains(flag) && stderr.contains(accepted),
            "{flag}: {stderr}"
        );
    }
    let out = shadowdiff(&[
        "gate",
        "--database-url",
        "sqlite://x.db",
        "--min-samples",
        "-1",
    ]);
    refused(&out, "--min-samples");
}

#[test]
fn an_empty_report_token_is_refused_wherever_it_is_given() {
    let backends = [
        "--primary",
        "http://127.0.0.1:1",
        "--candidate",
        "http://127.0.0.1:2",
    ];
    let out = shadowdiff(&[&["serve", "--report-token", ""][..], &backends].concat());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--report-token") && stderr.contains("empty"),
        "{stderr}"
    );

    let out = Command::new(BIN)
        .arg("serve")
        .args(backends)
        .env_clear()
        .env("SHADOWDIFF_REPORT_TOKEN", "")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("SHADOWDIFF_REPORT_TOKEN") && stderr.contains("empty"),
        "{stderr}"
    );

    let file = config_file("report_token = \"  \"\n");
    let path = file.path().to_str().unwrap();
    for args in [
        vec!["check-config", path],
        [&["serve", "--config", path][..], &backends].concat(),
    ] {
        let out = shadowdiff(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(path)
                && stderr.contains("key `report_token`")
                && stderr.contains("empty"),
            "{stderr}"
        );
    }
}

#[test]
fn check_config_refuses_a_report_api_on_the_proxy_port() {
    for (listen, report) in [
        ("127.0.0.1:9100", "report_listen = \"127.0.0.1:9100\""),
        ("0.0.0.0:9100", "report_listen = \"127.0.0.1:9100\""),
        // The report API's default port.
        ("127.0.0.1:9090", ""),
    ] {
        let file = config_file(&format!("listen = \"{listen}\"\n{report}\n"));
        let out = shadowdiff(&["check-config", file.path().to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{listen}: {stderr}");
        assert!(
            stderr.contains("listen")
                && stderr.contains("report_listen")
                && stderr.contains("share a port"),
            "{stderr}"
        );
    }
    let out = shadowdiff(&[
        "serve",
        "--primary",
        "http://127.0.0.1:1",
        "--candidate",
        "http://127.0.0.1:2",
        "--listen",
        "127.0.0.1:9100",
        "--report-listen",
        "127.0.0.1:9100",
    ]);
    refused(&out, "share a port");
}

#[test]
fn a_number_too_large_names_its_key() {
    let file = config_file("queue = 5\nmax_body_bytes = 99999999999999999999\n");
    let path = file.path().to_str().unwrap();
    let out = shadowdiff(&["check-config", path]);
    refused(&out, "key `max_body_bytes`");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("(top level)"), "{stderr}");

    let out = serve_with_env("SHADOWDIFF_MAX_BODY_BYTES", "99999999999999999999");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("SHADOWDIFF_MAX_BODY_BYTES") && stderr.contains("too large"),
        "{stderr}"
    );
}
