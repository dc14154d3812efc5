//! GET /api/v1/mismatches, /api/v1/mismatches/{id} and
//! /api/v1/mismatches/{id}/curl: stored mismatches, a page at a time, one in
//! full, and the curl commands that replay one against each backend (as
//! JSON, or as plain lines to paste into a shell).
//! Verdicts are served as the versioned `VerdictRecord`, read from the
//! store's JSON (rows from before the version read as version 1).

use base64::Engine as _;
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::error::{bad, ApiError};
use super::params::Params;
use super::{input, ReportState};
use crate::config::BackendUrl;
use crate::store::{
    MismatchFilter, SentRequestRecord, Store, StoreError, StoredBody, StoredMessage, StoredMismatch,
};
use crate::time::format_millis;
use crate::verdict_record::VerdictRecord;

pub(super) async fn mismatches(
    State(state): State<Arc<ReportState>>,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<MismatchPage>, ApiError> {
    let params = Params::new(
        raw,
        &["endpoint", "fingerprint", "since", "limit", "cursor", "run"],
    )?;
    let limit = params.number("limit", 1..=500)?.unwrap_or(50);
    let cursor = params.number("cursor", 1..=i64::MAX)?;
    let filter = MismatchFilter {
        run: Some(params.text("run").unwrap_or("")),
        endpoint: params.text("endpoint"),
        fingerprint: params.text("fingerprint"),
        since_ms: params.time("since")?,
    };
    let items = state
        .store()
        .await?
        .mismatches(filter, cursor, limit)
        .await
        .map_err(ApiError::Store)?;
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(|m| m.id.to_string()))
        .flatten();
    let items = items
        .iter()
        .map(|m| Ok(MismatchSummary::of(m, &verdict_of(m)?)))
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(MismatchPage { items, next_cursor }))
}

/// A stored mismatch's verdict in the served format. One the store holds
/// but this release cannot read is the store's failure (logged, not shown).
pub(super) fn verdict_of(m: &StoredMismatch) -> Result<VerdictRecord, ApiError> {
    VerdictRecord::read(&m.record.verdict)
        .map_err(|e| ApiError::Store(StoreError::Malformed(format!("mismatch {}: {e}", m.id))))
}

fn id_of(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        bad(
            "id",
            format!("a mismatch id is a positive whole number; got {raw:?}"),
        )
    })
}

/// The stored mismatch a path's `{id}` names, or the error to answer with.
pub(super) async fn stored_mismatch(
    state: &ReportState,
    raw_id: &str,
) -> Result<StoredMismatch, ApiError> {
    let id = id_of(raw_id)?;
    state
        .store()
        .await?
        .mismatch(id)
        .await
        .map_err(ApiError::Store)?
        .ok_or_else(|| ApiError::NotFound(format!("no mismatch {id}")))
}

pub(super) async fn mismatch(
    State(state): State<Arc<ReportState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<MismatchDetail>, ApiError> {
    let m = stored_mismatch(&state, &input::path_text("id", id)?).await?;
    let verdict = verdict_of(&m)?;
    Ok(Json(MismatchDetail::of(&m, verdict)))
}

/// The curl commands as JSON, or, for `Accept: text/plain`, as lines to
/// paste into a shell (the note as a comment).
pub(super) async fn curl(
    State(state): State<Arc<ReportState>>,
    id: Result<Path<String>, PathRejection>,
    headers: axum::http::HeaderMap,
) -> Result<Response, ApiError> {
    let commands = curl_commands(&state, id).await?;
    if !wants_text(&headers) {
        return Ok(Json(commands).into_response());
    }
    let text = format!(
        "# {}\n# primary\n{}\n# candidate\n{}\n",
        commands.note, commands.primary, commands.candidate
    );
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        text,
    )
        .into_response())
}

/// Whether the client asks for text rather than JSON.
fn wants_text(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/plain") && !v.contains("application/json"))
}

async fn curl_commands(
    state: &ReportState,
    id: Result<Path<String>, PathRejection>,
) -> Result<CurlCommands, ApiError> {
    let m = stored_mismatch(state, &input::path_text("id", id)?).await?;
    let r = &m.record;
    // Each backend of the endpoint's route, as this process routes it.
    let target = state.targets.as_ref().map(|t| t.for_endpoint(&r.endpoint));
    let primary = target.map_or(&state.primary, |t| &t.primary);
    let candidate = target
        .and_then(|t| t.candidate.as_ref())
        .map_or(&state.candidate, |c| &c.url);
    let as_sent = Sent {
        path: &r.path,
        query: &r.query,
        headers: &r.request.headers,
    };
    // The candidate's own request where a rewrite made it differ.
    let rewritten = r.details.candidate_request.as_ref().map(|c| Sent {
        path: &c.path,
        query: &c.query,
        headers: &c.headers,
    });
    Ok(CurlCommands {
        primary: curl_command(primary, r, &as_sent),
        candidate: curl_command(candidate, r, rewritten.as_ref().unwrap_or(&as_sent)),
        note: "secrets are redacted: replace each redacted:… value (and each [from $NAME], with that variable's value) before running",
    })
}

/// The parts of a request a curl command repeats.
struct Sent<'a> {
    path: &'a str,
    query: &'a str,
    headers: &'a [(String, String)],
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn curl_command(base: &BackendUrl, m: &crate::store::MismatchRecord, sent: &Sent<'_>) -> String {
    let target = if sent.query.is_empty() {
        sent.path.to_string()
    } else {
        format!("{}?{}", sent.path, sent.query)
    };
    let mut parts = vec![
        "curl".to_string(),
        "-X".into(),
        // Quoted too: any token is a valid method name.
        shell_quote(&m.method),
        shell_quote(&format!("{base}{target}")),
    ];
    for (name, value) in sent.headers {
        if matches!(
            name.as_str(),
            "host"
                | "content-length"
                | "x-forwarded-for"
                | "x-forwarded-host"
                | "x-forwarded-proto"
        ) {
            continue;
        }
        parts.push("-H".into());
        parts.push(shell_quote(&format!("{name}: {value}")));
    }
    if !m.request.body.bytes.is_empty() {
        parts.push("--data-binary".into());
        parts.push(shell_quote(&String::from_utf8_lossy(&m.request.body.bytes)));
    }
    parts.join(" ")
}

#[derive(Serialize)]
pub struct MismatchSummary {
    pub id: i64,
    pub at: String,
    pub instance: String,
    pub endpoint: String,
    pub fingerprint: String,
    pub method: String,
    pub path: String,
    pub primary_status: u16,
    pub candidate_status: u16,
    pub paths: Vec<String>,
}

impl MismatchSummary {
    fn of(m: &StoredMismatch, verdict: &VerdictRecord) -> Self {
        let r = &m.record;
        MismatchSummary {
            id: m.id,
            at: format_millis(r.at_ms),
            instance: m.instance.clone(),
            endpoint: r.endpoint.clone(),
            fingerprint: r.fingerprint.clone(),
            method: r.method.clone(),
            path: r.path.clone(),
            primary_status: r.primary.status,
            candidate_status: r.candidate.status,
            paths: verdict.paths.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct MismatchPage {
    pub items: Vec<MismatchSummary>,
    /// Pass as `cursor` for the next page; null on the last one.
    pub next_cursor: Option<String>,
}

/// A body: as text when it is UTF-8, else base64.
#[derive(Serialize)]
pub struct BodyView {
    pub encoding: &'static str,
    pub data: String,
    pub truncated: bool,
}

impl From<&StoredBody> for BodyView {
    fn from(b: &StoredBody) -> Self {
        match std::str::from_utf8(&b.bytes) {
            Ok(text) => BodyView {
                encoding: "utf-8",
                data: text.to_string(),
                truncated: b.truncated,
            },
            Err(_) => BodyView {
                encoding: "base64",
                data: base64::engine::general_purpose::STANDARD.encode(&b.bytes),
                truncated: b.truncated,
            },
        }
    }
}

#[derive(Serialize)]
pub struct MessageView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub headers: Vec<(String, String)>,
    pub body: BodyView,
    /// How long the backend took to answer, for responses; absent on
    /// mismatches stored before it was kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
}

impl MessageView {
    fn request(m: &StoredMessage) -> Self {
        MessageView {
            status: None,
            headers: m.headers.clone(),
            body: BodyView::from(&m.body),
            latency_ms: None,
        }
    }

    fn response(m: &StoredMessage, latency_us: Option<u64>) -> Self {
        MessageView {
            status: Some(m.status),
            latency_ms: latency_us.map(|us| us as f64 / 1000.0),
            ..Self::request(m)
        }
    }
}

#[derive(Serialize)]
pub struct MismatchDetail {
    #[serde(flatten)]
    pub summary: MismatchSummary,
    pub query: String,
    pub request: MessageView,
    pub primary: MessageView,
    pub candidate: MessageView,
    /// The request as the candidate received it, where a rewrite made it
    /// differ from `request`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_request: Option<SentRequestRecord>,
    /// Which backend served the client: `primary`, or `candidate` in a cutover.
    pub served_by: &'static str,
    /// The verdict: JSON Patch, text diff, differing paths, reasons.
    pub verdict: VerdictRecord,
}

impl MismatchDetail {
    fn of(m: &StoredMismatch, verdict: VerdictRecord) -> Self {
        let details = &m.record.details;
        MismatchDetail {
            summary: MismatchSummary::of(m, &verdict),
            query: m.record.query.clone(),
            request: MessageView::request(&m.record.request),
            primary: MessageView::response(&m.record.primary, details.primary_latency_us),
            candidate: MessageView::response(&m.record.candidate, details.candidate_latency_us),
            candidate_request: details.candidate_request.clone(),
            served_by: match details.served_by_candidate {
                true => "candidate",
                false => "primary",
            },
            verdict,
        }
    }
}

#[derive(Serialize)]
pub struct CurlCommands {
    pub primary: String,
    pub candidate: String,
    pub note: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curl_commands_are_quoted_for_the_shell() {
        let quoted = shell_quote("it's");
        assert_eq!(quoted, r"'it'\''s'");
    }
}
