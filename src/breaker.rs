//! The candidate breaker: stops shadowing to a candidate that keeps failing,
//! and tries it again now and then.
//!
//! A candidate that times out, resets, or answers with heads or bodies over
//! the limits costs the client path its share of every sample (the body tee,
//! the job hand-off, the kernel's work for a connection dropped per sample)
//! and teaches nothing new after the first few failures. After `failures`
//! such outcomes in a row the breaker opens: sampled requests are then
//! finished at once as `skipped/candidate_unhealthy` (counted, never lost),
//! except one probe per cooldown. A probe that gets a usable response closes
//! the breaker; one that fails doubles the cooldown, from one second up to
//! thirty. Any usable response (a probe's or one already under way) closes it.
//!
//! Checking costs one atomic load while closed, so the client path pays
//! nothing for it; the state is atomics, never a lock.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The first cooldown after the breaker opens.
pub const FIRST_COOLDOWN: Duration = Duration::from_secs(1);
/// The longest cooldown, however often probes fail.
pub const MAX_COOLDOWN: Duration = Duration::from_secs(30);

/// What a shadow call said about the candidate's health.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Health {
    /// A response that could be compared.
    Usable,
    /// A failure of the candidate's own: an error, a timeout, a body or head
    /// over the limits.
    Failed,
}

/// What the breaker says about one sampled request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission {
    /// Closed: shadow it.
    Shadow,
    /// Open, and this request is the cooldown's probe: shadow it, whatever
    /// the breaker says by the time it runs.
    Probe,
    /// Open: finish it as `candidate_unhealthy`.
    Shed,
}

/// Shared by the proxy (which asks) and the shadow stage (which reports).
#[derive(Debug)]
pub struct Breaker {
    threshold: NonZeroU32,
    /// Consecutive failures while closed.
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which samples are shed; 0 = closed.
    open_until: AtomicU64,
    /// How many times in a row it opened: the cooldown doubles with each.
    trips: AtomicU32,
    /// A probe was let through and has not failed yet.
    probing: AtomicBool,
    epoch: Instant,
}

impl Breaker {
    /// A closed breaker that opens after `threshold` failures in a row.
    pub fn new(threshold: NonZeroU32) -> Self {
        Breaker {
            threshold,
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            trips: AtomicU32::new(0),
            probing: AtomicBool::new(false),
            epoch: Instant::now(),
        }
    }

    /// Whether to shadow a sampled request now. While open, the first caller
    /// after each cooldown is let through as the probe.
    pub fn admit(&self) -> Admission {
        if !self.is_open() {
            return Admission::Shadow;
        }
        match self.allow_at(self.now_ms()) {
            true => Admission::Probe,
            false => Admission::Shed,
        }
    }

    /// Records what a shadow call found.
    pub fn report(&self, health: Health) {
        self.report_at(health, self.now_ms())
    }

    /// Whether samples are being shed now: work queued before it opened is
    /// shed too, probes apart.
    pub fn is_open(&self) -> bool {
        self.open_until.load(Ordering::Relaxed) != 0
    }

    fn now_ms(&self) -> u64 {
        // Never 0, which means closed.
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn allow_at(&self, now: u64) -> bool {
        let until = self.open_until.load(Ordering::Relaxed);
        if until == 0 {
            return true;
        }
        if now < until {
            return false;
        }
        // One probe per cooldown: whoever moves the deadline on is the probe.
        // A probe that ends with no verdict on the candidate (the primary
        // failed, say) leaves the next probe to the next cooldown.
        let next = now
            + self
                .cooldown(self.trips.load(Ordering::Relaxed))
                .as_millis() as u64;
        let probe = self
            .open_until
            .compare_exchange(until, next, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok();
        if probe {
            self.probing.store(true, Ordering::Relaxed);
        }
        probe
    }

    fn report_at(&self, health: Health, now: u64) {
        match health {
            Health::Usable => {
                // Loads first: while healthy, no write touches the shared line.
                if self.failures.load(Ordering::Relaxed) != 0 {
                    self.failures.store(0, Ordering::Relaxed);
                }
                if self.open_until.load(Ordering::Relaxed) != 0 {
                    self.trips.store(0, Ordering::Relaxed);
                    self.probing.store(false, Ordering::Relaxed);
                    self.open_until.store(0, Ordering::Relaxed);
                    tracing::info!("the candidate answers again: shadowing resumes");
                }
            }
            Health::Failed => {
                if self.open_until.load(Ordering::Relaxed) != 0 {
                    // Calls started before it opened fail too; only the
                    // first failure after a probe lengthens the cooldown.
                    if !self.probing.swap(false, Ordering::Relaxed) {
                        return;
                    }
                    let trips = self.trips.fetch_add(1, Ordering::Relaxed) + 1;
                    let until = now + self.cooldown(trips).as_millis() as u64;
                    self.open_until.fetch_max(until, Ordering::Relaxed);
                    return;
                }
                let failures = self.failures.fetch_add(1, Ordering::Relaxed) + 1;
                if failures >= self.threshold.get() {
                    self.failures.store(0, Ordering::Relaxed);
                    self.trips.store(1, Ordering::Relaxed);
                    self.open_until
                        .store(now + FIRST_COOLDOWN.as_millis() as u64, Ordering::Relaxed);
                    tracing::warn!(
                        failures,
                        "the candidate keeps failing: shadowing paused, probing every {}s to {}s",
                        FIRST_COOLDOWN.as_secs(),
                        MAX_COOLDOWN.as_secs()
                    );
                }
            }
        }
    }

    /// The cooldown after `trips` openings in a row: 1 s, 2 s, 4 s, … 30 s.
    fn cooldown(&self, trips: u32) -> Duration {
        let doublings = trips.saturating_sub(1).min(16);
        (FIRST_COOLDOWN * 2u32.pow(doublings)).min(MAX_COOLDOWN)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker(threshold: u32) -> Breaker {
        Breaker::new(NonZeroU32::new(threshold).unwrap())
    }

    #[test]
    fn opens_after_the_threshold_in_a_row_only() {
        let b = breaker(3);
        b.report_at(Health::Failed, 10);
        b.report_at(Health::Failed, 10);
        b.report_at(Health::Usable, 10);
        b.report_at(Health::Failed, 10);
        b.report_at(Health::Failed, 10);
        assert!(
            b.allow_at(11),
            "two in a row after a success keep it closed"
        );
        b.report_at(Health::Failed, 10);
        assert!(b.is_open());
        assert!(!b.allow_at(11));
        assert!(!b.allow_at(1_009));
    }

    #[test]
    fn lets_one_probe_through_per_cooldown() {
        let b = breaker(1);
        b.report_at(Health::Failed, 10);
        assert!(b.allow_at(1_010), "the probe");
        assert!(!b.allow_at(1_010), "only one");
        assert!(!b.allow_at(2_009));
        assert!(
            b.allow_at(2_010),
            "a probe that said nothing leaves the next to the next cooldown"
        );
    }

    #[test]
    fn failed_probes_double_the_cooldown_up_to_the_cap() {
        let b = breaker(1);
        b.report_at(Health::Failed, 0);
        let mut now = 0;
        for expected in [2_000, 4_000, 8_000, 16_000, 30_000, 30_000] {
            now = b.open_until.load(Ordering::Relaxed);
            assert!(b.allow_at(now));
            b.report_at(Health::Failed, now);
            assert_eq!(b.open_until.load(Ordering::Relaxed) - now, expected);
        }
        assert!(!b.allow_at(now + 29_999));
    }

    #[test]
    fn failures_of_calls_started_before_it_opened_do_not_lengthen_it() {
        let b = breaker(1);
        b.report_at(Health::Failed, 0);
        for _ in 0..50 {
            b.report_at(Health::Failed, 1);
        }
        assert!(b.allow_at(1_000), "still the first cooldown");
    }

    #[test]
    fn a_usable_response_closes_it() {
        let b = breaker(1);
        b.report_at(Health::Failed, 0);
        b.report_at(Health::Usable, 5);
        assert!(!b.is_open());
        assert!(b.allow_at(6));
        // And the next opening starts from the first cooldown again.
        b.report_at(Health::Failed, 10);
        assert_eq!(b.open_until.load(Ordering::Relaxed), 1_010);
    }
}
