//! The decision over every scope: the total always counts, each endpoint
//! with `per_endpoint`; the worst enforced verdict wins and one sentence
//! says why. Pure: stored counts in, a [`GateReport`] out.

use super::classes::judge;
use super::scope::evaluate_scope;
use super::{ClassCounts, Counts};
use super::{
    Criteria, EndpointData, GateCriteria, GateReport, GateScope, GateVerdict, Limit, MinParity,
    Percentile, WindowView, REPORT_VERSION,
};
use crate::store::Histogram;
use crate::store::Window;
use crate::time::format_millis;

/// The stand-in endpoint name of the total.
pub const TOTAL: &str = "total";

/// Decides: the total always counts; each endpoint counts with `per_endpoint`.
pub fn decide(
    criteria: &Criteria,
    window: Window,
    run: Option<&str>,
    data: &[EndpointData],
) -> GateReport {
    let mut all = Counts::default();
    let (mut expected, mut primary, mut candidate) =
        (0, Histogram::default(), Histogram::default());
    let mut classes = ClassCounts::default();
    for d in data {
        all.merge(&d.outcomes);
        expected += d.expected;
        primary.merge(&d.primary_latency);
        candidate.merge(&d.candidate_latency);
        classes.merge(&d.classes);
    }
    let mut total = evaluate_scope(criteria, TOTAL, true, &all, expected, &primary, &candidate);
    judge(criteria, &classes, &mut total);
    let endpoints: Vec<GateScope> = data
        .iter()
        .map(|d| {
            let mut scope = evaluate_scope(
                criteria,
                &d.endpoint,
                criteria.per_endpoint,
                &d.outcomes,
                d.expected,
                &d.primary_latency,
                &d.candidate_latency,
            );
            judge(criteria, &d.classes, &mut scope);
            scope
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
            max_p99_ratio: criteria
                .max_latency_ratio
                .get(Percentile::P99)
                .map(Limit::get),
            max_latency_ratio: criteria
                .max_latency_ratio
                .iter()
                .map(|(p, l)| (p.to_string(), l.get()))
                .collect(),
            min_byte_parity_percent: criteria.min_byte_parity.map(MinParity::percent),
            max_error_rate_delta_points: criteria.max_error_rate_delta.map(Limit::get),
            fail_on: criteria
                .fail_on
                .classes()
                .iter()
                .map(|s| s.as_str().to_string())
                .collect(),
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
        d.primary_latency = histogram(20.0, 100);
        d.candidate_latency = histogram(21.0, 100);
        d.outcomes.add(CountKey::parse("candidate_5xx"), 400);
        let c = Criteria {
            max_latency_ratio: "p50=1.04,p99=1.06".parse().unwrap(),
            ..Criteria::default()
        };
        let slow = decide(&c, WINDOW, None, &[d.clone()]);
        assert_eq!(slow.verdict, GateVerdict::Fail);
        let latency = slow.total.latency.as_ref().unwrap();
        assert_eq!(latency.percentiles[0].verdict, GateVerdict::Fail);
        assert_eq!(latency.percentiles[1].verdict, GateVerdict::Pass);
        assert_eq!((latency.max_ratio, latency.percentiles.len()), (1.04, 2));
        assert!((latency.ratio.unwrap() - 1.05).abs() < 0.0105);
        let cost = slow.total.cost.as_ref().unwrap();
        assert!((cost.time_ratio.unwrap() - 1.05).abs() < 0.0105);
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
        a.primary_latency = histogram(20.0, 100);
        a.candidate_latency = histogram(22.0, 100);
        a.outcomes.add(CountKey::parse("candidate_5xx"), 4);
        a.outcomes.add(CountKey::parse("byte_equal"), 19_000);
        a.outcomes.add(CountKey::parse("measured_pairs"), 20_000);
        a.outcomes.add(CountKey::parse("primary_bytes"), 2_000_000);
        a.outcomes
            .add(CountKey::parse("candidate_bytes"), 1_800_000);
        a.outcomes
            .add(CountKey::parse("candidate_error/timeout"), 2);
        a.expected = 3;
        // The 7 mismatches left once the expected group's 3 are out.
        a.classes.add(4, 5);
        a.classes.add(5, 2);
        let b = data("GET /b", 20, 0);
        let c = Criteria {
            per_endpoint: true,
            exclude_expected: true,
            min_samples: 100,
            max_latency_ratio: "p50=1.05,p99=1.5".parse().unwrap(),
            min_byte_parity: Some("90".parse().unwrap()),
            max_error_rate_delta: Some("0.5".parse().unwrap()),
            fail_on: "status,structure".parse().unwrap(),
            endpoints: vec!["/a".parse().unwrap(), "GET /b".parse().unwrap()],
            ..Criteria::default()
        };
        let report = decide(&c, WINDOW, Some("run-1"), &[a, b]);
        let json = serde_json::to_string_pretty(&report).unwrap();
        // The file ends with a newline, as `gate --format json` prints it.
        if std::env::var_os("SHADOWDIFF_BLESS").is_some() {
            std::fs::write(
                concat!(env!("CARGO_MANIFEST_DIR"), "/src/gate/report_v1.json"),
                format!("{json}\n"),
            )
            .unwrap();
        }
        assert_eq!(format!("{json}\n"), GOLDEN_REPORT, "{json}");
        let back: GateReport = serde_json::from_str(&json).unwrap();
        assert_eq!(back, report);
    }

    const GOLDEN_REPORT: &str = include_str!("report_v1.json");

    /// A report from the first release of version 1, before fields were
    /// added, still reads: `gate --report-url` may ask an older server.
    #[test]
    fn the_first_version_1_report_still_reads() {
        let first: GateReport = serde_json::from_str(include_str!("report_v1_first.json")).unwrap();
        assert_eq!(first.version, 1);
        assert!(first.total.cost.is_none() && first.criteria.max_latency_ratio.is_empty());
        assert!(first.total.severity.is_none() && first.criteria.fail_on.is_empty());
    }

    /// `n` latencies around `ms` milliseconds, spread over 1%.
    fn histogram(ms: f64, n: u64) -> Histogram {
        let mut h = Histogram::default();
        for i in 0..n {
            h.record(std::time::Duration::from_secs_f64(
                ms * (1.0 + i as f64 / n as f64 / 100.0) / 1e3,
            ));
        }
        h
    }
}
