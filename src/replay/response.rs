//! The primary's response as a recording carries it, for
//! `replay --recorded-primary` and the collector: a JSON Lines `response`
//! object (`status`, `headers`, `body` or `body_base64`, `latency_ms`) or a
//! HAR entry's `response` with its `timings`. The body is compared as given,
//! so a HAR's decoded text drops the coding headers it no longer matches.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::input::{body_of, header_pairs, latin1_text};
use crate::exchange::RecordedResponse;
use crate::record::ResponseLine;

/// A JSON Lines `response`. `latency_ms` is required: a latency made up
/// would be compared as if measured.
pub fn from_line(line: &ResponseLine) -> Result<RecordedResponse, String> {
    let status = StatusCode::from_u16(line.status)
        .map_err(|_| format!("`status` {} is not an HTTP status", line.status))?;
    let latency = latency(line.latency_ms).ok_or(
        "needs `latency_ms`, the primary's time to its first byte, in milliseconds (0 or more)",
    )?;
    Ok(RecordedResponse {
        status,
        headers: headers(&header_pairs(&line.headers)?, false)?,
        body: body_of(&line.body, &line.body_base64)?,
        latency,
    })
}

fn latency(ms: Option<f64>) -> Option<Duration> {
    ms.filter(|ms| ms.is_finite() && *ms >= 0.0 && *ms < 1e12)
        .map(|ms| Duration::from_secs_f64(ms / 1000.0))
}

/// Response headers as recorded, less hop-by-hop fields and, for a body
/// recorded decoded (HAR), the coding and length it no longer has.
fn headers(pairs: &[(String, String)], decoded: bool) -> Result<HeaderMap, String> {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        let lower = name.to_ascii_lowercase();
        let dropped = matches!(
            lower.as_str(),
            "connection" | "keep-alive" | "transfer-encoding" | "te" | "trailer" | "upgrade"
        ) || (decoded
            && matches!(lower.as_str(), "content-encoding" | "content-length"));
        if dropped || lower.starts_with(':') {
            continue;
        }
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of response header {name:?} is not valid in HTTP"))?;
        map.append(n, v);
    }
    Ok(map)
}

/// A HAR entry's response, or `None` where the recording cannot stand in
/// for it: no response (status 0, a failed request), a body that was not
/// saved, no timings.
pub fn from_har_entry(entry: &Value, latin1: bool) -> Option<RecordedResponse> {
    let response = entry.get("response")?;
    let status = StatusCode::from_u16(u16::try_from(response.get("status")?.as_u64()?).ok()?)
        .ok()
        .filter(|s| s.as_u16() >= 100)?;
    let content = response.get("content")?;
    let size = content.get("size").and_then(Value::as_i64).unwrap_or(0);
    let body = match content.get("text").and_then(Value::as_str) {
        None if size > 0 => return None,
        None => Bytes::new(),
        Some(text) if content.get("encoding").and_then(Value::as_str) == Some("base64") => {
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .ok()?
                .into()
        }
        Some(text) => {
            let mime = content
                .get("mimeType")
                .and_then(Value::as_str)
                .unwrap_or("");
            if latin1 && latin1_text(mime) && text.chars().all(|c| (c as u32) < 0x100) {
                text.chars().map(|c| c as u8).collect::<Vec<u8>>().into()
            } else {
                Bytes::from(text.to_string())
            }
        }
    };
    let pairs: Vec<(String, String)> = response
        .get("headers")?
        .as_array()?
        .iter()
        .filter_map(|h| {
            Some((
                h.get("name")?.as_str()?.to_string(),
                h.get("value")?.as_str()?.to_string(),
            ))
        })
        .collect();
    // `wait` is the time to the first byte; `time`, the whole exchange, where
    // a recorder left `wait` out (-1).
    let timings = entry.get("timings");
    let wait = timings
        .and_then(|t| t.get("wait"))
        .and_then(Value::as_f64)
        .filter(|w| *w >= 0.0);
    let latency = latency(wait.or_else(|| entry.get("time").and_then(Value::as_f64)))?;
    Some(RecordedResponse {
        status,
        headers: headers(&pairs, true).ok()?,
        body,
        latency,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_needs_its_latency_and_a_valid_status() {
        let line: ResponseLine = serde_json::from_str(
            r#"{"status": 200, "headers": {"content-type": "application/json"}, "body": "{}", "latency_ms": 12.5}"#,
        )
        .unwrap();
        let r = from_line(&line).unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.latency, Duration::from_micros(12_500));
        assert_eq!(&r.body[..], b"{}");
        let no_latency: ResponseLine = serde_json::from_str(r#"{"status": 200}"#).unwrap();
        assert!(from_line(&no_latency).unwrap_err().contains("latency_ms"));
        let bad: ResponseLine = serde_json::from_str(r#"{"status": 42, "latency_ms": 1}"#).unwrap();
        assert!(from_line(&bad).unwrap_err().contains("status"));
    }

    #[test]
    fn a_har_response_is_read_decoded_with_its_wait() {
        let entry: Value = serde_json::from_str(
            r#"{"time": 30, "timings": {"wait": 21.0},
                "response": {"status": 404, "headers": [{"name": "Content-Encoding", "value": "gzip"}, {"name": "Content-Type", "value": "application/json"}],
                             "content": {"size": 13, "mimeType": "application/json", "text": "{\"error\":\"x\"}"}}}"#,
        )
        .unwrap();
        let r = from_har_entry(&entry, false).unwrap();
        assert_eq!(r.status, 404);
        assert!(!r.headers.contains_key("content-encoding"));
        assert_eq!(r.latency, Duration::from_millis(21));
        let unsaved: Value = serde_json::from_str(
            r#"{"time": 3, "response": {"status": 200, "headers": [], "content": {"size": 10}}}"#,
        )
        .unwrap();
        assert!(from_har_entry(&unsaved, false).is_none());
    }
}
