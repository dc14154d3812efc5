//! Candidates that attack the shadow stage: an endless body, a megabyte of
//! headers, huge bodies sent slowly. The client path must not notice them,
//! and the process must stay within the memory bound the README states.

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use http::StatusCode;
use tokio::io::AsyncWriteExt;

use crate::support;

async fn endless_body(mut socket: tokio::net::TcpStream) {
    let head =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    if socket.write_all(head).await.is_err() {
        return;
    }
    let chunk = format!("{:x}\r\n{}\r\n", 16_384, "7".repeat(16_384));
    while socket.write_all(chunk.as_bytes()).await.is_ok() {}
}

async fn megabyte_of_headers(mut socket: tokio::net::TcpStream) {
    let mut head = String::from("HTTP/1.1 200 OK\r\n");
    let line = format!("X-Padding: {}\r\n", "h".repeat(1_000));
    while head.len() < 1024 * 1024 {
        head.push_str(&line);
    }
    head.push_str("Content-Length: 2\r\n\r\n[]");
    let _ = socket.write_all(head.as_bytes()).await;
    let _ = socket.shutdown().await;
}

async fn huge_body_slowly(mut socket: tokio::net::TcpStream) {
    // Declares nothing, so only reading tells how large it is.
    let head =
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    if socket.write_all(head).await.is_err() {
        return;
    }
    let chunk = format!("{:x}\r\n{}\r\n", 65_536, "1,".repeat(32_768));
    for _ in 0..1_600 {
        if socket.write_all(chunk.as_bytes()).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A primary whose answer is the costliest kind to compare in memory: as
/// many small objects as the structural diff takes (one value per 16 bytes
/// of the body limit), just under the body limit.
async fn costly_primary(bytes: usize) -> support::Backend {
    costly_json(bytes, '0').await
}

/// As [`costly_primary`], every member `digit`.
async fn costly_json(bytes: usize, digit: char) -> support::Backend {
    // 34 bytes and two values an element: just under one value per 16 bytes.
    let element = format!("{{\"aaaaaaaaaaaaaaaaaaaaaaaaaaa\":{digit}}},");
    let body = format!("[{}{{}}]", element.repeat(bytes / element.len() - 1));
    support::backend(Router::new().route(
        "/",
        get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json")], body) }
        }),
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_candidates_stay_within_the_memory_bound() {
    const MAX_BODY: u64 = 1024 * 1024;
    const BUFFERED: u64 = 16 * 1024 * 1024;
    const THREADS: u64 = 1;
    const IN_FLIGHT: u64 = 256;
    let primary = costly_primary(MAX_BODY as usize - 64).await;
    let expected = reqwest::get(format!("http://{}/", primary.addr))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    // Differs in every element: the most a comparison can have to describe.
    let different = costly_json(MAX_BODY as usize - 64, '1').await;
    for candidate in [
        different.url().to_string(),
        support::raw_backend(endless_body).await.to_string(),
        support::raw_backend(megabyte_of_headers).await.to_string(),
        support::raw_backend(huge_body_slowly).await.to_string(),
    ] {
        let proxy = support::ServeProcess::start(
            &[
                "--primary",
                &primary.url().to_string(),
                "--candidate",
                &candidate,
                "--max-body-bytes",
                &MAX_BODY.to_string(),
                "--max-buffered-bytes",
                &BUFFERED.to_string(),
                "--shadow-threads",
                &THREADS.to_string(),
                "--max-in-flight",
                &IN_FLIGHT.to_string(),
                // Every sample an attack: the bound must hold without the breaker's help.
                "--breaker-failures",
                "0",
            ],
            None,
        )
        .await;
        let client = reqwest::Client::new();
        let mut rounds = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (client, url, expected) = (client.clone(), proxy.url("/"), expected.clone());
            rounds.spawn(async move {
                for _ in 0..20 {
                    let response = client.get(&url).send().await.unwrap();
                    assert_eq!(response.status(), StatusCode::OK);
                    assert_eq!(response.bytes().await.unwrap(), expected);
                }
            });
        }
        while let Some(round) = rounds.join_next().await {
            round.unwrap();
        }
        let peak = proxy.peak_memory();
        // The README's bound: 64 MiB + 2 x max_buffered_bytes
        // + shadow_threads x 64 x max_body_bytes + max_in_flight x 128 KiB.
        let bound =
            64 * 1024 * 1024 + 2 * BUFFERED + THREADS * 64 * MAX_BODY + IN_FLIGHT * 128 * 1024;
        eprintln!(
            "{candidate}: peak {} MiB, bound {} MiB",
            peak >> 20,
            bound >> 20
        );
        assert!(peak < bound, "peak {peak} over the bound {bound}");
        let (code, stderr) = proxy.terminate();
        assert_eq!(code, Some(0), "{stderr}");
    }
}

#[tokio::test]
async fn a_huge_length_on_a_response_without_a_body_is_still_compared() {
    let primary = support::backend(Router::new().route("/", get(|| async { "hello" }))).await;
    let candidate = support::raw_backend(|mut socket| async move {
        let _ = socket
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n")
            .await;
        let _ = socket.shutdown().await;
    })
    .await;
    let proxy = support::start(support::settings(&primary, candidate)).await;
    let response = support::client().head(proxy.url("/")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let tally = proxy.outcomes(1).await;
    let compared = tally.count(shadowdiff::outcome::OutcomeKey::Matched)
        + tally.count(shadowdiff::outcome::OutcomeKey::Mismatched);
    assert_eq!(compared, 1, "{tally:?}");
    proxy.stop().await;
}
