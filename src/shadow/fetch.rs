//! One shadow call: the request sent to a backend, the whole response read
//! into memory the budget counts, within the body limit and the timeout,
//! and a failure sorted into the kinds reports show.

use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method};

use super::ShadowConfig;
use crate::budget::Claim;
use crate::config::BackendUrl;
use crate::exchange::RecordedResponse;
use crate::headers::{content_length, has_body, size};
use crate::outcome::CandidateErrorKind;

/// The request as both backends get it.
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
) -> Result<(RecordedResponse, Claim), FetchError> {
    let (method, body) = (call.method, call.body.clone());
    let url = base
        .join(call.target)
        .map_err(|_| FetchError::Failed(CandidateErrorKind::Protocol))?;
    let started = Instant::now();
    let limit = config.max_body_bytes;
    let call = async {
        let mut response = config
            .client
            .request(method.clone(), url)
            .headers(headers)
            .body(body)
            .send()
            .await
            .map_err(classify)?;
        let latency = started.elapsed();
        if has_body(method, response.status())
            && content_length(response.headers()).is_some_and(|n| n > limit as u64)
        {
            return Err(FetchError::TooLarge);
        }
        // Copied into one buffer of our own as it arrives: chunks kept as
        // they come could each pin a larger read buffer, so that what the
        // budget counts would not be what the process holds. Past the limit
        // the response is dropped, which closes the connection.
        // Only a response with a body has one to hold, and never more than the limit.
        let declared = match has_body(method, response.status()) {
            true => content_length(response.headers()).map_or(0, |n| n.min(limit as u64) as usize),
            false => 0,
        };
        let mut claim = config.budget.claim();
        if !claim.grow(declared.saturating_add(size(response.headers()))) {
            return Err(FetchError::OverBudget);
        }
        let mut body = Vec::with_capacity(declared);
        while let Some(chunk) = response.chunk().await.map_err(classify)? {
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
            status: response.status(),
            headers: std::mem::take(response.headers_mut()),
            body: Bytes::from(body),
            latency,
        };
        Ok((recorded, claim))
    };
    tokio::time::timeout(config.timeout, call)
        .await
        .unwrap_or(Err(FetchError::Failed(CandidateErrorKind::Timeout)))
}

/// Sorts a client error into the kinds users see in reports.
fn classify(error: reqwest::Error) -> FetchError {
    use std::error::Error as _;
    use std::io::ErrorKind;
    let kind = if error.is_timeout() {
        CandidateErrorKind::Timeout
    } else if error.is_connect() {
        CandidateErrorKind::Connect
    } else {
        let mut kind = CandidateErrorKind::Protocol;
        let mut source = error.source();
        while let Some(e) = source {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if matches!(
                    io.kind(),
                    ErrorKind::ConnectionReset
                        | ErrorKind::ConnectionAborted
                        | ErrorKind::BrokenPipe
                        | ErrorKind::UnexpectedEof
                ) {
                    kind = CandidateErrorKind::Reset;
                    break;
                }
            }
            if let Some(h) = e.downcast_ref::<hyper::Error>() {
                if h.is_incomplete_message() || h.is_closed() || h.is_canceled() {
                    kind = CandidateErrorKind::Reset;
                    break;
                }
            }
            source = e.source();
        }
        kind
    };
    FetchError::Failed(kind)
}
