//! The shadow stage: sampled requests wait in a bounded queue, run at most
//! `max_in_flight` at a time, call the candidate (and, in mirror mode, the
//! primary) under a timeout, and end as one outcome each.
//!
//! Nothing here can reach the client: the proxy hands a job over with a
//! non-blocking send and never waits for it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

use crate::breaker::Breaker;
use crate::budget::{BodyBudget, Claim};
use crate::compare::{compare, Detail, Rules};
use crate::config::{CandidateTarget, HostHeader, RoleHeader, Target};
use crate::exchange::{Exchange, RecordedRequest};
use crate::outcome::{Comparison, DropReason, Outcome, Sample, SkipReason};

mod fetch;
mod recheck;
mod secondary;
mod sent;
mod source;

use fetch::Call;
pub use recheck::Rechecks;
use sent::{backend_headers, sent_request};
use source::{candidate_response, primary_response, request_body};
pub use source::{BodySource, CandidateSource, CopyError, PrimarySource, ResponseCopy};

/// One sampled request on its way to an outcome.
pub struct ShadowJob {
    pub sample: Sample,
    /// The comparison rules of the request's route.
    pub rules: Arc<Rules>,
    pub request: ShadowRequest,
    pub primary: PrimarySource,
    /// A shadow call, or the copy of the response the candidate served.
    pub candidate: CandidateSource,
    /// The backends of the request's route: its candidate is called.
    pub target: Arc<Target>,
    /// Let through an open breaker to try the candidate: never shed.
    pub probe: bool,
}

/// The request to replay, with headers as forwarded to the primary.
pub struct ShadowRequest {
    pub method: Method,
    pub target: String,
    pub headers: HeaderMap,
    pub body: BodySource,
}

/// What the shadow stage needs to run jobs.
pub struct ShadowConfig {
    /// The Host the primary receives (each candidate's is its target's).
    pub primary_host: HostHeader,
    /// The header labelling every shadow call, if any.
    pub role_header: RoleHeader,
    pub client: crate::upstream::Upstream,
    /// How long the primary's side may take (its copy, or mirror mode's call).
    pub timeout: Duration,
    pub max_body_bytes: usize,
    pub max_in_flight: usize,
    pub queue: usize,
    /// Shared with the proxy: all body copies together stay within it.
    pub budget: BodyBudget,
    /// Where sampled requests are recorded (`serve --record`).
    pub record: Option<crate::record::RequestLog>,
    /// Comparisons running at once, each on a blocking thread.
    pub comparisons: usize,
    /// Told what each candidate call found, when samples may be shed.
    pub breaker: Option<Arc<Breaker>>,
    /// Named candidates' own caps on calls at once: a sample finding its
    /// candidate at its cap is dropped, never waited for.
    pub backend_slots: std::collections::HashMap<String, Arc<Semaphore>>,
    /// What the old code differs in with itself: learned from a secondary,
    /// discounted from verdicts.
    pub noise: Option<Arc<crate::noise::Noise>>,
}

impl ShadowConfig {
    /// The stage as `serve` runs it from `settings`, calling backends through
    /// `client`; without a record file or a breaker, which the caller adds.
    pub fn from_settings(
        settings: &crate::config::Settings,
        client: crate::upstream::Upstream,
        budget: &BodyBudget,
    ) -> ShadowConfig {
        ShadowConfig {
            primary_host: settings.primary_host.clone(),
            role_header: settings.role_header.clone(),
            client,
            timeout: settings.candidate_timeout,
            max_body_bytes: settings.max_body_bytes,
            max_in_flight: settings.max_in_flight.get(),
            queue: settings.queue.get(),
            budget: budget.clone(),
            record: None,
            comparisons: settings.shadow_threads.get(),
            breaker: None,
            backend_slots: Default::default(),
            noise: None,
        }
    }

    /// Caps the candidates of `targets` that have a `max_in_flight` of their own.
    pub fn with_backend_limits(mut self, targets: &crate::config::Targets) -> ShadowConfig {
        self.backend_slots = targets
            .limits()
            .map(|(name, n)| (name.to_string(), Arc::new(Semaphore::new(n.get()))))
            .collect();
        self
    }
}

/// The sending side, held by the proxy.
#[derive(Clone)]
pub struct ShadowQueue {
    tx: mpsc::Sender<ShadowJob>,
}

impl ShadowQueue {
    /// A place in the queue, waiting for one: for replays, which pace
    /// themselves by the queue instead of dropping.
    pub async fn reserve(&self) -> Result<mpsc::Permit<'_, ShadowJob>, DropReason> {
        self.tx.reserve().await.map_err(|_| DropReason::Shutdown)
    }

    /// A place in the queue, without waiting: a full or closed queue is a drop.
    pub fn try_reserve(&self) -> Result<mpsc::Permit<'_, ShadowJob>, DropReason> {
        self.tx.try_reserve().map_err(|e| match e {
            mpsc::error::TrySendError::Full(()) => DropReason::QueueFull,
            mpsc::error::TrySendError::Closed(()) => DropReason::Shutdown,
        })
    }
}

/// How busy the stage is, read live by `/metrics`: jobs waiting in the
/// queue, jobs running, and the time spent comparing.
#[derive(Debug)]
pub struct ShadowStats {
    /// Weak, so that reading the depth never keeps the queue open.
    queue: mpsc::WeakSender<ShadowJob>,
    running: AtomicU64,
    comparisons: AtomicU64,
    compare_nanos: AtomicU64,
    rechecks: recheck::RecheckStats,
}

impl ShadowStats {
    /// Jobs waiting for a slot.
    pub fn queued(&self) -> usize {
        self.queue
            .upgrade()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// Jobs taken from the queue and not finished: candidate calls in
    /// flight and comparisons waiting or running.
    pub fn in_flight(&self) -> u64 {
        self.running.load(Ordering::Relaxed)
    }

    /// Comparisons made, and the seconds they took in all.
    pub fn comparisons(&self) -> (u64, f64) {
        (
            self.comparisons.load(Ordering::Relaxed),
            self.compare_nanos.load(Ordering::Relaxed) as f64 / 1e9,
        )
    }

    /// Mismatches called again (`recheck`): under way, and how they ended.
    pub fn rechecks(&self) -> Rechecks {
        self.rechecks.snapshot()
    }
}

/// Counts a running job for as long as it lives.
struct Running(Arc<ShadowStats>);

impl Running {
    fn new(stats: &Arc<ShadowStats>) -> Running {
        stats.running.fetch_add(1, Ordering::Relaxed);
        Running(Arc::clone(stats))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What every job shares: the comparison turns and the stats.
struct Shared {
    comparing: Arc<Semaphore>,
    stats: Arc<ShadowStats>,
}

/// The running stage, to be drained at shutdown.
pub struct ShadowStage {
    close: oneshot::Sender<Duration>,
    dispatcher: tokio::task::JoinHandle<()>,
    stats: Arc<ShadowStats>,
}

impl ShadowStage {
    /// Starts the dispatcher; must be called inside a Tokio runtime.
    pub fn start(config: ShadowConfig) -> (ShadowQueue, ShadowStage) {
        let (tx, rx) = mpsc::channel(config.queue);
        let (close, closing) = oneshot::channel();
        let slots = Arc::new(Semaphore::new(config.max_in_flight));
        let stats = Arc::new(ShadowStats {
            queue: tx.downgrade(),
            running: AtomicU64::new(0),
            comparisons: AtomicU64::new(0),
            compare_nanos: AtomicU64::new(0),
            rechecks: Default::default(),
        });
        let shared = Arc::new(Shared {
            comparing: Arc::new(Semaphore::new(config.comparisons.max(1))),
            stats: Arc::clone(&stats),
        });
        let dispatcher = tokio::spawn(dispatch(rx, Arc::new(config), slots, shared, closing));
        let stage = ShadowStage {
            close,
            dispatcher,
            stats,
        };
        (ShadowQueue { tx }, stage)
    }

    /// How busy the stage is, live.
    pub fn stats(&self) -> Arc<ShadowStats> {
        Arc::clone(&self.stats)
    }

    /// Stops taking work, finishes what is queued and running within
    /// `deadline`, and records the rest as dropped.
    pub async fn drain(self, deadline: Duration) {
        let _ = self.close.send(deadline);
        if let Err(e) = self.dispatcher.await {
            tracing::error!(error = %e, "shadow dispatcher failed");
        }
    }
}

// Lives for one loop turn on the dispatcher's stack; boxing would cost an allocation per job.
#[allow(clippy::large_enum_variant)]
enum Step {
    Job(Option<(OwnedSemaphorePermit, ShadowJob)>),
    Close(Duration),
    Deadline,
}

async fn dispatch(
    mut rx: mpsc::Receiver<ShadowJob>,
    config: Arc<ShadowConfig>,
    slots: Arc<Semaphore>,
    shared: Arc<Shared>,
    mut closing: oneshot::Receiver<Duration>,
) {
    let mut running = JoinSet::new();
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let step = match deadline {
            None => tokio::select! {
                next = next_job(&mut rx, &slots) => Step::Job(next),
                d = &mut closing => Step::Close(d.unwrap_or(Duration::ZERO)),
            },
            Some(at) if tokio::time::Instant::now() >= at => Step::Deadline,
            Some(at) => match tokio::time::timeout_at(at, next_job(&mut rx, &slots)).await {
                Ok(next) => Step::Job(next),
                Err(_) => Step::Deadline,
            },
        };
        match step {
            Step::Job(Some((permit, job))) => {
                running.spawn(run(config.clone(), shared.clone(), job, permit));
                while running.try_join_next().is_some() {}
            }
            // Every sender is gone: no more work, but what runs may still
            // finish within the grace period the drain gives.
            Step::Job(None) if deadline.is_none() => {
                let grace = (&mut closing).await.unwrap_or(Duration::ZERO);
                deadline = Some(tokio::time::Instant::now() + grace);
                break;
            }
            Step::Job(None) | Step::Deadline => break,
            Step::Close(grace) => {
                rx.close();
                deadline = Some(tokio::time::Instant::now() + grace);
            }
        }
    }
    rx.close();
    while let Ok(job) = rx.try_recv() {
        job.sample.finish(Outcome::Dropped(DropReason::Shutdown));
    }
    let at = deadline.unwrap_or_else(tokio::time::Instant::now);
    let _ =
        tokio::time::timeout_at(at, async { while running.join_next().await.is_some() {} }).await;
    // Aborted jobs drop their samples unfinished, which records them as abandoned.
    running.abort_all();
    while running.join_next().await.is_some() {}
}

/// A slot first, then a job: waiting work stays in the bounded queue.
async fn next_job(
    rx: &mut mpsc::Receiver<ShadowJob>,
    slots: &Arc<Semaphore>,
) -> Option<(OwnedSemaphorePermit, ShadowJob)> {
    let permit = slots.clone().acquire_owned().await.ok()?;
    let job = rx.recv().await?;
    Some((permit, job))
}

async fn run(
    config: Arc<ShadowConfig>,
    shared: Arc<Shared>,
    job: ShadowJob,
    _slot: OwnedSemaphorePermit,
) {
    let _running = Running::new(&shared.stats);
    let ShadowJob {
        sample,
        rules,
        request,
        primary,
        candidate: candidate_source,
        target,
        probe,
    } = job;
    // Queued before the breaker opened: the candidate would only fail again.
    // (A candidate that served the client is not called: nothing to shed.)
    let calls_candidate = matches!(candidate_source, CandidateSource::Fetch);
    if !probe && calls_candidate && config.breaker.as_ref().is_some_and(|b| b.is_open()) {
        sample.finish(Outcome::Skipped(SkipReason::CandidateUnhealthy));
        return;
    }
    let endpoint = sample.info().endpoint.clone();
    let Some(candidate) = &target.candidate else {
        // The proxy never queues a request whose route has no candidate.
        sample.finish(Outcome::Skipped(SkipReason::NoCandidate));
        return;
    };
    // Held while the backends are called, not while comparing.
    let backend_slot = match config.backend_slots.get(&candidate.name) {
        None => None,
        Some(slots) => match Arc::clone(slots).try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => {
                sample.finish(Outcome::Dropped(DropReason::BackendBusy));
                return;
            }
        },
    };
    let recheck = recheck::planned(&target, &request.method, &primary);
    let sources = (primary, candidate_source);
    let prepared = execute(&config, endpoint, request, sources, (&target, candidate)).await;
    drop(backend_slot);
    match prepared {
        Prepared::Done(outcome) => sample.finish(outcome),
        Prepared::Compare(exchange, claims, secondary) => {
            let judge = (config.max_body_bytes, config.noise.clone(), secondary);
            let held = compare_off_thread(judge, &shared, sample, rules, exchange, claims, recheck);
            // A mismatch to recheck comes back unfinished, still holding the slot.
            if let Some(waiting) = held.await {
                recheck::run(&config, &shared, &target, waiting).await;
            }
        }
    }
}

/// Compares on the blocking pool, at most as many at once as `comparing`
/// allows, so that threads stay free for the name lookups the HTTP client
/// makes there, and memory stays bounded. The comparison finishes the sample
/// (recording a mismatch redacts and compares again: CPU work too), unless
/// this task is given up first (the drain deadline), which finishes it as
/// abandoned: one outcome either way. A mismatch with a `recheck` delay is
/// returned unfinished instead, for `recheck::run`.
async fn compare_off_thread(
    (limit, noise, secondary): (usize, Option<Arc<crate::noise::Noise>>, Secondary),
    shared: &Shared,
    sample: Sample,
    rules: Arc<Rules>,
    exchange: Box<Exchange>,
    claims: [Claim; 3],
    recheck: Option<Duration>,
) -> Option<recheck::Waiting> {
    let Ok(turn) = Arc::clone(&shared.comparing).acquire_owned().await else {
        return None;
    };
    let stats = Arc::clone(&shared.stats);
    let handoff = Handoff(Arc::new(std::sync::Mutex::new(Some(sample))));
    let shared = handoff.0.clone();
    let compared = tokio::task::spawn_blocking(move || {
        // The line diff is left out: the exemplar stored is compared again in full.
        let started = Instant::now();
        let verdict = compare(&exchange, &rules, limit, Detail::Grouping);
        let secondary_response = secondary.as_ref().map(|pair| &pair.0);
        let judged = match &noise {
            Some(noise) => noise.judge(
                &exchange,
                secondary_response,
                (&rules, limit),
                verdict,
                crate::time::now_ms(),
            ),
            None => crate::noise::Judged {
                verdict,
                rules,
                discounted: Vec::new(),
            },
        };
        let took = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        stats.compare_nanos.fetch_add(took, Ordering::Relaxed);
        stats.comparisons.fetch_add(1, Ordering::Relaxed);
        let sample = shared.lock().unwrap_or_else(|e| e.into_inner()).take();
        let mut held = None;
        if let Some(sample) = sample {
            let comparison = Comparison {
                exchange: *exchange,
                verdict: judged.verdict,
                rules: judged.rules,
                discounted: judged.discounted,
            };
            held = recheck::finish_or_hold(sample, comparison, claims, recheck, &stats);
        }
        drop((turn, secondary));
        held
    });
    // A comparison that panicked drops the sample, which records it as abandoned.
    let held = compared.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a comparison failed");
        None
    });
    drop(handoff);
    held
}

/// A sample on its way to a comparison thread; dropped before the thread
/// took it, it drops the sample, which records it as abandoned.
struct Handoff(Arc<std::sync::Mutex<Option<Sample>>>);

impl Drop for Handoff {
    fn drop(&mut self) {
        drop(self.0.lock().unwrap_or_else(|e| e.into_inner()).take());
    }
}

/// The secondary's response, and the budget its body holds until compared.
type Secondary = Option<Box<(crate::exchange::RecordedResponse, Claim)>>;

/// What the shadow calls left to do: nothing, or a comparison.
enum Prepared {
    Done(Outcome),
    /// The exchange, the budget its bodies hold until compared, and the
    /// secondary's response.
    Compare(Box<Exchange>, [Claim; 3], Secondary),
}

impl From<Outcome> for Prepared {
    fn from(outcome: Outcome) -> Self {
        Prepared::Done(outcome)
    }
}

/// Runs one job's backend calls, in phases: the request body, the record
/// file, the calls (the candidate stopped as soon as the primary side fails),
/// the breaker told, and the exchange assembled.
async fn execute(
    config: &ShadowConfig,
    endpoint: crate::endpoint::Endpoint,
    request: ShadowRequest,
    (mut primary, candidate_source): (PrimarySource, CandidateSource),
    (target, candidate_target): (&Target, &CandidateTarget),
) -> Prepared {
    // Claims live until the comparison is done, keeping its memory counted.
    let (body, request_claim) = match request_body(request.body, &mut primary).await {
        Ok(body) => body,
        Err(reason) => return Outcome::Skipped(reason).into(),
    };
    if let Some(log) = &config.record {
        let (method, target) = (&request.method, &request.target);
        log.append(endpoint.as_str(), method, target, &request.headers, &body);
    }
    let (primary_headers, candidate_headers) =
        backend_headers(config, candidate_target, &request.headers);
    let call = Call {
        method: &request.method,
        target: &request.target,
        body: &body,
    };
    let rewrite = &candidate_target.rewrite;
    let candidate_target_text = rewrite.target(&request.target);
    let candidate_call = Call {
        target: &candidate_target_text,
        ..call
    };
    let sent = (!rewrite.is_empty())
        .then(|| sent_request(candidate_target, &candidate_target_text, &candidate_headers));
    let candidate = candidate_response(
        config,
        candidate_source,
        (candidate_target, &candidate_call, candidate_headers),
    );
    // Only a request the old code can answer twice, and only beside a
    // primary called now: a write would be done twice in production, and a
    // response given long before would teach the time between as noise.
    let pairable = matches!(request.method, Method::GET | Method::HEAD | Method::OPTIONS)
        && !matches!(primary, PrimarySource::Given(..));
    let secondary = secondary::secondary_response(
        config,
        (pairable, &target.primary),
        &call,
        primary_headers.clone(),
    );
    let primary = primary_response(config, primary, &target.primary, &call, primary_headers);
    // Without a primary response there is nothing to compare: stop the
    // candidate call as soon as the primary side fails.
    let both = async {
        tokio::pin!(candidate, primary);
        tokio::select! {
            p = &mut primary => match p {
                Err(reason) => Err(reason),
                Ok(p) => Ok((p, candidate.await)),
            },
            c = &mut candidate => primary.await.map(|p| (p, c)),
        }
    };
    let (both, secondary) = secondary::beside(both, secondary).await;
    let secondary = secondary.map(Box::new);
    let (primary, candidate) = match both {
        Err(reason) => return Outcome::Skipped(reason).into(),
        Ok(pair) => pair,
    };
    let (primary, primary_claim) = primary;
    let (candidate, candidate_claim) = match candidate {
        Ok(c) => c,
        Err(outcome) => return outcome.into(),
    };
    let exchange = Exchange {
        endpoint,
        request: RecordedRequest {
            method: request.method,
            target: request.target,
            headers: request.headers,
            body,
        },
        primary,
        candidate,
        candidate_request: sent,
    };
    Prepared::Compare(
        Box::new(exchange),
        [request_claim, primary_claim, candidate_claim],
        secondary,
    )
}
