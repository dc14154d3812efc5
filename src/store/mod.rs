//! The store: outcome counters, latency histograms, mismatch groups and
//! redacted mismatch exemplars, in SQLite (the default, embedded: nothing to
//! set up) or PostgreSQL (shared by several instances, whose writes add up).
//!
//! Only this module contains SQL, and it knows nothing of the traffic: it
//! takes and gives plain rows ([`Batch`], [`Group`], [`StoredMismatch`]); the
//! writer beside it turns outcomes into them. One implementation serves both
//! databases through sqlx's Any driver: statements are written once with
//! `$n` parameters (rewritten to SQLite's `?n`), in SQL both dialects share.
//! Migrations live in migrations/sqlite and migrations/postgres.
//!
//! Its parts: `url` (database URLs), `error` (failures and their classes),
//! `model` (counts, groups, windows), `latency` (the histogram's buckets and
//! quantiles), `mismatch` (a stored
//! exemplar and its SQL), `open` (connecting, migrating, closing), `repair`
//! (migrations extended after release), `write` and `read`, `triage` (a
//! group's triage with its history, and outcome counts over time), and
//! `rollout` (the cutover's shared weights and their history), `noise`
//! (learned noise counts, per instance, summed when read).

mod error;
mod latency;
mod mismatch;
mod model;
mod noise;
mod open;
mod read;
mod repair;
mod rollout;
mod triage;
mod url;
mod write;

use futures_util::future::BoxFuture;

pub use error::{ErrorClass, StoreError};
pub use latency::{bucket_bounds, bucket_value, latency_bucket, Histogram};
pub use mismatch::{
    MismatchDetails, MismatchRecord, SentRequestRecord, StoredBody, StoredMessage, StoredMismatch,
};
pub use model::{
    most_severe, Batch, CounterDelta, EndpointCounts, EndpointLatency, Group, GroupCountDelta,
    GroupDelta, GroupInWindow, LatencyDelta, MismatchFilter, Window, Written,
};
pub use noise::{NoiseEndpointRow, NoisePathRow, NoiseRows};
pub use open::SqlStore;
pub use rollout::{RolloutChange, RolloutEvent, RolloutRow};
pub use triage::{TrendRow, TriageChange, TriageEntry};
pub use url::{Backend, DatabaseUrl, DatabaseUrlError};

/// Exemplars kept per group per hour; beyond, occurrences are only counted.
pub const EXEMPLARS_PER_GROUP_HOUR: i64 = 20;

/// What the rest of the program needs from a database.
pub trait Store: Send + Sync {
    /// Adds a batch in one transaction: counters add up, groups merge,
    /// exemplars beyond the hourly cap are left out. Says which groups the
    /// write created.
    fn write<'a>(
        &'a self,
        instance: &'a str,
        run: &'a str,
        batch: &'a Batch,
    ) -> BoxFuture<'a, Result<Written, StoreError>>;
    /// Outcome counts per endpoint over a window.
    fn counts<'a>(
        &'a self,
        window: Window,
        run: &'a str,
        endpoint: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<EndpointCounts>, StoreError>>;
    /// Both sides' latency histograms per endpoint (one, or every one), over
    /// a window, earlier releases' coarser buckets included.
    fn latencies<'a>(
        &'a self,
        window: Window,
        run: &'a str,
        endpoint: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<EndpointLatency>, StoreError>>;
    /// Mismatches per endpoint over a window that belong to groups triaged
    /// as `expected`.
    fn expected<'a>(
        &'a self,
        window: Window,
        run: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, i64)>, StoreError>>;
    /// Mismatches per group (by fingerprint) over a window.
    fn group_counts<'a>(
        &'a self,
        window: Window,
        run: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, i64)>, StoreError>>;
    /// Each group's mismatches over a window, with its severity rank and
    /// whether it is triaged `expected`.
    fn groups_in_window<'a>(
        &'a self,
        window: Window,
        run: &'a str,
    ) -> BoxFuture<'a, Result<Vec<GroupInWindow>, StoreError>>;
    /// Groups, most severe first (unknown last), then most frequent.
    fn groups<'a>(
        &'a self,
        endpoint: Option<&'a str>,
        status: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Group>, StoreError>>;
    /// Sets a group's triage status and note and keeps the change in its
    /// history; `false` if there is no such group.
    fn triage<'a>(
        &'a self,
        change: &'a TriageChange<'a>,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// A group's triage history, newest first, at most `limit` entries.
    fn triage_history<'a>(
        &'a self,
        fingerprint: &'a str,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<TriageEntry>, StoreError>>;
    /// Outcome counts per step of `step_minutes` over a window, oldest first.
    fn trend<'a>(
        &'a self,
        window: Window,
        run: &'a str,
        endpoint: Option<&'a str>,
        step_minutes: i64,
    ) -> BoxFuture<'a, Result<Vec<TrendRow>, StoreError>>;
    /// Mismatches newest first, after `before` (an id) if given.
    fn mismatches<'a>(
        &'a self,
        filter: MismatchFilter<'a>,
        before: Option<i64>,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<StoredMismatch>, StoreError>>;
    fn mismatch(&self, id: i64) -> BoxFuture<'_, Result<Option<StoredMismatch>, StoreError>>;
    /// Records lost by live traffic's writers over a window.
    fn lost(&self, window: Window) -> BoxFuture<'_, Result<i64, StoreError>>;
    /// Deletes everything older than `before_ms`; returns rows removed.
    fn prune(&self, before_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>>;
}

impl Store for SqlStore {
    fn write<'a>(
        &'a self,
        instance: &'a str,
        run: &'a str,
        batch: &'a Batch,
    ) -> BoxFuture<'a, Result<Written, StoreError>> {
        Box::pin(self.write_batch(instance, run, batch))
    }
    fn counts<'a>(
        &'a self,
        window: Window,
        run: &'a str,
        endpoint: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<EndpointCounts>, StoreError>> {
        Box::pin(self.read_counts(window, run, endpoint))
    }
    fn latencies<'a>(
        &'a self,
        window: Window,
        run: &'a str,
        endpoint: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<EndpointLatency>, StoreError>> {
        Box::pin(self.read_latencies(window, run, endpoint))
    }
    fn expected<'a>(
        &'a self,
        window: Window,
        run: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, i64)>, StoreError>> {
        Box::pin(self.read_expected(window, run))
    }
    fn group_counts<'a>(
        &'a self,
        window: Window,
        run: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, i64)>, StoreError>> {
        Box::pin(self.read_group_counts(window, run))
    }
    fn groups_in_window<'a>(
        &'a self,
        window: Window,
        run: &'a str,
    ) -> BoxFuture<'a, Result<Vec<GroupInWindow>, StoreError>> {
        Box::pin(self.read_groups_in_window(window, run))
    }
    fn groups<'a>(
        &'a self,
        endpoint: Option<&'a str>,
        status: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Group>, StoreError>> {
        Box::pin(self.read_groups(endpoint, status))
    }
    fn triage<'a>(
        &'a self,
        change: &'a TriageChange<'a>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.set_triage(change))
    }
    fn triage_history<'a>(
        &'a self,
        fingerprint: &'a str,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<TriageEntry>, StoreError>> {
        Box::pin(self.read_triage_history(fingerprint, limit))
    }
    fn trend<'a>(
        &'a self,
        window: Window,
        run: &'a str,
        endpoint: Option<&'a str>,
        step_minutes: i64,
    ) -> BoxFuture<'a, Result<Vec<TrendRow>, StoreError>> {
        Box::pin(self.read_trend(window, run, endpoint, step_minutes))
    }
    fn mismatches<'a>(
        &'a self,
        filter: MismatchFilter<'a>,
        before: Option<i64>,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<StoredMismatch>, StoreError>> {
        Box::pin(self.read_mismatches(filter, before, limit))
    }
    fn mismatch(&self, id: i64) -> BoxFuture<'_, Result<Option<StoredMismatch>, StoreError>> {
        Box::pin(self.read_mismatch(id))
    }
    fn lost(&self, window: Window) -> BoxFuture<'_, Result<i64, StoreError>> {
        Box::pin(self.read_lost(window))
    }
    fn prune(&self, before_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        Box::pin(self.delete_before(before_ms))
    }
}
