//! What the writer holds in memory between writes: counts aggregated by
//! key, groups, exemplars queued (bounded in number and bytes), losses, and
//! the hourly quotas and byte budget; and how it is taken for a write and
//! put back after a failed one.

use std::collections::{HashMap, VecDeque};

use super::health::LossReason;
use super::{exemplar, StoreWriter, CHUNK_ROWS, EXEMPLAR_CHUNK_BYTES};
use crate::store::{
    most_severe, Batch, CounterDelta, GroupCountDelta, GroupDelta, LatencyDelta, MismatchRecord,
};
use crate::time::now_ms;

#[derive(Default)]
pub(super) struct Pending {
    pub(super) counters: HashMap<(i64, String, String), i64>,
    pub(super) latencies: HashMap<(i64, String, &'static str, i64), i64>,
    pub(super) groups: HashMap<String, GroupDelta>,
    /// Mismatches per (minute, endpoint, fingerprint), and their most
    /// severe class's rank.
    pub(super) group_counts: HashMap<(i64, String, String), (i64, i64)>,
    pub(super) mismatches: VecDeque<(MismatchRecord, usize)>,
    /// Bytes of the exemplars in `mismatches`.
    pub(super) mismatch_bytes: usize,
    pub(super) lost: HashMap<i64, i64>,
    /// Exemplars queued per (group, hour) by this instance, to stop a storm early.
    pub(super) quota: HashMap<(String, i64), i64>,
    /// The hour the byte budget counts, and the exemplar bytes queued in it.
    pub(super) budget: (i64, usize),
    /// The last minute a loss was logged in: one line a minute, not one a record.
    pub(super) loss_logged: Option<i64>,
    /// Exemplars being redacted (outside the lock) whose counts are already
    /// pending: unwritten until queued, or lost.
    pub(super) preparing: usize,
}

impl Pending {
    /// Count rows waiting, latency buckets apart: they have a bound of
    /// their own, so that a busy endpoint's many buckets cannot crowd out
    /// outcome counts during an outage.
    pub(super) fn count_rows(&self) -> usize {
        self.counters.len() + self.groups.len() + self.group_counts.len()
    }
}

impl StoreWriter {
    /// The counts waiting, as one batch (without exemplars).
    pub(super) fn take_counts(&self) -> Batch {
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
            group_counts: p
                .group_counts
                .drain()
                .map(
                    |((minute, endpoint, fingerprint), (count, severity))| GroupCountDelta {
                        minute,
                        endpoint,
                        fingerprint,
                        count,
                        severity,
                    },
                )
                .collect(),
            mismatches: Vec::new(),
            lost: p.lost.drain().collect(),
        }
    }

    /// The oldest exemplars waiting, up to one transaction's worth.
    pub(super) fn take_exemplars(&self) -> Batch {
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
    pub(super) fn put_back_exemplars(&self, chunk: Batch) {
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
    pub(super) fn put_back(&self, batch: Batch) {
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
                    newer.severity = most_severe(newer.severity, g.severity);
                }
                None => {
                    p.groups.insert(g.fingerprint.clone(), g);
                }
            }
        }
        for c in batch.group_counts {
            let counted = p
                .group_counts
                .entry((c.minute, c.endpoint, c.fingerprint))
                .or_default();
            counted.0 += c.count;
            counted.1 = most_severe(counted.1, c.severity);
        }
        for (minute, count) in batch.lost {
            *p.lost.entry(minute).or_default() += count;
        }
    }
}
