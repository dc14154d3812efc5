//! `serve --record FILE`: sampled requests, redacted, appended as JSON Lines
//! in the format `replay --input` reads. A background task writes the file;
//! the shadow stage only hands it a line without waiting, and a line that
//! finds the queue full is counted and logged, never waited for.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use base64::Engine as _;
use http::{HeaderMap, Method};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use crate::redact::Redactor;
use crate::time::format_millis;

/// One line of a JSON Lines request file: what `serve --record` writes and
/// `replay --input` reads. `path` (path and query) or `url`; `headers` an
/// object or a list of `[name, value]` pairs; `body` text or `body_base64`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct RequestLine {
    /// When it was recorded (RFC 3339); informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    /// The endpoint it was counted under; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub headers: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    /// The primary's response, where it was captured (the collector's
    /// input, `replay --recorded-primary`); `serve --record` writes none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<ResponseLine>,
}

/// A captured response: `status`, `headers` (an object or `[name, value]`
/// pairs), `body` text or `body_base64` (as sent: a Content-Encoding
/// applies), and `latency_ms`, the primary's time to its first byte.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResponseLine {
    pub status: u16,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub headers: Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

/// Lines waiting for the file at most.
const QUEUE: usize = 4_096;
/// Bytes of lines waiting for the file at most: a slow disk costs lines, not memory.
const QUEUE_BYTES: usize = 64 * 1024 * 1024;

/// The sending side, cheap to clone.
#[derive(Clone, Debug)]
pub struct RequestLog {
    tx: mpsc::Sender<String>,
    redactor: Arc<Redactor>,
    max_body_bytes: usize,
    lost: Arc<AtomicU64>,
    /// Bytes queued and not yet written.
    queued: Arc<std::sync::atomic::AtomicUsize>,
    /// Requests whose body could not be redacted exactly, left out.
    unrecordable: Arc<AtomicU64>,
}

/// The file could not be opened for appending.
#[derive(Debug, thiserror::Error)]
#[error("cannot open {path} to record requests: {source}")]
pub struct RecordError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl RequestLog {
    /// Opens (creating or appending to) `path` and starts the writing task,
    /// which ends once every `RequestLog` clone is dropped and the rest is written.
    /// Must be called inside a Tokio runtime.
    pub fn open(
        path: &Path,
        redactor: Redactor,
        max_body_bytes: usize,
    ) -> Result<(RequestLog, tokio::task::JoinHandle<()>), RecordError> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map(tokio::fs::File::from_std)
            .map_err(|source| RecordError {
                path: path.to_path_buf(),
                source,
            })?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let lost = Arc::new(AtomicU64::new(0));
        let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let unrecordable = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(write_lines(
            file,
            rx,
            path.display().to_string(),
            Counts {
                lost: lost.clone(),
                queued: queued.clone(),
                unrecordable: unrecordable.clone(),
            },
        ));
        Ok((
            RequestLog {
                tx,
                redactor: Arc::new(redactor),
                max_body_bytes,
                lost,
                queued,
                unrecordable,
            },
            task,
        ))
    }

    /// Queues one request; never waits.
    pub fn append(
        &self,
        endpoint: &str,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        body: &bytes::Bytes,
    ) {
        let Some(line) = self.line(endpoint, method, target, headers, body) else {
            // A body that cannot be redacted exactly (undecodable, or
            // unparseable while JSON paths are redacted) would replay as a
            // stand-in: such requests are left out, and counted.
            self.unrecordable.fetch_add(1, Ordering::Relaxed);
            return;
        };
        let Ok(mut text) = serde_json::to_string(&line) else {
            return;
        };
        text.push('\n');
        let size = text.len();
        let room = self.queued.fetch_add(size, Ordering::Relaxed) + size <= QUEUE_BYTES;
        if !room || self.tx.try_send(text).is_err() {
            self.queued.fetch_sub(size, Ordering::Relaxed);
            if self.lost.fetch_add(1, Ordering::Relaxed) == 0 {
                tracing::warn!("the record file is not keeping up: requests are left out of it (counted at shutdown)");
            }
        }
    }

    /// The line as written: secrets masked exactly as in the store.
    fn line(
        &self,
        endpoint: &str,
        method: &Method,
        target: &str,
        headers: &HeaderMap,
        body: &bytes::Bytes,
    ) -> Option<RequestLine> {
        let r = &self.redactor;
        let target = r.target(target);
        let body = r.body_exact(body, headers, self.max_body_bytes)?;
        // The redacted body is decoded: its coding no longer applies.
        let headers: serde_json::Map<String, Value> = r
            .headers(headers)
            .into_iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("content-encoding"))
            .fold(serde_json::Map::new(), |mut map, (name, value)| {
                let joined = match map.get(&name).and_then(Value::as_str) {
                    Some(before) => format!("{before}, {value}"),
                    None => value,
                };
                map.insert(name, Value::String(joined));
                map
            });
        let (text, base64) = match std::str::from_utf8(&body) {
            Ok(_) if body.is_empty() => (None, None),
            Ok(text) => (Some(text.to_string()), None),
            Err(_) => (
                None,
                Some(base64::engine::general_purpose::STANDARD.encode(&body)),
            ),
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        Some(RequestLine {
            at: Some(format_millis(now)),
            endpoint: Some(endpoint.to_string()),
            method: Some(method.as_str().to_string()),
            path: Some(target),
            url: None,
            headers: Value::Object(headers),
            body: text,
            body_base64: base64,
            response: None,
        })
    }
}

/// What the writing task reports on.
struct Counts {
    lost: Arc<AtomicU64>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    unrecordable: Arc<AtomicU64>,
}

async fn write_lines(
    file: tokio::fs::File,
    mut rx: mpsc::Receiver<String>,
    path: String,
    counts: Counts,
) {
    let mut out = tokio::io::BufWriter::new(file);
    let mut failed = false;
    while let Some(line) = rx.recv().await {
        counts.queued.fetch_sub(line.len(), Ordering::Relaxed);
        let mut result = out.write_all(line.as_bytes()).await;
        // Flush whenever the queue is empty, so the file is current when idle.
        if result.is_ok() && rx.is_empty() {
            result = out.flush().await;
        }
        if let Err(e) = result {
            counts.lost.fetch_add(1, Ordering::Relaxed);
            if !failed {
                tracing::error!(file = %path, error = %e, "writing the record file failed; requests are left out of it");
                failed = true;
            }
        }
    }
    if let Err(e) = out.flush().await {
        tracing::error!(file = %path, error = %e, "writing the record file failed at shutdown");
    }
    let lost = counts.lost.load(Ordering::Relaxed);
    if lost > 0 {
        tracing::warn!(file = %path, requests = lost, "requests left out of the record file: it did not keep up");
    }
    let unrecordable = counts.unrecordable.load(Ordering::Relaxed);
    if unrecordable > 0 {
        tracing::warn!(file = %path, requests = unrecordable, "requests left out of the record file: their bodies could not be redacted exactly");
    }
}
