//! The writer's health, shared with the report API in the same
//! process: whether writes succeed (or fail since when, and of which class),
//! and how many records this process could not keep, by reason. Only the
//! error's class is kept, never its text: clients must not see SQL or paths.
//! It also tells when the writer's first try to open (and migrate) the
//! database is over, so the report API, which never migrates, can wait for it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;
use tokio::sync::watch;

pub use crate::store::ErrorClass;

/// Why a record was not kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LossReason {
    /// The exemplars waiting in memory reached `store_queue` or their byte bound.
    ExemplarQueueFull,
    /// The exemplars of this hour reached `store_exemplar_bytes_per_hour`.
    ExemplarByteBudget,
    /// Exemplar writes kept failing (while counts could be written) and the
    /// queue overflowed.
    ExemplarWriteFailed,
    /// The counts waiting in memory reached their bound during an outage.
    CountsBacklogFull,
    /// The latency buckets waiting in memory reached their bound during an
    /// outage: a compared request's latencies were not kept (its outcome was).
    LatencyBacklogFull,
    /// The store was still failing when the process stopped.
    Shutdown,
    /// The database's disk was full: exemplars wait for room, counts take it.
    DiskFull,
}

impl LossReason {
    /// Whether the loss comes from a failure (a write that failed, counts
    /// that could not wait any longer), not from an exemplar bound doing its
    /// job in a mismatch storm: only failures make the counts doubtful.
    pub fn is_failure(self) -> bool {
        !matches!(
            self,
            LossReason::ExemplarQueueFull | LossReason::ExemplarByteBudget
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LossReason::ExemplarQueueFull => "exemplar_queue_full",
            LossReason::ExemplarByteBudget => "exemplar_byte_budget",
            LossReason::ExemplarWriteFailed => "exemplar_write_failed",
            LossReason::CountsBacklogFull => "counts_backlog_full",
            LossReason::LatencyBacklogFull => "latency_backlog_full",
            LossReason::Shutdown => "shutdown",
            LossReason::DiskFull => "disk_full",
        }
    }
}

/// A copy of the health at one moment.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HealthSnapshot {
    /// When the current run of failed writes began; `None` while writes succeed.
    pub failing_since_ms: Option<i64>,
    /// The class of the last failure, even after writes resumed.
    pub last_error: Option<ErrorClass>,
    pub last_error_ms: Option<i64>,
    /// Records lost since start, by reason.
    pub lost: BTreeMap<LossReason, i64>,
    /// When the last record was lost.
    pub last_loss_ms: Option<i64>,
    /// When the last record was lost to a failure rather than to a bound
    /// working as designed (see [`LossReason::is_failure`]).
    pub last_failure_loss_ms: Option<i64>,
    /// Rows and exemplars waiting in memory to be written.
    pub unwritten: i64,
}

impl HealthSnapshot {
    pub fn lost_total(&self) -> i64 {
        self.lost.values().sum()
    }
}

/// The shared handle: the writer updates it, the report API reads it.
#[derive(Clone, Debug)]
pub struct StoreHealth {
    snapshot: Arc<Mutex<HealthSnapshot>>,
    /// True once the writer's first try to open the database has ended,
    /// whether it opened and migrated it or failed.
    first_open: Arc<watch::Sender<bool>>,
}

impl Default for StoreHealth {
    fn default() -> Self {
        StoreHealth {
            snapshot: Arc::default(),
            first_open: Arc::new(watch::Sender::new(false)),
        }
    }
}

impl StoreHealth {
    fn with<T>(&self, f: impl FnOnce(&mut HealthSnapshot) -> T) -> T {
        f(&mut self.snapshot.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Waits, at most `within`, for the writer's first try to open the
    /// database to end: a reader that opens it before might find it
    /// without its tables yet.
    pub async fn first_open(&self, within: std::time::Duration) {
        let mut ready = self.first_open.subscribe();
        let _ = tokio::time::timeout(within, ready.wait_for(|done| *done)).await;
    }

    pub(crate) fn first_open_ended(&self) {
        self.first_open.send_replace(true);
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        self.with(|h| h.clone())
    }

    pub(crate) fn failed(&self, class: ErrorClass, at_ms: i64) {
        self.with(|h| {
            h.failing_since_ms.get_or_insert(at_ms);
            h.last_error = Some(class);
            h.last_error_ms = Some(at_ms);
        });
    }

    pub(crate) fn succeeded(&self) {
        self.with(|h| h.failing_since_ms = None);
    }

    pub(crate) fn lose(&self, reason: LossReason, n: i64, at_ms: i64) {
        if n <= 0 {
            return;
        }
        self.with(|h| {
            *h.lost.entry(reason).or_default() += n;
            h.last_loss_ms = Some(at_ms);
            if reason.is_failure() {
                h.last_failure_loss_ms = Some(at_ms);
            }
        });
    }

    pub(crate) fn set_unwritten(&self, n: usize) {
        self.with(|h| h.unwritten = i64::try_from(n).unwrap_or(i64::MAX));
    }
}
