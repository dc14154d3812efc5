//! The HTTP client both backends are called with, the primary on the client
//! path and both in shadow calls: hyper's pooled client with nothing on top
//! (no redirect, retry, proxy or decompression layers, so the bytes arrive
//! as the backend sent them), TLS by rustls for an https backend (HTTP/2
//! where it offers it). A request's URI is built from the backend's parsed
//! base and the client's target
//! (`BackendUrl::uri`, in the settings), so both backends
//! get the target byte for byte, alike. Each TCP connection is timed
//! (`timed`): a response's latency is the network's, from the kernel's
//! receive timestamp, on both sides alike.

mod timed;

use std::time::Duration;

use axum::body::Body;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};

use timed::TimedConnector;
pub use timed::{time_to_first_byte, ResponseClock};

/// A pooled client.
pub type Upstream = Client<HttpsConnector<TimedConnector>, Body>;

/// The largest response head a shadow call reads (HTTP/1). hyper's default
/// read buffer grows to about 400 KiB, which a candidate sending endless
/// headers would fill on each of up to `max_in_flight` connections; nginx's
/// own default for a proxied response head is 4–8 KiB.
pub const SHADOW_MAX_HEAD_BYTES: usize = 64 * 1024;

/// The client path's client: reads any head the primary sends, as a direct
/// call would.
pub fn primary_client() -> Upstream {
    builder().build(connector(None))
}

/// The shadow side's client: gives up connecting after `connect_timeout`,
/// and reads response heads of at most [`SHADOW_MAX_HEAD_BYTES`].
pub fn shadow_client(connect_timeout: Duration) -> Upstream {
    builder()
        .http1_max_buf_size(SHADOW_MAX_HEAD_BYTES)
        .build(connector(Some(connect_timeout)))
}

/// Idle connections are kept for a minute.
fn builder() -> hyper_util::client::legacy::Builder {
    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(Duration::from_secs(60))
        .pool_timer(TokioTimer::new());
    builder
}

fn connector(connect_timeout: Option<Duration>) -> HttpsConnector<TimedConnector> {
    let mut http = HttpConnector::new();
    // The scheme is checked by the connector above, which takes https too.
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(connect_timeout);
    hyper_rustls::HttpsConnectorBuilder::new()
        .with_webpki_roots()
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(TimedConnector(http))
}
