//! The fast rollback: a serving step's parity over the last seconds of this
//! instance's own samples, from the live tally, so that a bug shows within
//! seconds of appearing. The stored counts a plan's gate reads are per
//! minute: a minute of good samples before the bug would hold its verdict
//! up for as long again. Each instance judges its own samples; the first to
//! see a failure rolls the route back for all.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::Plan;
use crate::gate::{wilson_interval, EndpointGlob};
use crate::outcome::{OutcomeKey, Tally};

/// Compared samples of a route: matched, and mismatched or failed.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(super) struct Judged {
    matched: u64,
    failed: u64,
}

impl Judged {
    /// The route's counts so far in `tally` (every endpoint `glob` matches).
    pub(super) fn of(tally: &Tally, glob: &EndpointGlob) -> Judged {
        let mut j = Judged::default();
        for (endpoint, outcomes) in &tally.by_endpoint {
            if !glob.matches(endpoint.as_str()) {
                continue;
            }
            for (key, n) in outcomes {
                match key {
                    OutcomeKey::Matched => j.matched += n,
                    OutcomeKey::Mismatched | OutcomeKey::CandidateError(_) => j.failed += n,
                    _ => {}
                }
            }
        }
        j
    }
}

/// Each route's recent counts, a snapshot per sync.
#[derive(Default)]
pub(super) struct Recent(HashMap<usize, VecDeque<(Instant, Judged)>>);

impl Recent {
    /// Records `now`'s counts and returns what happened over the last
    /// `window` (or since the first snapshot, when younger).
    pub(super) fn observe(
        &mut self,
        route: usize,
        now: Instant,
        counts: Judged,
        window: Duration,
    ) -> Judged {
        let snapshots = self.0.entry(route).or_default();
        snapshots.push_back((now, counts));
        while snapshots.len() > 1 && now.duration_since(snapshots[1].0) >= window {
            snapshots.pop_front();
        }
        let (_, then) = snapshots[0];
        Judged {
            matched: counts.matched.saturating_sub(then.matched),
            failed: counts.failed.saturating_sub(then.failed),
        }
    }

    /// Forgets a route's snapshots: its step changed.
    pub(super) fn reset(&mut self, route: usize) {
        self.0.remove(&route);
    }
}

/// How far back the fast rollback looks: the plan's hold, at least 5 s
/// (enough samples to judge) and at most a minute.
pub(super) fn window(plan: &Plan) -> Duration {
    plan.hold
        .clamp(Duration::from_secs(5), Duration::from_secs(60))
}

/// Why the recent samples fail the plan's parity, if they surely do: at
/// least `min_samples`, and even the Wilson upper bound below `min_parity`.
pub(super) fn failing(recent: Judged, plan: &Plan, window: Duration) -> Option<String> {
    let criteria = &plan.gate.criteria;
    let n = recent.matched + recent.failed;
    if n == 0 || n < criteria.min_samples {
        return None;
    }
    let (_, upper) = wilson_interval(recent.matched as f64, n as f64, criteria.confidence.z());
    let min = criteria.min_parity.fraction();
    (upper < min).then(|| {
        format!(
            "parity {:.3}% over the last {} comparisons ({} s) here: below {}% even at its upper bound ({:.3}%)",
            100.0 * recent.matched as f64 / n as f64,
            n,
            window.as_secs(),
            criteria.min_parity.percent(),
            100.0 * upper
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        toml::from_str("steps = [10, 100]\nhold = \"2s\"\ngate = \"min_parity=95&min_samples=20\"")
            .unwrap()
    }

    #[test]
    fn only_the_recent_samples_count() {
        let mut recent = Recent::default();
        let t0 = Instant::now();
        let w = Duration::from_secs(10);
        let at = |s: u64| t0 + Duration::from_secs(s);
        let j = |matched, failed| Judged { matched, failed };
        assert_eq!(recent.observe(0, at(0), j(1000, 0), w), j(0, 0));
        assert_eq!(recent.observe(0, at(5), j(1050, 0), w), j(50, 0));
        // A bug: 30 of the next 50 fail; the thousand good ones before are out of the window.
        let last = recent.observe(0, at(15), j(1070, 30), w);
        assert_eq!(last, j(20, 30));
        let why = failing(last, &plan(), window(&plan())).unwrap();
        assert!(why.contains("parity 40.000% over the last 50"), "{why}");
        assert!(failing(j(19, 0), &plan(), w).is_none());
        assert!(failing(j(15, 3), &plan(), w).is_none(), "too few samples");
        assert!(failing(j(48, 2), &plan(), w).is_none(), "not surely below");
    }
}
