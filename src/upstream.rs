//! The HTTP client both backends are called with, the primary on the client
//! path and both in shadow calls: hyper's pooled client with nothing on top
//! (no redirect, retry, proxy or decompression layers, so the bytes arrive
//! as the backend sent them), TLS by rustls for an https backend (HTTP/2
//! where it offers it). A request's URI is built from the backend's parsed
//! base and the client's target
//! (`BackendUrl::uri`, in the settings), so both backends
//! get the target byte for byte, alike.

use std::time::Duration;

use axum::body::Body;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

/// A pooled client.
pub type Upstream = Client<HttpsConnector<HttpConnector>, Body>;

/// A client that keeps idle connections for a minute and gives up
/// connecting after `connect_timeout` when set.
pub fn client(connect_timeout: Option<Duration>) -> Upstream {
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
