//! GET /api/v1/summary and /api/v1/endpoints: outcome totals, parity,
//! latency percentiles and error rates per endpoint, with the health of this
//! process's store writer and client connections.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::error::ApiError;
use super::params::Params;
use super::ReportState;
use crate::gate::{self, Counts, GateCost, WindowView};
use crate::store::{EndpointLatency, Histogram, Store};
use crate::time::format_millis;
use crate::writer::health::HealthSnapshot;

fn tally(counts: &Counts) -> Totals {
    let (matched, mismatched) = (counts.matched(), counts.mismatched());
    let candidate_errors = counts.candidate_errors();
    let judged = matched + mismatched + candidate_errors;
    Totals {
        compared: matched + mismatched,
        matched,
        mismatched,
        candidate_errors,
        skipped: counts.skipped(),
        dropped: counts.dropped(),
        parity: (judged > 0).then(|| matched as f64 / judged as f64),
        byte_equal: counts.byte_equal(),
        byte_parity: (counts.measured_pairs() > 0)
            .then(|| counts.byte_equal() as f64 / counts.measured_pairs() as f64),
        outcomes: counts.outcome_names(),
        served_by_candidate: counts.served_by_candidate(),
    }
}

fn percentiles(h: &Histogram) -> Option<Percentiles> {
    // Microsecond precision, without binary-float noise.
    let at = |q: f64| h.quantile(q).map(|d| (d.as_secs_f64() * 1e6).round() / 1e3);
    Some(Percentiles {
        p50: at(0.50)?,
        p95: at(0.95)?,
        p99: at(0.99)?,
    })
}

fn latencies(primary: &Histogram, candidate: &Histogram) -> Latencies {
    let (p, c) = (percentiles(primary), percentiles(candidate));
    let ratio = |c: f64, p: f64| (p > 0.0).then(|| (c / p * 1e4).round() / 1e4);
    let ratio = match (&p, &c) {
        (Some(p), Some(c)) => ratio(c.p50, p.p50)
            .zip(ratio(c.p95, p.p95))
            .zip(ratio(c.p99, p.p99))
            .map(|((p50, p95), p99)| Ratios { p50, p95, p99 }),
        _ => None,
    };
    Latencies {
        primary: p,
        candidate: c,
        ratio,
    }
}

/// The summary; when the store cannot be read, the 503 still carries the
/// store writer's health, which says why.
pub(super) async fn summary(
    State(state): State<Arc<ReportState>>,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    match summary_of(&state, raw).await {
        Ok(summary) => Json(summary).into_response(),
        Err(e @ ApiError::Store(_)) => {
            let health = state
                .health
                .as_ref()
                .map(|h| StoreStatus::from(&h.snapshot()));
            e.respond(health)
        }
        Err(e) => e.into_response(),
    }
}

async fn summary_of(
    state: &ReportState,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Summary, ApiError> {
    let params = Params::new(raw, &["since", "until", "endpoint", "run"])?;
    let window = params.window()?;
    let run = params.text("run").unwrap_or("");
    let store = state.store().await?;
    let counts = store
        .counts(window, run, params.text("endpoint"))
        .await
        .map_err(ApiError::Store)?;
    let mut latency: HashMap<String, EndpointLatency> = store
        .latencies(window, run, params.text("endpoint"))
        .await
        .map_err(ApiError::Store)?
        .into_iter()
        .map(|l| (l.endpoint.clone(), l))
        .collect();
    let mut all = Counts::default();
    let (mut all_primary, mut all_candidate) = (Histogram::default(), Histogram::default());
    let mut endpoints = Vec::new();
    for c in &counts {
        let outcomes = Counts::from_stored(c.outcomes.iter().map(|(k, n)| (k, *n)));
        all.merge(&outcomes);
        let l = latency.remove(&c.endpoint).unwrap_or_default();
        all_primary.merge(&l.primary);
        all_candidate.merge(&l.candidate);
        let (primary_error_rate, candidate_error_rate) = gate::error_rates(&outcomes);
        let target = state.targets.as_ref().map(|t| t.for_endpoint(&c.endpoint));
        endpoints.push(EndpointSummary {
            endpoint: c.endpoint.clone(),
            backends: target.map(|t| EndpointBackends {
                primary: t.primary_name.clone(),
                candidate: t.candidate.as_ref().map(|c| c.name.clone()),
            }),
            latency_ms: latencies(&l.primary, &l.candidate),
            cost: gate::cost(&outcomes, &l.primary, &l.candidate),
            primary_error_rate,
            candidate_error_rate,
            totals: tally(&outcomes),
        });
    }
    let lost_records = store.lost(window).await.map_err(ApiError::Store)?;
    Ok(Summary {
        window: WindowView {
            since: format_millis(window.since_ms),
            until: format_millis(window.until_ms),
        },
        cost: gate::cost(&all, &all_primary, &all_candidate),
        latency_ms: latencies(&all_primary, &all_candidate),
        totals: tally(&all),
        lost_records,
        endpoints,
        store: state
            .health
            .as_ref()
            .map(|h| StoreStatus::from(&h.snapshot())),
        connections: state
            .connections
            .as_ref()
            .map(|c| ConnectionCounts::from(c.snapshot())),
    })
}

pub(super) async fn endpoints(
    State(state): State<Arc<ReportState>>,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Vec<EndpointTotals>>, ApiError> {
    let params = Params::new(raw, &["since", "until", "run"])?;
    let window = params.window()?;
    let counts = state
        .store()
        .await?
        .counts(window, params.text("run").unwrap_or(""), None)
        .await
        .map_err(ApiError::Store)?;
    Ok(Json(
        counts
            .iter()
            .map(|c| EndpointTotals {
                endpoint: c.endpoint.clone(),
                totals: tally(&Counts::from_stored(
                    c.outcomes.iter().map(|(k, n)| (k, *n)),
                )),
            })
            .collect(),
    ))
}

/// Outcome totals. Parity is matched / (matched + mismatched + candidate
/// errors); skipped and dropped samples are coverage, not parity.
#[derive(Serialize, Debug, PartialEq)]
pub struct Totals {
    pub compared: i64,
    pub matched: i64,
    pub mismatched: i64,
    pub candidate_errors: i64,
    pub skipped: i64,
    pub dropped: i64,
    pub parity: Option<f64>,
    /// Compared pairs whose decoded bodies were identical bytes.
    pub byte_equal: i64,
    /// byte_equal / the compared pairs whose bytes were counted.
    pub byte_parity: Option<f64>,
    /// Every outcome key with its count, reasons included.
    pub outcomes: BTreeMap<String, i64>,
    /// Samples the candidate served (a cutover's weight chose it; the
    /// primary was called in the background); the rest the primary served.
    pub served_by_candidate: i64,
}

#[derive(Serialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

#[derive(Serialize)]
pub struct Latencies {
    pub primary: Option<Percentiles>,
    pub candidate: Option<Percentiles>,
    /// Candidate over primary at each percentile.
    pub ratio: Option<Ratios>,
}

#[derive(Serialize)]
pub struct Ratios {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

#[derive(Serialize)]
pub struct EndpointSummary {
    pub endpoint: String,
    /// What this endpoint is compared against, as this process routes it;
    /// null where the API serves no proxy (a report-only process).
    pub backends: Option<EndpointBackends>,
    #[serde(flatten)]
    pub totals: Totals,
    /// Time to the response head, from histograms whose buckets are under
    /// 0.8% wide: each value is within 0.4% of the true percentile.
    pub latency_ms: Latencies,
    /// Cost per compared request: mean time and response bytes per side.
    pub cost: GateCost,
    /// 5xx responses, failures and timeouts of the primary, among its sampled requests.
    pub primary_error_rate: Option<f64>,
    /// 5xx responses, errors and timeouts of the candidate, among its sampled requests.
    pub candidate_error_rate: Option<f64>,
}

/// The backends of an endpoint's route, by name (`primary` and `candidate`
/// for the ones the settings of those names give).
#[derive(Serialize)]
pub struct EndpointBackends {
    pub primary: String,
    /// Null for a route with `candidate = false`: proxied, never shadowed
    /// (its samples end as `skipped/no_candidate`).
    pub candidate: Option<String>,
}

#[derive(Serialize)]
pub struct Summary {
    pub window: WindowView,
    pub totals: Totals,
    /// Every endpoint's latencies together.
    pub latency_ms: Latencies,
    /// Cost per compared request, every endpoint together.
    pub cost: GateCost,
    /// Records writers could not keep (stored losses of every instance).
    pub lost_records: i64,
    pub endpoints: Vec<EndpointSummary>,
    /// The store writer of the process serving this API; null where it has none.
    pub store: Option<StoreStatus>,
    /// The client connections of the proxy in the process serving this API,
    /// since it started; null where it has none.
    pub connections: Option<ConnectionCounts>,
}

/// What happened to client connections: how many were accepted and are
/// open, how many accepts failed (out of file descriptors or memory), and
/// how many were closed for a slow request head, for idleness, or to make
/// room at `max_connections`.
#[derive(Serialize, Debug, PartialEq)]
pub struct ConnectionCounts {
    pub accepted: u64,
    pub open: u64,
    pub accept_errors: u64,
    pub header_timeouts: u64,
    pub idle_closed: u64,
    pub evicted: u64,
}

impl From<[u64; 6]> for ConnectionCounts {
    fn from(
        [accepted, open, accept_errors, header_timeouts, idle_closed, evicted]: [u64; 6],
    ) -> Self {
        ConnectionCounts {
            accepted,
            open,
            accept_errors,
            header_timeouts,
            idle_closed,
            evicted,
        }
    }
}

/// How the store writer of the process serving the API fares. Says which
/// class of failure, never its text: no SQL or paths reach clients.
#[derive(Serialize, Debug, PartialEq)]
pub struct StoreStatus {
    /// `ok`, or `failing` while writes fail (and are retried).
    pub status: &'static str,
    /// When the current failures began; null while `ok`.
    pub failing_since: Option<String>,
    /// The class of the last failure, even after writes resumed: read_only,
    /// disk_full, io, timeout, unavailable or other.
    pub last_error: Option<&'static str>,
    pub last_error_at: Option<String>,
    /// Count rows and exemplars waiting in memory to be written.
    pub unwritten: i64,
    /// Records this process lost since it started.
    pub lost: i64,
    /// The same by reason: exemplar_queue_full, exemplar_byte_budget,
    /// exemplar_write_failed, counts_backlog_full, latency_backlog_full, shutdown, disk_full.
    pub lost_by_reason: BTreeMap<String, i64>,
    pub last_loss_at: Option<String>,
}

impl From<&HealthSnapshot> for StoreStatus {
    fn from(h: &HealthSnapshot) -> Self {
        StoreStatus {
            status: if h.failing_since_ms.is_some() {
                "failing"
            } else {
                "ok"
            },
            failing_since: h.failing_since_ms.map(format_millis),
            last_error: h.last_error.map(|c| c.as_str()),
            last_error_at: h.last_error_ms.map(format_millis),
            unwritten: h.unwritten,
            lost: h.lost_total(),
            lost_by_reason: h
                .lost
                .iter()
                .map(|(reason, n)| (reason.as_str().to_string(), *n))
                .collect(),
            last_loss_at: h.last_loss_ms.map(format_millis),
        }
    }
}

#[derive(Serialize)]
pub struct EndpointTotals {
    pub endpoint: String,
    #[serde(flatten)]
    pub totals: Totals,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parity_counts_candidate_errors_but_not_skips() {
        let outcomes = Counts::from_stored([
            ("matched", 97),
            ("mismatched", 2),
            ("candidate_error/timeout", 1),
            ("skipped/unsafe_method", 50),
            ("candidate_5xx", 3),
        ]);
        let t = tally(&outcomes);
        assert_eq!(t.parity, Some(0.97));
        assert_eq!((t.compared, t.skipped, t.dropped), (99, 50, 0));
        assert!(!t.outcomes.contains_key("candidate_5xx"));
    }
}
