//! One shadow call: the request sent to a backend, the whole response read
//! into memory the budget counts, within the body limit and the timeout,
//! and a failure sorted into the kinds reports show.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method};
use http_body_util::BodyExt;

use super::ShadowConfig;
use crate::budget::Claim;
use crate::config::BackendUrl;
use crate::exchange::RecordedResponse;
use crate::headers::{content_length, has_body, size};
use crate::outcome::CandidateErrorKind;
use crate::upstream;

/// The request as a backend gets it.
#[derive(Clone, Copy)]
pub(super) struct Call<'a> {
    pub(super) method: &'a Method,
    pub(super) target: &'a str,
    pub(super) body: &'a Bytes,
}

/// Why a shadow call gave no response to compare.
pub(super) enum FetchError {
    TooLarge,
    OverBudget,
    Failed(CandidateErrorKind),
}

/// Sends one request and reads the whole response, within the limits.
pub(super) async fn fetch(
    config: &ShadowConfig,
    base: &BackendUrl,
    call: &Call<'_>,
    headers: HeaderMap,
    timeout: std::time::Duration,
) -> Result<(RecordedResponse, Claim), FetchError> {
    let method = call.method;
    // The same URI as the primary's, built alike: the target byte for byte.
    let uri = base
        .uri(call.target)
        .map_err(|_| FetchError::Failed(CandidateErrorKind::Protocol))?;
    let mut request = http::Request::new(axum::body::Body::from(call.body.clone()));
    *request.method_mut() = method.clone();
    *request.uri_mut() = uri;
    *request.headers_mut() = headers;
    let started = Instant::now();
    let limit = config.max_body_bytes;
    let call = async {
        let response = config
            .client
            .request(request)
            .await
            .map_err(|e| classify(&e, e.is_connect()))?;
        // The network's time to the first byte, which the shadow stage's
        // low-priority threads may read late; the elapsed time where the
        // connection cannot say (HTTP/2).
        let latency = upstream::time_to_first_byte(&response).unwrap_or_else(|| started.elapsed());
        let (head, mut incoming) = response.into_parts();
        if has_body(method, head.status)
            && content_length(&head.headers).is_some_and(|n| n > limit as u64)
        {
            return Err(FetchError::TooLarge);
        }
        // Copied into one buffer of our own as it arrives: chunks kept as
        // they come could each pin a larger read buffer, so that what the
        // budget counts would not be what the process holds. Past the limit
        // the response is dropped, which closes the connection.
        // Only a response with a body has one to hold, and never more than the limit.
        let declared = match has_body(method, head.status) {
            true => content_length(&head.headers).map_or(0, |n| n.min(limit as u64) as usize),
            false => 0,
        };
        let mut claim = config.budget.claim();
        if !claim.grow(declared.saturating_add(size(&head.headers))) {
            return Err(FetchError::OverBudget);
        }
        let mut body = Vec::with_capacity(declared);
        while let Some(frame) = incoming.frame().await {
            let frame = frame.map_err(|e| classify(&e, false))?;
            let Ok(chunk) = frame.into_data() else {
                continue; // trailers: not compared
            };
            if body.len() + chunk.len() > limit {
                return Err(FetchError::TooLarge);
            }
            let needed = body.len() + chunk.len();
            if needed > body.capacity() {
                // Doubling, within the limit, and every byte of it claimed.
                let capacity = needed.max(body.capacity().saturating_mul(2)).min(limit);
                if !claim.grow(capacity - body.capacity()) {
                    return Err(FetchError::OverBudget);
                }
                body.reserve_exact(capacity - body.len());
            }
            body.extend_from_slice(&chunk);
        }
        let recorded = RecordedResponse {
            status: head.status,
            headers: head.headers,
            body: Bytes::from(body),
            latency,
        };
        Ok((recorded, claim))
    };
    tokio::time::timeout(timeout, call)
        .await
        .unwrap_or(Err(FetchError::Failed(CandidateErrorKind::Timeout)))
}

/// Sorts a client error into the kinds users see in reports. The whole call
/// runs under one timeout (the caller's); a connection that could not be
/// made in time is a timeout too, as it always was.
fn classify(error: &(dyn std::error::Error + 'static), connect: bool) -> FetchError {
    use std::io::ErrorKind;
    let chain = || std::iter::successors(Some(error), |e| e.source());
    let io_kind = |e: &(dyn std::error::Error + 'static)| {
        e.downcast_ref::<std::io::Error>().map(std::io::Error::kind)
    };
    let timed_out = chain().any(|e| io_kind(e) == Some(ErrorKind::TimedOut));
    let reset = chain().any(|e| {
        let io_reset = matches!(
            io_kind(e),
            Some(
                ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::BrokenPipe
                    | ErrorKind::UnexpectedEof
            )
        );
        let closed = e
            .downcast_ref::<hyper::Error>()
            .is_some_and(|h| h.is_incomplete_message() || h.is_closed() || h.is_canceled());
        io_reset || closed
    });
    FetchError::Failed(match (timed_out, connect, reset) {
        (true, _, _) => CandidateErrorKind::Timeout,
        (_, true, _) => CandidateErrorKind::Connect,
        (_, _, true) => CandidateErrorKind::Reset,
        _ => CandidateErrorKind::Protocol,
    })
}
