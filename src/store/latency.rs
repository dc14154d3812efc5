//! The latency histogram every instance shares: log-linear buckets of the
//! HdrHistogram kind, 128 per doubling of nanoseconds (each at most 0.79%
//! wide), so that a bucket's midpoint is within 0.4% of every value in it,
//! histograms from any instance and minute merge by adding counts, and a
//! quantile read back is within 0.4% of the true one (a ratio of two,
//! within 0.8%). Plain arithmetic: the writer buckets with it, the reader
//! converts the coarser buckets of earlier releases with it, and the gate,
//! the summary and the metrics read quantiles from it.

use std::collections::BTreeMap;
use std::time::Duration;

/// Values below this many nanoseconds have a bucket each.
const EXACT: u64 = 256;
/// Buckets per doubling above [`EXACT`].
const PER_DOUBLING: u64 = 128;

/// The bucket a duration falls in: its nanoseconds below 256, else 128
/// buckets per doubling (the top eight bits of the value).
pub fn latency_bucket(latency: Duration) -> i64 {
    let v = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    if v < EXACT {
        return v as i64;
    }
    let shift = u64::from(63 - v.leading_zeros()) - 7;
    let top = v >> shift;
    (EXACT + (shift - 1) * PER_DOUBLING + (top - PER_DOUBLING)) as i64
}

/// A bucket's bounds in nanoseconds, lower inclusive, upper exclusive.
pub fn bucket_bounds(bucket: i64) -> (u128, u128) {
    let b = bucket.max(0) as u128;
    if b < EXACT as u128 {
        return (b, b + 1);
    }
    let k = b - EXACT as u128;
    // Beyond u64's nanoseconds nothing is ever recorded; clamped so that a
    // corrupt row cannot overflow.
    let shift = (k / PER_DOUBLING as u128 + 1).min(56);
    let top = k % PER_DOUBLING as u128 + PER_DOUBLING as u128;
    (top << shift, (top + 1) << shift)
}

/// The value a bucket stands for: its midpoint.
pub fn bucket_value(bucket: i64) -> Duration {
    let (lo, hi) = bucket_bounds(bucket);
    let mid = u64::try_from((lo + hi) / 2).unwrap_or(u64::MAX);
    Duration::from_nanos(mid)
}

/// The bucket of this scheme for a bucket of releases before migration 0004
/// (`floor(4·log2(µs))`, about 19% wide), at that bucket's geometric
/// midpoint: such rows keep their counts, at the resolution they had.
pub fn legacy_bucket(old: i64) -> i64 {
    let micros = 2f64.powf((old.clamp(0, 160) as f64 + 0.5) / 4.0);
    latency_bucket(Duration::from_secs_f64(micros / 1e6))
}

/// Counts by bucket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Histogram(BTreeMap<i64, i64>);

impl Histogram {
    /// From (bucket, count) rows; repeated buckets add up.
    pub fn from_rows(rows: impl IntoIterator<Item = (i64, i64)>) -> Histogram {
        let mut h = Histogram::default();
        for (bucket, n) in rows {
            h.add(bucket, n);
        }
        h
    }

    pub fn add(&mut self, bucket: i64, n: i64) {
        if n != 0 {
            *self.0.entry(bucket).or_default() += n;
        }
    }

    pub fn record(&mut self, latency: Duration) {
        self.add(latency_bucket(latency), 1);
    }

    pub fn merge(&mut self, other: &Histogram) {
        for (bucket, n) in &other.0 {
            self.add(*bucket, *n);
        }
    }

    pub fn total(&self) -> i64 {
        self.0.values().sum()
    }

    pub fn is_empty(&self) -> bool {
        self.total() <= 0
    }

    /// (bucket, count) in bucket order.
    pub fn rows(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.0.iter().map(|(b, n)| (*b, *n))
    }

    /// As stored: `bucket:count` pairs in bucket order, comma-separated.
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(self.0.len() * 10);
        for (i, (b, n)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!("{b}:{n}"));
        }
        out
    }

    /// From the stored text; a pair that does not read (a row another
    /// release wrote differently, a damaged one) is left out, never an error.
    pub fn from_text(text: &str) -> Histogram {
        Histogram::from_rows(text.split(',').filter_map(|pair| {
            let (b, n) = pair.split_once(':')?;
            Some((b.trim().parse().ok()?, n.trim().parse().ok()?))
        }))
    }

    /// The value at quantile `q` (0.99 for p99): the midpoint of the bucket
    /// holding the `ceil(q·n)`-th smallest value; none without values.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let total = self.total();
        if total <= 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as i64).max(1);
        let mut seen = 0;
        for (bucket, n) in &self.0 {
            seen += n;
            if seen >= rank {
                return Some(bucket_value(*bucket));
            }
        }
        self.0.keys().next_back().map(|b| bucket_value(*b))
    }

    /// The mean, from bucket midpoints.
    pub fn mean(&self) -> Option<Duration> {
        let total = self.total();
        if total <= 0 {
            return None;
        }
        let sum: f64 = self
            .0
            .iter()
            .map(|(b, n)| bucket_value(*b).as_secs_f64() * *n as f64)
            .sum();
        Some(Duration::from_secs_f64((sum / total as f64).max(0.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_is_within_0_4_percent_of_its_bucket_midpoint() {
        let mut v: u64 = 1;
        while v < 1 << 50 {
            for x in [v, v + v / 3, v + v / 2, 2 * v - 1] {
                let d = Duration::from_nanos(x);
                let b = latency_bucket(d);
                let (lo, hi) = bucket_bounds(b);
                assert!(
                    lo <= x as u128 && (x as u128) < hi,
                    "{x} not in [{lo}, {hi})"
                );
                let mid = bucket_value(b).as_nanos() as f64;
                let err = (mid - x as f64).abs() / x as f64;
                assert!(x < EXACT || err <= 0.004, "{x}: {err}");
            }
            v *= 2;
        }
    }

    #[test]
    fn buckets_are_contiguous_and_ordered() {
        for b in 0..5_000 {
            assert_eq!(bucket_bounds(b).1, bucket_bounds(b + 1).0, "{b}");
            let (lo, _) = bucket_bounds(b);
            assert_eq!(latency_bucket(Duration::from_nanos(lo as u64)), b);
        }
        assert_eq!(
            latency_bucket(Duration::MAX),
            latency_bucket(Duration::from_nanos(u64::MAX))
        );
        let _ = bucket_bounds(i64::MAX);
        let _ = bucket_value(i64::MIN);
    }

    #[test]
    fn legacy_buckets_land_inside_their_old_range() {
        for old in [0i64, 10, 40, 53, 57, 80] {
            let lo = 2f64.powf(old as f64 / 4.0) * 1e3;
            let hi = 2f64.powf((old + 1) as f64 / 4.0) * 1e3;
            let v = bucket_value(legacy_bucket(old)).as_nanos() as f64;
            assert!(lo * 0.99 <= v && v <= hi * 1.01, "{old}: {lo} {v} {hi}");
        }
    }

    #[test]
    fn histograms_round_trip_through_their_text_and_skip_damage() {
        let h = Histogram::from_rows([(3, 4), (700, 1), (2_000, 9)]);
        assert_eq!(h.to_text(), "3:4,700:1,2000:9");
        assert_eq!(Histogram::from_text(&h.to_text()), h);
        assert_eq!(
            Histogram::from_text("3:4,x:1,5,:,7:y,9:2\0"),
            Histogram::from_rows([(3, 4)])
        );
        assert!(Histogram::from_text("").is_empty());
    }

    #[test]
    fn quantiles_of_twenty_and_twenty_one_milliseconds_resolve_the_five_percent() {
        let mut p = Histogram::default();
        let mut c = Histogram::default();
        for i in 0..1_000u64 {
            p.record(Duration::from_micros(20_000 + i % 50));
            c.record(Duration::from_micros(21_000 + i % 50));
        }
        let ratio =
            c.quantile(0.99).unwrap().as_secs_f64() / p.quantile(0.99).unwrap().as_secs_f64();
        assert!((ratio - 1.05).abs() / 1.05 < 0.01, "{ratio}");
        let mean = p.mean().unwrap().as_secs_f64();
        assert!((mean - 0.020_025).abs() / 0.020_025 < 0.004, "{mean}");
        assert_eq!(Histogram::default().quantile(0.5), None);
        let mut merged = p.clone();
        merged.merge(&c);
        assert_eq!(merged.total(), 2_000);
    }
}
