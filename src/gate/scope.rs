//! One scope's verdict (the total or an endpoint): parity from the Wilson
//! interval, then the optional latency and error checks, each adding its
//! reasons; the worst of them is the scope's verdict.

use super::latency::{cost, latency_verdict};
use super::stats::{comparisons_to_decide, wilson_interval};
use super::{
    Counts, Criteria, GateByteParity, GateErrors, GateScope, GateVerdict, Limit, MinParity, Side,
};
use crate::store::Histogram;

/// The primary's and the candidate's error rates (fractions), as the
/// summary shows them and the gate compares them: 5xx responses, failures
/// and timeouts, among the requests each side was asked. Failures and
/// timeouts count against each side alike.
pub fn error_rates(counts: &Counts) -> (Option<f64>, Option<f64>) {
    let compared = counts.matched() + counts.mismatched();
    let primary_failed = counts.primary_failures();
    let candidate_failed = counts.candidate_errors();
    let rate = |n: i64, of: i64| (of > 0).then(|| n as f64 / of as f64);
    (
        rate(
            counts.server_errors(Side::Primary) + primary_failed,
            compared + primary_failed,
        ),
        rate(
            counts.server_errors(Side::Candidate) + candidate_failed,
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

/// What a scope's stored outcomes add up to, as parity sees them.
struct Tally {
    matched: i64,
    /// Mismatches less those left out as expected.
    mismatched: i64,
    expected: i64,
    candidate_errors: i64,
    skipped: i64,
    dropped: i64,
    /// matched + mismatched + candidate errors.
    comparisons: i64,
}

impl Tally {
    fn of(counts: &Counts, expected: i64, exclude_expected: bool) -> Tally {
        let matched = counts.matched();
        let all_mismatched = counts.mismatched();
        let expected = if exclude_expected {
            expected.clamp(0, all_mismatched)
        } else {
            0
        };
        let mismatched = all_mismatched - expected;
        let candidate_errors = counts.candidate_errors();
        Tally {
            matched,
            mismatched,
            expected,
            candidate_errors,
            skipped: counts.skipped(),
            dropped: counts.dropped(),
            comparisons: matched + mismatched + candidate_errors,
        }
    }
}

/// The parity check's outcome: its verdict and the numbers it shows.
struct Parity {
    verdict: GateVerdict,
    /// matched / comparisons; `None` without comparisons.
    observed: Option<f64>,
    /// The Wilson interval's bounds.
    lo: f64,
    hi: f64,
    /// For an undecided parity: about how many more comparisons would decide.
    more: Option<u64>,
}

/// Judges one scope; its reasons list parity's first, then latency's, then errors'.
pub(super) fn evaluate_scope(
    criteria: &Criteria,
    endpoint: &str,
    enforced: bool,
    outcomes: &Counts,
    expected: i64,
    primary_latency: &Histogram,
    candidate_latency: &Histogram,
) -> GateScope {
    let t = Tally::of(outcomes, expected, criteria.exclude_expected);
    let mut reasons = Vec::new();
    let parity = parity_verdict(criteria, &t, &mut reasons);
    let latency = (!criteria.max_latency_ratio.is_empty()).then(|| {
        latency_verdict(
            &criteria.max_latency_ratio,
            primary_latency,
            candidate_latency,
            &mut reasons,
        )
    });
    let byte_parity = criteria
        .min_byte_parity
        .map(|min| byte_parity_verdict(criteria, min, outcomes, &mut reasons));
    let errors = criteria
        .max_error_rate_delta
        .map(|max| errors_verdict(max, outcomes, &mut reasons));

    let verdict = [
        Some(parity.verdict),
        latency.as_ref().map(|l| l.verdict),
        byte_parity.as_ref().map(|b| b.verdict),
        errors.as_ref().map(|e| e.verdict),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(GateVerdict::Inconclusive);
    let sampled = t.comparisons + t.expected + t.skipped + t.dropped;
    GateScope {
        endpoint: endpoint.to_string(),
        verdict,
        enforced,
        matched: t.matched,
        mismatched: t.mismatched,
        expected: t.expected,
        candidate_errors: t.candidate_errors,
        skipped: t.skipped,
        dropped: t.dropped,
        comparisons: t.comparisons,
        parity_percent: parity.observed.map(|p| round4(p * 100.0)),
        lower_bound_percent: parity.observed.map(|_| round4(parity.lo * 100.0)),
        upper_bound_percent: parity.observed.map(|_| round4(parity.hi * 100.0)),
        coverage_percent: percent(t.comparisons + t.expected, sampled),
        more_comparisons_needed: (verdict == GateVerdict::Inconclusive)
            .then_some(parity.more)
            .flatten(),
        latency,
        byte_parity,
        errors,
        cost: Some(cost(outcomes, primary_latency, candidate_latency)),
        // Filled in by `classes::judge`, from the groups' counts.
        severity: None,
        reasons,
    }
}

/// Pass when the interval's lower bound reaches the minimum (and there are
/// `min_samples` comparisons), fail when its upper bound stays below it.
fn parity_verdict(criteria: &Criteria, t: &Tally, reasons: &mut Vec<String>) -> Parity {
    let min = criteria.min_parity.fraction();
    let z = criteria.confidence.z();
    let (lo, hi) = wilson_interval(t.matched as f64, t.comparisons as f64, z);
    let observed = (t.comparisons > 0).then(|| t.matched as f64 / t.comparisons as f64);
    let mut more = None;
    let verdict = match observed {
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
            let short = criteria.min_samples.saturating_sub(t.comparisons as u64);
            if lo >= min && short == 0 {
                GateVerdict::Pass
            } else {
                let at_rate = if lo >= min {
                    None
                } else {
                    comparisons_to_decide(p, min, z).map(|n| n.saturating_sub(t.comparisons as u64))
                };
                more = match at_rate {
                    Some(n) => Some(n.max(short)),
                    None if short > 0 => Some(short),
                    None => None,
                };
                reasons.push(undecided_reason(criteria, t.comparisons, p, lo, more));
                GateVerdict::Inconclusive
            }
        }
    };
    Parity {
        verdict,
        observed,
        lo,
        hi,
        more,
    }
}

/// Why parity `p`, with lower bound `lo`, decides nothing yet.
fn undecided_reason(
    criteria: &Criteria,
    comparisons: i64,
    p: f64,
    lo: f64,
    more: Option<u64>,
) -> String {
    let min = criteria.min_parity.fraction();
    match (lo >= min, p > min, more) {
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
    }
}

/// The byte-for-byte check: byte-equal pairs among measured pairs, passing
/// when the Wilson lower bound reaches `min` and failing when the upper
/// bound stays below it, as parity does.
fn byte_parity_verdict(
    criteria: &Criteria,
    min: MinParity,
    outcomes: &Counts,
    reasons: &mut Vec<String>,
) -> GateByteParity {
    // Pairs counted by a release that counts byte-equal ones: earlier
    // minutes (or instances) would otherwise count as unequal.
    let pairs = outcomes.measured_pairs();
    let equal = outcomes.byte_equal().clamp(0, pairs.max(0));
    let (lo, hi) = wilson_interval(equal as f64, pairs as f64, criteria.confidence.z());
    let verdict = if pairs == 0 {
        reasons.push("no compared pairs for byte parity".to_string());
        GateVerdict::Inconclusive
    } else if hi < min.fraction() {
        reasons.push(format!(
            "byte parity is below {}% even at its upper bound ({:.3}%)",
            min.percent(),
            hi * 100.0
        ));
        GateVerdict::Fail
    } else if lo >= min.fraction() {
        GateVerdict::Pass
    } else {
        reasons.push(format!(
            "too few pairs to pass byte parity: the lower bound is {:.3}% (min {}%)",
            lo * 100.0,
            min.percent()
        ));
        GateVerdict::Inconclusive
    };
    GateByteParity {
        verdict,
        byte_equal: equal,
        pairs,
        percent: percent(equal, pairs),
        lower_bound_percent: (pairs > 0).then(|| round4(lo * 100.0)),
        min_percent: min.percent(),
    }
}

/// The error check: the candidate's error rate at most `max` percentage
/// points above the primary's.
fn errors_verdict(max: Limit, outcomes: &Counts, reasons: &mut Vec<String>) -> GateErrors {
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
}
