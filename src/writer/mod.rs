//! The writer: outcomes are aggregated in memory as they happen and written
//! in batches by one background task, so the proxy never waits on the
//! database. It stands beside the store: it turns the Recorder's outcomes
//! into the store's plain rows (counts, groups, redacted exemplars).
//!
//! Counts (counters, latencies, groups, losses) are written first, in their
//! own transactions, and never wait behind exemplars. Every failure, of any
//! class, is retried with backoff, and a writer that owns its connection
//! drops and reopens it after a failure, so a database whose cause was fixed
//! (permissions, disk space) is written again. Exemplars are the first thing
//! given up: those past the hourly byte budget, those that do not fit the
//! queue in memory (bounded in number and bytes), and those whose write
//! fails are counted as lost, by reason, in memory ([`StoreHealth`]) and in
//! the store. Counts waiting in memory are bounded too.
//!
//! Its parts: this module (recording an outcome), `pending` (what waits in
//! memory), `drive` (the task that writes), `exemplar` (a mismatch as
//! stored), `health` (failures and losses, shared with the report API) and
//! `reserve` (room kept on a SQLite database's disk).

mod drive;
pub mod exemplar;
pub mod health;
mod pending;
pub mod reserve;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use self::health::{LossReason, StoreHealth};
use self::pending::Pending;
use crate::outcome::{Comparison, Outcome, OutcomeSink, SampleInfo};
use crate::redact::Redactor;
use crate::store::{latency_bucket, most_severe, GroupDelta, EXEMPLARS_PER_GROUP_HOUR};
use crate::time::now_ms;

pub use self::exemplar::BODY_CAP;

/// Rows written in one transaction at most.
pub const CHUNK_ROWS: usize = 2_000;

/// Exemplar bytes written in one transaction at most, so one failing write
/// costs a bounded number of exemplars.
pub(super) const EXEMPLAR_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// Distinct count rows (counter, latency and group keys) waiting in memory
/// at most; past it, outcomes with new keys are lost and counted. About
/// 30 MB, hours of an outage at hundreds of endpoints.
pub const MAX_PENDING_COUNT_ROWS: usize = 200_000;

/// Latency buckets waiting in memory at most (a busy endpoint touches
/// hundreds a minute); past it, new buckets' latencies are lost and counted
/// while outcomes are still counted. About 20 MB.
pub const MAX_PENDING_LATENCY_BUCKETS: usize = 200_000;

/// A write that takes longer than this counts as failed.
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// How the writer behaves.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Names this instance in every row it writes.
    pub instance: String,
    /// The replay run every row belongs to; empty for live traffic.
    pub run: String,
    /// Exemplars waiting to be written at most; beyond, they are lost and counted.
    pub max_pending: usize,
    /// How often pending data is written.
    pub flush_every: Duration,
    /// Rows older than this are pruned (checked every hour); `None` never
    /// prunes (a replay leaves that to the servers and their retention).
    pub retention: Option<Duration>,
    /// Bodies decode to at most this many bytes, as in the live comparison.
    pub max_body_bytes: usize,
    /// Exemplar bytes this writer stores per clock hour at most; beyond,
    /// exemplars are lost and counted. Also bounds the bytes of exemplars
    /// waiting in memory.
    pub exemplar_bytes_per_hour: usize,
    /// Each stored body is cut to this many bytes (`store_body_bytes`;
    /// [`BODY_CAP`] by default).
    pub stored_body_bytes: usize,
    /// Told of each mismatch group the store had not seen, besides the log.
    pub on_new_group: Option<GroupHook>,
}

/// What to do with a new mismatch group (notify it): called on the writer's
/// task, so it must not wait.
#[derive(Clone)]
pub struct GroupHook(pub Arc<dyn Fn(&GroupDelta) + Send + Sync>);

impl std::fmt::Debug for GroupHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GroupHook")
    }
}

/// The handle outcomes are recorded through; cheap to clone.
#[derive(Clone)]
pub struct StoreWriter {
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
    config: Arc<WriterConfig>,
    redactor: Arc<Redactor>,
    health: StoreHealth,
}

impl StoreWriter {
    pub fn new(config: WriterConfig, redactor: Redactor) -> StoreWriter {
        StoreWriter {
            pending: Arc::default(),
            wake: Arc::new(Notify::new()),
            config: Arc::new(config),
            redactor: Arc::new(redactor),
            health: StoreHealth::default(),
        }
    }

    /// The writer's health, to show beside what the store holds.
    pub fn health(&self) -> StoreHealth {
        self.health.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts `n` records as lost: in memory now, in the store with the next write.
    fn lose(&self, p: &mut Pending, minute: i64, n: i64, reason: LossReason) {
        *p.lost.entry(minute).or_default() += n;
        self.health.lose(reason, n, now_ms());
        if p.loss_logged != Some(minute) {
            p.loss_logged = Some(minute);
            tracing::warn!(
                reason = ?reason,
                "records are being lost (counted as lost_records; see the store's health in the summary)"
            );
        }
    }

    /// Adds one outcome. Never waits on the database.
    pub fn record(&self, info: &SampleInfo, outcome: &Outcome) {
        let at = now_ms();
        let endpoint = info.endpoint.as_str();
        let mismatch = match outcome {
            Outcome::Compared(c) if !c.verdict.matched => Some(c),
            _ => None,
        };
        let wants_exemplar = {
            let mut p = self.lock();
            if !self.count(&mut p, at, info, outcome) {
                return;
            }
            mismatch.is_some_and(|c| self.count_group(&mut p, at, endpoint, c))
        };
        if let (Some(c), true) = (mismatch, wants_exemplar) {
            self.queue_exemplar(at, info, c);
        }
    }

    /// Counts an outcome, with its latencies and server errors; false if
    /// the counts waiting are at their bound and it was lost instead.
    fn count(&self, p: &mut Pending, at: i64, info: &SampleInfo, outcome: &Outcome) -> bool {
        let minute = at.div_euclid(60_000);
        let endpoint = info.endpoint.as_str();
        let key = (minute, endpoint.to_string(), outcome.key().to_string());
        if p.count_rows() >= MAX_PENDING_COUNT_ROWS && !p.counters.contains_key(&key) {
            self.lose(p, minute, 1, LossReason::CountsBacklogFull);
            return false;
        }
        *p.counters.entry(key).or_default() += 1;
        // Which side served, beside how the sample ended.
        if info.served_by_candidate {
            let served = (
                minute,
                endpoint.to_string(),
                "served_by_candidate".to_string(),
            );
            *p.counters.entry(served).or_default() += 1;
        }
        if let Outcome::Compared(c) = outcome {
            let mut add = |name: &str, n: i64| {
                *p.counters
                    .entry((minute, endpoint.to_string(), name.to_string()))
                    .or_default() += n;
            };
            add("measured_pairs", 1);
            if c.verdict.byte_equal {
                add("byte_equal", 1);
            }
            add("primary_bytes", c.exchange.primary.body.len() as i64);
            add("candidate_bytes", c.exchange.candidate.body.len() as i64);
            for (side, response) in [
                ("primary", &c.exchange.primary),
                ("candidate", &c.exchange.candidate),
            ] {
                let key = (
                    minute,
                    endpoint.to_string(),
                    side,
                    latency_bucket(response.latency),
                );
                if p.latencies.len() >= MAX_PENDING_LATENCY_BUCKETS
                    && !p.latencies.contains_key(&key)
                {
                    self.lose(p, minute, 1, LossReason::LatencyBacklogFull);
                } else {
                    *p.latencies.entry(key).or_default() += 1;
                }
                // Server errors are counted beside the outcomes, for error rates.
                if response.status.is_server_error() {
                    *p.counters
                        .entry((minute, endpoint.to_string(), format!("{side}_5xx")))
                        .or_default() += 1;
                }
            }
        }
        true
    }

    /// Counts a mismatch in its group; true if an exemplar of it is wanted
    /// (within the group's hourly quota and the hour's byte budget).
    fn count_group(&self, p: &mut Pending, at: i64, endpoint: &str, c: &Comparison) -> bool {
        let minute = at.div_euclid(60_000);
        let fingerprint = c.verdict.fingerprint.clone().unwrap_or_default();
        // The store keeps a class as its rank, 0 for none known.
        let severity = c.verdict.severity.map_or(0, |s| s.rank());
        let group = p
            .groups
            .entry(fingerprint.clone())
            .or_insert_with(|| GroupDelta {
                fingerprint: fingerprint.clone(),
                endpoint: endpoint.to_string(),
                first_seen: at,
                last_seen: at,
                count: 0,
                paths: generalised_paths(&c.verdict.paths),
                headers: c.verdict.headers.iter().map(|h| h.name.clone()).collect(),
                statuses: c.verdict.status.map(|s| (s.primary, s.candidate)),
                severity,
            });
        group.count += 1;
        group.last_seen = group.last_seen.max(at);
        // One fingerprint can hold several classes (a value that changed,
        // or changed type, at one path): the group keeps the worst.
        group.severity = most_severe(group.severity, severity);
        // Per-minute group counts let the gate leave out groups
        // triaged as expected, over any window.
        let counted = p
            .group_counts
            .entry((minute, endpoint.to_string(), fingerprint.clone()))
            .or_default();
        counted.0 += 1;
        counted.1 = most_severe(counted.1, severity);
        // Past the hourly cap a mismatch is only counted: a storm
        // costs no redaction, no second comparison, no memory.
        let hour = at.div_euclid(3_600_000);
        let used = p.quota.entry((fingerprint, hour)).or_default();
        *used += 1;
        if *used > EXEMPLARS_PER_GROUP_HOUR {
            return false;
        }
        // A spent byte budget costs no redaction either.
        if p.budget.0 == hour && p.budget.1 >= self.config.exemplar_bytes_per_hour {
            self.lose(p, minute, 1, LossReason::ExemplarByteBudget);
            return false;
        }
        p.preparing += 1;
        true
    }

    /// How far bodies decode, and how much of each is stored.
    fn limits(&self) -> (usize, usize) {
        (self.config.max_body_bytes, self.config.stored_body_bytes)
    }

    /// Redacts a mismatch into an exemplar and queues it, within the byte
    /// budget and the queue's bounds.
    fn queue_exemplar(&self, at: i64, info: &SampleInfo, c: &Comparison) {
        // Redaction and the second comparison happen outside the lock.
        let record = exemplar::build(&self.redactor, self.limits(), at, info, c);
        let size = exemplar::size(&record);
        let minute = at.div_euclid(60_000);
        let mut p = self.lock();
        p.preparing -= 1;
        let hour = at.div_euclid(3_600_000);
        if p.budget.0 != hour {
            p.budget = (hour, 0);
        }
        let budget = self.config.exemplar_bytes_per_hour;
        if p.budget.1 + size > budget {
            p.budget.1 = budget;
            self.lose(&mut p, minute, 1, LossReason::ExemplarByteBudget);
            return;
        }
        if p.mismatches.len() >= self.config.max_pending || p.mismatch_bytes + size > budget {
            self.lose(&mut p, minute, 1, LossReason::ExemplarQueueFull);
            return;
        }
        p.budget.1 += size;
        p.mismatch_bytes += size;
        p.mismatches.push_back((record, size));
        let full = p.mismatches.len() >= 100;
        drop(p);
        if full {
            self.wake.notify_one();
        }
    }

    /// Rows still waiting to be written (0 once everything is stored).
    pub fn unwritten(&self) -> usize {
        let p = self.lock();
        p.count_rows() + p.latencies.len() + p.mismatches.len() + p.lost.len() + p.preparing
    }
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StoreWriter")
    }
}

fn generalised_paths(paths: &[String]) -> Vec<String> {
    let mut paths: Vec<String> = paths
        .iter()
        .map(|p| crate::compare::generalise_path(p))
        .collect();
    paths.sort();
    paths.dedup();
    paths
}

impl OutcomeSink for StoreWriter {
    fn record(&self, info: &SampleInfo, outcome: &Outcome) {
        StoreWriter::record(self, info, outcome);
    }
}
