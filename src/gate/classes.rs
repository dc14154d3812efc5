//! Mismatches by severity class (`compare::severity`), as each scope of a
//! report shows them, and the `fail_on` check: a scope fails when a class
//! it names had mismatches in groups not triaged `expected`, whatever its
//! parity. Pure: counts in, the scope's part out.

use super::{Criteria, GateScope, GateSeverity, GateVerdict};
use crate::compare::Severity;

/// Mismatches per class rank: index 0 for no known class (rows stored
/// before classes), 1 (status) to 5 (headers).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ClassCounts([i64; 6]);

impl ClassCounts {
    /// Adds `n` mismatches of a stored rank; a rank this release does not
    /// know (a later one's) counts as unknown.
    pub fn add(&mut self, rank: i64, n: i64) {
        let at = match Severity::from_rank(rank) {
            Some(s) => s.rank() as usize,
            None => 0,
        };
        self.0[at] += n;
    }

    pub fn merge(&mut self, other: &ClassCounts) {
        for (mine, theirs) in self.0.iter_mut().zip(other.0) {
            *mine += theirs;
        }
    }

    pub fn of(&self, class: Severity) -> i64 {
        self.0[class.rank() as usize]
    }

    pub fn unknown(&self) -> i64 {
        self.0[0]
    }
}

/// Shows a scope's classes and, with `fail_on`, judges them: the scope
/// fails (and says why) when a named class had mismatches.
pub(super) fn judge(criteria: &Criteria, counts: &ClassCounts, scope: &mut GateScope) {
    let failing: Vec<String> = criteria
        .fail_on
        .classes()
        .iter()
        .filter(|&&class| counts.of(class) > 0)
        .map(|&class| format!("{} {}", counts.of(class), class.as_str()))
        .collect();
    let verdict = (!criteria.fail_on.is_empty()).then_some(match failing.is_empty() {
        true => GateVerdict::Pass,
        false => GateVerdict::Fail,
    });
    if verdict == Some(GateVerdict::Fail) {
        scope.reasons.push(format!(
            "mismatches of a class the gate fails on ({}): {}",
            criteria.fail_on,
            failing.join(", ")
        ));
        scope.verdict = GateVerdict::Fail;
        // A failure needs no more comparisons to be decided.
        scope.more_comparisons_needed = None;
    }
    scope.severity = Some(GateSeverity {
        verdict,
        status: counts.of(Severity::Status),
        structure: counts.of(Severity::Structure),
        membership: counts.of(Severity::Membership),
        value: counts.of(Severity::Value),
        headers: counts.of(Severity::Headers),
        unknown: counts.unknown(),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{decide, Counts, EndpointData};
    use crate::store::Window;

    fn data(endpoint: &str, classes: &[(i64, i64)]) -> EndpointData {
        let mut counts = ClassCounts::default();
        for &(rank, n) in classes {
            counts.add(rank, n);
        }
        let mismatched: i64 = classes.iter().map(|(_, n)| n).sum();
        EndpointData {
            endpoint: endpoint.into(),
            outcomes: Counts::from_stored([
                ("matched", 100_000 - mismatched),
                ("mismatched", mismatched),
            ]),
            classes: counts,
            ..EndpointData::default()
        }
    }

    const WINDOW: Window = Window {
        since_ms: 0,
        until_ms: 3_600_000,
    };

    fn criteria(fail_on: &str) -> Criteria {
        Criteria {
            fail_on: fail_on.parse().unwrap(),
            ..Criteria::default()
        }
    }

    #[test]
    fn a_named_class_with_mismatches_fails_whatever_the_parity() {
        // 99.99% parity passes, but for the one structure mismatch.
        let d = [data("GET /a", &[(2, 1), (4, 9)]), data("GET /b", &[(5, 3)])];
        let passes = decide(&Criteria::default(), WINDOW, None, &d);
        assert_eq!(passes.verdict, GateVerdict::Pass, "{}", passes.reason);
        let shown = passes.total.severity.as_ref().unwrap();
        assert_eq!(
            (shown.verdict, shown.structure, shown.value, shown.headers),
            (None, 1, 9, 3)
        );
        let fails = decide(&criteria("structure,status"), WINDOW, None, &d);
        assert_eq!(fails.verdict, GateVerdict::Fail);
        assert_eq!(
            fails.reason,
            "parity 99.993% over 200000 comparisons: mismatches of a class the gate fails on \
             (status,structure): 1 structure"
        );
        let endpoints = &fails.endpoints;
        assert_eq!(endpoints[0].verdict, GateVerdict::Fail);
        assert!(!endpoints[0].enforced, "without per_endpoint, info only");
        assert_eq!(endpoints[1].verdict, GateVerdict::Pass);
        assert_eq!(
            endpoints[1].severity.as_ref().unwrap().verdict,
            Some(GateVerdict::Pass)
        );
        // Headers only, at the less severe end: a gate on them fails too.
        let headers = decide(&criteria("headers"), WINDOW, None, &d);
        assert_eq!(headers.verdict, GateVerdict::Fail);
        let membership = decide(&criteria("membership"), WINDOW, None, &d);
        assert_eq!(membership.verdict, GateVerdict::Pass);
    }

    #[test]
    fn unknown_classes_are_counted_never_failed_on() {
        let d = [data("GET /a", &[(0, 4), (9, 1)])];
        let r = decide(
            &criteria("status,structure,membership,value,headers"),
            WINDOW,
            None,
            &d,
        );
        assert_eq!(r.verdict, GateVerdict::Pass, "{}", r.reason);
        assert_eq!(r.total.severity.as_ref().unwrap().unknown, 5);
    }

    #[test]
    fn a_failure_by_class_needs_no_more_comparisons() {
        let mut d = data("GET /a", &[(1, 2)]);
        d.outcomes = Counts::from_stored([("matched", 18), ("mismatched", 2)]);
        let r = decide(&criteria("status"), WINDOW, None, &[d]);
        assert_eq!(r.verdict, GateVerdict::Fail);
        assert_eq!(r.total.more_comparisons_needed, None);
    }
}
