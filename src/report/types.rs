//! The report API's wire format: every JSON body it sends or accepts. Times
//! are RFC 3339 strings in UTC; counts are integers; rates are fractions
//! from 0 to 1, or null where nothing was measured.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::compare::instant::format_millis;
use crate::store::{Group, StoredBody, StoredMessage, StoredMismatch};
use crate::writer::health::HealthSnapshot;

#[derive(Serialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// With a store failure on the summary: the health of this process's
    /// store writer, which does not need the database to be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreStatus>,
}

#[derive(Serialize)]
pub struct ErrorDetail {
    /// A stable machine-readable code: bad_parameter, not_found, unauthorized, …
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct WindowView {
    pub since: String,
    pub until: String,
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
    /// Every outcome key with its count, reasons included.
    pub outcomes: BTreeMap<String, i64>,
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
}

#[derive(Serialize)]
pub struct EndpointSummary {
    pub endpoint: String,
    #[serde(flatten)]
    pub totals: Totals,
    /// From the fixed-bucket histograms: each value is its bucket's upper bound.
    pub latency_ms: Latencies,
    /// 5xx responses, failures and timeouts of the primary, among its sampled requests.
    pub primary_error_rate: Option<f64>,
    /// 5xx responses, errors and timeouts of the candidate, among its sampled requests.
    pub candidate_error_rate: Option<f64>,
}

#[derive(Serialize)]
pub struct Summary {
    pub window: WindowView,
    pub totals: Totals,
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
    /// exemplar_write_failed, counts_backlog_full, shutdown, disk_full.
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
    pub status: String,
    pub note: String,
}

#[derive(Serialize)]
pub struct StatusPair {
    pub primary: u16,
    pub candidate: u16,
}

impl From<Group> for GroupView {
    fn from(g: Group) -> Self {
        GroupView {
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
            status: g.status,
            note: g.note,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TriageRequest {
    pub status: String,
    pub note: Option<String>,
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
    pub paths: serde_json::Value,
}

impl From<&StoredMismatch> for MismatchSummary {
    fn from(m: &StoredMismatch) -> Self {
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
            paths: r.verdict.get("paths").cloned().unwrap_or_default(),
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
                data: base64(&b.bytes),
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
}

impl MessageView {
    fn of(m: &StoredMessage, is_response: bool) -> Self {
        MessageView {
            status: is_response.then_some(m.status),
            headers: m.headers.clone(),
            body: BodyView::from(&m.body),
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
    /// The verdict: JSON Patch, text diff, differing paths, reasons.
    pub verdict: serde_json::Value,
}

impl From<&StoredMismatch> for MismatchDetail {
    fn from(m: &StoredMismatch) -> Self {
        MismatchDetail {
            summary: MismatchSummary::from(m),
            query: m.record.query.clone(),
            request: MessageView::of(&m.record.request, false),
            primary: MessageView::of(&m.record.primary, true),
            candidate: MessageView::of(&m.record.candidate, true),
            verdict: m.record.verdict.clone(),
        }
    }
}

#[derive(Serialize)]
pub struct CurlCommands {
    pub primary: String,
    pub candidate: String,
    pub note: &'static str,
}

/// Standard base64 with padding (RFC 4648).
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::base64;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input.as_bytes()), want);
        }
    }
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
