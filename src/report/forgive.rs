//! GET /api/v1/mismatches/{id}/forgive: for each difference of one stored
//! mismatch, the rules that would forgive it, narrowest first, as TOML
//! snippets for its endpoint or globally (`crate::forgive` decides them).
//! Posting a snippet to `/rejudge` tells how many groups it would clear.

use std::sync::Arc;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use serde_json::Value;

use super::error::ApiError;
use super::mismatches::{stored_mismatch, verdict_of};
use super::{input, ReportState};
use crate::forgive::{suggest, HeaderDifference, Suggestion};
use crate::store::StoredBody;

pub(super) async fn forgive(
    State(state): State<Arc<ReportState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<Forgiving>, ApiError> {
    let m = stored_mismatch(&state, &input::path_text("id", id)?).await?;
    let verdict = verdict_of(&m)?;
    let r = &m.record;
    let bodies = json_of(&r.primary.body).zip(json_of(&r.candidate.body));
    // The patch names each difference where it is (array items by index);
    // without one, the verdict's own paths.
    let paths: Vec<String> = match &verdict.patch {
        Some(patch) => patch.0.iter().map(|op| op.path().to_string()).collect(),
        None => verdict.paths.clone(),
    };
    let headers: Vec<HeaderDifference<'_>> = verdict
        .headers
        .iter()
        .map(|h| HeaderDifference {
            name: &h.name,
            primary: h.primary.as_deref(),
            candidate: h.candidate.as_deref(),
        })
        .collect();
    let suggestions = suggest(
        &r.endpoint,
        bodies.as_ref().map(|(p, c)| (p, c)),
        &paths,
        &headers,
    );
    Ok(Json(Forgiving {
        endpoint: r.endpoint.clone(),
        suggestions,
    }))
}

/// A whole stored body as JSON; `None` when it is not JSON or was cut.
fn json_of(body: &StoredBody) -> Option<Value> {
    (!body.truncated)
        .then(|| serde_json::from_slice(&body.bytes).ok())
        .flatten()
}

/// The suggestions for one mismatch.
#[derive(Serialize)]
pub struct Forgiving {
    pub endpoint: String,
    /// Per difference (body paths in the patch's order, then headers), the
    /// rules that forgive it, narrowest first.
    pub suggestions: Vec<Suggestion>,
}
