//! GET (and POST) /api/v1/gate: the rollout gate's decision over stored
//! outcomes, the same as `shadowdiff gate` (both end in `gate::decide`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

use super::error::{bad, ApiError};
use super::params::Params;
use super::{input, ReportState};
use crate::gate;
use crate::time::now_ms;
use crate::writer::health::StoreHealth;

/// The gate's decision over stored outcomes: the same as `shadowdiff gate`.
/// `strict=true` answers 412 unless it passes, for callers that only read
/// the status (Flagger's webhooks).
pub(super) async fn gate(
    State(state): State<Arc<ReportState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (pairs, params) = checked_pairs(query.as_deref())?;
    let criteria =
        gate::Criteria::from_query(&pairs).map_err(|e| bad(&e.parameter, e.to_string()))?;
    let bound = |name: &'static str| -> Result<Option<gate::TimeBound>, ApiError> {
        params
            .text(name)
            .map(|v| {
                v.parse()
                    .map_err(|m: String| bad(name, format!("`{name}`: {m}")))
            })
            .transpose()
    };
    let (since, until) = (bound("since")?, bound("until")?);
    let window = gate::window(since.as_ref(), until.as_ref(), params.text("run"), now_ms())
        .map_err(|e| match e {
            gate::WindowError::TooEarly(name) => bad(name, e.to_string()),
            gate::WindowError::Empty => bad("since", e.to_string()),
        })?;
    let strict = match params.0.get("strict") {
        None => false,
        Some(v) => gate::parse_flag(v).map_err(|m| bad("strict", format!("`strict`: {m}")))?,
    };
    let run = params.text("run");
    // Live traffic's counts are only decided on while they are whole (this
    // process's writer first: it is known even when the store cannot be
    // read). A replay run's writer is the replay's own, which checks itself.
    let health = state.health.as_ref().map(StoreHealth::snapshot);
    if let (None, Some(problem)) = (run, gate::store_problem(window, health.as_ref())) {
        return Err(ApiError::StoreUnhealthy(problem));
    }
    let store = state.store().await?;
    let data = gate::gather(store, window, run.unwrap_or(""), &criteria)
        .await
        .map_err(ApiError::Store)?;
    let report = gate::decide(&criteria, window, run, &data);
    let status = if strict && !report.pass {
        StatusCode::PRECONDITION_FAILED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)).into_response())
}

/// The query's pairs in order (`endpoint` may repeat) and, for the other
/// parameters, each once: unknown, repeated or NUL-bearing ones are refused.
fn checked_pairs(query: Option<&str>) -> Result<(Vec<(String, String)>, Params), ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .into_owned()
        .collect();
    for (name, value) in &pairs {
        input::no_nul(name, value)?;
    }
    let mut allowed = vec!["since", "until", "run", "strict"];
    allowed.extend(gate::CRITERIA_PARAMETERS);
    let single: HashMap<String, String> = pairs
        .iter()
        .filter(|(k, _)| k != "endpoint")
        .cloned()
        .collect();
    if let Some((unknown, _)) = pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        return Err(bad(
            unknown,
            format!(
                "unknown parameter `{unknown}`; this route takes: {}",
                allowed.join(", ")
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some((twice, _)) = pairs
        .iter()
        .find(|(k, _)| k != "endpoint" && !seen.insert(k.as_str()))
    {
        return Err(bad(
            twice,
            format!("`{twice}` is given twice; only `endpoint` may repeat"),
        ));
    }
    Ok((pairs, Params(single)))
}
