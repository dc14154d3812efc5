//! Through the proxy, a client gets exactly what a direct call gets: status,
//! headers (less hop-by-hop ones) and body, whatever is sampled.

use std::io::Write;
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, StatusCode};
use shadowdiff::outcome::{OutcomeKey, SkipReason};
use shadowdiff::sampling::SampleRate;

use crate::support::{self, Backend};

const LARGE: usize = 50 * 1024 * 1024;

fn gzipped(text: &str) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(text.as_bytes()).unwrap();
    encoder.finish().unwrap()
}

/// A primary with one route per kind of response the proxy must pass through.
async fn primary() -> Backend {
    let router = Router::new()
        .route(
            "/json",
            get(|| async {
                (
                    [
                        ("content-type", "application/json"),
                        ("x-multi", "one"),
                        ("x-multi", "two"),
                        ("cache-control", "max-age=60"),
                    ],
                    r#"{"id":42,"name":"Ada","tags":["a","b"]}"#,
                )
            }),
        )
        .route(
            "/binary",
            get(|| async {
                let bytes: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
                ([("content-type", "application/octet-stream")], bytes)
            }),
        )
        .route(
            "/gzip",
            get(|| async {
                (
                    [
                        ("content-type", "application/json"),
                        ("content-encoding", "gzip"),
                    ],
                    gzipped(&"{\"k\":\"v\"}".repeat(500)),
                )
            }),
        )
        .route(
            "/chunked",
            get(|| async {
                let chunks = futures_util::stream::iter(["first,", "second,", "third"]).then(
                    |c| async move {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Ok::<_, std::io::Error>(Bytes::from(c))
                    },
                );
                ([("content-type", "text/plain")], Body::from_stream(chunks))
            }),
        )
        .route("/empty", get(|| async { StatusCode::NO_CONTENT }))
        .route(
            "/cached",
            get(|| async { (StatusCode::NOT_MODIFIED, [("etag", "\"v1\"")]) }),
        )
        .route(
            "/large",
            get(|| async {
                (
                    [("content-type", "application/octet-stream")],
                    vec![b'x'; LARGE],
                )
            }),
        )
        .route(
            "/events",
            get(|| async {
                (
                    [("content-type", "text/event-stream")],
                    "data: one\n\ndata: two\n\n",
                )
            }),
        )
        .route("/echo", post(|body: Bytes| async move { body }))
        .fallback(|request: Request| async move {
            // Echo the target exactly as it arrived: encoding and repeated keys intact.
            let target = request.uri().to_string();
            ([("content-type", "text/plain")], target).into_response()
        });
    support::backend(router).await
}

struct Seen {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

async fn fetch(client: &reqwest::Client, method: http::Method, url: String) -> Seen {
    let response = client.request(method, url).send().await.unwrap();
    let status = response.status();
    let mut headers = response.headers().clone();
    // Both sides stamp their own Date; it may tick between the two calls.
    headers.remove("date");
    let body = response.bytes().await.unwrap();
    Seen {
        status,
        headers,
        body,
    }
}

const CASES: &[(&str, &str)] = &[
    ("GET", "/json"),
    ("HEAD", "/json"),
    ("GET", "/binary"),
    ("GET", "/gzip"),
    ("GET", "/chunked"),
    ("GET", "/empty"),
    ("GET", "/cached"),
    ("GET", "/large"),
    ("GET", "/events"),
    ("GET", "/search?tag=a&tag=b&tag=a&q=%C3%A9t%C3%A9+x"),
    ("GET", "/files/a%20b%2Fc/%E2%9C%93"),
];

async fn proxied_equals_direct(rate: SampleRate) {
    let primary = primary().await;
    // The candidate is the same service, so every full comparison must match.
    let mut settings = support::settings(&primary, primary.url());
    settings.sample_rate = rate;
    let proxy = support::start(settings).await;
    let client = support::client();
    for (method, target) in CASES {
        let method: http::Method = method.parse().unwrap();
        let direct = fetch(
            &client,
            method.clone(),
            format!("http://{}{}", primary.addr, target),
        )
        .await;
        let proxied = fetch(&client, method.clone(), proxy.url(target)).await;
        assert_eq!(proxied.status, direct.status, "{method} {target}");
        assert_eq!(proxied.headers, direct.headers, "{method} {target}");
        assert!(
            proxied.body == direct.body,
            "{method} {target}: bodies differ"
        );
    }
    if rate == SampleRate::ALL {
        let tally = proxy.outcomes(CASES.len() as u64).await;
        assert_eq!(
            tally.count(OutcomeKey::Skipped(SkipReason::BodyTooLarge)),
            1,
            "{tally:?}"
        );
        assert_eq!(
            tally.count(OutcomeKey::Skipped(SkipReason::EventStream)),
            1,
            "{tally:?}"
        );
        assert_eq!(
            tally.count(OutcomeKey::Matched),
            CASES.len() as u64 - 2,
            "{tally:?}"
        );
    }
    // Every sampled request ends in exactly one outcome, and none is left over.
    let tally = proxy.stop().await;
    let sampled = if rate == SampleRate::ALL {
        CASES.len() as u64
    } else {
        0
    };
    assert_eq!(tally.total(), sampled, "{tally:?}");
}

#[tokio::test]
async fn unsampled_responses_equal_direct_calls() {
    proxied_equals_direct(SampleRate::NONE).await;
}

#[tokio::test]
async fn sampled_responses_equal_direct_calls() {
    proxied_equals_direct(SampleRate::ALL).await;
}

#[tokio::test]
async fn request_bodies_and_chunked_uploads_reach_both_backends_intact() {
    let primary = primary().await;
    let mut settings = support::settings(&primary, primary.url());
    settings.routes = opt_in("POST /echo");
    let proxy = support::start(settings).await;
    let client = support::client();
    let body: Vec<u8> = (0..=255u8).cycle().take(300_000).collect();
    let sized = client
        .post(proxy.url("/echo"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(sized.status(), StatusCode::OK);
    assert!(sized.bytes().await.unwrap() == body);

    let chunks = futures_util::stream::iter(
        body.chunks(10_000)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );
    let streamed = client
        .post(proxy.url("/echo"))
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert!(streamed.bytes().await.unwrap() == body);
    // The candidate (the same echo service) got the same bodies: both match.
    let tally = proxy.outcomes(2).await;
    assert_eq!(tally.count(OutcomeKey::Matched), 2, "{tally:?}");
    proxy.stop().await;
}

fn opt_in(pattern: &str) -> Vec<shadowdiff::config::Route> {
    let toml = format!("[[route]]\nmatch = \"{pattern}\"\nmirror_unsafe = true");
    shadowdiff::config::Layer::from_toml(&toml)
        .unwrap()
        .routes
        .unwrap()
}

#[tokio::test]
async fn uploads_over_the_limit_pass_through_and_are_skipped() {
    let primary = primary().await;
    let mut settings = support::settings(&primary, primary.url());
    settings.routes = opt_in("POST /echo");
    settings.max_body_bytes = 50_000;
    let proxy = support::start(settings).await;
    let body = vec![b'u'; 200_000];
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        body.chunks(8_192).map(|c| Ok(c.to_vec())).collect();
    let response = support::client()
        .post(proxy.url("/echo"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert!(response.bytes().await.unwrap() == body);
    let tally = proxy.outcomes(1).await;
    assert_eq!(
        tally.count(OutcomeKey::Skipped(SkipReason::BodyTooLarge)),
        1,
        "{tally:?}"
    );
    proxy.stop().await;
}

#[tokio::test]
async fn a_long_stream_over_the_limit_does_not_hold_a_shadow_slot() {
    let endless = support::backend(
        Router::new()
            .route(
                "/stream",
                get(|| async {
                    let chunks = futures_util::stream::repeat(()).then(|()| async {
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        Ok::<_, std::io::Error>(Bytes::from(vec![b'{'; 4_096]))
                    });
                    (
                        [("content-type", "application/x-ndjson")],
                        Body::from_stream(chunks),
                    )
                }),
            )
            .route("/ok", get(|| async { "ok" })),
    )
    .await;
    let mut settings = support::settings(&endless, endless.url());
    settings.max_body_bytes = 16_384;
    settings.max_in_flight = 1.try_into().unwrap();
    let proxy = support::start(settings).await;
    let client = support::client();
    let mut stream = client.get(proxy.url("/stream")).send().await.unwrap();
    let mut read = 0;
    while read < 100_000 {
        read += stream.chunk().await.unwrap().unwrap().len();
    }
    // The stream is still open; the one shadow slot must be free again.
    let tally = proxy.outcomes(1).await;
    assert_eq!(
        tally.count(OutcomeKey::Skipped(SkipReason::BodyTooLarge)),
        1,
        "{tally:?}"
    );
    client.get(proxy.url("/ok")).send().await.unwrap();
    let tally = proxy.outcomes(2).await;
    assert_eq!(tally.count(OutcomeKey::Matched), 1, "{tally:?}");
    drop(stream);
    proxy.stop().await;
}

/// A GET sent as raw bytes (an HTTP client library would normalise or
/// encode the target), and the whole response as text.
async fn raw_get(addr: std::net::SocketAddr, target: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    socket.read_to_string(&mut response).await.unwrap();
    response
}

#[tokio::test]
async fn dot_segments_are_refused_not_resolved() {
    let primary = primary().await;
    let mut base = support::settings(&primary, primary.url());
    base.primary = format!("http://{}/base", primary.addr).parse().unwrap();
    let proxy = support::start(base).await;
    // Sent raw: an HTTP client library would resolve the dots itself.
    for target in ["/x/../admin", "/x/%2e%2e/admin", "/x/%2E./admin"] {
        let response = raw_get(proxy.addr, target).await;
        assert!(response.starts_with("HTTP/1.1 400"), "{target}: {response}");
    }
    proxy.stop().await;
}

/// The primary gets the target the client sent, byte for byte behind the
/// base's prefix: characters a URL library would percent-encode (`"`, `{`,
/// `|`) are not rewritten, as a direct call would not rewrite them.
#[tokio::test]
async fn the_primary_gets_the_target_byte_for_byte() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            if socket.read(&mut byte).await.unwrap() == 0 {
                break;
            }
            head.push(byte[0]);
        }
        socket
            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
            .await
            .unwrap();
        String::from_utf8_lossy(&head)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    });
    let mut settings = support::settings(&primary().await, "http://127.0.0.1:9".parse().unwrap());
    settings.primary = format!("http://{addr}/base").parse().unwrap();
    let proxy = support::start(settings).await;
    let target = "/a/{\"b\"}/c|d?q=%7C|x&e={}";
    let response = raw_get(proxy.addr, target).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(seen.await.unwrap(), format!("GET /base{target} HTTP/1.1"));
    proxy.stop().await;
}

/// The candidate gets the same target as the primary, byte for byte: a
/// target re-encoded for one side only would be a difference the proxy made.
#[tokio::test]
async fn both_backends_get_the_same_target() {
    let (primary, primary_hits) = support::recording_backend().await;
    let (candidate, candidate_hits) = support::recording_backend().await;
    let mut settings = support::settings(&primary, candidate.url());
    settings.sample_rate = SampleRate::new(1.0).unwrap();
    let proxy = support::start(settings).await;
    let target = "/a/{\"b\"}/c|d?q=%7C|x&e={}&p=C:\\temp";
    let response = raw_get(proxy.addr, target).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    let seen = candidate_hits.wait_for(1).await;
    assert_eq!(primary_hits.all()[0].target, target);
    assert_eq!(seen[0].target, target);
    proxy.stop().await;
}

#[tokio::test]
async fn forwarded_headers_are_set_and_hop_by_hop_ones_dropped() {
    let (primary, hits) = support::recording_backend().await;
    let mut settings = support::settings(&primary, primary.url());
    settings.sample_rate = SampleRate::NONE;
    let proxy = support::start(settings).await;
    let response = support::client()
        .get(proxy.url("/who"))
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("x-user", "7")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let hit = &hits.wait_for(1).await[0];
    assert_eq!(hit.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(hit.headers["x-forwarded-proto"], "http");
    // The client's Host reaches the primary as a direct call would carry it.
    assert_eq!(hit.headers["host"], proxy.addr.to_string());
    assert!(!hit.headers.contains_key("x-forwarded-host"));
    assert_eq!(hit.headers["x-user"], "7");
    assert!(!hit.headers.contains_key("x-hop"));
    assert!(!hit.headers.contains_key("x-shadowdiff-role"));
    proxy.stop().await;
}

#[tokio::test]
async fn an_unreachable_primary_is_a_502_and_a_skip() {
    let candidate = primary().await;
    let settings = shadowdiff::Settings::new(support::refusing_url().await, candidate.url());
    let proxy = support::start(settings).await;
    let response = support::client()
        .get(proxy.url("/json"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_GATEWAY);
    let tally = proxy.outcomes(1).await;
    assert_eq!(
        tally.count(OutcomeKey::Skipped(SkipReason::PrimaryError)),
        1
    );
    proxy.stop().await;
}

/// A primary that switches to a trivial echo protocol, as a WebSocket server would.
async fn upgrading_primary() -> Backend {
    let router = Router::new().route(
        "/ws",
        get(|mut request: Request| async move {
            let upgrade = hyper::upgrade::on(&mut request);
            tokio::spawn(async move {
                let mut io = hyper_util::rt::TokioIo::new(upgrade.await.unwrap());
                let mut buf = [0u8; 64];
                let n = tokio::io::AsyncReadExt::read(&mut io, &mut buf)
                    .await
                    .unwrap();
                tokio::io::AsyncWriteExt::write_all(&mut io, &buf[..n])
                    .await
                    .unwrap();
            });
            (
                StatusCode::SWITCHING_PROTOCOLS,
                [("connection", "upgrade"), ("upgrade", "echo")],
            )
        }),
    );
    support::backend(router).await
}

#[tokio::test]
async fn protocol_upgrades_pass_through_unshadowed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let primary = upgrading_primary().await;
    let (candidate, candidate_hits) = support::recording_backend().await;
    let proxy = support::start(support::settings(&primary, candidate.url())).await;

    let mut socket = tokio::net::TcpStream::connect(proxy.addr).await.unwrap();
    socket
        .write_all(b"GET /ws HTTP/1.1\r\nhost: x\r\nconnection: upgrade\r\nupgrade: echo\r\n\r\n")
        .await
        .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(
            socket.read(&mut byte).await.unwrap(),
            1,
            "closed during the head"
        );
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap().to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: echo"), "{head}");

    socket.write_all(b"ping").await.unwrap();
    let mut echoed = [0u8; 4];
    socket.read_exact(&mut echoed).await.unwrap();
    assert_eq!(&echoed, b"ping");

    let tally = proxy.outcomes(1).await;
    assert_eq!(
        tally.count(OutcomeKey::Skipped(SkipReason::Upgrade)),
        1,
        "{tally:?}"
    );
    assert!(candidate_hits.all().is_empty());
    proxy.stop().await;
}

#[tokio::test]
async fn copies_beyond_the_memory_budget_are_skipped_not_waited_for() {
    let primary = primary().await;
    let mut settings = support::settings(&primary, primary.url());
    settings.max_buffered_bytes = 10_000;
    let proxy = support::start(settings).await;
    let client = support::client();
    // 70,000 bytes cannot be copied within 10,000; the client still gets them all.
    let direct = client
        .get(format!("http://{}/binary", primary.addr))
        .send()
        .await
        .unwrap();
    let proxied = client.get(proxy.url("/binary")).send().await.unwrap();
    assert!(proxied.bytes().await.unwrap() == direct.bytes().await.unwrap());
    let small = client.get(proxy.url("/json")).send().await.unwrap();
    assert_eq!(small.status(), StatusCode::OK);
    let tally = proxy.outcomes(2).await;
    assert_eq!(
        tally.count(OutcomeKey::Skipped(SkipReason::OverBudget)),
        1,
        "{tally:?}"
    );
    assert_eq!(tally.count(OutcomeKey::Matched), 1, "{tally:?}");
    proxy.stop().await;
}
