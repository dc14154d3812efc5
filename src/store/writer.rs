//! The store writer: outcomes are aggregated in memory as they happen and
//! written in batches by one background task, so the proxy never waits on
//! the database. If the database is slow or down, counters keep adding up in
//! memory (they are small) and are retried with backoff; mismatch exemplars
//! wait in a bounded queue, and those that do not fit are counted as lost.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{oneshot, Notify};

use super::{
    Batch, CounterDelta, GroupDelta, LatencyDelta, MismatchRecord, Store, StoredBody,
    StoredMessage, EXEMPLARS_PER_GROUP_HOUR,
};
use crate::compare::compare_responses;
use crate::exchange::RecordedResponse;
use crate::outcome::{Comparison, Outcome, SampleInfo};
use crate::redact::Redactor;

/// Rows written in one transaction at most.
pub const CHUNK_ROWS: usize = 2_000;

/// Bodies are stored up to this many bytes each, with a truncated flag.
pub const BODY_CAP: usize = 256 * 1024;

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
}

#[derive(Default)]
struct Pending {
    counters: HashMap<(i64, String, String), i64>,
    latencies: HashMap<(i64, String, &'static str, i64), i64>,
    groups: HashMap<String, GroupDelta>,
    mismatches: VecDeque<MismatchRecord>,
    lost: HashMap<i64, i64>,
    /// Exemplars queued per (group, hour) by this instance, to stop a storm early.
    quota: HashMap<(String, i64), i64>,
    /// The last minute a loss was logged in: one line a minute, not one a record.
    loss_logged: Option<i64>,
}

impl Pending {
    fn lose(&mut self, minute: i64, n: i64) {
        *self.lost.entry(minute).or_default() += n;
        if self.loss_logged != Some(minute) {
            self.loss_logged = Some(minute);
            tracing::warn!(
                "the store is behind: mismatch records are being lost (counted as lost_records)"
            );
        }
    }
}

/// The handle outcomes are recorded through; cheap to clone.
#[derive(Clone)]
pub struct StoreWriter {
    pending: Arc<Mutex<Pending>>,
    wake: Arc<Notify>,
    config: Arc<WriterConfig>,
    redactor: Arc<Redactor>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl StoreWriter {
    pub fn new(config: WriterConfig, redactor: Redactor) -> StoreWriter {
        StoreWriter {
            pending: Arc::default(),
            wake: Arc::new(Notify::new()),
            config: Arc::new(config),
            redactor: Arc::new(redactor),
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
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            *p.counters
                .entry((minute, endpoint.to_string(), outcome.key().to_string()))
                .or_default() += 1;
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
                    *used <= EXEMPLARS_PER_GROUP_HOUR
                }
            }
        };
        let (Some(c), true) = (mismatch, wants_exemplar) else {
            return;
        };
        // Redaction and the second comparison happen outside the lock.
        let record = self.exemplar(at, info, c);
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if p.mismatches.len() >= self.config.max_pending {
            p.lose(minute, 1);
            return;
        }
        p.mismatches.push_back(record);
        let full = p.mismatches.len() >= 100;
        drop(p);
        if full {
            self.wake.notify_one();
        }
    }

    /// The mismatch as stored: secrets masked, bodies decoded and capped, and
    /// the verdict recomputed from the masked responses, so no secret can
    /// reach the store through a patch or a diff either.
    fn exemplar(&self, at: i64, info: &SampleInfo, c: &Comparison) -> MismatchRecord {
        let r = &self.redactor;
        let request = &c.exchange.request;
        let (path, query) = request
            .target
            .split_once('?')
            .unwrap_or((&request.target, ""));
        let limit = self.config.max_body_bytes;
        let masked = |response: &RecordedResponse| {
            let mut headers = r.header_map(&response.headers);
            // The stored body is decoded (or a stand-in when it does not decode).
            headers.remove(http::header::CONTENT_ENCODING);
            RecordedResponse {
                status: response.status,
                body: r.body(&response.body, &response.headers, limit),
                headers,
                latency: response.latency,
            }
        };
        let (primary, candidate) = (masked(&c.exchange.primary), masked(&c.exchange.candidate));
        let verdict = compare_responses(
            info.endpoint.as_str(),
            &primary,
            &candidate,
            &c.rules,
            limit,
        );
        let message = |response: &RecordedResponse| StoredMessage {
            status: response.status.as_u16(),
            headers: response
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: StoredBody::capped(&response.body, BODY_CAP),
        };
        MismatchRecord {
            at_ms: at,
            endpoint: info.endpoint.as_str().to_string(),
            // The group is the one the live comparison found.
            fingerprint: c.verdict.fingerprint.clone().unwrap_or_default(),
            method: request.method.as_str().to_string(),
            path: path.to_string(),
            query: r.query(query),
            request: StoredMessage {
                status: 0,
                headers: r.headers(&request.headers),
                body: StoredBody::capped(&r.body(&request.body, &request.headers, limit), BODY_CAP),
            },
            primary: message(&primary),
            candidate: message(&candidate),
            verdict: serde_json::to_value(&verdict).unwrap_or_default(),
        }
    }

    fn take_batch(&self) -> Batch {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
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
            mismatches: p.mismatches.drain(..).collect(),
            lost: p.lost.drain().collect(),
        }
    }

    /// Puts a batch that could not be written back: counts merge with what
    /// came since; exemplars go first in line, and what no longer fits is lost.
    fn put_back(&self, batch: Batch) {
        let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
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
        for record in batch.mismatches.into_iter().rev() {
            p.mismatches.push_front(record);
        }
        let max = self.config.max_pending;
        let minute = now_ms().div_euclid(60_000);
        while p.mismatches.len() > max {
            p.mismatches.pop_back();
            p.lose(minute, 1);
        }
    }

    /// Opens the database (retrying with backoff while it is unreachable:
    /// records wait in memory meanwhile), migrates it, then writes as [`run`]
    /// does. Serving never waits for any of this.
    ///
    /// [`run`]: StoreWriter::run
    pub async fn connect_and_run(
        self,
        url: super::DatabaseUrl,
        mut stop: oneshot::Receiver<()>,
        final_deadline: Duration,
    ) {
        let mut delay = Duration::from_millis(200);
        let mut logged = false;
        // Once stopped, opening is still tried until the deadline, so the
        // records of a short run are not lost to a slow start.
        let mut stopped_at: Option<tokio::time::Instant> = None;
        let store = loop {
            let opened = async {
                let store = super::SqlStore::connect(&url).await?;
                store.migrate().await?;
                Ok::<_, super::StoreError>(store)
            };
            match opened.await {
                Ok(store) => break store,
                Err(e) if !logged => {
                    tracing::error!(error = %e, "the store is unavailable; keeping records in memory and retrying");
                    logged = true;
                }
                Err(_) => {}
            }
            if stopped_at.is_some_and(|at| at.elapsed() >= final_deadline) {
                tracing::error!(
                    "the store stayed unavailable at shutdown; unwritten records are lost"
                );
                return;
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => delay = (delay * 2).min(Duration::from_secs(30)),
                _ = &mut stop, if stopped_at.is_none() => stopped_at = Some(tokio::time::Instant::now()),
            }
        };
        tracing::info!(database = %url, "store open");
        match stopped_at {
            None => self.run(Arc::new(store), stop, final_deadline).await,
            Some(at) => {
                // Already stopped: a closed channel makes `run` write what is left and return.
                let (_, closed) = oneshot::channel();
                self.run(
                    Arc::new(store),
                    closed,
                    final_deadline.saturating_sub(at.elapsed()),
                )
                .await;
            }
        }
    }

    /// Writes until `stop` resolves, then writes what is left (trying until
    /// `final_deadline`). Failures are logged once per outage and retried.
    pub async fn run(
        self,
        store: Arc<dyn Store>,
        mut stop: oneshot::Receiver<()>,
        final_deadline: Duration,
    ) {
        let mut delay = self.config.flush_every;
        let mut failing = false;
        let mut next_prune = tokio::time::Instant::now();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.wake.notified() => {}
                _ = &mut stop => break,
            }
            if let Some(retention) = self
                .config
                .retention
                .filter(|_| tokio::time::Instant::now() >= next_prune)
            {
                next_prune += Duration::from_secs(3_600);
                let before = now_ms()
                    .saturating_sub(i64::try_from(retention.as_millis()).unwrap_or(i64::MAX));
                match store.prune(before).await {
                    Ok(n) if n > 0 => {
                        tracing::info!(rows = n, "pruned rows past the retention period")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "pruning the store failed; will try again in an hour")
                    }
                }
            }
            match self.flush(store.as_ref()).await {
                Ok(()) => {
                    if failing {
                        tracing::info!("store writes resumed");
                    }
                    failing = false;
                    delay = self.config.flush_every;
                }
                Err(e) => {
                    if !failing {
                        tracing::error!(error = %e, "writing to the store failed; keeping records in memory and retrying");
                    }
                    failing = true;
                    delay = (delay * 2).min(Duration::from_secs(30));
                }
            }
        }
        let last = tokio::time::timeout(final_deadline, async {
            while self.flush(store.as_ref()).await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        if last.await.is_err() {
            tracing::error!("the store stayed unavailable at shutdown; unwritten records are lost");
        }
    }

    /// Writes what is pending now, in chunks of [`CHUNK_ROWS`]; what could
    /// not be written goes back to wait for the next try.
    pub async fn flush(&self, store: &dyn Store) -> Result<(), super::StoreError> {
        let batch = self.take_batch();
        if batch.is_empty() {
            return Ok(());
        }
        let mut chunks = batch.into_chunks(CHUNK_ROWS).into_iter();
        while let Some(chunk) = chunks.next() {
            let written = tokio::time::timeout(
                Duration::from_secs(30),
                store.write(&self.config.instance, &self.config.run, &chunk),
            )
            .await;
            let error = match written {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => e,
                Err(_) => super::StoreError::Query(sqlx::Error::PoolTimedOut),
            };
            self.put_back(chunk);
            for rest in chunks {
                self.put_back(rest);
            }
            return Err(error);
        }
        Ok(())
    }

    /// Rows still waiting to be written (0 once everything is stored).
    pub fn unwritten(&self) -> usize {
        let p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        p.counters.len() + p.latencies.len() + p.groups.len() + p.mismatches.len() + p.lost.len()
    }

    /// Exemplars lost so far and not yet written as lost.
    pub fn lost_pending(&self) -> i64 {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .lost
            .values()
            .sum()
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
