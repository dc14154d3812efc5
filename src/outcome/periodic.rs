//! The periodic one-line summary per endpoint (`log_summary_every_ms`): what
//! each endpoint's samples did since the last line, from the live tally, so
//! that a log alone shows how a rollout step goes. Endpoints without new
//! samples are not logged.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{OutcomeKey, Recorder, Tally};
use crate::endpoint::Endpoint;

/// One endpoint's counts since the last summary.
#[derive(Debug, Default, PartialEq)]
struct Interval {
    sampled: u64,
    matched: u64,
    mismatched: u64,
    candidate_errors: u64,
    skipped: u64,
    dropped: u64,
    /// Mean latency per backend, from the compared samples.
    mean_ms: [Option<f64>; 2],
}

/// What changed per endpoint from `before` to `now`.
fn intervals(before: &Tally, now: &Tally) -> BTreeMap<Endpoint, Interval> {
    let mut out = BTreeMap::new();
    for (endpoint, outcomes) in &now.by_endpoint {
        let old = before.by_endpoint.get(endpoint);
        let mut i = Interval::default();
        for (key, n) in outcomes {
            let n = n - old.and_then(|o| o.get(key)).copied().unwrap_or(0);
            i.sampled += n;
            match key {
                OutcomeKey::Matched => i.matched += n,
                OutcomeKey::Mismatched => i.mismatched += n,
                OutcomeKey::CandidateError(_) => i.candidate_errors += n,
                OutcomeKey::Skipped(_) => i.skipped += n,
                OutcomeKey::Dropped(_) => i.dropped += n,
            }
        }
        if i.sampled == 0 {
            continue;
        }
        if let Some(c) = now.compared.get(endpoint) {
            let was = before.compared.get(endpoint);
            for side in 0..2 {
                let (count, sum) = (c.latency[side].count(), c.latency[side].sum_seconds());
                let (count0, sum0) = was.map_or((0, 0.0), |w| {
                    (w.latency[side].count(), w.latency[side].sum_seconds())
                });
                i.mean_ms[side] =
                    (count > count0).then(|| (sum - sum0) * 1e3 / (count - count0) as f64);
            }
        }
        out.insert(endpoint.clone(), i);
    }
    out
}

/// Logs each endpoint's interval every `every`, until `stop`.
pub async fn log_summaries(recorder: Arc<Recorder>, every: Duration, stop: CancellationToken) {
    let mut before = recorder.tally();
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = ticks.tick() => {}
        }
        let now = recorder.tally();
        for (endpoint, i) in intervals(&before, &now) {
            let judged = i.matched + i.mismatched + i.candidate_errors;
            let parity = (judged > 0).then(|| i.matched as f64 / judged as f64);
            let ms = |m: Option<f64>| m.map_or("-".to_string(), |m| format!("{m:.2}"));
            tracing::info!(
                %endpoint,
                sampled = i.sampled,
                matched = i.matched,
                mismatched = i.mismatched,
                candidate_errors = i.candidate_errors,
                skipped = i.skipped,
                dropped = i.dropped,
                parity = parity.map_or("-".to_string(), |p| format!("{:.4}", p)),
                primary_mean_ms = ms(i.mean_ms[0]),
                candidate_mean_ms = ms(i.mean_ms[1]),
                seconds = every.as_secs_f64(),
                "endpoint summary"
            );
        }
        before = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::EndpointCatalog;
    use crate::outcome::SkipReason;
    use http::Method;

    #[test]
    fn intervals_count_what_changed_and_leave_quiet_endpoints_out() {
        let catalog = EndpointCatalog::new(10);
        let a = catalog.name(&Method::GET, "/a", None);
        let b = catalog.name(&Method::GET, "/b", None);
        let mut before = Tally::default();
        before
            .by_endpoint
            .entry(a.clone())
            .or_default()
            .insert(OutcomeKey::Matched, 5);
        before
            .by_endpoint
            .entry(b.clone())
            .or_default()
            .insert(OutcomeKey::Matched, 2);
        let mut now = before.clone();
        let outcomes = now.by_endpoint.get_mut(&a).unwrap();
        outcomes.insert(OutcomeKey::Matched, 8);
        outcomes.insert(OutcomeKey::Mismatched, 1);
        outcomes.insert(OutcomeKey::Skipped(SkipReason::Upgrade), 2);
        let got = intervals(&before, &now);
        assert_eq!(got.len(), 1, "{got:?}");
        let i = &got[&a];
        assert_eq!(
            (i.sampled, i.matched, i.mismatched, i.skipped),
            (6, 3, 1, 2)
        );
    }
}
