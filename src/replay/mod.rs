//! Replay: recorded requests sent to both backends, compared with the same
//! engine and rules as live traffic, and stored under a run id in the same
//! store, so the gate can judge a run before any live traffic, or re-check
//! stored mismatches after a fix.
//!
//! A replay runs the shadow stage as mirror mode does (it calls both
//! backends itself), but waits for queue space instead of dropping, and
//! paces itself by `--concurrency` and `--rate`.

pub mod credentials;
pub mod fixed;
pub mod input;
pub mod progress;
mod response;

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use rand::seq::index::sample;
use rand::SeedableRng;
use tokio_util::sync::CancellationToken;

use crate::budget::{BodyBudget, Claim};
use crate::compare::Rules;
use crate::config::{Target, Targets};
use crate::endpoint::EndpointCatalog;
use crate::gate::{self, Criteria, EndpointGlob, GateReport};
use crate::outcome::{Outcome, OutcomeKey, Recorder, Sample, SampleInfo, SkipReason, Tally};
use crate::redact::Redactor;
use crate::shadow::{
    BodySource, CandidateSource, PrimarySource, ShadowConfig, ShadowJob, ShadowQueue,
    ShadowRequest, ShadowStage,
};
use crate::store::{MismatchFilter, SqlStore, Store, StoreError, Window};
use crate::time::now_ms;
use crate::writer::{StoreWriter, WriterConfig};
use crate::Settings;
use input::{Problem, ReplayRequest};

/// Requests per second, more than 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate(f64);

impl std::str::FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<f64>() {
            Ok(r) if (0.001..=1_000_000.0).contains(&r) => Ok(Rate(r)),
            _ => Err(format!(
                "a rate is requests per second, from 0.001 to 1000000 (such as 50 or 0.5); got {s:?}"
            )),
        }
    }
}

/// Requests in flight at once: 1 to 4,096.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Concurrency(NonZeroUsize);

impl Concurrency {
    pub fn get(self) -> usize {
        self.0.get()
    }
}

impl std::fmt::Display for Concurrency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl std::str::FromStr for Concurrency {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        s.trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= 4_096)
            .and_then(NonZeroUsize::new)
            .map(Concurrency)
            .ok_or_else(|| format!("concurrency is a whole number from 1 to 4096; got {s:?}"))
    }
}

/// A replay run's id: 1 to 100 letters, digits and `-_.:`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RunId(String);

impl RunId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for RunId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for RunId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let ok = !s.is_empty()
            && s.len() <= 100
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c));
        if ok {
            Ok(RunId(s.to_string()))
        } else {
            Err(format!(
                "a run id is 1 to 100 letters, digits and - _ . : (live traffic has none); got {s:?}"
            ))
        }
    }
}

/// A header added to (or replacing one in) every replayed request: `Name: value`.
#[derive(Clone, Debug)]
pub struct ExtraHeader(pub HeaderName, pub HeaderValue);

impl std::str::FromStr for ExtraHeader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, value) = s
            .split_once(':')
            .ok_or_else(|| format!("a header is `Name: value`; got {s:?}"))?;
        if !input::replayable(name.trim()) {
            return Err(format!(
                "{:?} is set by the HTTP client for each request and cannot be given",
                name.trim()
            ));
        }
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{:?} is not a header name", name.trim()))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("the value of {name} is not valid in HTTP"))?;
        Ok(ExtraHeader(name, value))
    }
}

/// How a replay runs.
#[derive(Clone, Debug)]
pub struct ReplayOptions {
    /// Rows of this run carry it in the store.
    pub run_id: RunId,
    pub concurrency: Concurrency,
    pub rate: Option<Rate>,
    /// Send methods other than GET, HEAD and OPTIONS (otherwise skipped).
    pub allow_unsafe: bool,
    pub headers: Vec<ExtraHeader>,
    /// Compare with the response each recording carries instead of calling
    /// the primary (requests without one were left out as problems).
    pub recorded_primary: bool,
    /// Real credentials set on each request (`--credentials`).
    pub credentials: Option<Arc<credentials::Credentials>>,
}

/// Which of the read requests to send.
#[derive(Clone, Debug, Default)]
pub struct Selection {
    /// Only requests whose endpoint matches one of these (all when empty).
    pub endpoints: Vec<EndpointGlob>,
    /// A reproducible random sample of this many, in input order.
    pub random: Option<usize>,
    pub seed: u64,
    /// At most this many, after the other choices.
    pub limit: Option<usize>,
}

/// Where a replay stands, for a progress bar.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    pub total: u64,
    pub done: u64,
    pub matched: u64,
    pub mismatched: u64,
    pub candidate_errors: u64,
    pub skipped: u64,
}

/// What a finished replay did.
#[derive(Debug)]
pub struct ReplaySummary {
    pub run_id: RunId,
    /// Requests chosen after selection.
    pub selected: usize,
    /// Requests sent (or skipped); fewer than selected when interrupted.
    pub sent: usize,
    pub tally: Tally,
    /// Requests a keyed credential had no value for (sent with their
    /// recorded header).
    pub uncredentialed: usize,
    /// The gate's decision over this run.
    pub gate: GateReport,
}

/// Why a replay could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The store could not be opened or read.
    #[error("the store: {0}")]
    Store(#[from] StoreError),
    /// The settings name backends that do not resolve.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Results were left unwritten: the run in the store is incomplete.
    #[error("the store did not take all of the run's results ({0} rows left unwritten); the run is incomplete")]
    Unstored(usize),
}

/// Names every request's endpoint as live traffic would be named, and
/// keeps the ones the selection asks for.
pub fn select(
    settings: &Settings,
    requests: Vec<ReplayRequest>,
    selection: &Selection,
) -> Vec<(crate::endpoint::Endpoint, ReplayRequest)> {
    let catalog = EndpointCatalog::new(settings.max_endpoints.get());
    let mut named: Vec<_> = requests
        .into_iter()
        .map(|r| {
            let path = r.target.split('?').next().unwrap_or("/");
            let route = settings
                .route_for(&r.method, path)
                .map(|i| &settings.routes[i].pattern);
            (catalog.name(&r.method, path, route), r)
        })
        .filter(|(endpoint, _)| {
            selection.endpoints.is_empty()
                || selection
                    .endpoints
                    .iter()
                    .any(|g| g.matches(endpoint.as_str()))
        })
        .collect();
    if let Some(n) = selection.random.filter(|&n| n < named.len()) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(selection.seed);
        let mut chosen = sample(&mut rng, named.len(), n).into_vec();
        chosen.sort_unstable();
        let mut keep = vec![false; named.len()];
        for i in chosen {
            keep[i] = true;
        }
        let mut i = 0;
        named.retain(|_| {
            i += 1;
            keep[i - 1]
        });
    }
    if let Some(limit) = selection.limit {
        named.truncate(limit);
    }
    named
}

/// The requests of stored mismatches: of live traffic (`run` empty) or of a
/// replay run, optionally of one group. Newest first, as stored.
pub async fn from_store(
    store: &dyn Store,
    run: &str,
    fingerprint: Option<&str>,
) -> Result<(Vec<ReplayRequest>, Vec<Problem>), StoreError> {
    let (mut requests, mut problems) = (Vec::new(), Vec::new());
    let mut before = None;
    loop {
        let filter = MismatchFilter {
            run: Some(run),
            fingerprint,
            ..MismatchFilter::default()
        };
        let page = store.mismatches(filter, before, 500).await?;
        for m in &page {
            match input::from_stored(m) {
                Ok(r) => requests.push(r),
                Err(message) => problems.push(Problem {
                    origin: format!("mismatch {}", m.id),
                    message,
                }),
            }
        }
        match page.last() {
            Some(last) if page.len() == 500 => before = Some(last.id),
            _ => break,
        }
    }
    Ok((requests, problems))
}

fn progress_of(tally: &Tally, total: u64) -> Progress {
    let mut p = Progress {
        total,
        ..Progress::default()
    };
    for counts in tally.by_endpoint.values() {
        for (key, n) in counts {
            p.done += n;
            match key {
                OutcomeKey::Matched => p.matched += n,
                OutcomeKey::Mismatched => p.mismatched += n,
                OutcomeKey::CandidateError(_) => p.candidate_errors += n,
                _ => p.skipped += n,
            }
        }
    }
    p
}

/// Sends the requests, waits for every outcome and for the store, then
/// decides the gate over the run. `progress` is called a few times a second.
pub async fn run(
    settings: &Settings,
    store: Arc<SqlStore>,
    requests: Vec<(crate::endpoint::Endpoint, ReplayRequest)>,
    options: &ReplayOptions,
    criteria: &Criteria,
    progress: impl Fn(Progress) + Send + Sync + 'static,
    interrupt: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<ReplaySummary, ReplayError> {
    let started = now_ms();
    let writer = run_writer(settings, options);
    let stop_writer = CancellationToken::new();
    let writer_task = tokio::spawn(writer.clone().run(
        store.clone(),
        stop_writer.clone(),
        Duration::from_secs(60),
    ));
    let recorder = Arc::new(Recorder::with_writer(writer.clone()));
    let budget = BodyBudget::new(settings.max_buffered_bytes);
    let targets = Targets::new(settings)?;
    let (queue, stage) = ShadowStage::start(stage_config(settings, &targets, options, &budget)?);
    let selected = requests.len();
    let total = selected as u64;

    let progress = Arc::new(progress);
    let ticker = {
        let (recorder, progress) = (recorder.clone(), progress.clone());
        tokio::spawn(async move {
            loop {
                progress(progress_of(&recorder.tally(), total));
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    // Ctrl-C stops sending; what was sent still ends, is stored and gated.
    let interrupted = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let interrupted = interrupted.clone();
        tokio::spawn(async move {
            interrupt.await;
            interrupted.store(true, std::sync::atomic::Ordering::Relaxed);
        })
    };
    let sender = Sender {
        settings,
        options,
        recorder: &recorder,
        budget: &budget,
        queue: &queue,
        rules: settings.route_rules(),
        targets,
        uncredentialed: AtomicUsize::new(0),
    };
    let sent = sender.send_all(requests, &interrupted).await;
    let uncredentialed = sender.uncredentialed.load(Ordering::Relaxed);
    watcher.abort();
    // Every job has its timeout; this only bounds a wedged backend.
    stage
        .drain(settings.candidate_timeout * 2 + Duration::from_secs(5))
        .await;
    drop(queue);
    ticker.abort();
    progress(progress_of(&recorder.tally(), sent as u64));
    stop_writer.cancel();
    let _ = writer_task.await;
    let unwritten = writer.unwritten();
    if unwritten > 0 {
        return Err(ReplayError::Unstored(unwritten));
    }
    let tally = recorder.tally();
    if tally.total() < sent as u64 {
        tracing::error!(
            missing = sent as u64 - tally.total(),
            "some replayed requests ended without an outcome"
        );
    }

    let window = Window {
        since_ms: started - 60_000,
        until_ms: now_ms() + 60_000,
    };
    let run = options.run_id.as_str();
    let data = gate::gather(store.as_ref(), window, run, criteria).await?;
    let gate = gate::decide(criteria, window, Some(run), &data);
    Ok(ReplaySummary {
        run_id: options.run_id.clone(),
        selected,
        sent,
        tally,
        uncredentialed,
        gate,
    })
}

/// The store writer of one run: its rows carry the run id, and a replay
/// never prunes.
fn run_writer(settings: &Settings, options: &ReplayOptions) -> StoreWriter {
    let config = WriterConfig {
        retention: None,
        ..settings.writer_config(options.run_id.as_str())
    };
    StoreWriter::new(config, Redactor::new(&settings.redact))
}

/// The shadow stage in mirror style, `--concurrency` jobs at once.
fn stage_config(
    settings: &Settings,
    targets: &Targets,
    options: &ReplayOptions,
    budget: &BodyBudget,
) -> Result<ShadowConfig, ReplayError> {
    let concurrency = options.concurrency.get();
    let client = crate::upstream::shadow_client(targets.longest_candidate_timeout());
    // A replay tries every request (no breaker sheds any) and records none.
    Ok(ShadowConfig {
        max_in_flight: concurrency,
        queue: concurrency,
        comparisons: std::thread::available_parallelism().map_or(2, |n| n.get()),
        ..ShadowConfig::from_settings(settings, client, budget)
    })
}

/// What sending the run's requests needs.
struct Sender<'a> {
    settings: &'a Settings,
    options: &'a ReplayOptions,
    recorder: &'a Arc<Recorder>,
    budget: &'a BodyBudget,
    queue: &'a ShadowQueue,
    /// Rules for requests no route matches, and per route.
    rules: (Arc<Rules>, Vec<Arc<Rules>>),
    /// Each route's backends.
    targets: Targets,
    /// Requests a keyed credential had no value for.
    uncredentialed: AtomicUsize,
}

impl Sender<'_> {
    /// Sends every request (paced by `--rate`, waiting for queue room)
    /// until done or interrupted; returns how many were sent.
    async fn send_all(
        &self,
        requests: Vec<(crate::endpoint::Endpoint, ReplayRequest)>,
        interrupted: &std::sync::atomic::AtomicBool,
    ) -> usize {
        let mut sent = 0;
        let mut pace = self.options.rate.map(|r| {
            let mut i = tokio::time::interval(Duration::from_secs_f64(1.0 / r.0));
            i.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            i
        });
        for (endpoint, mut request) in requests {
            if interrupted.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            if let Some(credentials) = &self.options.credentials {
                let query = request.target.split_once('?').map(|(_, q)| q);
                let missing = credentials.apply(endpoint.as_str(), &mut request.headers, query);
                self.uncredentialed
                    .fetch_add(missing.min(1), Ordering::Relaxed);
            }
            sent += 1;
            let Some((job, claim, request)) = self.admit(endpoint, request) else {
                continue;
            };
            if let Some(pace) = &mut pace {
                pace.tick().await;
            }
            self.send(job, claim, request).await;
        }
        sent
    }

    /// The request's sample and budget, or `None` once it is finished as
    /// skipped (an unsafe method not allowed, a body over the limits).
    fn admit(
        &self,
        endpoint: crate::endpoint::Endpoint,
        request: ReplayRequest,
    ) -> Option<(Admitted, Claim, ReplayRequest)> {
        let settings = self.settings;
        let path = request.target.split('?').next().unwrap_or("/");
        let route = settings.route_for(&request.method, path);
        let sample = self.recorder.sample(SampleInfo {
            served_by_candidate: false,
            endpoint,
            method: request.method.clone(),
            target: request.target.clone(),
        });
        let safe = matches!(
            request.method,
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
        let allowed =
            self.options.allow_unsafe || route.is_some_and(|i| settings.routes[i].mirror_unsafe);
        let target = self.targets.get(route);
        let mut claim = self.budget.claim();
        let recorded = request.response.as_ref().map_or(0, |r| r.body.len());
        let skip = if target.candidate.is_none() {
            Some(SkipReason::NoCandidate)
        } else if !safe && !allowed {
            Some(SkipReason::UnsafeMethod)
        } else if request.body.len() > settings.max_body_bytes {
            Some(SkipReason::BodyTooLarge)
        } else if !claim.grow(request.body.len() + recorded) {
            Some(SkipReason::OverBudget)
        } else {
            None
        };
        if let Some(reason) = skip {
            sample.finish(Outcome::Skipped(reason));
            return None;
        }
        let rules = match route {
            Some(i) => self.rules.1[i].clone(),
            None => self.rules.0.clone(),
        };
        let target = Arc::clone(target);
        Some(((sample, rules, target), claim, request))
    }

    /// Queues one job, waiting for room: a replay paces itself by the queue.
    async fn send(&self, (sample, rules, target): Admitted, claim: Claim, request: ReplayRequest) {
        // The recorded response's bytes were claimed with the request's.
        let primary = match (self.options.recorded_primary, request.response) {
            (true, Some(response)) => PrimarySource::Given(response, self.budget.claim()),
            _ => PrimarySource::Fetch,
        };
        let mut headers = request.headers;
        for ExtraHeader(name, value) in &self.options.headers {
            headers.insert(name.clone(), value.clone());
        }
        match self.queue.reserve().await {
            Err(reason) => sample.finish(Outcome::Dropped(reason)),
            Ok(permit) => permit.send(ShadowJob {
                sample,
                rules,
                probe: false,
                request: ShadowRequest {
                    method: request.method,
                    target: request.target,
                    headers,
                    body: BodySource::Ready(request.body, claim),
                },
                primary,
                candidate: CandidateSource::Fetch,
                target,
            }),
        }
    }
}

/// A request's sample, the rules of its route and its route's backends.
type Admitted = (Sample, Arc<Rules>, Arc<Target>);

/// A run id that sorts by time: `replay-20261125T021500Z-1a2b`.
pub fn new_run_id() -> RunId {
    let stamp = crate::time::format_millis(now_ms() / 1000 * 1000).replace(['-', ':'], "");
    RunId(format!("replay-{stamp}-{:04x}", rand::random::<u16>()))
}

/// Whether the store already holds results of this run.
pub async fn run_exists(store: &dyn Store, run: &RunId) -> Result<bool, StoreError> {
    let all = Window {
        since_ms: 0,
        until_ms: i64::MAX / 2,
    };
    Ok(!store.counts(all, run.as_str(), None).await?.is_empty())
}
