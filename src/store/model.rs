//! What the store holds and is asked, as plain data: the counts a batch
//! adds, groups and per-endpoint counts as read back, time windows, filters,
//! and latency buckets to add. A severity class is kept as its rank (0
//! unknown, then 1 status to 5 headers, smaller more severe): the classes
//! are the comparison's, which the store does not know.

use serde::Serialize;

use super::latency::Histogram;
use super::mismatch::MismatchRecord;

/// Counts to add to one (minute, endpoint, outcome).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterDelta {
    pub minute: i64,
    pub endpoint: String,
    pub outcome: String,
    pub count: i64,
}

/// Mismatches to add to one group's count in one (minute, endpoint).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupCountDelta {
    pub minute: i64,
    pub endpoint: String,
    pub fingerprint: String,
    pub count: i64,
    /// The most severe class among them, as a rank (0 unknown).
    pub severity: i64,
}

/// Counts to add to one latency bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyDelta {
    pub minute: i64,
    pub endpoint: String,
    pub side: &'static str,
    pub bucket: i64,
    pub count: i64,
}

/// Occurrences of one mismatch group since the last write.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GroupDelta {
    pub fingerprint: String,
    pub endpoint: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: i64,
    pub paths: Vec<String>,
    /// Names of the headers that differ.
    pub headers: Vec<String>,
    /// The statuses (primary, candidate) when they differ.
    pub statuses: Option<(u16, u16)>,
    /// The most severe class among them, as a rank (0 unknown).
    pub severity: i64,
}

/// The more severe of two severity ranks: the smaller, but 0 (unknown)
/// never wins over a known one. The store merges with this rule too.
pub fn most_severe(a: i64, b: i64) -> i64 {
    match (a, b) {
        (0, b) => b,
        (a, 0) => a,
        (a, b) => a.min(b),
    }
}

/// Everything one write adds, applied in one transaction.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub counters: Vec<CounterDelta>,
    pub latencies: Vec<LatencyDelta>,
    pub groups: Vec<GroupDelta>,
    /// Per-minute counts of each group, so that any window can leave out
    /// the groups triaged as expected.
    pub group_counts: Vec<GroupCountDelta>,
    pub mismatches: Vec<MismatchRecord>,
    /// Records this instance could not keep, per minute.
    pub lost: Vec<(i64, i64)>,
}

/// Moves `items` into the chunks, starting a new chunk every `max` rows.
fn spread<T>(
    items: Vec<T>,
    chunks: &mut Vec<Batch>,
    rows: &mut usize,
    max: usize,
    field: fn(&mut Batch) -> &mut Vec<T>,
) {
    for item in items {
        if *rows == max {
            chunks.push(Batch::default());
            *rows = 0;
        }
        let last = chunks.last_mut().expect("at least one chunk");
        field(last).push(item);
        *rows += 1;
    }
}

impl Batch {
    /// The same rows in batches of at most `max_rows`, oldest kinds first:
    /// a long backlog is written in transactions that each can finish.
    pub fn into_chunks(self, max_rows: usize) -> Vec<Batch> {
        let max = max_rows.max(1);
        let (mut chunks, mut rows) = (vec![Batch::default()], 0);
        spread(self.counters, &mut chunks, &mut rows, max, |b| {
            &mut b.counters
        });
        spread(self.latencies, &mut chunks, &mut rows, max, |b| {
            &mut b.latencies
        });
        spread(self.groups, &mut chunks, &mut rows, max, |b| &mut b.groups);
        spread(self.group_counts, &mut chunks, &mut rows, max, |b| {
            &mut b.group_counts
        });
        spread(self.mismatches, &mut chunks, &mut rows, max, |b| {
            &mut b.mismatches
        });
        spread(self.lost, &mut chunks, &mut rows, max, |b| &mut b.lost);
        chunks
    }

    pub fn is_empty(&self) -> bool {
        self.counters.is_empty()
            && self.latencies.is_empty()
            && self.groups.is_empty()
            && self.group_counts.is_empty()
            && self.mismatches.is_empty()
            && self.lost.is_empty()
    }
}

/// What a write found: the groups it created (their first occurrence in
/// the store, across instances: exactly one writer creates each).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub new_groups: Vec<String>,
}

/// A mismatch group as read back.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Group {
    pub fingerprint: String,
    pub endpoint: String,
    pub first_seen: i64,
    pub last_seen: i64,
    pub count: i64,
    pub paths: Vec<String>,
    pub headers: Vec<String>,
    pub statuses: Option<(u16, u16)>,
    pub status: String,
    pub note: String,
    /// The most severe class any of its mismatches had, as a rank (0 for
    /// groups stored before classes).
    pub severity: i64,
}

/// One group's mismatches over a window, for the gate's classes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupInWindow {
    pub endpoint: String,
    pub fingerprint: String,
    pub count: i64,
    /// The most severe of the group's class and its counts' in the window
    /// (a replay's mismatches have counts but no group), as a rank.
    pub severity: i64,
    /// Whether the group is triaged `expected`.
    pub expected: bool,
}

/// Outcome counts of one endpoint over a window, summed over instances.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EndpointCounts {
    pub endpoint: String,
    /// By outcome key (`matched`, `candidate_error/timeout`, …).
    pub outcomes: std::collections::BTreeMap<String, i64>,
}

/// Both sides' latency histograms of one endpoint over a window.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointLatency {
    pub endpoint: String,
    pub primary: Histogram,
    pub candidate: Histogram,
}

/// A time window in Unix milliseconds, `since` inclusive, `until` exclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub since_ms: i64,
    pub until_ms: i64,
}

impl Window {
    /// The first whole minute the window touches (counts are kept per minute).
    pub fn first_minute(self) -> i64 {
        self.since_ms.div_euclid(60_000)
    }

    /// The minute after the last one the window touches.
    pub fn end_minute(self) -> i64 {
        ceil_div(self.until_ms, 60_000)
    }
}

/// Which mismatches to list.
#[derive(Clone, Copy, Debug, Default)]
pub struct MismatchFilter<'a> {
    /// A replay run's id; `Some("")` is live traffic only, `None` everything.
    pub run: Option<&'a str>,
    pub endpoint: Option<&'a str>,
    pub fingerprint: Option<&'a str>,
    pub since_ms: Option<i64>,
}

fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_severe_rank_is_the_smallest_known_one() {
        assert_eq!(most_severe(0, 0), 0);
        assert_eq!(most_severe(0, 4), 4);
        assert_eq!(most_severe(5, 0), 5);
        assert_eq!(most_severe(2, 4), 2);
        assert_eq!(most_severe(4, 1), 1);
    }

    #[test]
    fn chunks_keep_every_row_once() {
        let batch = Batch {
            counters: (0..5)
                .map(|i| CounterDelta {
                    minute: i,
                    endpoint: "e".into(),
                    outcome: "matched".into(),
                    count: 1,
                })
                .collect(),
            lost: vec![(1, 2), (2, 3)],
            ..Batch::default()
        };
        let chunks = batch.into_chunks(3);
        assert_eq!(chunks.len(), 3);
        assert_eq!(
            chunks
                .iter()
                .map(|c| c.counters.len() + c.lost.len())
                .collect::<Vec<_>>(),
            vec![3, 3, 1]
        );
    }
}
