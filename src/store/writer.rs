//! The store writer: outcomes are aggregated in memory as they happen and
//! written in batches by one background task, so the proxy never waits on
//! the database.
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

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{oneshot, Notify};

use super::health::{ErrorClass, LossReason, StoreHealth};
use super::reserve::Reserve;
use super::{
    exemplar, Batch, CounterDelta, DatabaseUrl, GroupDelta, LatencyDelta, MismatchRecord, SqlStore,
    Store, StoreError, EXEMPLARS_PER_GROUP_HOUR,
};
use crate::outcome::{Outcome, SampleInfo};
use crate::redact::Redactor;

pub use super::exemplar::BODY_CAP;

/// Rows written in one transaction at most.
pub const CHUNK_ROWS: usize = 2_000;

/// Exemplar bytes written in one transaction at most, so one failing write
/// costs a bounded number of exemplars.
const EXEMPLAR_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// Distinct count rows (counter, latency and group keys) waiting in memory
/// at most; past it, outcomes with new keys are lost and counted. About
/// 30 MB, hours of an outage at hundreds of endpoints.
pub const MAX_PENDING_COUNT_ROWS: usize = 200_000;

/// A write that takes longer than this counts as failed.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// The latency histogram's bucket for a duration: four buckets per doubling
/// of microseconds (about 19% wide), the same on every instance, so
/// histograms merge by adding counts.
pub fn latency_bucket(latency: Duration) -> i64 {
    let micros = latency.as_micros().max(1) as f64;
    (micros.log2() * 4.0).floor() as i64
}

/// The upper bound of a bucket, for reading percentiles back.
pub fn bucket_upper_bound(bucket: i64) -> Duration {
    Duration::from_micros(2f64.powf((bucket + 1) as f64 / 4.0).ceil() as u64)
}

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
}

#[derive(Default)]
struct Pending {
    counters: HashMap<(i64, String, String), i64>,
    latencies: HashMap<(i64, String, &'static str, i64), i64>,
    groups: HashMap<String, GroupDelta>,
    mismatches: VecDeque<(MismatchRecord, usize)>,
    /// Bytes of the exemplars in `mismatches`.
    mismatch_bytes: usize,
    lost: HashMap<i64, i64>,
    /// Exemplars queued per (group, hour) by this instance, to stop a storm early.
    quota: HashMap<(String, i64), i64>,
    /// The hour the byte budget counts, and the exemplar bytes queued in it.
    budget: (i64, usize),
    /// The last minute a loss was logged in: one line a minute, not one a record.
    loss_logged: Option<i64>,
    /// Exemplars being redacted (outside the lock) whose counts are already
    /// pending: unwritten until queued, or lost.
    preparing: usize,
}

impl Pending {
    fn count_rows(&self) -> usize {
        self.counters.len() + self.latencies.len() + self.groups.len()
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

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Where the writer's store comes from.
enum Source {
    /// Given: used as it is.
    Given(Arc<dyn Store>),
    /// Opened (and migrated) from the URL, and opened again after failures.
    Url(DatabaseUrl, Option<Arc<SqlStore>>),
}

impl Source {
    /// The store, opening it if need be.
    async fn store(&mut self) -> Result<Arc<dyn Store>, StoreError> {
        match self {
            Source::Given(store) => Ok(store.clone()),
            Source::Url(_, Some(open)) => Ok(open.clone()),
            Source::Url(url, open) => {
                // Bounded, as writes are: an open that hangs is a failure too.
                let timed_out = || StoreError::Query(sqlx::Error::PoolTimedOut);
                let store = tokio::time::timeout(WRITE_TIMEOUT, SqlStore::connect(url))
                    .await
                    .map_err(|_| timed_out())??;
                let migrated = tokio::time::timeout(WRITE_TIMEOUT, store.migrate()).await;
                if let Err(e) = migrated.map_err(|_| timed_out()).and_then(|m| m) {
                    store.checkpoint_and_close().await;
                    return Err(e);
                }
                tracing::info!(database = %url, "store open");
                let store = Arc::new(store);
                *open = Some(store.clone());
                Ok(store)
            }
        }
    }

    /// Lets go of an opened store, so the next try opens it afresh: a
    /// connection opened read-only, or broken, is not used again.
    async fn reopen_next_time(&mut self) {
        if let Source::Url(_, open) = self {
            if let Some(store) = open.take() {
                store.checkpoint_and_close().await;
            }
        }
    }
}

/// How one try went, which sets the pace of the next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Attempt {
    Written,
    /// Counts were written; exemplars failed (and were lost).
    ExemplarsFailed,
    /// The store could not be opened, or counts could not be written.
    CountsFailed,
}

/// How one round of writing went.
struct Flushed {
    /// Counts: all written, or why not (then nothing else was tried).
    counts: Result<(), StoreError>,
    /// The first exemplar write that failed (those exemplars were lost).
    exemplars: Option<StoreError>,
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
        let minute = at.div_euclid(60_000);
        let endpoint = info.endpoint.as_str();
        let mismatch = match outcome {
            Outcome::Compared(c) if !c.verdict.matched => Some(c),
            _ => None,
        };
        let wants_exemplar = {
            let mut p = self.lock();
            let key = (minute, endpoint.to_string(), outcome.key().to_string());
            if p.count_rows() >= MAX_PENDING_COUNT_ROWS && !p.counters.contains_key(&key) {
                self.lose(&mut p, minute, 1, LossReason::CountsBacklogFull);
                return;
            }
            *p.counters.entry(key).or_default() += 1;
            if let Outcome::Compared(c) = outcome {
                for (side, response) in [
                    ("primary", &c.exchange.primary),
                    ("candidate", &c.exchange.candidate),
                ] {
                    *p.latencies
                        .entry((
                            minute,
                            endpoint.to_string(),
                            side,
                            latency_bucket(response.latency),
                        ))
                        .or_default() += 1;
                    // Server errors are counted beside the outcomes, for error rates.
                    if response.status.is_server_error() {
                        *p.counters
                            .entry((minute, endpoint.to_string(), format!("{side}_5xx")))
                            .or_default() += 1;
                    }
                }
            }
            match mismatch {
                None => false,
                Some(c) => {
                    let fingerprint = c.verdict.fingerprint.clone().unwrap_or_default();
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
                        });
                    group.count += 1;
                    group.last_seen = group.last_seen.max(at);
                    // Per-minute group counts let the gate leave out groups
                    // triaged as expected, over any window.
                    *p.counters
                        .entry((minute, endpoint.to_string(), format!("group/{fingerprint}")))
                        .or_default() += 1;
                    // Past the hourly cap a mismatch is only counted: a storm
                    // costs no redaction, no second comparison, no memory.
                    let used = p
                        .quota
                        .entry((fingerprint, at.div_euclid(3_600_000)))
                        .or_default();
                    *used += 1;
                    let within_quota = *used <= EXEMPLARS_PER_GROUP_HOUR;
                    // A spent byte budget costs no redaction either.
                    let hour = at.div_euclid(3_600_000);
                    let spent =
                        p.budget.0 == hour && p.budget.1 >= self.config.exemplar_bytes_per_hour;
                    if within_quota && spent {
                        self.lose(&mut p, minute, 1, LossReason::ExemplarByteBudget);
                    }
                    if within_quota && !spent {
                        p.preparing += 1;
                    }
                    within_quota && !spent
                }
            }
        };
        let (Some(c), true) = (mismatch, wants_exemplar) else {
            return;
        };
        // Redaction and the second comparison happen outside the lock.
        let record = exemplar::build(&self.redactor, self.config.max_body_bytes, at, info, c);
        let size = exemplar::size(&record);
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

    /// The counts waiting, as one batch (without exemplars).
    fn take_counts(&self) -> Batch {
        let mut p = self.lock();
        let hour = now_ms().div_euclid(3_600_000);
        p.quota.retain(|(_, h), _| *h >= hour);
        Batch {
            counters: p
                .counters
                .drain()
                .map(|((minute, endpoint, outcome), count)| CounterDelta {
                    minute,
                    endpoint,
                    outcome,
                    count,
                })
                .collect(),
            latencies: p
                .latencies
                .drain()
                .map(|((minute, endpoint, side, bucket), count)| LatencyDelta {
                    minute,
                    endpoint,
                    side,
                    bucket,
                    count,
                })
                .collect(),
            groups: p.groups.drain().map(|(_, g)| g).collect(),
            mismatches: Vec::new(),
            lost: p.lost.drain().collect(),
        }
    }

    /// The oldest exemplars waiting, up to one transaction's worth.
    fn take_exemplars(&self) -> Batch {
        let mut p = self.lock();
        let (mut mismatches, mut bytes) = (Vec::new(), 0);
        while let Some((_, size)) = p.mismatches.front() {
            if !mismatches.is_empty()
                && (bytes + size > EXEMPLAR_CHUNK_BYTES || mismatches.len() >= CHUNK_ROWS)
            {
                break;
            }
            let Some((record, size)) = p.mismatches.pop_front() else {
                break;
            };
            bytes += size;
            p.mismatch_bytes -= size;
            mismatches.push(record);
        }
        Batch {
            mismatches,
            ..Batch::default()
        }
    }

    /// Puts exemplars that could not be written back at the head of the
    /// queue; past its bounds the oldest are lost to the failing writes.
    fn put_back_exemplars(&self, chunk: Batch) {
        let mut p = self.lock();
        for record in chunk.mismatches.into_iter().rev() {
            let size = exemplar::size(&record);
            p.mismatch_bytes += size;
            p.mismatches.push_front((record, size));
        }
        let minute = now_ms().div_euclid(60_000);
        let budget = self.config.exemplar_bytes_per_hour;
        while p.mismatches.len() > self.config.max_pending || p.mismatch_bytes > budget {
            let Some((_, size)) = p.mismatches.pop_front() else {
                break;
            };
            p.mismatch_bytes -= size;
            self.lose(&mut p, minute, 1, LossReason::ExemplarWriteFailed);
        }
    }

    /// Puts counts that could not be written back: they merge with what
    /// came since.
    fn put_back(&self, batch: Batch) {
        let mut p = self.lock();
        for c in batch.counters {
            *p.counters
                .entry((c.minute, c.endpoint, c.outcome))
                .or_default() += c.count;
        }
        for l in batch.latencies {
            *p.latencies
                .entry((l.minute, l.endpoint, l.side, l.bucket))
                .or_default() += l.count;
        }
        for g in batch.groups {
            match p.groups.get_mut(&g.fingerprint) {
                Some(newer) => {
                    newer.count += g.count;
                    newer.first_seen = newer.first_seen.min(g.first_seen);
                }
                None => {
                    p.groups.insert(g.fingerprint.clone(), g);
                }
            }
        }
        for (minute, count) in batch.lost {
            *p.lost.entry(minute).or_default() += count;
        }
    }

    async fn write(&self, store: &dyn Store, batch: &Batch) -> Result<(), StoreError> {
        let written = tokio::time::timeout(
            WRITE_TIMEOUT,
            store.write(&self.config.instance, &self.config.run, batch),
        )
        .await;
        match written {
            Ok(result) => result,
            Err(_) => Err(StoreError::Query(sqlx::Error::PoolTimedOut)),
        }
    }

    /// Writes the counts waiting, then exemplars; see [`Flushed`].
    async fn flush_round(&self, store: &dyn Store, write_exemplars: bool) -> Flushed {
        if !write_exemplars {
            // The disk is full: what room there is goes to the counts.
            let mut p = self.lock();
            let n = p.mismatches.len() as i64;
            p.mismatches.clear();
            p.mismatch_bytes = 0;
            let minute = now_ms().div_euclid(60_000);
            self.lose(&mut p, minute, n, LossReason::DiskFull);
        }
        let counts = self.take_counts();
        let mut chunks = counts.into_chunks(CHUNK_ROWS).into_iter();
        while let Some(chunk) = chunks.next() {
            if chunk.is_empty() {
                continue;
            }
            if let Err(e) = self.write(store, &chunk).await {
                self.put_back(chunk);
                chunks.for_each(|rest| self.put_back(rest));
                return Flushed {
                    counts: Err(e),
                    exemplars: None,
                };
            }
        }
        loop {
            let chunk = self.take_exemplars();
            if chunk.is_empty() {
                break;
            }
            if let Err(e) = self.write(store, &chunk).await {
                // Exemplars give way: counts are never held up by them. They
                // wait for the next round (a lock or a timeout passes), and
                // while writes keep failing, the oldest that no longer fit
                // the queue are lost.
                self.put_back_exemplars(chunk);
                return Flushed {
                    counts: Ok(()),
                    exemplars: Some(e),
                };
            }
        }
        Flushed {
            counts: Ok(()),
            exemplars: None,
        }
    }

    /// Writes what is pending now: counts first, then exemplars. Counts
    /// that could not be written wait for the next try; exemplars that
    /// could not be written are lost and counted.
    pub async fn flush(&self, store: &dyn Store) -> Result<(), StoreError> {
        let flushed = self.flush_round(store, true).await;
        flushed.counts?;
        match flushed.exemplars {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Opens the database (retrying with backoff while it cannot be opened:
    /// records wait in memory meanwhile), migrates it, then writes as [`run`]
    /// does, opening it again after failures. Serving never waits for any of
    /// this.
    ///
    /// [`run`]: StoreWriter::run
    pub async fn connect_and_run(
        self,
        url: DatabaseUrl,
        stop: oneshot::Receiver<()>,
        final_deadline: Duration,
    ) {
        self.drive(Source::Url(url, None), stop, final_deadline)
            .await;
    }

    /// Writes until `stop` resolves, then writes what is left (trying until
    /// `final_deadline`). Failures are logged once per outage and retried.
    pub async fn run(
        self,
        store: Arc<dyn Store>,
        stop: oneshot::Receiver<()>,
        final_deadline: Duration,
    ) {
        self.drive(Source::Given(store), stop, final_deadline).await;
    }

    /// One try: open if need be, prune when due, write.
    async fn attempt(
        &self,
        source: &mut Source,
        next_prune: &mut tokio::time::Instant,
        reserve: &mut Reserve,
    ) -> Attempt {
        let store = match source.store().await {
            Ok(store) => store,
            Err(e) => {
                self.failed(
                    &e,
                    "the store cannot be opened; keeping counts in memory and retrying",
                );
                self.health.set_unwritten(self.unwritten());
                return Attempt::CountsFailed;
            }
        };
        if let Some(retention) = self
            .config
            .retention
            .filter(|_| tokio::time::Instant::now() >= *next_prune)
        {
            *next_prune += Duration::from_secs(3_600);
            let before =
                now_ms().saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
            match store.prune(before).await {
                Ok(n) if n > 0 => tracing::info!(rows = n, "pruned rows past the retention period"),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "pruning the store failed; will try again in an hour")
                }
            }
        }
        reserve.try_again();
        // What this try is about to write counts as unwritten until it ends:
        // a reader that sees the counts, written first, must not also see
        // "nothing unwritten" while the exemplars are still on their way.
        self.health.set_unwritten(self.unwritten());
        let flushed = self.flush_round(store.as_ref(), !reserve.released()).await;
        let full = |e: &StoreError| ErrorClass::of(e) == ErrorClass::DiskFull;
        if flushed.counts.as_ref().err().is_some_and(full)
            || flushed.exemplars.as_ref().is_some_and(full)
        {
            reserve.release();
        }
        let ok = match (flushed.counts, flushed.exemplars) {
            (Err(e), _) => {
                self.failed(
                    &e,
                    "writing to the store failed; keeping counts in memory and retrying",
                );
                source.reopen_next_time().await;
                Attempt::CountsFailed
            }
            (Ok(()), Some(e)) => {
                self.failed(&e, "writing exemplars to the store failed; they are lost and counted, counts are still written");
                Attempt::ExemplarsFailed
            }
            (Ok(()), None) => {
                if self.health.snapshot().failing_since_ms.is_some() {
                    tracing::info!("store writes resumed");
                }
                self.health.succeeded();
                Attempt::Written
            }
        };
        self.health.set_unwritten(self.unwritten());
        ok
    }

    /// Notes a failure: logged once per outage, with its class in the health.
    fn failed(&self, error: &StoreError, message: &str) {
        let class = ErrorClass::of(error);
        let first = self.health.snapshot().failing_since_ms.is_none();
        self.health.failed(class, now_ms());
        if first {
            tracing::error!(error = %error, class = class.as_str(), "{message}");
        }
    }

    async fn drive(
        self,
        mut source: Source,
        mut stop: oneshot::Receiver<()>,
        final_deadline: Duration,
    ) {
        let mut delay = Duration::ZERO;
        let mut next_prune = tokio::time::Instant::now();
        let mut reserve = match &source {
            Source::Url(url, _) => Reserve::beside(url),
            Source::Given(_) => Reserve::none(),
        };
        reserve.ensure();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.wake.notified() => {}
                _ = &mut stop => break,
            }
            delay = match self
                .attempt(&mut source, &mut next_prune, &mut reserve)
                .await
            {
                // Failing exemplars are given up at once: counts keep their pace.
                Attempt::Written | Attempt::ExemplarsFailed => self.config.flush_every,
                Attempt::CountsFailed => {
                    (delay * 2).clamp(Duration::from_millis(200), Duration::from_secs(30))
                }
            };
        }
        // Stopped: what is left is written until the deadline, whatever
        // state the store was in.
        let deadline = tokio::time::Instant::now() + final_deadline;
        let mut pause = Duration::from_millis(100);
        let finished = tokio::time::timeout_at(deadline, async {
            loop {
                let done = self
                    .attempt(&mut source, &mut next_prune, &mut reserve)
                    .await;
                if done == Attempt::Written && self.unwritten() == 0 {
                    return;
                }
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
        })
        .await;
        if finished.is_err() {
            let p = self.lock();
            let (counts, exemplars) = (p.count_rows(), p.mismatches.len());
            drop(p);
            self.health
                .lose(LossReason::Shutdown, (counts + exemplars) as i64, now_ms());
            tracing::error!(
                count_rows = counts,
                exemplars,
                "the store stayed unavailable at shutdown; unwritten records are lost"
            );
        }
        // A store the writer opened is left whole (its write-ahead log
        // moved into the file); a given one belongs to its owner.
        if let Source::Url(_, Some(store)) = source {
            store.checkpoint_and_close().await;
        }
    }

    /// Rows still waiting to be written (0 once everything is stored).
    pub fn unwritten(&self) -> usize {
        let p = self.lock();
        p.count_rows() + p.mismatches.len() + p.lost.len() + p.preparing
    }

    /// Exemplars lost so far and not yet written as lost.
    pub fn lost_pending(&self) -> i64 {
        self.lock().lost.values().sum()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_log_spaced_and_bound_their_values() {
        for micros in [1u64, 7, 100, 999, 12_345, 5_000_000] {
            let d = Duration::from_micros(micros);
            let b = latency_bucket(d);
            assert!(bucket_upper_bound(b) >= d, "{micros}");
            assert!(
                bucket_upper_bound(b - 1) <= d + Duration::from_micros(1),
                "{micros}"
            );
        }
        assert!(
            latency_bucket(Duration::from_millis(2)) > latency_bucket(Duration::from_millis(1))
        );
    }
}
