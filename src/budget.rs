//! The memory budget for body copies held for comparison. The queue bounds
//! how many samples wait, not how large their bodies are: without a byte
//! budget, a queue of large bodies could exhaust memory and take the client
//! path down with it. A copy that does not fit is skipped, never waited for.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Bytes that body copies may still take, shared by all samples.
#[derive(Clone, Debug)]
pub struct BodyBudget {
    remaining: Arc<AtomicUsize>,
}

impl BodyBudget {
    pub fn new(bytes: usize) -> Self {
        BodyBudget {
            remaining: Arc::new(AtomicUsize::new(bytes)),
        }
    }

    /// An empty claim on the budget, grown as a body arrives.
    pub fn claim(&self) -> Claim {
        Claim {
            budget: self.clone(),
            bytes: 0,
        }
    }

    /// Bytes not claimed now.
    pub fn remaining(&self) -> usize {
        self.remaining.load(Ordering::Acquire)
    }
}

/// Bytes taken from the budget, given back when dropped.
#[derive(Debug)]
pub struct Claim {
    budget: BodyBudget,
    bytes: usize,
}

impl Claim {
    /// Takes `n` more bytes; `false` (and nothing taken) if they do not fit.
    pub fn grow(&mut self, n: usize) -> bool {
        let taken = self
            .budget
            .remaining
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| r.checked_sub(n))
            .is_ok();
        if taken {
            self.bytes += n;
        }
        taken
    }

    /// Gives back everything claimed so far.
    pub fn release(&mut self) {
        self.budget
            .remaining
            .fetch_add(self.bytes, Ordering::AcqRel);
        self.bytes = 0;
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.release();
    }
}

/// A whole body's chunks (joined later, off the client's path) and the
/// budget they hold until the comparison is done: what the proxy's tee hands
/// the shadow stage.
#[derive(Debug)]
pub struct Copied {
    pub chunks: Vec<bytes::Bytes>,
    pub claim: Claim,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_are_bounded_and_given_back() {
        let budget = BodyBudget::new(100);
        let mut a = budget.claim();
        assert!(a.grow(60));
        let mut b = budget.claim();
        assert!(!b.grow(50));
        assert!(b.grow(40));
        assert_eq!(budget.remaining(), 0);
        drop(a);
        assert_eq!(budget.remaining(), 60);
        b.release();
        assert_eq!(budget.remaining(), 100);
        drop(b);
        assert_eq!(budget.remaining(), 100);
    }
}
