//! The primary's client on the client path: hyper's pooled client with
//! nothing on top (no redirect, retry, proxy or decompression layers, so the
//! bytes arrive as the backend sent them), TLS by rustls for an https
//! primary (HTTP/2 where the primary offers it), and the request's URI built
//! from the primary's parsed base and the client's target
//! ([`BackendUrl::uri`](crate::config::BackendUrl::uri)).

use std::time::Duration;

use axum::body::Body;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// The primary's pooled client.
pub type Upstream = Client<HttpsConnector<HttpConnector>, Body>;

/// A client that keeps idle connections for a minute, as the shadow side's
/// does, and gives up connecting after `connect_timeout` when set.
pub fn upstream(connect_timeout: Option<Duration>) -> Upstream {
    let mut http = HttpConnector::new();
    // The scheme is checked by the connector above, which takes https too.
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(connect_timeout);
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_timer(TokioTimer::new())
        .build(https)
}
