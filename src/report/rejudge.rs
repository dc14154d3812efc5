//! POST /api/v1/rejudge: the stored mismatch exemplars compared again under
//! a changed config sent in the body, the same as `shadowdiff rejudge`
//! (both end in `rejudge::rejudge`), and the JSON both print.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{bad, ApiError};
use super::ReportState;
use crate::config::Layer;
use crate::rejudge::{Fate, Rejudged};
use crate::store::Window;
use crate::time::now_ms;

/// The request: a config file's text, and how far back to look.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RejudgeRequest {
    /// TOML, as a config file: its `[compare]` and routes' rules apply.
    config: String,
    /// A duration back from now (`7d`) or an RFC 3339 time; default 7 days.
    /// Absent, not null.
    #[serde(default, deserialize_with = "present_text")]
    since: Option<String>,
}

/// A text field that, when given, is text: `null` is refused.
fn present_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    String::deserialize(d).map(Some)
}

/// Every group re-judged, and parity before and after: the wire format of
/// `POST /api/v1/rejudge` and `shadowdiff rejudge --format json`.
#[derive(Debug, Serialize)]
pub struct RejudgeView {
    pub groups: Vec<GroupView>,
    pub compared: i64,
    pub matched: i64,
    pub parity: Option<f64>,
    pub parity_after: Option<f64>,
}

#[derive(Debug, Serialize)]
pub struct GroupView {
    pub fingerprint: String,
    pub endpoint: String,
    pub count: i64,
    /// `vanishes`, `changes`, `still_differs` or `unknown` (no exemplar).
    pub fate: &'static str,
    pub exemplars: usize,
    pub now_match: usize,
    pub regrouped: usize,
    pub unchanged: usize,
    pub truncated: usize,
}

impl From<&Rejudged> for RejudgeView {
    fn from(r: &Rejudged) -> Self {
        RejudgeView {
            groups: r
                .groups
                .iter()
                .map(|g| GroupView {
                    fingerprint: g.fingerprint.clone(),
                    endpoint: g.endpoint.clone(),
                    count: g.count,
                    fate: match g.fate {
                        Fate::Vanishes => "vanishes",
                        Fate::Changes => "changes",
                        Fate::StillDiffers => "still_differs",
                        Fate::Unknown => "unknown",
                    },
                    exemplars: g.exemplars,
                    now_match: g.now_match,
                    regrouped: g.regrouped,
                    unchanged: g.unchanged,
                    truncated: g.truncated,
                })
                .collect(),
            compared: r.compared,
            matched: r.matched,
            parity: r.parity,
            parity_after: r.parity_after,
        }
    }
}

/// Re-judges under the config in the body; it writes nothing.
pub(super) async fn rejudge(
    State(state): State<Arc<ReportState>>,
    body: Result<Json<RejudgeRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<RejudgeView>, ApiError> {
    let Json(request) = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        _ => bad(
            "body",
            format!("expected {{\"config\": \"<TOML>\", \"since\": \"7d\"}}: {e}"),
        ),
    })?;
    let layer = Layer::from_toml(&request.config)
        .map_err(|(key, message)| bad("config", format!("config key `{key}`: {message}")))?;
    let now = now_ms();
    let since = match &request.since {
        None => now - 7 * 24 * 3_600_000,
        Some(text) => text
            .parse::<crate::gate::TimeBound>()
            .ok()
            .and_then(|bound| bound.resolve(now))
            .ok_or_else(|| {
                bad(
                    "since",
                    format!("`since`: {text:?} is not a duration or an RFC 3339 time"),
                )
            })?,
    };
    let window = Window {
        since_ms: since,
        until_ms: now,
    };
    let store = state.store().await?;
    let gathered = crate::rejudge::gather(store, window)
        .await
        .map_err(ApiError::Store)?;
    // One at a time, off the runtime that serves clients: comparing is CPU
    // work, bounded by `rejudge::MAX_GROUPS` groups of 20 exemplars.
    let _turn = TURN
        .acquire()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let max_body_bytes = max_body_bytes(&layer);
    let judged = tokio::task::spawn_blocking(move || {
        let rules_for = |method: &http::Method, path: &str| layer.rules_for(Some((method, path)));
        crate::rejudge::judge(&gathered, &rules_for, max_body_bytes)
    })
    .await;
    match judged {
        Ok(rejudged) => Ok(Json(RejudgeView::from(&rejudged))),
        Err(error) => Err(ApiError::Internal(error.to_string())),
    }
}

/// One re-judging at a time.
static TURN: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(1);

/// Bodies are compared up to the config's `max_body_bytes`, as live: a
/// verdict of "too large" must not change with the tool that reads it.
pub fn max_body_bytes(layer: &Layer) -> usize {
    layer
        .max_body_bytes
        .map_or(DEFAULT_MAX_BODY_BYTES, std::num::NonZeroUsize::get)
}

const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
