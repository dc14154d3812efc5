//! Shared test equipment: real backends on 127.0.0.1 port 0, a proxy started
//! the way `main` starts it, and misbehaving candidates made of raw sockets;
//! the databases the store tests run on ([`postgres`]) and the real binary
//! as a process ([`process`]).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use bytes::Bytes;
use http::HeaderMap;
use shadowdiff::config::BackendUrl;
use shadowdiff::outcome::{Recorder, Tally};
use shadowdiff::{Server, Settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A backend serving a router until the test ends.
pub struct Backend {
    pub addr: SocketAddr,
    _task: JoinHandle<()>,
}

impl Backend {
    pub fn url(&self) -> BackendUrl {
        format!("http://{}", self.addr).parse().unwrap()
    }
}

pub async fn backend(router: Router) -> Backend {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Backend { addr, _task: task }
}

/// A backend on OS threads of its own (one per connection, keep-alive),
/// answering every request with `200` and the JSON `respond` returns for
/// its target, which may take its time: nothing in the tests' runtime
/// (busy with the proxy, the clients and, in a full run, every other test)
/// stands between reading a request and writing its response, so the time
/// the network carried is the time `respond` took. For latency tests.
pub fn threaded_backend(respond: impl Fn(&str) -> String + Send + Sync + 'static) -> Backend {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let respond = Arc::new(respond);
    let accept = std::thread::spawn(move || {
        for socket in listener.incoming() {
            let Ok(mut socket) = socket else { return };
            let respond = Arc::clone(&respond);
            std::thread::spawn(move || {
                let mut head = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    // A GET without a body: the head is all there is.
                    while !head.ends_with(b"\r\n\r\n") {
                        match socket.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&head);
                    let target = line.split(' ').nth(1).unwrap_or("/").to_string();
                    let body = respond(&target);
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if socket.write_all(response.as_bytes()).is_err() {
                        return;
                    }
                    head.clear();
                }
            });
        }
    });
    // The accept thread lives as long as the test process; nothing joins it.
    drop(accept);
    Backend {
        addr,
        _task: tokio::spawn(async {}),
    }
}

/// Fails naming the file when any file in `dir` whose name starts with
/// `prefix` (a SQLite database with its journal and write-ahead log)
/// holds `secret`'s bytes.
pub fn assert_no_file_holds(dir: &std::path::Path, prefix: &str, secret: &str) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with(prefix)
        {
            let bytes = std::fs::read(&path).unwrap();
            let found = bytes.windows(secret.len()).any(|w| w == secret.as_bytes());
            assert!(!found, "{} holds {secret}", path.display());
        }
    }
}

/// A request as a backend saw it.
#[derive(Clone, Debug)]
pub struct Hit {
    pub method: http::Method,
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Every request a recording backend received.
#[derive(Clone, Default)]
pub struct Hits(Arc<Mutex<Vec<Hit>>>);

impl Hits {
    pub fn push(&self, hit: Hit) {
        self.0.lock().unwrap().push(hit);
    }

    pub fn all(&self) -> Vec<Hit> {
        self.0.lock().unwrap().clone()
    }

    /// Waits (bounded) until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize) -> Vec<Hit> {
        for _ in 0..500 {
            if self.0.lock().unwrap().len() >= n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.all()
    }
}

/// A backend that records each request and answers `{"ok":true}`.
pub async fn recording_backend() -> (Backend, Hits) {
    answering_backend(|_| (http::StatusCode::OK, "{\"ok\":true}")).await
}

/// A backend that records each request and answers it with the status and
/// JSON body `answer` gives for its head.
pub async fn answering_backend(
    answer: impl Fn(&http::request::Parts) -> (http::StatusCode, &'static str)
        + Clone
        + Send
        + Sync
        + 'static,
) -> (Backend, Hits) {
    let hits = Hits::default();
    let sink = hits.clone();
    let router = Router::new().fallback(move |request: Request| {
        let (sink, answer) = (sink.clone(), answer.clone());
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            let (status, json) = answer(&parts);
            sink.push(Hit {
                method: parts.method,
                target: parts.uri.to_string(),
                headers: parts.headers,
                body,
            });
            (status, [("content-type", "application/json")], json)
        }
    });
    (backend(router).await, hits)
}

/// A running proxy, stopped (and drained) with [`RunningProxy::stop`].
pub struct RunningProxy {
    pub addr: SocketAddr,
    /// The report API's address, when it was started.
    pub report: Option<SocketAddr>,
    pub recorder: Arc<Recorder>,
    stop: oneshot::Sender<()>,
    task: JoinHandle<Tally>,
}

impl RunningProxy {
    pub fn url(&self, target: &str) -> String {
        format!("http://{}{}", self.addr, target)
    }

    /// Waits (bounded) until `n` outcomes are recorded, and returns the tally.
    pub async fn outcomes(&self, n: u64) -> Tally {
        let waited = tokio::time::timeout(Duration::from_secs(20), self.recorder.wait_for(n)).await;
        let tally = self.recorder.tally();
        assert!(waited.is_ok(), "expected {n} outcomes, got {tally:?}");
        tally
    }

    pub async fn stop(self) -> Tally {
        let _ = self.stop.send(());
        self.task.await.unwrap()
    }
}

pub fn settings(primary: &Backend, candidate: BackendUrl) -> Settings {
    Settings::new(primary.url(), candidate)
}

pub async fn start(settings: Settings) -> RunningProxy {
    launch(settings, false).await
}

/// The proxy and its report API, each on a port of its own.
pub async fn start_with_report(settings: Settings) -> RunningProxy {
    launch(settings, true).await
}

async fn launch(settings: Settings, with_report: bool) -> RunningProxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let report = match with_report {
        true => Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
        false => None,
    };
    let report_addr = report.as_ref().map(|r| r.local_addr().unwrap());
    let server = Server::new(settings).unwrap();
    let recorder = server.recorder();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        match report {
            Some(report) => server
                .run_with_report(listener, report, shutdown)
                .await
                .unwrap(),
            None => server.run(listener, shutdown).await.unwrap(),
        }
    });
    RunningProxy {
        addr,
        report: report_addr,
        recorder,
        stop,
        task,
    }
}

impl RunningProxy {
    /// The report listener's /metrics, as text (no token).
    pub async fn metrics(&self) -> String {
        let url = format!("http://{}/metrics", self.report.expect("a report listener"));
        let response = client().get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }
}

/// GET `url` and its JSON body (whatever the status).
pub async fn get_json(url: &str) -> serde_json::Value {
    json_of(client().get(url)).await
}

/// Sends a request and reads its JSON body (whatever the status).
pub async fn json_of(request: reqwest::RequestBuilder) -> serde_json::Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// A client that changes nothing: no redirects, no decompression, no proxy.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

/// A URL on which nothing listens: connections are refused.
pub async fn refusing_url() -> BackendUrl {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}").parse().unwrap()
}

/// A raw TCP server that reads a request and then does `answer` to the socket.
pub async fn raw_backend<F, Fut>(answer: F) -> BackendUrl
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                answer(socket).await;
            });
        }
    });
    format!("http://{addr}").parse().unwrap()
}

/// A candidate that resets every connection after reading the request.
pub async fn resetting_url() -> BackendUrl {
    raw_backend(|socket| async move {
        // Linger 0 turns the close into a TCP RST. The deprecation warns that
        // a non-zero linger blocks on drop; a zero one resets at once.
        #[allow(deprecated)]
        let _ = socket.set_linger(Some(Duration::ZERO));
        drop(socket);
    })
    .await
}

/// A candidate that answers with bytes that are not HTTP.
pub async fn garbage_url() -> BackendUrl {
    raw_backend(|mut socket| async move {
        let _ = socket
            .write_all(b"SSH-2.0-OpenSSH_9.6 this is not http\r\n\r\n")
            .await;
        let _ = socket.shutdown().await;
    })
    .await
}

mod postgres;
mod process;

pub use postgres::*;
pub use process::*;

/// A stored JSON message (request or response) for store-level tests.
pub fn json_message(status: u16, body: &str) -> shadowdiff::store::StoredMessage {
    shadowdiff::store::StoredMessage {
        status,
        headers: vec![("content-type".into(), "application/json".into())],
        body: shadowdiff::store::StoredBody {
            bytes: body.as_bytes().to_vec(),
            truncated: false,
        },
    }
}
