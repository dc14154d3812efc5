//! Noise learning: which differences the old code has with itself.
//!
//! With a `secondary` (a second instance of the primary), every sampled
//! request also goes there, concurrently with the candidate. Per endpoint
//! and per generalised path (array indexes as `*`; a header as
//! `header:<name>`), the learner counts over the same requests how often the
//! primary and the secondary differed (noise) and how often the primary and
//! the candidate did (raw). A path is noise when its raw rate is not
//! significantly above its noise rate (`significance`); a difference on a
//! noisy path no longer makes a verdict a mismatch, while differences on
//! other paths of the same response still do, and the verdict says what was
//! discounted and why.
//!
//! Without a secondary, `volatile` notes, for the primary/candidate
//! differences, values that look volatile (UUIDs, date-times near now,
//! random tokens, counters), from which the report proposes mask rules.
//!
//! Counts live in memory and, with a store, in it (`sync`): each instance
//! adds its own, every instance reads the sum, and a restart keeps them.
//! The comparison stays pure: the learner hands it plain ignore patterns.

mod judge;
pub mod keys;
pub mod report;
pub mod significance;
pub mod sync;
pub mod volatile;

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::BackendUrl;

pub use judge::Judged;
pub use sync::sync_task;
pub use volatile::Volatility;

/// The longest key learned, in bytes.
pub const MAX_KEY_BYTES: usize = 512;

/// Paths tracked per endpoint at most; beyond, new ones are not learned
/// (an object keyed by ids could otherwise grow without bound).
pub const MAX_PATHS_PER_ENDPOINT: usize = 1_000;

/// Counts of one path of one endpoint.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathCounts {
    /// Paired samples on which the primary and the secondary differed here.
    pub noise: u64,
    /// Paired samples on which the primary and the candidate differed here.
    pub raw_paired: u64,
    /// All compared samples on which the primary and the candidate differed here.
    pub raw: u64,
    /// Of `raw`, how often both differing values looked volatile, by kind.
    pub volatile: Volatility,
}

impl PathCounts {
    fn subtract(&mut self, other: &PathCounts) {
        self.noise = self.noise.saturating_sub(other.noise);
        self.raw_paired = self.raw_paired.saturating_sub(other.raw_paired);
        self.raw = self.raw.saturating_sub(other.raw);
        self.volatile.subtract(&other.volatile);
    }

    fn add(&mut self, other: &PathCounts) {
        self.noise += other.noise;
        self.raw_paired += other.raw_paired;
        self.raw += other.raw;
        self.volatile.add(&other.volatile);
    }
}

/// Counts of one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointCounts {
    /// Samples compared with the candidate.
    pub compared: u64,
    /// Of those, samples the secondary answered too.
    pub paired: u64,
    pub paths: HashMap<String, PathCounts>,
}

impl EndpointCounts {
    /// Takes out counts added before (saturating: a reset may have come between).
    fn subtract(&mut self, other: &EndpointCounts) {
        self.compared = self.compared.saturating_sub(other.compared);
        self.paired = self.paired.saturating_sub(other.paired);
        for (path, counts) in &other.paths {
            if let Some(mine) = self.paths.get_mut(path) {
                mine.subtract(counts);
                if *mine == PathCounts::default() {
                    self.paths.remove(path);
                }
            }
        }
    }

    pub fn add(&mut self, other: &EndpointCounts) {
        self.compared += other.compared;
        self.paired += other.paired;
        for (path, counts) in &other.paths {
            if let Some(mine) = self.paths.get_mut(path) {
                mine.add(counts);
            } else if self.paths.len() < MAX_PATHS_PER_ENDPOINT {
                self.paths.insert(path.clone(), *counts);
            }
        }
    }
}

/// What one sample showed, as the learner counts it.
#[derive(Debug, Default)]
pub struct Observation {
    /// The keys on which the primary and the secondary differed, when the
    /// secondary answered.
    pub noise: Option<Vec<String>>,
    /// The keys on which the primary and the candidate differed, with how
    /// volatile their values looked.
    pub raw: Vec<(String, Volatility)>,
}

/// The learner: what this process counted since its last sync, and the
/// totals of every instance as of that sync.
pub struct Noise {
    /// The second instance, and the primary it is an instance of.
    secondary: Option<(BackendUrl, BackendUrl)>,
    min_samples: u64,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Counted here, not yet in the store.
    local: HashMap<String, EndpointCounts>,
    /// Every instance's, as last read from the store.
    stored: HashMap<String, EndpointCounts>,
    /// The primary's last integer at each endpoint's path, to tell a
    /// counter (it only grows) from a value that merely differs.
    last: HashMap<String, i64>,
}

impl Noise {
    /// A learner; `secondary` is a second instance of `primary` (the default
    /// primary: routes with a primary of their own are not paired with it).
    pub fn new(secondary: Option<(BackendUrl, BackendUrl)>, min_samples: u64) -> Noise {
        Noise {
            secondary,
            min_samples,
            state: Mutex::new(State::default()),
        }
    }

    /// The second instance of the primary, when there is one.
    pub fn secondary(&self) -> Option<&BackendUrl> {
        self.secondary.as_ref().map(|(_, secondary)| secondary)
    }

    /// The secondary to pair with a request sent to `primary`: none when
    /// the route's primary is another backend, whose differences from the
    /// secondary would say nothing about noise (and would hide real bugs).
    pub fn secondary_for(&self, primary: &BackendUrl) -> Option<&BackendUrl> {
        match &self.secondary {
            Some((mirrored, secondary)) if mirrored == primary => Some(secondary),
            _ => None,
        }
    }

    pub fn min_samples(&self) -> u64 {
        self.min_samples
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one compared sample of `endpoint`.
    pub fn observe(&self, endpoint: &str, seen: &Observation) {
        let mut state = self.lock();
        let counts = state.local.entry(endpoint.to_string()).or_default();
        counts.compared += 1;
        let paired = seen.noise.is_some();
        counts.paired += u64::from(paired);
        let mut bump = |key: &str, f: &dyn Fn(&mut PathCounts)| {
            // Not learned: a key holding a NUL (PostgreSQL keeps none in
            // text) or too long for its index (past about 2.7 KB) would fail
            // every sync; a member named `**` would read as any depth.
            if key.contains('\0') || key.len() > MAX_KEY_BYTES || key.split('/').any(|s| s == "**")
            {
                return;
            }
            if let Some(c) = counts.paths.get_mut(key) {
                f(c);
            } else if counts.paths.len() < MAX_PATHS_PER_ENDPOINT {
                f(counts.paths.entry(key.to_string()).or_default());
            }
        };
        for key in seen.noise.iter().flatten() {
            bump(key, &|c| c.noise += 1);
        }
        for (key, volatility) in &seen.raw {
            bump(key, &|c| {
                c.raw += 1;
                c.raw_paired += u64::from(paired);
                c.volatile.add(volatility);
            });
        }
    }

    /// The totals of one endpoint: every instance's as last read, and this
    /// one's since.
    pub fn counts(&self, endpoint: &str) -> EndpointCounts {
        let state = self.lock();
        let mut total = state.stored.get(endpoint).cloned().unwrap_or_default();
        if let Some(local) = state.local.get(endpoint) {
            total.add(local);
        }
        total
    }

    /// Of a verdict's differing keys, those learned as noise on `endpoint`,
    /// each with the sentence saying why. The whole body (`""`) and the
    /// status are never discounted: that would hide any bug.
    pub fn noisy_keys(&self, endpoint: &str, keys: &[String]) -> Vec<(String, String)> {
        if self.secondary.is_none() {
            return Vec::new();
        }
        // Only the keys asked are summed: a busy endpoint's whole map is
        // not copied for every mismatch.
        let state = self.lock();
        let sides = [state.stored.get(endpoint), state.local.get(endpoint)];
        let paired: u64 = sides.iter().flatten().map(|c| c.paired).sum();
        let mut out: Vec<(String, String)> = Vec::new();
        for key in keys {
            if key.is_empty() || out.iter().any(|(k, _)| k == key) {
                continue;
            }
            let mut c = PathCounts::default();
            for side in sides.iter().flatten() {
                if let Some(counts) = side.paths.get(key) {
                    c.add(counts);
                }
            }
            let test = significance::Test {
                samples: paired,
                noise: c.noise,
                raw: c.raw_paired,
                min_samples: self.min_samples,
            };
            if test.is_noise() {
                out.push((key.clone(), test.explain(key)));
            }
        }
        out
    }

    /// Whether the primary's integer at `key` grew since the last sample
    /// of the endpoint (a counter does; a wrong total does not, or only by
    /// chance). Remembers it for the next sample.
    fn counts_up(
        &self,
        exchange: &crate::exchange::Exchange,
        key: &str,
        value: &serde_json::Value,
    ) -> bool {
        let Some(now) = value.as_i64() else {
            return false;
        };
        let slot = format!("{}\n{key}", exchange.endpoint.as_str());
        let mut state = self.lock();
        let before = state.last.get(&slot).copied();
        if before.is_some() || state.last.len() < MAX_PATHS_PER_ENDPOINT * 10 {
            state.last.insert(slot, now);
        }
        before.is_some_and(|b| now > b)
    }

    /// Forgets what this process learned about one endpoint (the store's
    /// rows are deleted by the caller).
    pub fn forget(&self, endpoint: &str) {
        let mut state = self.lock();
        state.local.remove(endpoint);
        state.stored.remove(endpoint);
    }

    /// Every endpoint's totals as this process knows them (without a store).
    pub fn all_counts(&self) -> HashMap<String, EndpointCounts> {
        let state = self.lock();
        let mut all = state.stored.clone();
        for (endpoint, local) in &state.local {
            all.entry(endpoint.clone()).or_default().add(local);
        }
        all
    }

    /// A copy of what was counted here since the last sync, to store.
    fn local_snapshot(&self) -> HashMap<String, EndpointCounts> {
        self.lock().local.clone()
    }

    /// Replaces the totals with the store's, which now hold `stored_here`,
    /// and takes those out of the local counts, at once: a decision made
    /// meanwhile never sees them twice or not at all.
    fn set_stored(
        &self,
        stored: HashMap<String, EndpointCounts>,
        stored_here: &HashMap<String, EndpointCounts>,
    ) {
        let mut state = self.lock();
        state.stored = stored;
        for (endpoint, counts) in stored_here {
            if let Some(local) = state.local.get_mut(endpoint) {
                local.subtract(counts);
            }
        }
        state
            .local
            .retain(|_, c| c.compared > 0 || !c.paths.is_empty());
    }

    /// Moves counts that reached the store, which could not be read back,
    /// from the local counts to the totals: not stored twice, not lost.
    fn set_stored_failed(&self, stored_here: &HashMap<String, EndpointCounts>) {
        let mut state = self.lock();
        for (endpoint, counts) in stored_here {
            state
                .stored
                .entry(endpoint.clone())
                .or_default()
                .add(counts);
            if let Some(local) = state.local.get_mut(endpoint) {
                local.subtract(counts);
            }
        }
    }
}

#[cfg(test)]
mod tests;
