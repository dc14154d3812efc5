//! Outcomes: how each sampled request ended, and the tally of them.
//!
//! Every sampled request holds a [`Sample`] ticket, which records exactly one
//! outcome: the one it is finished with, or `dropped (abandoned)` if it is
//! dropped unfinished (a shutdown deadline, a task that died). So nothing
//! sampled goes uncounted. Beside the outcome counts, the tally keeps what
//! `/metrics` shows of compared samples (`live`).

pub mod live;
pub mod periodic;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use http::Method;
use tokio::sync::watch;

use crate::compare::Verdict;
use crate::endpoint::Endpoint;
use crate::exchange::Exchange;

/// Why the candidate gave no usable response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CandidateErrorKind {
    /// No response within `candidate_timeout_ms`.
    Timeout,
    /// The connection could not be made (refused, unreachable, DNS).
    Connect,
    /// The connection was reset or closed mid-exchange.
    Reset,
    /// The candidate did not speak valid HTTP.
    Protocol,
}

/// Why a sampled request was not compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SkipReason {
    /// A request or response body was larger than `max_body_bytes`.
    BodyTooLarge,
    /// A method other than GET, HEAD or OPTIONS on a route without `mirror_unsafe`.
    UnsafeMethod,
    /// A protocol upgrade such as WebSocket: passed through, not shadowed.
    Upgrade,
    /// A `text/event-stream` response: passed through, not shadowed.
    EventStream,
    /// The primary failed (unreachable, reset), so there is nothing to compare with.
    PrimaryError,
    /// The primary's response took longer than the shadow timeout to complete.
    PrimaryTimeout,
    /// Body copies held for comparison had reached `max_buffered_bytes`.
    OverBudget,
    /// The client went away, or the request body broke, before the exchange was whole.
    Incomplete,
    /// The candidate kept failing: the breaker sheds samples until a probe
    /// gets a usable response (`breaker_failures`).
    CandidateUnhealthy,
    /// The request's route has no candidate (`candidate = false`): proxied,
    /// never shadowed.
    NoCandidate,
    /// The responses differed, and no longer did when both backends were
    /// called again (`recheck`): the data changed between the two calls, so
    /// the pair is not comparable, not a bug.
    Transient,
}

/// Why a sampled request was dropped without an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// The shadow queue was full.
    QueueFull,
    /// shadowdiff was shutting down.
    Shutdown,
    /// The work was given up unfinished: the drain deadline passed, or the
    /// client went away while its request was being read (mirror mode).
    Abandoned,
    /// The request's candidate had its `max_in_flight` calls running.
    BackendBusy,
}

/// How one sampled request ended.
#[derive(Debug)]
pub enum Outcome {
    /// Both responses were read and compared.
    Compared(Box<Comparison>),
    CandidateError(CandidateErrorKind),
    Skipped(SkipReason),
    Dropped(DropReason),
}

/// A finished comparison: the exchange and what was found.
#[derive(Debug)]
pub struct Comparison {
    pub exchange: Exchange,
    pub verdict: Verdict,
    /// The rules the verdict was reached under, to compare again after redaction.
    pub rules: std::sync::Arc<crate::compare::Rules>,
    /// Differences discounted as learned noise, and why: kept with the
    /// stored verdict's reasons.
    pub discounted: Vec<String>,
}

/// The outcome kind as counted: `matched`, `candidate_error/timeout`, …
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum OutcomeKey {
    Matched,
    Mismatched,
    CandidateError(CandidateErrorKind),
    Skipped(SkipReason),
    Dropped(DropReason),
}

/// Stable snake_case names, as logged and (later) stored and reported.
macro_rules! names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            pub fn as_str(self) -> &'static str {
                match self { $($ty::$variant => $name),* }
            }

            /// The value a stored name stands for, if it is one.
            pub fn from_name(name: &str) -> Option<Self> {
                match name { $($name => Some($ty::$variant),)* _ => None }
            }
        }
    };
}

names!(CandidateErrorKind { Timeout => "timeout", Connect => "connect", Reset => "reset", Protocol => "protocol" });
names!(SkipReason {
    BodyTooLarge => "body_too_large",
    UnsafeMethod => "unsafe_method",
    Upgrade => "upgrade",
    EventStream => "event_stream",
    PrimaryError => "primary_error",
    PrimaryTimeout => "primary_timeout",
    OverBudget => "over_budget",
    Incomplete => "incomplete",
    CandidateUnhealthy => "candidate_unhealthy",
    NoCandidate => "no_candidate",
    Transient => "transient",
});
names!(DropReason {
    QueueFull => "queue_full",
    Shutdown => "shutdown",
    Abandoned => "abandoned",
    BackendBusy => "backend_busy",
});

impl fmt::Display for OutcomeKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OutcomeKey::Matched => f.write_str("matched"),
            OutcomeKey::Mismatched => f.write_str("mismatched"),
            OutcomeKey::CandidateError(k) => write!(f, "candidate_error/{}", k.as_str()),
            OutcomeKey::Skipped(r) => write!(f, "skipped/{}", r.as_str()),
            OutcomeKey::Dropped(r) => write!(f, "dropped/{}", r.as_str()),
        }
    }
}

impl OutcomeKey {
    /// The key a stored name stands for (the inverse of `Display`), if it is one.
    pub fn parse(name: &str) -> Option<OutcomeKey> {
        match name {
            "matched" => return Some(OutcomeKey::Matched),
            "mismatched" => return Some(OutcomeKey::Mismatched),
            _ => {}
        }
        let (kind, detail) = name.split_once('/')?;
        match kind {
            "candidate_error" => {
                CandidateErrorKind::from_name(detail).map(OutcomeKey::CandidateError)
            }
            "skipped" => SkipReason::from_name(detail).map(OutcomeKey::Skipped),
            "dropped" => DropReason::from_name(detail).map(OutcomeKey::Dropped),
            _ => None,
        }
    }
}

impl Outcome {
    pub fn key(&self) -> OutcomeKey {
        match self {
            Outcome::Compared(c) if c.verdict.matched => OutcomeKey::Matched,
            Outcome::Compared(_) => OutcomeKey::Mismatched,
            Outcome::CandidateError(k) => OutcomeKey::CandidateError(*k),
            Outcome::Skipped(r) => OutcomeKey::Skipped(*r),
            Outcome::Dropped(r) => OutcomeKey::Dropped(*r),
        }
    }
}

/// What identifies a sampled request in logs and stored exemplars.
#[derive(Clone, Debug)]
pub struct SampleInfo {
    pub endpoint: Endpoint,
    pub method: Method,
    pub target: String,
    /// The candidate served the client (a cutover's weight chose it), and
    /// the primary was the side called in the background.
    pub served_by_candidate: bool,
}

impl SampleInfo {
    /// The target without its query: what is logged, because a query may
    /// hold secrets and logs are not redacted.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

/// Counts of outcomes per endpoint, and what compared samples showed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub by_endpoint: BTreeMap<Endpoint, BTreeMap<OutcomeKey, u64>>,
    pub compared: BTreeMap<Endpoint, live::Compared>,
}

impl Tally {
    pub fn total(&self) -> u64 {
        self.by_endpoint.values().flat_map(|m| m.values()).sum()
    }

    /// How many outcomes of `key` across all endpoints.
    pub fn count(&self, key: OutcomeKey) -> u64 {
        self.by_endpoint.values().filter_map(|m| m.get(&key)).sum()
    }
}

/// Where the Recorder hands each outcome on, besides its own tally: the
/// writer that persists them. Called where a sample finishes, the client's
/// path included, so it must never wait.
pub trait OutcomeSink: Send + Sync + fmt::Debug {
    fn record(&self, info: &SampleInfo, outcome: &Outcome);
}

/// Where outcomes go: counters, the log, and the sink (the store writer)
/// when there is one.
#[derive(Debug)]
pub struct Recorder {
    /// Where outcomes are persisted, when a database is configured.
    sink: Option<Box<dyn OutcomeSink>>,
    tally: Mutex<Tally>,
    total: watch::Sender<u64>,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            sink: None,
            tally: Mutex::default(),
            total: watch::Sender::new(0),
        }
    }
}

impl Recorder {
    /// A recorder that also hands every outcome to a writer.
    pub fn with_writer(writer: impl OutcomeSink + 'static) -> Self {
        Recorder {
            sink: Some(Box::new(writer)),
            ..Recorder::default()
        }
    }

    fn record(&self, info: SampleInfo, outcome: Outcome) {
        let key = outcome.key();
        if let Some(sink) = &self.sink {
            sink.record(&info, &outcome);
        }
        match &outcome {
            Outcome::Compared(c) if c.verdict.matched => {
                tracing::debug!(endpoint = %info.endpoint, path = %info.path(), outcome = %key, "shadow outcome");
            }
            Outcome::Compared(c) => {
                tracing::info!(
                    endpoint = %info.endpoint,
                    path = %info.path(),
                    outcome = %key,
                    byte_equal = c.verdict.byte_equal,
                    primary_status = c.exchange.primary.status.as_u16(),
                    candidate_status = c.exchange.candidate.status.as_u16(),
                    paths = ?c.verdict.paths.iter().take(5).collect::<Vec<_>>(),
                    fingerprint = c.verdict.fingerprint.as_deref().unwrap_or(""),
                    "shadow outcome"
                );
            }
            Outcome::CandidateError(_) => {
                tracing::info!(endpoint = %info.endpoint, path = %info.path(), outcome = %key, "shadow outcome");
            }
            // Skips and drops are decided on the client's path: no blocking write there.
            _ => {
                tracing::debug!(endpoint = %info.endpoint, path = %info.path(), outcome = %key, "shadow outcome");
            }
        }
        {
            let mut tally = self.tally.lock().unwrap_or_else(|e| e.into_inner());
            *tally
                .by_endpoint
                .entry(info.endpoint.clone())
                .or_default()
                .entry(key)
                .or_default() += 1;
            if let Outcome::Compared(c) = &outcome {
                tally
                    .compared
                    .entry(info.endpoint.clone())
                    .or_default()
                    .record(&c.exchange, &c.verdict);
            }
        }
        self.total.send_modify(|n| *n += 1);
    }

    pub fn tally(&self) -> Tally {
        self.tally.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Waits until at least `n` outcomes have been recorded in all.
    pub async fn wait_for(&self, n: u64) {
        let mut rx = self.total.subscribe();
        // The sender lives as long as `self`, so this cannot fail while we borrow it.
        let _ = rx.wait_for(|total| *total >= n).await;
    }

    /// A ticket for a sampled request, which must end in one outcome.
    pub fn sample(self: &Arc<Self>, info: SampleInfo) -> Sample {
        Sample {
            info: Some(info),
            recorder: self.clone(),
        }
    }
}

/// A sampled request that has not ended yet. See the module documentation.
#[derive(Debug)]
pub struct Sample {
    info: Option<SampleInfo>,
    recorder: Arc<Recorder>,
}

impl Sample {
    pub fn info(&self) -> &SampleInfo {
        self.info.as_ref().expect("present until finished")
    }

    /// Ends the sample with its outcome.
    pub fn finish(mut self, outcome: Outcome) {
        if let Some(info) = self.info.take() {
            self.recorder.record(info, outcome);
        }
    }
}

impl Drop for Sample {
    fn drop(&mut self) {
        if let Some(info) = self.info.take() {
            self.recorder
                .record(info, Outcome::Dropped(DropReason::Abandoned));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::EndpointCatalog;

    fn info() -> SampleInfo {
        SampleInfo {
            served_by_candidate: false,
            endpoint: EndpointCatalog::new(10).name(&Method::GET, "/x", None),
            method: Method::GET,
            target: "/x".into(),
        }
    }

    #[test]
    fn a_sample_ends_in_exactly_one_outcome() {
        let recorder = Arc::new(Recorder::default());
        recorder
            .sample(info())
            .finish(Outcome::Skipped(SkipReason::BodyTooLarge));
        drop(recorder.sample(info()));
        let tally = recorder.tally();
        assert_eq!(tally.total(), 2);
        assert_eq!(
            tally.count(OutcomeKey::Skipped(SkipReason::BodyTooLarge)),
            1
        );
        assert_eq!(tally.count(OutcomeKey::Dropped(DropReason::Abandoned)), 1);
    }

    #[test]
    fn keys_print_as_snake_case() {
        assert_eq!(
            OutcomeKey::CandidateError(CandidateErrorKind::Timeout).to_string(),
            "candidate_error/timeout"
        );
        assert_eq!(
            OutcomeKey::Skipped(SkipReason::BodyTooLarge).to_string(),
            "skipped/body_too_large"
        );
    }
}
