//! GET /api/v1/groups, GET and PATCH /api/v1/groups/{fingerprint}: mismatch
//! groups, most severe first, with their severity class, and their triage
//! (who set which status when, kept as history), the one thing the report
//! API writes.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{bad, ApiError};
use super::params::Params;
use super::{input, ReportState};
use crate::compare::severity::{self, Severity};
use crate::store::{Group, Store, StoreError, TriageChange};
use crate::time::{format_millis, now_ms};

/// A group's triage status. The store keeps it as text ([`TriageStatus::as_str`]);
/// requests and stored rows are parsed into it where they enter.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TriageStatus {
    Open,
    Expected,
    Bug,
    Fixed,
}

impl TriageStatus {
    pub const ALL: [TriageStatus; 4] = [
        TriageStatus::Open,
        TriageStatus::Expected,
        TriageStatus::Bug,
        TriageStatus::Fixed,
    ];

    /// As the store and the API write it.
    pub fn as_str(self) -> &'static str {
        match self {
            TriageStatus::Open => "open",
            TriageStatus::Expected => "expected",
            TriageStatus::Bug => "bug",
            TriageStatus::Fixed => "fixed",
        }
    }
}

impl fmt::Display for TriageStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TriageStatus {
    /// The message the API answers with, naming the statuses.
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        TriageStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = TriageStatus::ALL.iter().map(|t| t.as_str()).collect();
                format!("`status` must be one of {}; got {s:?}", all.join(", "))
            })
    }
}

/// The `status` a query or a body gives, parsed.
fn status_of(given: &str) -> Result<TriageStatus, ApiError> {
    given
        .parse()
        .map_err(|message: String| bad("status", message))
}

pub(super) async fn groups(
    State(state): State<Arc<ReportState>>,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Vec<GroupView>>, ApiError> {
    let params = Params::new(raw, &["status", "endpoint", "since", "severity"])?;
    let status = params.text("status").map(status_of).transpose()?;
    let since = params.time("since")?;
    let classes = params
        .text("severity")
        .map(|list| {
            severity::parse_list(list).map_err(|m| {
                bad(
                    "severity",
                    format!("`severity` is a comma-separated list: {m}"),
                )
            })
        })
        .transpose()?;
    let groups = state
        .store()
        .await?
        .groups(params.text("endpoint"), status.map(TriageStatus::as_str))
        .await
        .map_err(ApiError::Store)?;
    // The store's order: most severe first (unknown last), then most frequent.
    let views = groups
        .into_iter()
        .filter(|g| since.is_none_or(|s| g.last_seen >= s))
        .filter(|g| {
            classes
                .as_ref()
                .is_none_or(|c| Severity::from_rank(g.severity).is_some_and(|s| c.contains(&s)))
        })
        .map(GroupView::try_from)
        .collect::<Result<_, _>>()
        .map_err(ApiError::Store)?;
    Ok(Json(views))
}

pub(super) async fn triage(
    State(state): State<Arc<ReportState>>,
    fingerprint: Result<Path<String>, PathRejection>,
    body: Result<Json<TriageRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<GroupView>, ApiError> {
    let fingerprint = input::path_text("fingerprint", fingerprint)?;
    let Json(request) = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge;
        }
        bad(
            "body",
            format!("expected {{\"status\": \"…\", \"note\": \"…\", \"by\": \"…\"}}: {e}"),
        )
    })?;
    let status = status_of(&request.status)?;
    let note = request.note.unwrap_or_default();
    input::no_nul("note", &note)?;
    let reviewer = request.by.unwrap_or_default();
    input::no_nul("by", &reviewer)?;
    if reviewer.chars().count() > MAX_REVIEWER_CHARS {
        return Err(bad(
            "by",
            format!("`by` is a name of at most {MAX_REVIEWER_CHARS} characters"),
        ));
    }
    let store = state.store().await?;
    let change = TriageChange {
        fingerprint: &fingerprint,
        status: status.as_str(),
        note: &note,
        reviewer: &reviewer,
        at_ms: now_ms(),
    };
    if !store.triage(&change).await.map_err(ApiError::Store)? {
        return Err(ApiError::NotFound(format!(
            "no mismatch group {fingerprint:?}"
        )));
    }
    Ok(Json(one_group(store, &fingerprint).await?))
}

/// `GET /groups/{fingerprint}`: one group with its triage history.
pub(super) async fn group(
    State(state): State<Arc<ReportState>>,
    fingerprint: Result<Path<String>, PathRejection>,
) -> Result<Json<GroupDetail>, ApiError> {
    let fingerprint = input::path_text("fingerprint", fingerprint)?;
    let store = state.store().await?;
    let group = one_group(store, &fingerprint).await?;
    let history = store
        .triage_history(&fingerprint, HISTORY_SHOWN)
        .await
        .map_err(ApiError::Store)?
        .into_iter()
        .map(|entry| {
            let status = entry.status.parse().map_err(|_| {
                ApiError::Store(StoreError::Malformed(format!(
                    "a triage of {fingerprint:?} has the unknown status {:?}",
                    entry.status
                )))
            })?;
            Ok(TriageView {
                at: format_millis(entry.at_ms),
                status,
                note: entry.note,
                by: entry.reviewer,
            })
        })
        .collect::<Result<_, ApiError>>()?;
    Ok(Json(GroupDetail { group, history }))
}

async fn one_group(
    store: &crate::store::SqlStore,
    fingerprint: &str,
) -> Result<GroupView, ApiError> {
    let group = store
        .groups(None, None)
        .await
        .map_err(ApiError::Store)?
        .into_iter()
        .find(|g| g.fingerprint == fingerprint)
        .ok_or_else(|| ApiError::NotFound(format!("no mismatch group {fingerprint:?}")))?;
    GroupView::try_from(group).map_err(ApiError::Store)
}

/// The triage entries a group's page shows, newest first.
const HISTORY_SHOWN: i64 = 100;
/// The longest reviewer name kept.
const MAX_REVIEWER_CHARS: usize = 100;

/// One group and who triaged it when.
#[derive(Serialize)]
pub struct GroupDetail {
    #[serde(flatten)]
    pub group: GroupView,
    /// Every triage, newest first (at most 100).
    pub history: Vec<TriageView>,
}

/// One triage as shown.
#[derive(Serialize)]
pub struct TriageView {
    pub at: String,
    pub status: TriageStatus,
    pub note: String,
    /// Who, as the reviewer gave it; empty when not given.
    pub by: String,
}

/// A mismatch group as listed.
#[derive(Serialize)]
pub struct GroupView {
    pub fingerprint: String,
    pub endpoint: String,
    pub first_seen: String,
    pub last_seen: String,
    pub count: i64,
    /// JSON Pointers of the differing body parts (arrays' indexes as `*`).
    pub paths: Vec<String>,
    /// Names of the differing headers.
    pub headers: Vec<String>,
    /// The two statuses, when they differ.
    pub statuses: Option<StatusPair>,
    /// Triage: open, expected, bug or fixed.
    pub status: TriageStatus,
    pub note: String,
    /// The most severe class of its mismatches; null for groups stored
    /// before classes were kept.
    pub severity: Option<Severity>,
}

#[derive(Serialize)]
pub struct StatusPair {
    pub primary: u16,
    pub candidate: u16,
}

impl TryFrom<Group> for GroupView {
    /// A stored status the API does not know: the row is malformed.
    type Error = StoreError;
    fn try_from(g: Group) -> Result<Self, StoreError> {
        let status = g.status.parse().map_err(|_| {
            StoreError::Malformed(format!(
                "mismatch group {:?} has the unknown triage status {:?}",
                g.fingerprint, g.status
            ))
        })?;
        Ok(GroupView {
            first_seen: format_millis(g.first_seen),
            last_seen: format_millis(g.last_seen),
            fingerprint: g.fingerprint,
            endpoint: g.endpoint,
            count: g.count,
            paths: g.paths,
            headers: g.headers,
            statuses: g
                .statuses
                .map(|(primary, candidate)| StatusPair { primary, candidate }),
            status,
            note: g.note,
            severity: Severity::from_rank(g.severity),
        })
    }
}

/// A triage request as sent. `status` is text here and parsed after, so a
/// wrong one is refused naming `status` rather than the whole body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriageRequest {
    pub status: String,
    pub note: Option<String>,
    /// Who triages, as they name themselves.
    pub by: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_parse_from_and_print_as_the_stored_text() {
        for status in TriageStatus::ALL {
            assert_eq!(status.as_str().parse::<TriageStatus>(), Ok(status));
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        assert_eq!(
            "wontfix".parse::<TriageStatus>(),
            Err("`status` must be one of open, expected, bug, fixed; got \"wontfix\"".to_string())
        );
    }
}
