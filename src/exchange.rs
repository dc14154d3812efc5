//! The exchange: one sampled request with the primary's and the candidate's
//! responses, fully read, as handed from the shadow stage to the comparison.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

use crate::endpoint::Endpoint;

/// The request as the client sent it (as forwarded: hop-by-hop fields out),
/// which the primary received.
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

impl RecordedResponse {
    /// A 200 carrying `body`, labelled `content_type` when given: a saved
    /// body, or a benchmark's or test's.
    pub fn ok_with_body(content_type: Option<http::HeaderValue>, body: Bytes) -> Self {
        let mut headers = HeaderMap::new();
        if let Some(value) = content_type {
            headers.insert(http::header::CONTENT_TYPE, value);
        }
        RecordedResponse {
            status: StatusCode::OK,
            headers,
            body,
            latency: Duration::ZERO,
        }
    }
}

/// Everything the comparison needs about one sampled request.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub endpoint: Endpoint,
    pub request: RecordedRequest,
    pub primary: RecordedResponse,
    pub candidate: RecordedResponse,
    /// The request as the candidate received it, where a rewrite made it
    /// differ from the client's; `None` when it got the client's.
    pub candidate_request: Option<SentRequest>,
}

/// A rewritten request as sent: its target and headers, each value read
/// from the environment replaced by a placeholder naming the variable, so
/// that the secret is never kept beyond the call.
#[derive(Clone, Debug)]
pub struct SentRequest {
    pub target: String,
    pub headers: HeaderMap,
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

/// A saved response that is not one.
#[derive(Debug, thiserror::Error)]
pub enum SavedResponseError {
    #[error("the first line is not a status line such as `HTTP/1.1 200 OK`: {0:?}")]
    StatusLine(String),
    #[error("no blank line ends the headers")]
    NoBlankLine,
    #[error("header line {0:?} is not `Name: value`")]
    Header(String),
}

/// A saved response: raw HTTP when it starts with `HTTP/` and no
/// `content_type` is given, else a body alone (200, labelled `content_type`).
pub fn saved_response(
    saved: &[u8],
    content_type: Option<http::HeaderValue>,
) -> Result<RecordedResponse, SavedResponseError> {
    if content_type.is_none() && saved.starts_with(b"HTTP/") {
        return parse_saved_response(saved, true);
    }
    let body = Bytes::copy_from_slice(saved);
    Ok(RecordedResponse::ok_with_body(content_type, body))
}

/// A response saved as raw HTTP/1.x: a status line, header lines, a blank
/// line, the body (lines may end in CRLF or LF; the body is kept as is, but
/// for one final newline a text editor adds when `trim_final_newline`).
pub fn parse_saved_response(
    raw: &[u8],
    trim_final_newline: bool,
) -> Result<RecordedResponse, SavedResponseError> {
    let (head, body) = split_head(raw).ok_or(SavedResponseError::NoBlankLine)?;
    let head = String::from_utf8_lossy(head);
    let mut lines = head.lines();
    let first = lines.next().unwrap_or_default();
    let status = first
        .strip_prefix("HTTP/")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|code| code.parse::<u16>().ok())
        .and_then(|code| StatusCode::from_u16(code).ok())
        .ok_or_else(|| SavedResponseError::StatusLine(first.to_string()))?;
    let mut headers = HeaderMap::new();
    for line in lines {
        let parsed = line.split_once(':').and_then(|(name, value)| {
            Some((
                http::HeaderName::from_bytes(name.trim().as_bytes()).ok()?,
                http::HeaderValue::from_str(value.trim()).ok()?,
            ))
        });
        let (name, value) = parsed.ok_or_else(|| SavedResponseError::Header(line.to_string()))?;
        headers.append(name, value);
    }
    let mut body = body.to_vec();
    if trim_final_newline && body.last() == Some(&b'\n') {
        body.pop();
        if body.last() == Some(&b'\r') {
            body.pop();
        }
    }
    Ok(RecordedResponse {
        status,
        headers,
        body: Bytes::from(body),
        latency: Duration::ZERO,
    })
}

/// The head and the body of raw HTTP, split at the first blank line.
fn split_head(raw: &[u8]) -> Option<(&[u8], &[u8])> {
    let crlf = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| (at, 4));
    let lf = raw.windows(2).position(|w| w == b"\n\n").map(|at| (at, 2));
    let (at, len) = match (crlf, lf) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some((&raw[..at], &raw[at + len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_responses_parse_with_either_line_ending() {
        let lf = parse_saved_response(
            b"HTTP/1.1 201 Created\nContent-Type: application/json\n\n{}\n",
            true,
        )
        .unwrap();
        assert_eq!(lf.status, StatusCode::CREATED);
        assert_eq!(lf.headers["content-type"], "application/json");
        assert_eq!(lf.body, Bytes::from_static(b"{}"));
        let crlf =
            parse_saved_response(b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n", false).unwrap();
        assert_eq!(crlf.status, StatusCode::NO_CONTENT);
        assert!(crlf.body.is_empty());
        assert!(matches!(
            parse_saved_response(b"{}", true),
            Err(SavedResponseError::NoBlankLine)
        ));
        assert!(matches!(
            parse_saved_response(b"HTTP/1.1 abc\n\n", true),
            Err(SavedResponseError::StatusLine(_))
        ));
        assert!(matches!(
            parse_saved_response(b"HTTP/1.1 200 OK\nno colon\n\n", true),
            Err(SavedResponseError::Header(_))
        ));
    }
}
