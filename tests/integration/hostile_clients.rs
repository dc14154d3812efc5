//! Clients that misbehave toward the proxy: slow or idle connections by the
//! thousand, broken bodies, tunnel requests, a signal at the first moment;
//! and a primary that never answers. Other clients must keep being served.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use http::StatusCode;
use shadowdiff::outcome::{OutcomeKey, SkipReason};
use shadowdiff::sampling::SampleRate;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support;

async fn hello() -> support::Backend {
    support::backend(Router::new().route("/", get(|| async { "hello" }))).await
}

/// Reads until the peer closes, bounded; what was read.
async fn read_to_close(socket: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut all = Vec::new();
    tokio::time::timeout(within, socket.read_to_end(&mut all))
        .await
        .ok()
        .map(|_| all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_by_the_thousand_cannot_lock_others_out() {
    support::raise_open_files();
    let primary = hello().await;
    let url = primary.url().to_string();
    // 1,024 open files hold 360 client connections (and 240 shadow calls in
    // flight, a quarter of what is left after 64 kept aside); a minute's header
    // timeout means only the cap's eviction can make room in this test.
    let proxy = support::ServeProcess::start(
        &[
            "--primary",
            &url,
            "--candidate",
            &url,
            "--sample-rate",
            "0",
            "--header-read-timeout-ms",
            "60000",
        ],
        Some(1024),
    )
    .await;
    let mut slow = Vec::new();
    for _ in 0..1_100 {
        let Ok(Ok(mut socket)) =
            tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(proxy.listen)).await
        else {
            continue;
        };
        // A head that never ends.
        let _ = socket
            .write_all(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            .await;
        slow.push(socket);
    }
    assert!(slow.len() >= 1_024, "only {} slow connections", slow.len());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    for i in 0..20 {
        let response = client.get(proxy.url("/")).send().await;
        let response = response.unwrap_or_else(|e| panic!("request {i}: {e}"));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.text().await.unwrap(), "hello");
    }
    drop(slow);
    let (code, stderr) = proxy.terminate();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stderr.contains("caps lowered to fit the open-file limit")
            && stderr.contains("max_connections_used=360")
            && stderr.contains("max_in_flight_used=240"),
        "{stderr}"
    );
    let evicted: u64 = stderr
        .split("evicted=")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no eviction count logged: {stderr}"));
    assert!(evicted > 0, "{stderr}");
}

#[tokio::test]
async fn a_head_sent_too_slowly_and_an_idle_connection_are_closed() {
    let primary = support::backend(Router::new().route(
        "/slow",
        get(|| async {
            tokio::time::sleep(Duration::from_millis(1_500)).await;
            "late"
        }),
    ))
    .await;
    let database = support::sqlite_database();
    let mut settings = support::settings(&primary, primary.url());
    settings.sample_rate = SampleRate::NONE;
    settings.database_url = Some(database.url.clone());
    settings.connections.header_read_timeout = Duration::from_millis(300);
    settings.connections.idle_timeout = Duration::from_millis(300);
    let proxy = support::start_with_report(settings).await;

    let mut head = TcpStream::connect(proxy.addr).await.unwrap();
    head.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let read = read_to_close(&mut head, Duration::from_secs(10)).await;
    assert_eq!(read, Some(Vec::new()), "an unfinished head was not cut off");

    // A request under way outlives both timeouts; once answered, the
    // connection is idle and closed.
    let mut kept = TcpStream::connect(proxy.addr).await.unwrap();
    kept.write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let read = read_to_close(&mut kept, Duration::from_secs(10)).await;
    let read = String::from_utf8(read.expect("an idle connection stayed open")).unwrap();
    assert!(read.starts_with("HTTP/1.1 200"), "{read}");
    assert!(read.ends_with("late"), "{read}");
    // Both closes are counted where operators look.
    let summary: serde_json::Value = support::client()
        .get(format!("http://{}/api/v1/summary", proxy.report.unwrap()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let connections = &summary["connections"];
    assert_eq!(connections["header_timeouts"], 1, "{summary}");
    assert_eq!(connections["idle_closed"], 1, "{summary}");
    assert_eq!(connections["accepted"], 2, "{summary}");
    proxy.stop().await;
}

#[tokio::test]
async fn a_hung_primary_is_a_504_and_a_skip() {
    let primary = support::backend(Router::new().route(
        "/hang",
        get(|| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "never"
        }),
    ))
    .await;
    let mut settings = support::settings(&primary, primary.url());
    settings.primary_timeout = Some(Duration::from_millis(200));
    let proxy = support::start(settings).await;
    let response = support::client()
        .get(proxy.url("/hang"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::GATEWAY_TIMEOUT);
    let body = response.text().await.unwrap();
    assert!(body.contains("did not answer within 200 ms"), "{body}");
    let tally = proxy.outcomes(1).await;
    assert_eq!(
        tally.count(OutcomeKey::Skipped(SkipReason::PrimaryTimeout)),
        1
    );
    proxy.stop().await;
}

#[tokio::test]
async fn connect_and_broken_bodies_get_clear_client_errors() {
    let (primary, hits) = support::recording_backend().await;
    let proxy = support::start(support::settings(&primary, primary.url())).await;
    let exchange = |request: &'static [u8]| {
        let addr = proxy.addr;
        async move {
            let mut socket = TcpStream::connect(addr).await.unwrap();
            socket.write_all(request).await.unwrap();
            let read = read_to_close(&mut socket, Duration::from_secs(10)).await;
            String::from_utf8_lossy(&read.expect("no answer")).into_owned()
        }
    };
    let connect = exchange(
        b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(connect.starts_with("HTTP/1.1 405"), "{connect}");
    assert!(connect.contains("CONNECT is not supported"), "{connect}");

    let chunked = exchange(
        b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nZZZ\r\nnot a chunk\r\n",
    )
    .await;
    assert!(chunked.starts_with("HTTP/1.1 400"), "{chunked}");
    assert!(chunked.contains("request body"), "{chunked}");
    assert!(
        hits.all()
            .iter()
            .all(|hit| hit.target != "/upload" || hit.body.is_empty()),
        "a broken body reached the primary as if whole"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_signal_as_soon_as_the_port_accepts_still_drains() {
    let primary = hello().await;
    let url = primary.url().to_string();
    for _ in 0..5 {
        let proxy =
            support::ServeProcess::start(&["--primary", &url, "--candidate", &url], None).await;
        let (code, stderr) = proxy.terminate();
        assert_eq!(code, Some(0), "{stderr}");
        assert!(
            stderr.contains("final tally") || stderr.contains("draining"),
            "{stderr}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_cap_a_connection_that_goes_idle_makes_room() {
    let primary = support::backend(
        Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    "slow"
                }),
            )
            .route("/", get(|| async { "hello" })),
    )
    .await;
    let mut settings = support::settings(&primary, primary.url());
    settings.sample_rate = SampleRate::NONE;
    settings.connections.max_connections = 2.try_into().unwrap();
    settings.connections.idle_timeout = Duration::from_secs(120);
    let proxy = support::start(settings).await;
    // Both places taken by requests under way, whose connections then stay
    // open, idle, as a client's pool keeps them.
    let mut kept = Vec::new();
    for _ in 0..2 {
        let mut socket = TcpStream::connect(proxy.addr).await.unwrap();
        socket
            .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        kept.push(socket);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A third client arrives while both are busy; once one goes idle, it is
    // closed to make room, long before the two-minute idle timeout.
    let third = tokio::time::timeout(
        Duration::from_secs(20),
        support::client().get(proxy.url("/")).send(),
    )
    .await
    .expect("the third client waited for an idle timeout")
    .unwrap();
    assert_eq!(third.text().await.unwrap(), "hello");
    for socket in &mut kept {
        let mut head = [0u8; 12];
        socket.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200", "a request under way was cut");
    }
    proxy.stop().await;
}
