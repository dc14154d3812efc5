//! The recheck of a mismatch. On a route with `recheck` on, a safe request
//! (GET, HEAD, OPTIONS) whose responses differed is sent again to both
//! backends `recheck_delay_ms` later, as the job sent it (the role header,
//! each backend's Host, the candidate's rewrite; no client is involved), and
//! compared again under the same rules. A difference gone by then came from
//! data that changed between the primary's call and the candidate's: the
//! sample ends `skipped/transient`, out of parity like every skip. One still
//! there, or a recheck that cannot complete (a backend fails, times out or
//! is at its own cap; the drain's deadline), leaves the mismatch as first
//! found, with the first exchange as its exemplar: the second verdict only
//! decides.
//!
//! The wait is bounded by the stage's own bounds: it holds the job's shadow
//! slot, so running and waiting samples together are at most
//! `max_in_flight`, and the first exchange's bodies stay counted in
//! `max_buffered_bytes` until the sample ends. A candidate that always
//! differs slows the stage to `max_in_flight` samples per delay; past that
//! the queue fills and samples are dropped and counted, never piled up.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::Method;

use super::fetch::{fetch, Call};
use super::sent::backend_headers;
use super::{PrimarySource, ShadowConfig, ShadowStats, Shared};
use crate::budget::Claim;
use crate::compare::{compare, Detail, Rules};
use crate::config::Target;
use crate::endpoint::Endpoint;
use crate::exchange::{Exchange, RecordedRequest, RecordedResponse};
use crate::outcome::{Comparison, Outcome, OutcomeKey, Sample, SkipReason};

/// Rechecks under way and how the others ended, counted as they go.
#[derive(Debug, Default)]
pub(super) struct RecheckStats {
    waiting: AtomicU64,
    transient: AtomicU64,
    differing: AtomicU64,
    incomplete: AtomicU64,
}

impl RecheckStats {
    pub(super) fn snapshot(&self) -> Rechecks {
        let read = |n: &AtomicU64| n.load(Ordering::Relaxed);
        Rechecks {
            waiting: read(&self.waiting),
            transient: read(&self.transient),
            differing: read(&self.differing),
            incomplete: read(&self.incomplete),
        }
    }
}

/// Rechecks under way, and the finished ones by how they ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rechecks {
    /// Waiting for their delay, or calling the backends again now.
    pub waiting: u64,
    /// The difference had gone: the sample ended `skipped/transient`.
    pub transient: u64,
    /// The responses still differed: the first mismatch stands.
    pub differing: u64,
    /// Could not be completed: the first mismatch stands.
    pub incomplete: u64,
}

/// The delay before a job's recheck, if it gets one: its route's `recheck`
/// is on, its method is safe (sent again, a write would be done twice), and
/// the primary can be asked again (not given by a collector or a recording).
pub(super) fn planned(
    target: &Target,
    method: &Method,
    primary: &PrimarySource,
) -> Option<Duration> {
    let safe = matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let recallable = !matches!(primary, PrimarySource::Given(..));
    target.recheck.filter(|_| safe && recallable)
}

/// A first mismatch, until its recheck decides how the sample ends.
struct Held {
    sample: Sample,
    mismatch: Outcome,
    /// The first exchange's bodies, counted until the sample ends.
    claims: [Claim; 3],
}

/// A mismatch waiting for its recheck. Dropped undecided (the drain's
/// deadline aborted its job, or a task failed), it ends as the mismatch
/// first found, which is true as far as anyone knows: one outcome either way.
pub(super) struct Waiting {
    held: Arc<Mutex<Option<Held>>>,
    /// What is sent again, and compared under.
    endpoint: Endpoint,
    request: RecordedRequest,
    rules: Arc<Rules>,
    delay: Duration,
    stats: Arc<ShadowStats>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(held) = held {
            self.stats
                .rechecks
                .incomplete
                .fetch_add(1, Ordering::Relaxed);
            held.sample.finish(held.mismatch);
        }
        self.stats.rechecks.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Whether the candidate answered with a server error the primary did not
/// give: a flaky candidate, never a change of data between two calls, so
/// never cleared by a recheck that happens to succeed.
fn candidate_failed(c: &Comparison) -> bool {
    c.exchange.candidate.status.is_server_error() && !c.exchange.primary.status.is_server_error()
}

/// Ends the sample with its comparison, unless it is a mismatch to recheck
/// (`delay` is the job's plan): that one is held, with its bodies' claims,
/// for [`run`]. Called on the comparison's blocking thread.
pub(super) fn finish_or_hold(
    sample: Sample,
    comparison: Comparison,
    claims: [Claim; 3],
    delay: Option<Duration>,
    stats: &Arc<ShadowStats>,
) -> Option<Waiting> {
    let first = Outcome::Compared(Box::new(comparison));
    // What is sent again is copied only for a mismatch that will be.
    let again = match (&first, delay) {
        (Outcome::Compared(c), Some(delay))
            if first.key() == OutcomeKey::Mismatched && !candidate_failed(c) =>
        {
            Some((
                delay,
                c.exchange.endpoint.clone(),
                c.exchange.request.clone(),
                Arc::clone(&c.rules),
            ))
        }
        _ => None,
    };
    let Some((delay, endpoint, request, rules)) = again else {
        sample.finish(first);
        drop(claims);
        return None;
    };
    stats.rechecks.waiting.fetch_add(1, Ordering::Relaxed);
    let held = Held {
        sample,
        mismatch: first,
        claims,
    };
    Some(Waiting {
        held: Arc::new(Mutex::new(Some(held))),
        endpoint,
        request,
        rules,
        delay,
        stats: Arc::clone(stats),
    })
}

/// Waits out the delay, sends the request again to both backends, and ends
/// the sample: `skipped/transient` when they now agree, else the mismatch
/// first found. The second comparison and the recording (a mismatch is
/// redacted and compared again) run on the blocking pool, within the
/// stage's comparison turns.
pub(super) async fn run(config: &ShadowConfig, shared: &Shared, target: &Target, waiting: Waiting) {
    tokio::time::sleep(waiting.delay).await;
    let again = call_again(config, target, &waiting.request).await;
    let Ok(turn) = Arc::clone(&shared.comparing).acquire_owned().await else {
        return;
    };
    let held = Arc::clone(&waiting.held);
    let stats = Arc::clone(&waiting.stats);
    let (endpoint, request) = (waiting.endpoint.clone(), waiting.request.clone());
    let (rules, limit) = (Arc::clone(&waiting.rules), config.max_body_bytes);
    let decided = tokio::task::spawn_blocking(move || {
        let again = again.map(|((primary, primary_claim), (candidate, candidate_claim))| {
            let exchange = Exchange {
                endpoint,
                request,
                primary,
                candidate,
                candidate_request: None,
            };
            let started = Instant::now();
            let verdict = compare(&exchange, &rules, limit, Detail::Grouping);
            let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
            stats.compare_nanos.fetch_add(took, Ordering::Relaxed);
            stats.comparisons.fetch_add(1, Ordering::Relaxed);
            // Under the rules the first verdict was reached under, learned
            // noise included: only what counted then can have gone.
            (verdict.matched, [primary_claim, candidate_claim])
        });
        let Some(held) = held.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return;
        };
        let counts = &stats.rechecks;
        let outcome = match &again {
            Some((true, _)) => {
                counts.transient.fetch_add(1, Ordering::Relaxed);
                Outcome::Skipped(SkipReason::Transient)
            }
            Some((false, _)) => {
                counts.differing.fetch_add(1, Ordering::Relaxed);
                held.mismatch
            }
            None => {
                counts.incomplete.fetch_add(1, Ordering::Relaxed);
                held.mismatch
            }
        };
        held.sample.finish(outcome);
        drop((held.claims, again, turn));
    });
    // A recheck that panicked leaves the sample to `Waiting`: the mismatch.
    if let Err(e) = decided.await {
        tracing::error!(error = %e, "a recheck failed");
    }
    drop(waiting);
}

type Reply = (RecordedResponse, Claim);

/// Both backends called again at once, as the job called them; nothing when
/// either gives no usable response, or the candidate is at its own cap.
/// The breaker is not told: a recheck follows a response already judged.
async fn call_again(
    config: &ShadowConfig,
    target: &Target,
    request: &RecordedRequest,
) -> Option<(Reply, Reply)> {
    let candidate = target.candidate.as_ref()?;
    let _slot = match config.backend_slots.get(&candidate.name) {
        None => None,
        Some(slots) => Some(Arc::clone(slots).try_acquire_owned().ok()?),
    };
    let (primary_headers, candidate_headers) = backend_headers(config, candidate, &request.headers);
    let call = Call {
        method: &request.method,
        target: &request.target,
        body: &request.body,
    };
    let rewritten = candidate.rewrite.target(&request.target);
    let candidate_call = Call {
        target: &rewritten,
        ..call
    };
    let (primary, candidate) = tokio::join!(
        fetch(
            config,
            &target.primary,
            &call,
            primary_headers,
            config.timeout
        ),
        fetch(
            config,
            &candidate.url,
            &candidate_call,
            candidate_headers,
            candidate.timeout
        ),
    );
    Some((primary.ok()?, candidate.ok()?))
}
