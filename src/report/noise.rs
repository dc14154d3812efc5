//! GET /api/v1/noise: what was learned about each endpoint's noise (with a
//! secondary) and which values look volatile (without one), with rates,
//! sample counts and the config that forgives exactly those paths; DELETE
//! /api/v1/noise?endpoint=E forgets one endpoint's.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Serialize;

use super::error::{bad, ApiError};
use super::params::Params;
use super::ReportState;
use crate::noise::report::{endpoint_report, EndpointReport};
use crate::noise::sync::counts_of;

/// The minimum paired samples when this process learns nothing itself.
const DEFAULT_MIN_SAMPLES: u64 = 20;

pub(super) async fn noise(
    State(state): State<Arc<ReportState>>,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<NoiseView>, ApiError> {
    let params = Params::new(raw, &["endpoint"])?;
    let endpoint = params.text("endpoint");
    let learner = state.noise.as_ref();
    let min_samples = learner.map_or(DEFAULT_MIN_SAMPLES, |n| n.min_samples());
    let counts = match (&state.database, learner) {
        (Some(_), _) => {
            let rows = state
                .store()
                .await?
                .noise(endpoint)
                .await
                .map_err(ApiError::Store)?;
            counts_of(&rows)
        }
        (None, Some(learner)) => learner.all_counts(),
        (None, None) => return Err(ApiError::NoDatabase),
    };
    let mut endpoints: Vec<EndpointView> = counts
        .iter()
        .filter(|(name, _)| endpoint.is_none_or(|e| e == name.as_str()))
        .map(|(name, c)| EndpointView::from(endpoint_report(name, c, min_samples)))
        .collect();
    endpoints.sort_by(|a, b| a.endpoint.cmp(&b.endpoint));
    Ok(Json(NoiseView {
        min_samples,
        secondary: learner.is_some_and(|n| n.secondary().is_some()),
        endpoints,
    }))
}

pub(super) async fn reset(
    State(state): State<Arc<ReportState>>,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<ResetView>, ApiError> {
    let params = Params::new(raw, &["endpoint"])?;
    let endpoint = params
        .text("endpoint")
        .ok_or_else(|| {
            bad(
                "endpoint",
                "`endpoint` names the endpoint whose noise to forget",
            )
        })?
        .to_string();
    super::input::no_nul("endpoint", &endpoint)?;
    let removed = match &state.database {
        Some(_) => state
            .store()
            .await?
            .reset_noise(&endpoint)
            .await
            .map_err(ApiError::Store)?,
        None => 0,
    };
    if let Some(learner) = &state.noise {
        learner.forget(&endpoint);
    }
    Ok(Json(ResetView { endpoint, removed }))
}

/// The noise report.
#[derive(Serialize)]
pub struct NoiseView {
    /// Paired samples an endpoint needs before a path can be noise.
    pub min_samples: u64,
    /// Whether this process has a secondary to learn from.
    pub secondary: bool,
    pub endpoints: Vec<EndpointView>,
}

#[derive(Serialize)]
pub struct EndpointView {
    pub endpoint: String,
    /// Samples compared with the candidate.
    pub compared: u64,
    /// Of those, samples the secondary answered too.
    pub paired: u64,
    /// Paths learned as noise or proposed as volatile.
    pub paths: Vec<PathView>,
    /// A `[[route]]` whose `[route.compare]` forgives exactly those paths.
    pub suggestion: Option<String>,
}

#[derive(Serialize)]
pub struct PathView {
    /// A generalised JSON Pointer (array indexes as `*`) or `header:<name>`.
    pub path: String,
    /// Over paired samples: how often the two primaries differed here, and
    /// the primary and the candidate.
    pub noise_rate: f64,
    pub raw_rate: f64,
    /// Over every compared sample, how often the primary and the candidate differed here.
    pub raw_rate_all: f64,
    /// Learned as noise: differences here are discounted.
    pub noise: bool,
    /// Proposed by the detector: the kind its values nearly always were.
    pub volatile: Option<&'static str>,
    pub why: String,
}

impl From<EndpointReport> for EndpointView {
    fn from(r: EndpointReport) -> Self {
        EndpointView {
            endpoint: r.endpoint,
            compared: r.compared,
            paired: r.paired,
            paths: r
                .paths
                .into_iter()
                .map(|p| PathView {
                    path: p.path,
                    noise_rate: p.noise_rate,
                    raw_rate: p.raw_rate,
                    raw_rate_all: p.raw_rate_all,
                    noise: p.noise,
                    volatile: p.volatile.map(|k| k.as_str()),
                    why: p.why,
                })
                .collect(),
            suggestion: r.suggestion,
        }
    }
}

/// What a reset removed.
#[derive(Serialize)]
pub struct ResetView {
    pub endpoint: String,
    /// Rows deleted from the store (every instance's).
    pub removed: u64,
}
