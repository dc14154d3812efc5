//! The exchange: one sampled request with the primary's and the candidate's
//! responses, fully read, as handed from the shadow stage to the comparison.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use crate::endpoint::Endpoint;

/// The request as it was sent to both backends.
#[derive(Clone, Debug)]
pub struct RecordedRequest {
    pub method: Method,
    /// Path and query, exactly as the client sent them.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// A backend's response, with its body as received (not yet decoded).
#[derive(Clone, Debug)]
pub struct RecordedResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// From sending the request until the response head arrived.
    pub latency: Duration,
}

/// Everything the comparison needs about one sampled request.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub endpoint: Endpoint,
    pub request: RecordedRequest,
    pub primary: RecordedResponse,
    pub candidate: RecordedResponse,
}

/// Joins body chunks into one buffer; a single chunk is shared, not copied.
pub fn concat(chunks: Vec<Bytes>) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.into_iter().next().expect("one chunk"),
        _ => {
            let len = chunks.iter().map(Bytes::len).sum();
            let mut out = bytes::BytesMut::with_capacity(len);
            for chunk in chunks {
                out.extend_from_slice(&chunk);
            }
            out.freeze()
        }
    }
}

/// Headers from `(name, value)` pairs, repeats kept: for unit tests.
#[cfg(test)]
pub(crate) fn header_map(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(*name, http::HeaderValue::from_static(value));
    }
    map
}
