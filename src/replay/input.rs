//! Recorded requests as `replay` reads them: JSON Lines (what
//! `serve --record` writes), HAR 1.2 (browser devtools, mitmproxy, Charles),
//! and stored mismatches. Each becomes a [`ReplayRequest`]; a bad line or
//! entry becomes a [`Problem`] naming where it is, and reading goes on.

use std::path::Path;

use base64::Engine as _;
use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Method};
use serde::Deserialize;
use serde_json::Value;

use crate::store::StoredMismatch;

/// One request to send to both backends.
#[derive(Clone, Debug)]
pub struct ReplayRequest {
    /// Where it came from: `line 12`, `entry 3`, `mismatch 42`.
    pub origin: String,
    pub method: Method,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The primary's response, where the recording carries it (a line's
    /// `response`, a HAR entry's): what `--recorded-primary` compares with.
    pub response: Option<crate::exchange::RecordedResponse>,
}

/// An input line or entry that could not be used, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub origin: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.origin, self.message)
    }
}

pub use crate::record::RequestLine;

/// The file formats `--input` reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputFormat {
    /// `.har` files are HAR, anything else JSON Lines.
    Auto,
    Jsonl,
    Har,
}

/// Why an input file could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file could not be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A HAR file that is not HAR.
    #[error("{path} is not a HAR file: {message} (use --input-format jsonl for JSON Lines)")]
    NotHar { path: String, message: String },
}

/// Reads a request file; bad lines or entries come back as problems.
pub fn read_file(
    path: &Path,
    format: InputFormat,
) -> Result<(Vec<ReplayRequest>, Vec<Problem>), InputError> {
    let bytes = std::fs::read(path).map_err(|source| InputError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let har = match format {
        InputFormat::Har => true,
        InputFormat::Jsonl => false,
        InputFormat::Auto => path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("har")),
    };
    if har {
        let not_har = |message: String| InputError::NotHar {
            path: path.display().to_string(),
            message,
        };
        let text = std::str::from_utf8(&bytes).map_err(|e| not_har(e.to_string()))?;
        from_har(text).map_err(not_har)
    } else {
        Ok(from_jsonl(&bytes))
    }
}

/// For `--recorded-primary`: requests whose recording carries no usable
/// response become problems, named as such.
pub fn with_responses(
    requests: Vec<ReplayRequest>,
    mut problems: Vec<Problem>,
) -> (Vec<ReplayRequest>, Vec<Problem>) {
    let (kept, left): (Vec<_>, Vec<_>) = requests.into_iter().partition(|r| r.response.is_some());
    problems.extend(left.into_iter().map(|r| Problem {
        origin: r.origin,
        message: "no recorded response to compare with (a line needs `response`; a HAR entry a status, its body saved and its timings)".into(),
    }));
    (kept, problems)
}

/// JSON Lines: blank lines are skipped, line numbers count from 1; a line
/// that is not UTF-8 is a problem of its own, not of the file.
pub fn from_jsonl(bytes: &[u8]) -> (Vec<ReplayRequest>, Vec<Problem>) {
    let (mut requests, mut problems) = (Vec::new(), Vec::new());
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let origin = format!("line {}", i + 1);
        let line = match std::str::from_utf8(raw) {
            Ok(line) => line,
            Err(_) => {
                problems.push(Problem {
                    origin,
                    message: "not UTF-8 text (binary bodies go in `body_base64`)".into(),
                });
                continue;
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<RequestLine>(line)
            .map_err(|e| format!("not a request object: {e}"))
            .and_then(|l| from_line(origin.clone(), l));
        match parsed {
            Ok(r) => requests.push(r),
            Err(message) => problems.push(Problem { origin, message }),
        }
    }
    (requests, problems)
}

fn from_line(origin: String, line: RequestLine) -> Result<ReplayRequest, String> {
    let target = match (&line.path, &line.url) {
        (Some(path), _) => path.clone(),
        (None, Some(url)) => target_of_url(url)?,
        (None, None) => return Err("needs `path` (such as \"/api/users/1?x=y\") or `url`".into()),
    };
    let pairs = header_pairs(&line.headers)?;
    let body = body_of(&line.body, &line.body_base64)?;
    let response = line
        .response
        .as_ref()
        .map(super::response::from_line)
        .transpose()
        .map_err(|e| format!("response: {e}"))?;
    let mut request = build(
        origin,
        line.method.as_deref().unwrap_or("GET"),
        &target,
        &pairs,
        body,
    )?;
    request.response = response;
    Ok(request)
}

/// `headers` as an object or a list of `[name, value]` pairs.
pub(super) fn header_pairs(headers: &Value) -> Result<Vec<(String, String)>, String> {
    Ok(match headers {
        Value::Null => Vec::new(),
        Value::Object(map) => map
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                other => Err(format!("header {k:?} must be a string, got {other}")),
            })
            .collect::<Result<_, _>>()?,
        Value::Array(items) => items
            .iter()
            .map(|item| {
                serde_json::from_value::<(String, String)>(item.clone()).map_err(|_| {
                    format!("a header must be a [name, value] pair of strings, got {item}")
                })
            })
            .collect::<Result<_, _>>()?,
        other => {
            return Err(format!(
                "`headers` must be an object or a list of [name, value] pairs, got {other}"
            ))
        }
    })
}

/// `body` as text or `body_base64`, not both; none is empty.
pub(super) fn body_of(body: &Option<String>, base64: &Option<String>) -> Result<Bytes, String> {
    match (body, base64) {
        (Some(_), Some(_)) => Err("give `body` or `body_base64`, not both".into()),
        (Some(text), None) => Ok(Bytes::from(text.clone().into_bytes())),
        (None, Some(b64)) => base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map(Bytes::from)
            .map_err(|e| format!("`body_base64` is not base64: {e}")),
        (None, None) => Ok(Bytes::new()),
    }
}

/// The path and query of an absolute URL, exactly as written (no dot
/// segments resolved, nothing re-encoded): replay sends what was recorded.
fn target_of_url(url: &str) -> Result<String, String> {
    let bad = || format!("`url` {url:?} is not an absolute http(s) URL");
    let (scheme, rest) = url.split_once("://").ok_or_else(bad)?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(bad());
    }
    let rest = rest.split('#').next().unwrap_or("");
    let target = match rest.find(['/', '?']) {
        Some(i) if rest[i..].starts_with('/') => rest[i..].to_string(),
        Some(i) => format!("/{}", &rest[i..]),
        None => "/".to_string(),
    };
    Ok(target)
}

/// Headers a replay must not copy: the client recomputes them, or they
/// belong to one hop (or to HTTP/2 framing, as devtools exports show them).
pub fn replayable(name: &str) -> bool {
    !name.starts_with(':')
        && !matches!(
            name.to_ascii_lowercase().as_str(),
            "host"
                | "content-length"
                | "connection"
                | "keep-alive"
                | "transfer-encoding"
                | "te"
                | "trailer"
                | "upgrade"
                | "proxy-connection"
        )
}

fn build(
    origin: String,
    method: &str,
    target: &str,
    pairs: &[(String, String)],
    body: Bytes,
) -> Result<ReplayRequest, String> {
    let method = Method::from_bytes(method.trim().to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("{method:?} is not an HTTP method"))?;
    if !target.starts_with('/') || target.parse::<http::uri::PathAndQuery>().is_err() {
        return Err(format!(
            "{target:?} is not a path and query starting with /"
        ));
    }
    let dot = |segment: &str| {
        let s = segment.to_ascii_lowercase().replace("%2e", ".");
        s == "." || s == ".."
    };
    if target.split('?').next().unwrap_or("").split('/').any(dot) {
        return Err(format!(
            "{target:?} has dot segments, which would reach another path than recorded; it is not sent (as the proxy answers such requests 400)"
        ));
    }
    let mut headers = HeaderMap::new();
    for (name, value) in pairs.iter().filter(|(n, _)| replayable(n)) {
        let n = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("{name:?} is not a header name"))?;
        let v = HeaderValue::from_str(value)
            .map_err(|_| format!("the value of header {name:?} is not valid in HTTP"))?;
        headers.append(n, v);
    }
    Ok(ReplayRequest {
        origin,
        method,
        target: target.to_string(),
        headers,
        body,
        response: None,
    })
}

#[derive(Deserialize)]
struct Har {
    log: HarLog,
}

#[derive(Deserialize)]
struct HarLog {
    #[serde(default)]
    creator: Option<HarCreator>,
    entries: Vec<Value>,
}

#[derive(Deserialize)]
struct HarCreator {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HarRequest {
    method: String,
    url: String,
    #[serde(default)]
    headers: Vec<HarHeader>,
    #[serde(default)]
    post_data: Option<HarPostData>,
}

#[derive(Deserialize)]
struct HarHeader {
    name: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct HarPostData {
    #[serde(default)]
    mime_type: String,
    #[serde(default)]
    text: Option<String>,
    #[serde(default)]
    encoding: Option<String>,
}

/// HAR 1.2: `log.entries[].request`. Entries count from 1.
pub fn from_har(text: &str) -> Result<(Vec<ReplayRequest>, Vec<Problem>), String> {
    let har: Har = serde_json::from_str(text).map_err(|e| e.to_string())?;
    // mitmproxy writes bodies without a charset as Latin-1 text (one
    // character per byte); browsers write UTF-8.
    let latin1 = har
        .log
        .creator
        .as_ref()
        .is_some_and(|c| c.name.eq_ignore_ascii_case("mitmproxy"));
    let (mut requests, mut problems) = (Vec::new(), Vec::new());
    for (i, entry) in har.log.entries.into_iter().enumerate() {
        let origin = format!("entry {}", i + 1);
        let parsed = serde_json::from_value::<HarRequest>(entry["request"].clone())
            .map_err(|e| format!("not a HAR request: {e}"))
            .and_then(|r| from_har_request(origin.clone(), r, latin1))
            .map(|mut r| {
                r.response = super::response::from_har_entry(&entry, latin1);
                r
            });
        match parsed {
            Ok(r) => requests.push(r),
            Err(message) => problems.push(Problem { origin, message }),
        }
    }
    Ok((requests, problems))
}

fn from_har_request(origin: String, r: HarRequest, latin1: bool) -> Result<ReplayRequest, String> {
    let target = target_of_url(&r.url)?;
    let body = match r.post_data {
        None => Bytes::new(),
        Some(data) => {
            let text = data.text.unwrap_or_default();
            if data.encoding.as_deref() == Some("base64") {
                base64::engine::general_purpose::STANDARD
                    .decode(text.trim())
                    .map_err(|e| format!("postData.text is not base64: {e}"))?
                    .into()
            } else if latin1
                && latin1_text(&data.mime_type)
                && text.chars().all(|c| (c as u32) < 0x100)
            {
                text.chars().map(|c| c as u8).collect::<Vec<u8>>().into()
            } else {
                text.into_bytes().into()
            }
        }
    };
    let pairs: Vec<(String, String)> = r.headers.into_iter().map(|h| (h.name, h.value)).collect();
    build(origin, &r.method, &target, &pairs, body)
}

/// Whether mitmproxy exported a body of this type as Latin-1: it decodes
/// with the declared charset, JSON as UTF-8, and everything else as Latin-1.
pub(super) fn latin1_text(mime: &str) -> bool {
    let m = mime.to_ascii_lowercase();
    match m.split(';').find_map(|p| p.trim().strip_prefix("charset=")) {
        Some(charset) => matches!(
            charset.trim_matches('"'),
            "iso-8859-1" | "latin-1" | "latin1"
        ),
        None => !m.contains("json"),
    }
}

/// A stored mismatch's request, as recorded (redacted) by the store.
pub fn from_stored(m: &StoredMismatch) -> Result<ReplayRequest, String> {
    let r = &m.record;
    let target = if r.query.is_empty() {
        r.path.clone()
    } else {
        format!("{}?{}", r.path, r.query)
    };
    // The stored body is decoded; its coding header no longer applies.
    let pairs: Vec<(String, String)> = r
        .request
        .headers
        .iter()
        .filter(|(n, _)| !n.eq_ignore_ascii_case("content-encoding"))
        .cloned()
        .collect();
    if r.request.body.truncated {
        return Err("its request body was stored truncated; it cannot be sent again".into());
    }
    build(
        format!("mismatch {}", m.id),
        &r.method,
        &target,
        &pairs,
        Bytes::from(r.request.body.bytes.clone()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lines_with_every_shape_and_a_bad_line() {
        let text = concat!(
            r#"{"method": "post", "path": "/a?x=1", "headers": {"Content-Type": "application/json", "Host": "old"}, "body": "{\"a\":1}"}"#,
            "\n\n",
            r#"{"url": "https://example.test/b/c?q=caf%C3%A9", "headers": [["Accept", "*/*"], ["Accept", "text/html"]]}"#,
            "\n",
            r#"{"path": "/bin", "body_base64": "AP8="}"#,
            "\n",
            r#"{"method": "GET", "path": "#,
            "\n",
            r#"{"method": "GET"}"#,
            "\n",
            r#"{"path": "no-slash"}"#,
            "\n",
        );
        let (requests, problems) = from_jsonl(text.as_bytes());
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0].method, Method::POST);
        assert_eq!(requests[0].target, "/a?x=1");
        assert!(requests[0].headers.get("host").is_none());
        assert_eq!(requests[0].body, "{\"a\":1}");
        assert_eq!(requests[1].target, "/b/c?q=caf%C3%A9");
        assert_eq!(requests[1].headers.get_all("accept").iter().count(), 2);
        assert_eq!(requests[2].body.as_ref(), [0u8, 255]);
        let origins: Vec<&str> = problems.iter().map(|p| p.origin.as_str()).collect();
        assert_eq!(origins, ["line 5", "line 6", "line 7"]);
        assert!(problems[1].message.contains("`path`"));
    }

    #[test]
    fn har_binary_bodies_come_back_byte_for_byte() {
        let har = r#"{"log": {"version": "1.2", "creator": {"name": "mitmproxy", "version": "11"}, "entries": [
            {"request": {"method": "PUT", "url": "http://h:1/u?a=b", "headers": [{"name": ":authority", "value": "h"}, {"name": "X-A", "value": "1"}],
                         "postData": {"mimeType": "application/octet-stream", "text": "\u0000\u00ff(", "params": []}}},
            {"request": {"method": "POST", "url": "http://h:1/j", "headers": [],
                         "postData": {"mimeType": "application/json", "text": "{\"name\":\"Zoë\"}"}}},
            {"request": {"method": "POST", "url": "http://h:1/b", "postData": {"mimeType": "image/png", "text": "AAE=", "encoding": "base64"}}},
            {"response": {}}
        ]}}"#;
        let (requests, problems) = from_har(har).unwrap();
        assert_eq!(requests[0].target, "/u?a=b");
        assert_eq!(requests[0].body.as_ref(), [0u8, 255, b'(']);
        assert_eq!(requests[0].headers.len(), 1);
        assert_eq!(requests[1].body, "{\"name\":\"Zoë\"}".as_bytes());
        assert_eq!(requests[2].body.as_ref(), [0u8, 1]);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].origin, "entry 4");
        assert!(from_har("[1, 2]").is_err());
        // Browsers write UTF-8 text, whatever the type.
        let chrome = r#"{"log": {"creator": {"name": "WebInspector"}, "entries": [
            {"request": {"method": "POST", "url": "https://h/f", "postData": {"mimeType": "multipart/form-data; boundary=x", "text": "Zoë"}}}]}}"#;
        assert_eq!(from_har(chrome).unwrap().0[0].body, "Zoë".as_bytes());
    }

    #[test]
    fn urls_are_sent_as_written_and_bad_lines_are_only_lines() {
        assert_eq!(
            target_of_url("http://h:1/a/b/c?x={1}#frag").unwrap(),
            "/a/b/c?x={1}"
        );
        assert_eq!(target_of_url("http://h/a/../b").unwrap(), "/a/../b");
        let (_, problems) = from_jsonl(br#"{"url": "http://h/a/../b"}"#);
        assert!(problems[0].message.contains("dot segments"));
        assert_eq!(target_of_url("https://h?q=1").unwrap(), "/?q=1");
        assert_eq!(target_of_url("https://h").unwrap(), "/");
        assert!(target_of_url("ftp://h/x").is_err());
        let (requests, problems) =
            from_jsonl(b"{\"path\": \"/a\"}\n\xff\xfe\n{\"path\": \"/b\"}\n");
        assert_eq!(requests.len(), 2);
        assert_eq!(problems[0].origin, "line 2");
    }
}
