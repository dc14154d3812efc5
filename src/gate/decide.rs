//! The decision over every scope: the total always counts, each endpoint
//! with `per_endpoint`; the worst enforced verdict wins and one sentence
//! says why. Pure: stored counts in, a [`GateReport`] out.

use std::collections::BTreeMap;

use super::scope::evaluate_scope;
use super::Counts;
use super::{
    Criteria, EndpointData, GateCriteria, GateReport, GateScope, GateVerdict, Limit, WindowView,
    REPORT_VERSION,
};
use crate::store::Window;
use crate::time::format_millis;

/// The stand-in endpoint name of the total.
pub const TOTAL: &str = "total";

fn merge(histograms: &mut BTreeMap<i64, i64>, more: &[(i64, i64)]) {
    for (bucket, n) in more {
        *histograms.entry(*bucket).or_default() += n;
    }
}

/// Decides: the total always counts; each endpoint counts with `per_endpoint`.
pub fn decide(
    criteria: &Criteria,
    window: Window,
    run: Option<&str>,
    data: &[EndpointData],
) -> GateReport {
    let mut all = Counts::default();
    let (mut expected, mut primary, mut candidate) = (0, BTreeMap::new(), BTreeMap::new());
    for d in data {
        all.merge(&d.outcomes);
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
            endpoints: criteria.endpoints.iter().map(|e| e.to_string()).collect(),
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
    use crate::gate::CountKey;

    fn data(endpoint: &str, matched: i64, mismatched: i64) -> EndpointData {
        EndpointData {
            endpoint: endpoint.into(),
            outcomes: Counts::from_stored([
                ("matched", matched),
                ("mismatched", mismatched),
                ("skipped/unsafe_method", 5),
            ]),
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
        writes.outcomes = Counts::from_stored([("skipped/unsafe_method", 50)]);
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
        d.outcomes.add(CountKey::parse("candidate_5xx"), 400);
        let c = Criteria {
            max_p99_ratio: Some("1.05".parse().unwrap()),
            ..Criteria::default()
        };
        let slow = decide(&c, WINDOW, None, &[d.clone()]);
        assert_eq!(slow.verdict, GateVerdict::Fail);
        assert!(slow.total.latency.as_ref().unwrap().ratio.unwrap() > 1.9);
        let c = Criteria {
            max_error_rate_delta: Some("0.5".parse().unwrap()),
            ..Criteria::default()
        };
        let erring = decide(&c, WINDOW, None, &[d]);
        assert_eq!(erring.verdict, GateVerdict::Fail);
        assert_eq!(
            erring.total.errors.as_ref().unwrap().delta_points,
            Some(2.0)
        );
    }

    /// The report's JSON is a versioned wire format: this is its exact text
    /// for a report using every field.
    #[test]
    fn the_report_json_is_unchanged() {
        let mut a = data("GET /a", 19_990, 10);
        a.primary_latency = vec![(40, 100)];
        a.candidate_latency = vec![(41, 100)];
        a.outcomes.add(CountKey::parse("candidate_5xx"), 4);
        a.outcomes
            .add(CountKey::parse("candidate_error/timeout"), 2);
        a.expected = 3;
        let b = data("GET /b", 20, 0);
        let c = Criteria {
            per_endpoint: true,
            exclude_expected: true,
            min_samples: 100,
            max_p99_ratio: Some("1.5".parse().unwrap()),
            max_error_rate_delta: Some("0.5".parse().unwrap()),
            endpoints: vec!["/a".parse().unwrap(), "GET /b".parse().unwrap()],
            ..Criteria::default()
        };
        let report = decide(&c, WINDOW, Some("run-1"), &[a, b]);
        let json = serde_json::to_string_pretty(&report).unwrap();
        // The file ends with a newline, as `gate --format json` prints it.
        assert_eq!(format!("{json}\n"), GOLDEN_REPORT, "{json}");
        let back: GateReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }

    const GOLDEN_REPORT: &str = include_str!("report_v1.json");
}
