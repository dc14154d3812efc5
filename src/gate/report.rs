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
    /// The p99 limit, also in `max_latency_ratio`.
    pub max_p99_ratio: Option<f64>,
    /// Each limited percentile (`p50`, `p99.9`) with its maximum ratio.
    #[serde(default)]
    pub max_latency_ratio: std::collections::BTreeMap<String, f64>,
    /// The least share of compared pairs with byte-identical bodies, in percent.
    #[serde(default)]
    pub min_byte_parity_percent: Option<f64>,
    pub max_error_rate_delta_points: Option<f64>,
    /// The severity classes that fail the gate; empty: none.
    #[serde(default)]
    pub fail_on: Vec<String>,
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
    /// With `min_byte_parity`.
    #[serde(default)]
    pub byte_parity: Option<GateByteParity>,
    pub errors: Option<GateErrors>,
    /// Cost per compared request, always shown, never judged.
    #[serde(default)]
    pub cost: Option<GateCost>,
    /// Mismatches by severity class, always shown; judged with `fail_on`.
    #[serde(default)]
    pub severity: Option<GateSeverity>,
    /// Why the verdict is what it is, one line each.
    pub reasons: Vec<String>,
}

/// The latency check: each limited percentile of the candidate over the
/// primary's. Percentiles are within 0.4% of the true values (histogram
/// buckets under 0.8% wide).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GateLatency {
    pub verdict: GateVerdict,
    pub primary_p99_ms: Option<f64>,
    pub candidate_p99_ms: Option<f64>,
    /// The ratio of the percentile closest to, or furthest past, its limit.
    pub ratio: Option<f64>,
    pub max_ratio: f64,
    /// Every limited percentile.
    #[serde(default)]
    pub percentiles: Vec<GateLatencyPercentile>,
}

/// One limited percentile.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GateLatencyPercentile {
    /// `p50`, `p99.9`.
    pub percentile: String,
    pub verdict: GateVerdict,
    pub primary_ms: Option<f64>,
    pub candidate_ms: Option<f64>,
    pub ratio: Option<f64>,
    pub max_ratio: f64,
}

/// The byte-for-byte check: the share of compared pairs whose decoded
/// bodies were identical bytes, judged like parity (Wilson lower bound).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GateByteParity {
    pub verdict: GateVerdict,
    pub byte_equal: i64,
    /// Compared pairs whose bytes were counted (all of them, but those
    /// recorded by releases before byte parity).
    pub pairs: i64,
    pub percent: Option<f64>,
    pub lower_bound_percent: Option<f64>,
    pub min_percent: f64,
}

/// Cost per compared request as a proxy sees it: backend time to the
/// response head and response body bytes (as sent, encoded), per side.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct GateCost {
    pub primary: SideCost,
    pub candidate: SideCost,
    /// Candidate mean time over the primary's.
    pub time_ratio: Option<f64>,
    /// Candidate bytes per request over the primary's.
    pub bytes_ratio: Option<f64>,
}

/// One side's cost per compared request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SideCost {
    pub mean_ms: Option<f64>,
    pub bytes_per_request: Option<f64>,
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

/// Mismatches in the window by their group's severity class, most severe
/// first; groups triaged `expected` are left out (whatever
/// `exclude_expected` says), as the `fail_on` check leaves them out.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct GateSeverity {
    /// With `fail_on`: fail when a class it names had mismatches, else
    /// pass; null without it.
    pub verdict: Option<GateVerdict>,
    pub status: i64,
    pub structure: i64,
    pub membership: i64,
    pub value: i64,
    pub headers: i64,
    /// In groups of no known class: stored before classes were kept, or
    /// counted by an earlier release.
    pub unknown: i64,
}
