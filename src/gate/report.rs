//! The gate's report: its wire format, as served at /api/v1/gate, printed
//! by `shadowdiff gate --format json` and read back by `gate --report-url`.
//! Versioned ([`REPORT_VERSION`]): fields are only ever added.

use serde::{Deserialize, Serialize};

/// The version of [`GateReport`]'s JSON.
pub const REPORT_VERSION: u32 = 1;

/// A window as reports show it: RFC 3339 times in UTC.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct WindowView {
    pub since: String,
    pub until: String,
}

/// The gate's decision, as served at /api/v1/gate and printed by
/// `shadowdiff gate --format json`. Versioned: fields are only ever added.
/// Percentages are 0 to 100.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GateReport {
    /// The format's version, 1.
    pub version: u32,
    /// True only for a pass: what Argo Rollouts and Flagger check.
    pub pass: bool,
    pub verdict: GateVerdict,
    /// One sentence saying why.
    pub reason: String,
    pub window: WindowView,
    /// The replay run gated, or null for live traffic.
    pub run: Option<String>,
    pub criteria: GateCriteria,
    /// All matching endpoints together; always decides.
    pub total: GateScope,
    /// Each endpoint; decides only with `per_endpoint`.
    pub endpoints: Vec<GateScope>,
}

/// Pass, fail, or not enough data to say.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum GateVerdict {
    Pass,
    Inconclusive,
    Fail,
}

impl GateVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            GateVerdict::Pass => "pass",
            GateVerdict::Inconclusive => "inconclusive",
            GateVerdict::Fail => "fail",
        }
    }
}

/// What the decision was asked to check.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GateCriteria {
    pub min_parity_percent: f64,
    pub confidence: f64,
    pub per_endpoint: bool,
    pub min_samples: u64,
    pub exclude_expected: bool,
    pub max_p99_ratio: Option<f64>,
    pub max_error_rate_delta_points: Option<f64>,
    /// Endpoint patterns; empty means every endpoint.
    pub endpoints: Vec<String>,
}

/// One endpoint's (or the total's) numbers and verdict.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GateScope {
    /// The endpoint, or `total`.
    pub endpoint: String,
    pub verdict: GateVerdict,
    /// Whether this scope's verdict counts towards the decision.
    pub enforced: bool,
    pub matched: i64,
    pub mismatched: i64,
    /// Mismatches in groups triaged as expected, left out of parity
    /// (with `exclude_expected`; otherwise counted as mismatched).
    pub expected: i64,
    pub candidate_errors: i64,
    pub skipped: i64,
    pub dropped: i64,
    /// matched + mismatched + candidate errors: what parity is measured over.
    pub comparisons: i64,
    pub parity_percent: Option<f64>,
    /// The Wilson score interval of parity at the asked confidence.
    pub lower_bound_percent: Option<f64>,
    pub upper_bound_percent: Option<f64>,
    /// Comparisons among all sampled requests (skipped and dropped ones are not compared).
    pub coverage_percent: Option<f64>,
    /// For an inconclusive verdict: about how many more comparisons, at the
    /// observed parity, would decide it.
    pub more_comparisons_needed: Option<u64>,
    pub latency: Option<GateLatency>,
    pub errors: Option<GateErrors>,
    /// Why the verdict is what it is, one line each.
    pub reasons: Vec<String>,
}

/// The latency check: candidate p99 over primary p99.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GateLatency {
    pub verdict: GateVerdict,
    /// Upper bounds of the histogram buckets the p99 falls in (buckets are ~19% wide).
    pub primary_p99_ms: Option<f64>,
    pub candidate_p99_ms: Option<f64>,
    pub ratio: Option<f64>,
    pub max_ratio: f64,
}

/// The error check: candidate 5xx-and-error rate minus the primary's, in percentage points.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GateErrors {
    pub verdict: GateVerdict,
    pub primary_rate_percent: Option<f64>,
    pub candidate_rate_percent: Option<f64>,
    pub delta_points: Option<f64>,
    pub max_delta_points: f64,
}
