//! The writer's task: when to write (every `flush_every`, sooner when
//! exemplars pile up), opening the database and opening it again after a
//! failure, retrying counts with backoff, pruning past the retention, and
//! writing what is left at shutdown until a deadline.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::health::{ErrorClass, LossReason};
use super::reserve::Reserve;
use super::{StoreWriter, CHUNK_ROWS, WRITE_TIMEOUT};
use crate::store::{Batch, DatabaseUrl, SqlStore, Store, StoreError, Written};
use crate::time::now_ms;

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
    async fn write(&self, store: &dyn Store, batch: &Batch) -> Result<Written, StoreError> {
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

    /// Each group the store had not seen: one info line (what differs,
    /// never a body or a header's value) and a notification.
    fn announce(&self, batch: &Batch, written: &Written) {
        for fingerprint in &written.new_groups {
            let Some(g) = batch.groups.iter().find(|g| &g.fingerprint == fingerprint) else {
                continue;
            };
            tracing::info!(
                endpoint = %g.endpoint,
                fingerprint = %g.fingerprint,
                paths = ?g.paths.iter().take(10).collect::<Vec<_>>(),
                headers = ?g.headers.iter().take(10).collect::<Vec<_>>(),
                statuses = ?g.statuses,
                "new mismatch group"
            );
            if let Some(hook) = &self.config.on_new_group {
                (hook.0)(g);
            }
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
            match self.write(store, &chunk).await {
                Ok(written) => self.announce(&chunk, &written),
                Err(e) => {
                    self.put_back(chunk);
                    chunks.for_each(|rest| self.put_back(rest));
                    return Flushed {
                        counts: Err(e),
                        exemplars: None,
                    };
                }
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
        stop: CancellationToken,
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
        stop: CancellationToken,
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
        let opened = source.store().await;
        self.health.first_open_ended();
        let store = match opened {
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

    async fn drive(self, mut source: Source, stop: CancellationToken, final_deadline: Duration) {
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
                () = stop.cancelled() => break,
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
}
