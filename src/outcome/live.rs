//! What `/metrics` shows of compared samples, per endpoint, kept live beside
//! the outcome counts: mismatches by the kind of difference, byte-equal
//! pairs, and per backend its 5xx responses, response bytes and a latency
//! histogram whose buckets suit Prometheus' `histogram_quantile`.
//!
//! The exposition's buckets are sixteen per doubling (each about 4.4% wide)
//! from 1 ms to 16.4 s: `histogram_quantile` interpolates within a bucket,
//! so a 5% shift of a latency spread over a few buckets moves its p95 and
//! p99 estimates by about 5% (a 2% one by under 2%; wider buckets hide a 5%
//! shift at p99 entirely). Each endpoint costs 2 × (226 + 2) series;
//! endpoints are bounded by `max_endpoints`.

use std::time::Duration;

use crate::compare::Verdict;
use crate::exchange::Exchange;

/// Bucket bounds per doubling.
const PER_DOUBLING: f64 = 16.0;
/// The first bound, in seconds.
const FIRST_BOUND: f64 = 0.001;
/// Bounds from 1 ms to 2^14 ms (16.4 s), and +Inf after them.
pub const BOUNDS: usize = 14 * 16 + 1;

/// The upper bound (`le`) of bucket `i`, in seconds.
pub fn bucket_bound(i: usize) -> f64 {
    FIRST_BOUND * 2f64.powf(i as f64 / PER_DOUBLING)
}

/// The first bucket whose bound is at least `latency`; [`BOUNDS`] for +Inf.
fn bucket_of(latency: Duration) -> usize {
    let s = latency.as_secs_f64();
    if s <= FIRST_BOUND {
        return 0;
    }
    let i = ((s / FIRST_BOUND).log2() * PER_DOUBLING).ceil() as usize;
    // Float rounding at a bound: the bound itself belongs to its bucket.
    let i = if i > 0 && s <= bucket_bound(i - 1) {
        i - 1
    } else {
        i
    };
    i.min(BOUNDS)
}

/// One backend's latencies: counts per bucket (not cumulative), their sum
/// and count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyBuckets {
    counts: Box<[u64; BOUNDS + 1]>,
    sum_nanos: u64,
    count: u64,
}

impl Default for LatencyBuckets {
    fn default() -> Self {
        LatencyBuckets {
            counts: Box::new([0; BOUNDS + 1]),
            sum_nanos: 0,
            count: 0,
        }
    }
}

impl LatencyBuckets {
    pub fn record(&mut self, latency: Duration) {
        self.counts[bucket_of(latency)] += 1;
        self.sum_nanos = self
            .sum_nanos
            .saturating_add(u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX));
        self.count += 1;
    }

    /// Cumulative counts for each bound, then for +Inf.
    pub fn cumulative(&self) -> impl Iterator<Item = u64> + '_ {
        self.counts.iter().scan(0u64, |seen, n| {
            *seen += n;
            Some(*seen)
        })
    }

    pub fn sum_seconds(&self) -> f64 {
        self.sum_nanos as f64 / 1e9
    }

    pub fn count(&self) -> u64 {
        self.count
    }
}

/// The kinds of difference a mismatch shows; one mismatch may show several.
pub const DIFFERENCES: [&str; 3] = ["status", "headers", "body"];

/// The backends, as labelled.
pub const BACKENDS: [&str; 2] = ["primary", "candidate"];

/// One endpoint's compared samples.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Compared {
    /// By [`DIFFERENCES`].
    pub mismatches: [u64; 3],
    pub byte_equal: u64,
    /// By [`BACKENDS`]: 5xx responses, response body bytes, latencies.
    pub server_errors: [u64; 2],
    pub response_bytes: [u64; 2],
    pub latency: [LatencyBuckets; 2],
}

impl Compared {
    pub fn record(&mut self, exchange: &Exchange, verdict: &Verdict) {
        if !verdict.matched {
            // A mismatch whose statuses and headers agree differs in its body.
            let body = !verdict.paths.is_empty()
                || (verdict.status.is_none() && verdict.headers.is_empty());
            for (n, differs) in self.mismatches.iter_mut().zip([
                verdict.status.is_some(),
                !verdict.headers.is_empty(),
                body,
            ]) {
                *n += u64::from(differs);
            }
        }
        self.byte_equal += u64::from(verdict.byte_equal);
        for (i, response) in [&exchange.primary, &exchange.candidate]
            .into_iter()
            .enumerate()
        {
            self.server_errors[i] += u64::from(response.status.is_server_error());
            self.response_bytes[i] += response.body.len() as u64;
            self.latency[i].record(response.latency);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_hold_their_bounds_and_grow_by_four_percent() {
        assert_eq!(bucket_of(Duration::from_micros(10)), 0);
        assert_eq!(bucket_of(Duration::from_millis(1)), 0);
        assert_eq!(bucket_of(Duration::from_millis(2)), 16);
        assert_eq!(bucket_of(Duration::from_secs(3600)), BOUNDS);
        for i in 0..BOUNDS {
            // Nanoseconds either side of the bound, which no Duration holds exactly.
            let bound = Duration::from_secs_f64(bucket_bound(i));
            assert_eq!(bucket_of(bound - Duration::from_nanos(1)), i, "{i}");
            assert_eq!(bucket_of(bound + Duration::from_nanos(1)), i + 1, "{i}");
        }
        let growth = bucket_bound(1) / bucket_bound(0);
        assert!((growth - 1.0443).abs() < 0.001, "{growth}");
        let mut h = LatencyBuckets::default();
        h.record(Duration::from_millis(20));
        h.record(Duration::from_millis(21));
        let cumulative: Vec<u64> = h.cumulative().collect();
        assert_eq!(cumulative.len(), BOUNDS + 1);
        assert_eq!(*cumulative.last().unwrap(), 2);
        assert_eq!(h.count(), 2);
        assert!((h.sum_seconds() - 0.041).abs() < 1e-9);
    }
}
