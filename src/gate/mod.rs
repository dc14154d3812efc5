//! The rollout gate: decides from stored outcomes whether the candidate may
//! take the next traffic step. Parity is matched / (matched + mismatched +
//! candidate errors); a scope passes only when the Wilson lower bound of its
//! parity reaches the minimum, fails when the upper bound stays below it, and
//! is inconclusive in between, so twelve lucky requests never pass.
//!
//! The decision itself ([`decide`]) is pure; [`gather`] reads what it needs
//! through the `Store` trait, and [`remote`] asks a running report API. The
//! CLI and `/api/v1/gate` both end in [`decide`], so they cannot disagree.

pub mod remote;
pub mod render;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

use crate::compare::instant::format_millis;
use crate::report::types::{
    GateCriteria, GateErrors, GateLatency, GateReport, GateScope, GateVerdict, WindowView,
};
use crate::store::bucket_upper_bound;
use crate::store::{Store, StoreError, Window};

/// The window when `since` is not given: the last hour.
pub const DEFAULT_WINDOW_MS: i64 = 3_600_000;

/// A window bound as given: an RFC 3339 time or a duration meaning that
/// long ago (`15m`, `2h`, `7d`). Kept as written, to pass on to a report API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeBound(String);

impl FromStr for TimeBound {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if crate::compare::instant::parse_millis(s).is_some()
            || s.parse::<crate::config::HumanDuration>().is_ok()
        {
            Ok(TimeBound(s.to_string()))
        } else {
            Err(format!(
                "expected an RFC 3339 time (2026-01-01T00:00:00Z) or a duration (15m, 2h, 7d); got {s:?}"
            ))
        }
    }
}

impl TimeBound {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Unix milliseconds, durations counted back from `now_ms`; `None` for a
    /// duration reaching before any time that can be stored.
    pub fn resolve(&self, now_ms: i64) -> Option<i64> {
        if let Some(ms) = crate::compare::instant::parse_millis(&self.0) {
            return Some(ms);
        }
        let ago = self.0.parse::<crate::config::HumanDuration>().ok()?;
        let ago = i64::try_from(ago.0.as_millis()).ok()?;
        // Stored minutes are small positive numbers; far earlier is an input error.
        now_ms.checked_sub(ago).filter(|ms| *ms > -(1 << 50))
    }
}

/// Where a gate reads from.
pub enum Source<'a> {
    /// A running report API: base URL and token.
    Api {
        url: &'a str,
        token: Option<&'a str>,
    },
    /// The database itself.
    Database(&'a crate::store::DatabaseUrl),
}

/// Why a gate could not decide at all (exit 2, never a verdict).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The report API gave no decision.
    #[error(transparent)]
    Remote(#[from] remote::RemoteError),
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The window is empty or out of range.
    #[error("{0}")]
    Window(#[from] WindowError),
}

/// A window that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WindowError {
    /// A duration reaching before any time that can be stored.
    #[error("`{0}` reaches before any time that can be stored")]
    TooEarly(&'static str),
    /// `since` is not before `until`.
    #[error("`since` must be before `until`")]
    Empty,
}

/// The window a gate reads, the same for the API and the CLI: `until`
/// defaults to now (into the current minute), `since` to an hour before
/// `until`, or, for a replay run, to the run's beginning.
pub fn window(
    since: Option<&TimeBound>,
    until: Option<&TimeBound>,
    run: Option<&str>,
    now_ms: i64,
) -> Result<Window, WindowError> {
    let until_ms = match until {
        Some(u) => u.resolve(now_ms).ok_or(WindowError::TooEarly("until"))?,
        None => now_ms + 60_000,
    };
    let since_ms = match (since, run) {
        (Some(s), _) => s.resolve(now_ms).ok_or(WindowError::TooEarly("since"))?,
        (None, Some(_)) => 0,
        (None, None) => until_ms - DEFAULT_WINDOW_MS,
    };
    if since_ms >= until_ms {
        return Err(WindowError::Empty);
    }
    Ok(Window { since_ms, until_ms })
}

/// Decides from a report API or a database.
pub async fn evaluate(
    source: Source<'_>,
    criteria: &Criteria,
    since: Option<&TimeBound>,
    until: Option<&TimeBound>,
    run: Option<&str>,
) -> Result<GateReport, GateError> {
    match source {
        Source::Api { url, token } => Ok(remote::fetch(
            url,
            token,
            criteria,
            since.map(TimeBound::as_str),
            until.map(TimeBound::as_str),
            run,
        )
        .await?),
        Source::Database(url) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let window = window(since, until, run, now)?;
            // Read only: a gate never migrates or creates a database.
            let store = crate::store::SqlStore::open_existing(url).await?;
            let data = gather(&store, window, run.unwrap_or(""), criteria).await?;
            Ok(decide(criteria, window, run, &data))
        }
    }
}

/// Why the store cannot be decided on, if it cannot: a writer whose writes
/// fail now (its counts wait in memory, so the stored ones are short), or
/// records this process lost to a failure in the window. Either makes the
/// gate an operational error rather than a verdict. Exemplars left out by
/// their bounds in a mismatch storm (`lost_records`) do not: the counts the
/// gate decides on are whole.
pub fn store_problem(
    window: Window,
    health: Option<&crate::writer::health::HealthSnapshot>,
) -> Option<String> {
    use crate::compare::instant::format_millis;
    let health = health?;
    if let (Some(since), Some(class)) = (health.failing_since_ms, health.last_error) {
        return Some(format!(
            "the store is unhealthy: its writes have failed since {} ({}), so the stored counts are incomplete; see `store` in /api/v1/summary",
            format_millis(since),
            class.as_str()
        ));
    }
    let lost_in_window = health
        .last_failure_loss_ms
        .is_some_and(|at| at >= window.since_ms && at < window.until_ms);
    lost_in_window.then(|| {
        "the store is unhealthy: records were lost to failed writes in the window; see `store` in /api/v1/summary".to_string()
    })
}

/// The version of [`GateReport`]'s JSON.
pub const REPORT_VERSION: u32 = 1;

/// The least parity to pass, in percent (`99.9`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MinParity(f64);

impl MinParity {
    /// As a fraction from 0 to 1.
    pub fn fraction(self) -> f64 {
        self.0 / 100.0
    }
    pub fn percent(self) -> f64 {
        self.0
    }
}

impl Default for MinParity {
    fn default() -> Self {
        MinParity(99.9)
    }
}

impl FromStr for MinParity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().trim_end_matches('%').parse::<f64>() {
            Ok(v) if (0.0..=100.0).contains(&v) => Ok(MinParity(v)),
            _ => Err(format!(
                "minimum parity is a percentage from 0 to 100, such as 99.9; got {s:?}"
            )),
        }
    }
}

/// The confidence of the Wilson interval, strictly between 0 and 1 (`0.95`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Confidence(f64);

impl Confidence {
    pub fn get(self) -> f64 {
        self.0
    }

    /// The two-sided standard normal quantile: 1.96 for 0.95.
    pub fn z(self) -> f64 {
        normal_quantile(1.0 - (1.0 - self.0) / 2.0)
    }
}

impl Default for Confidence {
    fn default() -> Self {
        Confidence(0.95)
    }
}

impl FromStr for Confidence {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<f64>() {
            Ok(v) if v > 0.0 && v < 1.0 => Ok(Confidence(v)),
            _ => Err(format!(
                "confidence is a fraction between 0 and 1 (exclusive), such as 0.95; got {s:?}"
            )),
        }
    }
}

/// A positive finite limit, such as a latency ratio or percentage points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit(f64);

impl Limit {
    pub fn get(self) -> f64 {
        self.0
    }
}

impl FromStr for Limit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(Limit(v)),
            _ => Err(format!(
                "expected a number of at least 0, such as 1.05 or 0.5; got {s:?}"
            )),
        }
    }
}

/// An endpoint pattern: `GET /api/users/*`. `*` matches within one path
/// segment, `**` across segments; without a method the pattern matches the
/// path under any method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointGlob(String);

impl FromStr for EndpointGlob {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err(
                "an endpoint pattern cannot be empty; use 'GET /api/users/*' or '/api/**'".into(),
            );
        }
        let path = s.rsplit_once(' ').map_or(s, |(_, p)| p);
        if !path.starts_with('/') {
            return Err(format!(
                "an endpoint pattern is `METHOD /path` or `/path`, with * and ** as wildcards; got {s:?}"
            ));
        }
        Ok(EndpointGlob(s.to_string()))
    }
}

impl fmt::Display for EndpointGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl EndpointGlob {
    pub fn matches(&self, endpoint: &str) -> bool {
        let target = if self.0.contains(' ') {
            endpoint
        } else {
            endpoint.split_once(' ').map_or(endpoint, |(_, path)| path)
        };
        glob(self.0.as_bytes(), target.as_bytes())
    }
}

/// Matches in O(pattern × text) steps, whatever the pattern: the reachable
/// text positions after each pattern token. (A backtracking matcher would
/// take exponential time on patterns such as `/**/**/**/**x`.)
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let n = text.len();
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    let mut p = 0;
    while p < pattern.len() {
        let mut next = vec![false; n + 1];
        if pattern[p] == b'*' {
            let across = pattern.get(p + 1) == Some(&b'*');
            p += if across { 2 } else { 1 };
            // Reachable from some earlier position without crossing a '/'
            // (or crossing anything, for `**`).
            let mut open = false;
            for j in 0..=n {
                if j > 0 && !across && text[j - 1] == b'/' {
                    open = false;
                }
                open |= reach[j];
                next[j] = open;
            }
        } else {
            for j in 0..n {
                next[j + 1] = reach[j] && text[j] == pattern[p];
            }
            p += 1;
        }
        reach = next;
    }
    reach[n]
}

/// What a gate checks, parsed once from flags or query parameters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Criteria {
    pub min_parity: MinParity,
    pub confidence: Confidence,
    pub per_endpoint: bool,
    pub min_samples: u64,
    pub exclude_expected: bool,
    pub max_p99_ratio: Option<Limit>,
    pub max_error_rate_delta: Option<Limit>,
    /// Empty: every endpoint.
    pub endpoints: Vec<EndpointGlob>,
}

/// A query parameter that does not parse, named.
#[derive(Debug, thiserror::Error)]
#[error("`{parameter}`: {message}")]
pub struct CriteriaError {
    pub parameter: String,
    pub message: String,
}

/// The query parameters the gate takes besides `since`, `until` and `run`.
pub const CRITERIA_PARAMETERS: [&str; 8] = [
    "min_parity",
    "confidence",
    "per_endpoint",
    "min_samples",
    "exclude_expected",
    "max_p99_ratio",
    "max_error_rate_delta",
    "endpoint",
];

impl Criteria {
    /// From query parameters (`endpoint` may repeat); unknown names are the caller's to refuse.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Criteria, CriteriaError> {
        fn parse<T: FromStr<Err = String>>(name: &str, value: &str) -> Result<T, CriteriaError> {
            value.parse().map_err(|message| CriteriaError {
                parameter: name.to_string(),
                message,
            })
        }
        fn flag(name: &str, value: &str) -> Result<bool, CriteriaError> {
            parse_flag(value).map_err(|message| CriteriaError {
                parameter: name.to_string(),
                message,
            })
        }
        let mut c = Criteria::default();
        for (name, value) in pairs {
            match name.as_str() {
                "min_parity" => c.min_parity = parse(name, value)?,
                "confidence" => c.confidence = parse(name, value)?,
                "per_endpoint" => c.per_endpoint = flag(name, value)?,
                "exclude_expected" => c.exclude_expected = flag(name, value)?,
                "min_samples" => {
                    c.min_samples = value.trim().parse().map_err(|_| CriteriaError {
                        parameter: name.clone(),
                        message: format!("expected a whole number of at least 0; got {value:?}"),
                    })?
                }
                "max_p99_ratio" => c.max_p99_ratio = Some(parse(name, value)?),
                "max_error_rate_delta" => c.max_error_rate_delta = Some(parse(name, value)?),
                "endpoint" => c.endpoints.push(parse(name, value)?),
                _ => {}
            }
        }
        Ok(c)
    }

    /// The same criteria as query parameters, for asking a report API.
    pub fn to_query(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![
            ("min_parity", self.min_parity.0.to_string()),
            ("confidence", self.confidence.0.to_string()),
            ("per_endpoint", self.per_endpoint.to_string()),
            ("min_samples", self.min_samples.to_string()),
            ("exclude_expected", self.exclude_expected.to_string()),
        ];
        if let Some(r) = self.max_p99_ratio {
            q.push(("max_p99_ratio", r.0.to_string()));
        }
        if let Some(d) = self.max_error_rate_delta {
            q.push(("max_error_rate_delta", d.0.to_string()));
        }
        q.extend(self.endpoints.iter().map(|e| ("endpoint", e.0.clone())));
        q
    }

    fn selects(&self, endpoint: &str) -> bool {
        self.endpoints.is_empty() || self.endpoints.iter().any(|g| g.matches(endpoint))
    }
}

/// A boolean query parameter: `true`/`false`, `1`/`0`, `yes`/`no`; empty
/// (`?per_endpoint`) is true.
pub fn parse_flag(value: &str) -> Result<bool, String> {
    match value {
        "" | "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("expected true or false; got {value:?}")),
    }
}

/// The stand-in endpoint name of the total.
pub const TOTAL: &str = "total";

/// One endpoint's stored numbers over the window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointData {
    pub endpoint: String,
    /// By outcome key, as counted by the store writer.
    pub outcomes: BTreeMap<String, i64>,
    /// Mismatches in groups triaged as expected (read only when excluded).
    pub expected: i64,
    /// Latency histograms (bucket → count), read only for a latency gate.
    pub primary_latency: Vec<(i64, i64)>,
    pub candidate_latency: Vec<(i64, i64)>,
}

/// Reads what [`decide`] needs for the endpoints the criteria select.
pub async fn gather(
    store: &dyn Store,
    window: Window,
    run: &str,
    criteria: &Criteria,
) -> Result<Vec<EndpointData>, StoreError> {
    let expected: HashMap<String, i64> = if criteria.exclude_expected {
        store.expected(window, run).await?.into_iter().collect()
    } else {
        HashMap::new()
    };
    let mut out = Vec::new();
    for counts in store.counts(window, run, None).await? {
        if !criteria.selects(&counts.endpoint) {
            continue;
        }
        let (primary_latency, candidate_latency) = if criteria.max_p99_ratio.is_some() {
            (
                store
                    .latency(window, run, &counts.endpoint, "primary")
                    .await?,
                store
                    .latency(window, run, &counts.endpoint, "candidate")
                    .await?,
            )
        } else {
            (Vec::new(), Vec::new())
        };
        out.push(EndpointData {
            expected: expected.get(&counts.endpoint).copied().unwrap_or(0),
            endpoint: counts.endpoint,
            outcomes: counts.outcomes,
            primary_latency,
            candidate_latency,
        });
    }
    Ok(out)
}

/// The standard normal quantile function (Acklam's rational approximation,
/// relative error below 1.2e-9), for 0 < p < 1.
pub fn normal_quantile(p: f64) -> f64 {
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] = [
        7.784_695_709_041_462e-3,
        3.224_671_290_700_398e-1,
        2.445_134_137_142_996,
        3.754_408_661_907_416,
    ];
    let tail = |q: f64| {
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    const LOW: f64 = 0.024_25;
    if p < LOW {
        tail((-2.0 * p.ln()).sqrt())
    } else if p > 1.0 - LOW {
        -tail((-2.0 * (1.0 - p).ln()).sqrt())
    } else {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    }
}

/// The Wilson score interval of a proportion: `successes` out of `n`, with
/// the normal quantile `z`. `(0, 1)` when there is nothing to go on.
pub fn wilson_interval(successes: f64, n: f64, z: f64) -> (f64, f64) {
    if n <= 0.0 {
        return (0.0, 1.0);
    }
    let p = (successes / n).clamp(0.0, 1.0);
    let z2 = z * z;
    let denominator = 1.0 + z2 / n;
    let centre = (p + z2 / (2.0 * n)) / denominator;
    let half = z * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt() / denominator;
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

/// The least number of comparisons at parity `p` that would decide: pass
/// (lower bound reaches `min`) when `p` is above it, fail (upper bound
/// below it) when under. `None` when no amount would.
pub fn comparisons_to_decide(p: f64, min: f64, z: f64) -> Option<u64> {
    let decided = |n: u64| {
        let (lo, hi) = wilson_interval(p * n as f64, n as f64, z);
        if p > min {
            lo >= min
        } else {
            hi < min
        }
    };
    const MAX: u64 = 1 << 40;
    if p == min || !decided(MAX) {
        return None;
    }
    let (mut low, mut high) = (1u64, MAX);
    while low < high {
        let mid = low + (high - low) / 2;
        if decided(mid) {
            high = mid;
        } else {
            low = mid + 1;
        }
    }
    Some(low)
}

/// The sum of the outcome counts whose key starts with `prefix`
/// (`candidate_error/`, `skipped/`, …).
pub fn sum_prefix(outcomes: &BTreeMap<String, i64>, prefix: &str) -> i64 {
    outcomes
        .iter()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(_, n)| n)
        .sum()
}

/// The primary's and the candidate's error rates (fractions), as the
/// summary shows them and the gate compares them: 5xx responses, failures
/// and timeouts, among the requests each side was asked. Failures and
/// timeouts count against each side alike.
pub fn error_rates(outcomes: &BTreeMap<String, i64>) -> (Option<f64>, Option<f64>) {
    let get = |k: &str| outcomes.get(k).copied().unwrap_or(0);
    let compared = get("matched") + get("mismatched");
    let primary_failed = get("skipped/primary_error") + get("skipped/primary_timeout");
    let candidate_failed = sum_prefix(outcomes, "candidate_error/");
    let rate = |n: i64, of: i64| (of > 0).then(|| n as f64 / of as f64);
    (
        rate(
            get("primary_5xx") + primary_failed,
            compared + primary_failed,
        ),
        rate(
            get("candidate_5xx") + candidate_failed,
            compared + candidate_failed,
        ),
    )
}

/// Four decimals: what a report needs, without binary-float noise.
fn round4(v: f64) -> f64 {
    (v * 10_000.0).round() / 10_000.0
}

/// A rate in percent, or nothing over nothing.
fn percent(n: i64, of: i64) -> Option<f64> {
    (of > 0).then(|| round4(n as f64 * 100.0 / of as f64))
}

/// The p99 of a fixed-bucket histogram: its bucket's upper bound, in ms.
fn p99_ms(histogram: &[(i64, i64)]) -> Option<f64> {
    let total: i64 = histogram.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let rank = ((0.99 * total as f64).ceil() as i64).max(1);
    let mut seen = 0;
    histogram.iter().find_map(|(bucket, n)| {
        seen += n;
        (seen >= rank).then(|| round4(bucket_upper_bound(*bucket).as_secs_f64() * 1_000.0))
    })
}

fn merge(histograms: &mut BTreeMap<i64, i64>, more: &[(i64, i64)]) {
    for (bucket, n) in more {
        *histograms.entry(*bucket).or_default() += n;
    }
}

fn evaluate_scope(
    criteria: &Criteria,
    endpoint: &str,
    enforced: bool,
    outcomes: &BTreeMap<String, i64>,
    expected: i64,
    primary_latency: &[(i64, i64)],
    candidate_latency: &[(i64, i64)],
) -> GateScope {
    let get = |k: &str| outcomes.get(k).copied().unwrap_or(0);
    let sum = |prefix: &str| sum_prefix(outcomes, prefix);
    let matched = get("matched");
    let all_mismatched = get("mismatched");
    let expected = if criteria.exclude_expected {
        expected.clamp(0, all_mismatched)
    } else {
        0
    };
    let mismatched = all_mismatched - expected;
    let candidate_errors = sum("candidate_error/");
    let (skipped, dropped) = (sum("skipped/"), sum("dropped/"));
    let comparisons = matched + mismatched + candidate_errors;
    let min = criteria.min_parity.fraction();
    let z = criteria.confidence.z();
    let mut reasons = Vec::new();

    let (lo, hi) = wilson_interval(matched as f64, comparisons as f64, z);
    let parity = (comparisons > 0).then(|| matched as f64 / comparisons as f64);
    let mut more = None;
    let parity_verdict = match parity {
        None => {
            reasons.push("no comparisons in the window".to_string());
            GateVerdict::Inconclusive
        }
        Some(_) if hi < min => {
            reasons.push(format!(
                "parity is below {}% even at its upper bound ({:.3}%)",
                criteria.min_parity.percent(),
                hi * 100.0
            ));
            GateVerdict::Fail
        }
        Some(p) => {
            let short = criteria.min_samples.saturating_sub(comparisons as u64);
            if lo >= min && short == 0 {
                GateVerdict::Pass
            } else {
                let at_rate = if lo >= min {
                    None
                } else {
                    comparisons_to_decide(p, min, z).map(|n| n.saturating_sub(comparisons as u64))
                };
                more = match at_rate {
                    Some(n) => Some(n.max(short)),
                    None if short > 0 => Some(short),
                    None => None,
                };
                reasons.push(match (lo >= min, p > min, more) {
                    (true, _, Some(n)) => format!(
                        "only {comparisons} comparisons; at least {} are required (min samples), {n} more",
                        criteria.min_samples
                    ),
                    (false, true, Some(n)) => format!(
                        "too few comparisons to pass: the lower bound is {:.3}%; about {n} more at the observed parity would decide",
                        lo * 100.0
                    ),
                    (false, false, Some(n)) => format!(
                        "observed parity is below {}%, but not yet surely: about {n} more comparisons at this parity would confirm a failure",
                        criteria.min_parity.percent()
                    ),
                    _ => format!(
                        "parity equals the minimum; more comparisons cannot decide (lower bound {:.3}%)",
                        lo * 100.0
                    ),
                });
                GateVerdict::Inconclusive
            }
        }
    };

    let latency = criteria.max_p99_ratio.map(|max| {
        let (p, c) = (p99_ms(primary_latency), p99_ms(candidate_latency));
        let ratio = match (p, c) {
            (Some(p), Some(c)) if p > 0.0 => Some(round4(c / p)),
            _ => None,
        };
        let verdict = match ratio {
            None => {
                reasons.push("no latency samples for both sides".to_string());
                GateVerdict::Inconclusive
            }
            Some(r) if r > max.get() => {
                reasons.push(format!(
                    "candidate p99 is {r:.2}× the primary's (max {})",
                    max.get()
                ));
                GateVerdict::Fail
            }
            Some(_) => GateVerdict::Pass,
        };
        GateLatency {
            verdict,
            primary_p99_ms: p,
            candidate_p99_ms: c,
            ratio,
            max_ratio: max.get(),
        }
    });

    let errors = criteria.max_error_rate_delta.map(|max| {
        let (primary, candidate) = error_rates(outcomes);
        let (primary, candidate) = (
            primary.map(|r| round4(r * 100.0)),
            candidate.map(|r| round4(r * 100.0)),
        );
        let delta = primary.zip(candidate).map(|(p, c)| round4(c - p));
        let verdict = match delta {
            None => {
                reasons.push("no responses to compute error rates from".to_string());
                GateVerdict::Inconclusive
            }
            Some(d) if d > max.get() => {
                reasons.push(format!(
                    "candidate error rate is {d:.2} points above the primary's (max {})",
                    max.get()
                ));
                GateVerdict::Fail
            }
            Some(_) => GateVerdict::Pass,
        };
        GateErrors {
            verdict,
            primary_rate_percent: primary,
            candidate_rate_percent: candidate,
            delta_points: delta,
            max_delta_points: max.get(),
        }
    });

    let verdict = [
        Some(parity_verdict),
        latency.as_ref().map(|l| l.verdict),
        errors.as_ref().map(|e| e.verdict),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(GateVerdict::Inconclusive);
    let sampled = comparisons + expected + skipped + dropped;
    GateScope {
        endpoint: endpoint.to_string(),
        verdict,
        enforced,
        matched,
        mismatched,
        expected,
        candidate_errors,
        skipped,
        dropped,
        comparisons,
        parity_percent: parity.map(|p| round4(p * 100.0)),
        lower_bound_percent: parity.map(|_| round4(lo * 100.0)),
        upper_bound_percent: parity.map(|_| round4(hi * 100.0)),
        coverage_percent: percent(comparisons + expected, sampled),
        more_comparisons_needed: (verdict == GateVerdict::Inconclusive)
            .then_some(more)
            .flatten(),
        latency,
        errors,
        reasons,
    }
}

/// Decides: the total always counts; each endpoint counts with `per_endpoint`.
pub fn decide(
    criteria: &Criteria,
    window: Window,
    run: Option<&str>,
    data: &[EndpointData],
) -> GateReport {
    let mut all = BTreeMap::new();
    let (mut expected, mut primary, mut candidate) = (0, BTreeMap::new(), BTreeMap::new());
    for d in data {
        for (k, v) in &d.outcomes {
            *all.entry(k.clone()).or_insert(0) += v;
        }
        expected += d.expected;
        merge(&mut primary, &d.primary_latency);
        merge(&mut candidate, &d.candidate_latency);
    }
    let primary: Vec<(i64, i64)> = primary.into_iter().collect();
    let candidate: Vec<(i64, i64)> = candidate.into_iter().collect();
    let total = evaluate_scope(criteria, TOTAL, true, &all, expected, &primary, &candidate);
    let endpoints: Vec<GateScope> = data
        .iter()
        .map(|d| {
            evaluate_scope(
                criteria,
                &d.endpoint,
                criteria.per_endpoint,
                &d.outcomes,
                d.expected,
                &d.primary_latency,
                &d.candidate_latency,
            )
        })
        .map(|mut scope| {
            // An endpoint whose samples were all skipped or dropped (writes
            // without `mirror_unsafe`, upgrades, event streams) has nothing
            // to judge: shown, never holding the gate.
            if scope.comparisons == 0 && scope.enforced {
                scope.enforced = false;
                scope.reasons.push("not compared: not enforced".into());
            }
            scope
        })
        .collect();
    let verdict = std::iter::once(&total)
        .chain(endpoints.iter().filter(|e| e.enforced))
        .map(|s| s.verdict)
        .max()
        .unwrap_or(GateVerdict::Inconclusive);
    let reason = reason(&total, &endpoints, verdict);
    GateReport {
        version: REPORT_VERSION,
        pass: verdict == GateVerdict::Pass,
        verdict,
        reason,
        window: WindowView {
            since: format_millis(window.since_ms),
            until: format_millis(window.until_ms),
        },
        run: run.map(str::to_string),
        criteria: GateCriteria {
            min_parity_percent: criteria.min_parity.percent(),
            confidence: criteria.confidence.get(),
            per_endpoint: criteria.per_endpoint,
            min_samples: criteria.min_samples,
            exclude_expected: criteria.exclude_expected,
            max_p99_ratio: criteria.max_p99_ratio.map(Limit::get),
            max_error_rate_delta_points: criteria.max_error_rate_delta.map(Limit::get),
            endpoints: criteria.endpoints.iter().map(|e| e.0.clone()).collect(),
        },
        total,
        endpoints,
    }
}

fn reason(total: &GateScope, endpoints: &[GateScope], verdict: GateVerdict) -> String {
    let failing: Vec<&str> = endpoints
        .iter()
        .filter(|e| e.enforced && e.verdict == verdict && verdict != GateVerdict::Pass)
        .map(|e| e.endpoint.as_str())
        .collect();
    let parity = total
        .parity_percent
        .map_or("no comparisons".to_string(), |p| format!("parity {p:.3}%"));
    if total.comparisons == 0 {
        return "no comparisons in the window".into();
    }
    match verdict {
        GateVerdict::Pass => format!(
            "{parity} over {} comparisons; lower bound {:.3}%",
            total.comparisons,
            total.lower_bound_percent.unwrap_or(0.0)
        ),
        _ if failing.is_empty() => format!(
            "{parity} over {} comparisons: {}",
            total.comparisons,
            total.reasons.join("; ")
        ),
        _ if total.verdict == verdict => format!(
            "{parity} over {} comparisons: {}; {} on {}",
            total.comparisons,
            total.reasons.join("; "),
            verdict.as_str(),
            failing.join(", ")
        ),
        _ => format!("{} on {}", verdict.as_str(), failing.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_normal_quantile_matches_tables() {
        for (p, z) in [
            (0.975, 1.959_963_984_540_054),
            (0.95, 1.644_853_626_951_472),
            (0.995, 2.575_829_303_548_9),
            (0.9995, 3.290_526_731_491_926),
            (0.5, 0.0),
            (0.01, -2.326_347_874_040_841),
        ] {
            assert!((normal_quantile(p) - z).abs() < 1e-8, "p={p}");
        }
    }

    #[test]
    fn wilson_bounds_match_known_values() {
        let z = Confidence(0.95).z();
        // Reference values from the closed form in double precision
        // (as R's prop.test(correct = FALSE) prints them).
        for (s, n, lo, hi) in [
            (10.0, 10.0, 0.722_467_200_137, 1.0),
            (81.0, 263.0, 0.255_288_519_878, 0.366_209_576_983),
            (999.0, 1000.0, 0.994_357_441_402, 0.999_823_453_629),
            (19_990.0, 20_000.0, 0.999_079_777_125, 0.999_728_378_855),
            (20.0, 20.0, 0.838_874_841_947, 1.0),
            (0.0, 10.0, 0.0, 0.277_532_799_863),
        ] {
            let (l, h) = wilson_interval(s, n, z);
            assert!(
                (l - lo).abs() < 1e-9 && (h - hi).abs() < 1e-9,
                "{s}/{n}: {l} {h}"
            );
        }
        let (l, h) = wilson_interval(50.0, 100.0, Confidence(0.99).z());
        assert!((l - 0.375_279_625_045).abs() < 1e-9 && (h - 0.624_720_374_955).abs() < 1e-9);
        assert_eq!(wilson_interval(0.0, 0.0, z), (0.0, 1.0));
    }

    #[test]
    fn a_perfect_score_needs_thousands_of_comparisons_to_pass_at_99_9() {
        let z = Confidence(0.95).z();
        assert_eq!(comparisons_to_decide(1.0, 0.999, z), Some(3_838));
        assert_eq!(comparisons_to_decide(0.999, 0.999, z), None);
        // Below the minimum, more data confirms the failure.
        let n = comparisons_to_decide(0.99, 0.999, z).unwrap();
        assert!(wilson_interval(0.99 * n as f64, n as f64, z).1 < 0.999);
        assert!(wilson_interval(0.99 * (n - 1) as f64, (n - 1) as f64, z).1 >= 0.999);
    }

    fn data(endpoint: &str, matched: i64, mismatched: i64) -> EndpointData {
        EndpointData {
            endpoint: endpoint.into(),
            outcomes: [
                ("matched".to_string(), matched),
                ("mismatched".to_string(), mismatched),
                ("skipped/unsafe_method".to_string(), 5),
            ]
            .into(),
            ..EndpointData::default()
        }
    }

    const WINDOW: Window = Window {
        since_ms: 0,
        until_ms: 3_600_000,
    };

    #[test]
    fn verdicts_follow_the_interval() {
        let c = Criteria::default();
        let pass = decide(&c, WINDOW, None, &[data("GET /a", 19_990, 10)]);
        assert_eq!((pass.verdict, pass.pass), (GateVerdict::Pass, true));
        let fail = decide(&c, WINDOW, None, &[data("GET /a", 9_950, 50)]);
        assert_eq!(fail.verdict, GateVerdict::Fail);
        let few = decide(&c, WINDOW, None, &[data("GET /a", 20, 0)]);
        assert_eq!(few.verdict, GateVerdict::Inconclusive);
        assert_eq!(few.total.more_comparisons_needed, Some(3_818));
        assert!(!few.pass);
        let none = decide(&c, WINDOW, None, &[]);
        assert_eq!(none.verdict, GateVerdict::Inconclusive);
    }

    #[test]
    fn per_endpoint_makes_every_endpoint_count() {
        let d = [data("GET /a", 39_990, 0), data("GET /b", 90, 10)];
        let loose = decide(&Criteria::default(), WINDOW, None, &d);
        assert_eq!(loose.verdict, GateVerdict::Pass, "{}", loose.reason);
        assert_eq!(loose.endpoints[1].verdict, GateVerdict::Fail);
        assert!(!loose.endpoints[1].enforced);
        let strict = Criteria {
            per_endpoint: true,
            ..Criteria::default()
        };
        let strict = decide(&strict, WINDOW, None, &d);
        assert_eq!(strict.verdict, GateVerdict::Fail);
        assert_eq!(strict.reason, "fail on GET /b");
    }

    #[test]
    fn endpoints_without_comparisons_never_hold_the_gate() {
        let mut writes = data("POST /b", 0, 0);
        writes.outcomes = [("skipped/unsafe_method".to_string(), 50)].into();
        let c = Criteria {
            per_endpoint: true,
            ..Criteria::default()
        };
        let r = decide(&c, WINDOW, None, &[data("GET /a", 20_000, 0), writes]);
        assert_eq!(r.verdict, GateVerdict::Pass, "{}", r.reason);
        assert!(!r.endpoints[1].enforced);
        let none = decide(&c, WINDOW, None, &[]);
        assert_eq!(none.reason, "no comparisons in the window");
    }

    #[test]
    fn patterns_match_in_polynomial_time() {
        let pattern: EndpointGlob = format!("/{}b", "**/".repeat(200)).parse().unwrap();
        let endpoint = format!("GET /{}", "a/".repeat(300));
        assert!(!pattern.matches(&endpoint));
        let pattern: EndpointGlob = format!("/{}x", "*".repeat(300)).parse().unwrap();
        assert!(!pattern.matches(&format!("GET /{}", "a".repeat(500))));
    }

    #[test]
    fn windows_are_the_same_for_every_caller() {
        let now = 10 * 3_600_000;
        let t = |s: &str| s.parse::<TimeBound>().unwrap();
        let w = window(None, None, None, now).unwrap();
        assert_eq!(
            (w.since_ms, w.until_ms),
            (now + 60_000 - 3_600_000, now + 60_000)
        );
        let w = window(None, Some(&t("2h")), None, now).unwrap();
        assert_eq!(
            (w.since_ms, w.until_ms),
            (now - 3 * 3_600_000, now - 2 * 3_600_000)
        );
        assert_eq!(window(None, None, Some("r"), now).unwrap().since_ms, 0);
        assert_eq!(
            window(Some(&t("1h")), Some(&t("2h")), None, now),
            Err(WindowError::Empty)
        );
        assert_eq!(
            window(Some(&t("10000000000000w")), None, None, now),
            Err(WindowError::TooEarly("since"))
        );
    }

    #[test]
    fn expected_groups_leave_parity_and_min_samples_hold_a_pass() {
        let mut d = data("GET /a", 19_990, 500);
        d.expected = 490;
        let without = decide(&Criteria::default(), WINDOW, None, &[d.clone()]);
        assert_eq!(without.verdict, GateVerdict::Fail);
        let c = Criteria {
            exclude_expected: true,
            ..Criteria::default()
        };
        let with = decide(&c, WINDOW, None, &[d.clone()]);
        assert_eq!(
            (with.verdict, with.total.mismatched, with.total.expected),
            (GateVerdict::Pass, 10, 490)
        );
        let c = Criteria {
            exclude_expected: true,
            min_samples: 50_000,
            ..Criteria::default()
        };
        let held = decide(&c, WINDOW, None, &[d]);
        assert_eq!(held.verdict, GateVerdict::Inconclusive);
        assert_eq!(held.total.more_comparisons_needed, Some(50_000 - 20_000));
    }

    #[test]
    fn latency_and_error_gates() {
        let mut d = data("GET /a", 19_990, 10);
        d.primary_latency = vec![(40, 100)];
        d.candidate_latency = vec![(44, 100)];
        d.outcomes.insert("candidate_5xx".into(), 400);
        let c = Criteria {
            max_p99_ratio: Some(Limit(1.05)),
            ..Criteria::default()
        };
        let slow = decide(&c, WINDOW, None, &[d.clone()]);
        assert_eq!(slow.verdict, GateVerdict::Fail);
        assert!(slow.total.latency.as_ref().unwrap().ratio.unwrap() > 1.9);
        let c = Criteria {
            max_error_rate_delta: Some(Limit(0.5)),
            ..Criteria::default()
        };
        let erring = decide(&c, WINDOW, None, &[d]);
        assert_eq!(erring.verdict, GateVerdict::Fail);
        assert_eq!(
            erring.total.errors.as_ref().unwrap().delta_points,
            Some(2.0)
        );
    }

    #[test]
    fn endpoint_patterns() {
        let g: EndpointGlob = "GET /api/users/*".parse().unwrap();
        assert!(g.matches("GET /api/users/{id}"));
        assert!(!g.matches("GET /api/users/{id}/orders"));
        assert!(!g.matches("POST /api/users/{id}"));
        let g: EndpointGlob = "/api/**".parse().unwrap();
        assert!(g.matches("POST /api/users/{id}/orders"));
        assert!(!g.matches("GET /health"));
        let g: EndpointGlob = "* /api/users".parse().unwrap();
        assert!(g.matches("DELETE /api/users"));
        assert!("users".parse::<EndpointGlob>().is_err());
        assert!("".parse::<EndpointGlob>().is_err());
    }

    #[test]
    fn criteria_round_trip_through_query_parameters() {
        let c = Criteria {
            min_parity: "99.5".parse().unwrap(),
            confidence: "0.99".parse().unwrap(),
            per_endpoint: true,
            min_samples: 100,
            exclude_expected: true,
            max_p99_ratio: Some("1.05".parse().unwrap()),
            max_error_rate_delta: Some("0.5".parse().unwrap()),
            endpoints: vec!["GET /a/*".parse().unwrap(), "/b".parse().unwrap()],
        };
        let pairs: Vec<(String, String)> = c
            .to_query()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(Criteria::from_query(&pairs).unwrap(), c);
        let bad = [("confidence".to_string(), "95".to_string())];
        assert_eq!(
            Criteria::from_query(&bad).unwrap_err().parameter,
            "confidence"
        );
        assert!("100.1".parse::<MinParity>().is_err());
        assert!("-1".parse::<Limit>().is_err());
    }
}
