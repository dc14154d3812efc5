//! When a path's differences are noise: a one-sided two-proportion z-test
//! over the same paired requests. H0: the candidate differs from the
//! primary at this path no more often than a second primary does. The path
//! is noise unless the raw rate is above the noise rate at the 1% level
//! (z > 2.326), and only once `min_samples` paired samples were seen and
//! the secondary differed there at least once: a path where the old code
//! never differed from itself is never noise, however rarely it differs.

/// z for a one-sided test at the 1% level.
pub const Z_CRITICAL: f64 = 2.326;

/// One path's counts over the paired samples of its endpoint.
#[derive(Clone, Copy, Debug)]
pub struct Test {
    /// Paired samples (the secondary answered) of the endpoint.
    pub samples: u64,
    /// Of those, how often the primary and the secondary differed here.
    pub noise: u64,
    /// Of those, how often the primary and the candidate differed here.
    pub raw: u64,
    pub min_samples: u64,
}

impl Test {
    pub fn noise_rate(&self) -> f64 {
        rate(self.noise, self.samples)
    }

    pub fn raw_rate(&self) -> f64 {
        rate(self.raw, self.samples)
    }

    /// The z statistic of raw rate over noise rate (0 when both are 0 or 1).
    pub fn z(&self) -> f64 {
        let n = self.samples as f64;
        if n == 0.0 {
            return 0.0;
        }
        let pooled = (self.noise + self.raw) as f64 / (2.0 * n);
        let spread = (pooled * (1.0 - pooled) * 2.0 / n).sqrt();
        if spread == 0.0 {
            return 0.0;
        }
        (self.raw_rate() - self.noise_rate()) / spread
    }

    /// Whether the path's differences are noise.
    pub fn is_noise(&self) -> bool {
        self.samples >= self.min_samples.max(1) && self.noise > 0 && self.z() <= Z_CRITICAL
    }

    /// Why a noisy path was discounted, for the verdict's reasons.
    pub fn explain(&self, key: &str) -> String {
        format!(
            "discounted as noise: {key} differs between two instances of the primary on {:.1}% of {} requests, and with the candidate on {:.1}%, not significantly more (z = {:.2} ≤ {Z_CRITICAL})",
            100.0 * self.noise_rate(),
            self.samples,
            100.0 * self.raw_rate(),
            self.z()
        )
    }
}

fn rate(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test(samples: u64, noise: u64, raw: u64) -> Test {
        Test {
            samples,
            noise,
            raw,
            min_samples: 20,
        }
    }

    #[test]
    fn a_field_that_always_differs_on_both_is_noise() {
        assert!(test(50, 50, 50).is_noise());
        assert!(
            test(50, 24, 27).is_noise(),
            "a random order, about half the time"
        );
    }

    #[test]
    fn a_real_bug_is_never_noise() {
        assert!(
            !test(50, 0, 50).is_noise(),
            "the old code never differed here"
        );
        assert!(!test(50, 2, 50).is_noise(), "rarely noisy, always wrong");
        assert!(!test(1000, 10, 60).is_noise(), "1% noise, 6% raw");
    }

    #[test]
    fn nothing_is_noise_before_the_minimum() {
        assert!(!test(19, 19, 19).is_noise());
        assert!(test(20, 20, 20).is_noise());
    }
}
