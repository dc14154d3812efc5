//! The writer against a store that fails on demand, so its retries and its
//! loss accounting are tested on every machine: counts that could not be
//! written wait in memory and are written once the store is back, none lost;
//! exemplars give way to counts and are tried again; past the queue's bound
//! they are lost and counted, in the health and in the store; and what a
//! store still failing at shutdown did not take is counted as lost.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use shadowdiff::compare::{compare, Detail, Rules};
use shadowdiff::endpoint::EndpointCatalog;
use shadowdiff::exchange::{Exchange, RecordedRequest, RecordedResponse};
use shadowdiff::outcome::{Comparison, DropReason, Outcome, SampleInfo, SkipReason};
use shadowdiff::redact::{RedactConfig, Redactor};
use shadowdiff::store::{
    Batch, EndpointCounts, EndpointLatency, Group, GroupInWindow, MismatchFilter, SqlStore, Store,
    StoreError, StoredMismatch, TrendRow, TriageChange, TriageEntry, Window, Written,
};
use shadowdiff::writer::health::{ErrorClass, HealthSnapshot, LossReason};
use shadowdiff::writer::{StoreWriter, WriterConfig};
use tokio_util::sync::CancellationToken;

use crate::support::{self, TestDatabase};

/// A SQLite store whose writes fail, as a timeout does, while it is told to.
struct FlakyStore {
    inner: SqlStore,
    /// Writes holding counts (counters, latencies, groups, losses) still to refuse.
    refuse_counts: AtomicUsize,
    /// Writes holding exemplars still to refuse.
    refuse_exemplars: AtomicUsize,
    refused: AtomicUsize,
}

/// Takes one from `left` unless it is zero; true if it did.
fn take_one(left: &AtomicUsize) -> bool {
    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

impl Store for FlakyStore {
    fn write<'a>(
        &'a self,
        instance: &'a str,
        run: &'a str,
        batch: &'a Batch,
    ) -> BoxFuture<'a, Result<Written, StoreError>> {
        let counts = !(batch.counters.is_empty()
            && batch.latencies.is_empty()
            && batch.groups.is_empty()
            && batch.lost.is_empty());
        let refuse = (counts && take_one(&self.refuse_counts))
            || (!batch.mismatches.is_empty() && take_one(&self.refuse_exemplars));
        if refuse {
            self.refused.fetch_add(1, Ordering::SeqCst);
            return Box::pin(async { Err(StoreError::Query(sqlx::Error::PoolTimedOut)) });
        }
        self.inner.write(instance, run, batch)
    }
    fn counts<'a>(
        &'a self,
        window: Window,
        run: &'a str,
        endpoint: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<EndpointCounts>, StoreError>> {
        self.inner.counts(window, run, endpoint)
    }
    fn latencies<'a>(
        &'a self,
        window: Window,
        run: &'a str,
        endpoint: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<EndpointLatency>, StoreError>> {
        self.inner.latencies(window, run, endpoint)
    }
    fn expected<'a>(
        &'a self,
        window: Window,
        run: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, i64)>, StoreError>> {
        self.inner.expected(window, run)
    }
    fn group_counts<'a>(
        &'a self,
        window: Window,
        run: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, i64)>, StoreError>> {
        self.inner.group_counts(window, run)
    }
    fn groups_in_window<'a>(
        &'a self,
        window: Window,
        run: &'a str,
    ) -> BoxFuture<'a, Result<Vec<GroupInWindow>, StoreError>> {
        self.inner.groups_in_window(window, run)
    }
    fn groups<'a>(
        &'a self,
        endpoint: Option<&'a str>,
        status: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Group>, StoreError>> {
        self.inner.groups(endpoint, status)
    }
    fn triage<'a>(
        &'a self,
        change: &'a TriageChange<'a>,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        self.inner.triage(change)
    }
    fn triage_history<'a>(
        &'a self,
        fingerprint: &'a str,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<TriageEntry>, StoreError>> {
        self.inner.triage_history(fingerprint, limit)
    }
    fn trend<'a>(
        &'a self,
        window: Window,
        run: &'a str,
        endpoint: Option<&'a str>,
        step_minutes: i64,
    ) -> BoxFuture<'a, Result<Vec<TrendRow>, StoreError>> {
        self.inner.trend(window, run, endpoint, step_minutes)
    }
    fn mismatches<'a>(
        &'a self,
        filter: MismatchFilter<'a>,
        before: Option<i64>,
        limit: i64,
    ) -> BoxFuture<'a, Result<Vec<StoredMismatch>, StoreError>> {
        self.inner.mismatches(filter, before, limit)
    }
    fn mismatch(&self, id: i64) -> BoxFuture<'_, Result<Option<StoredMismatch>, StoreError>> {
        self.inner.mismatch(id)
    }
    fn lost(&self, window: Window) -> BoxFuture<'_, Result<i64, StoreError>> {
        self.inner.lost(window)
    }
    fn prune(&self, before_ms: i64) -> BoxFuture<'_, Result<u64, StoreError>> {
        self.inner.prune(before_ms)
    }
}

/// A writer running on a flaky SQLite store, and how to stop it.
struct Running {
    store: Arc<FlakyStore>,
    writer: StoreWriter,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    _db: TestDatabase,
}

async fn start(refuse_counts: usize, refuse_exemplars: usize, max_pending: usize) -> Running {
    let db = support::sqlite_database();
    let inner = SqlStore::connect(&db.url).await.unwrap();
    inner.migrate().await.unwrap();
    let store = Arc::new(FlakyStore {
        inner,
        refuse_counts: AtomicUsize::new(refuse_counts),
        refuse_exemplars: AtomicUsize::new(refuse_exemplars),
        refused: AtomicUsize::new(0),
    });
    let config = WriterConfig {
        instance: "flaky".into(),
        run: String::new(),
        max_pending,
        flush_every: Duration::from_millis(50),
        retention: None,
        max_body_bytes: 1 << 20,
        exemplar_bytes_per_hour: 64 << 20,
        stored_body_bytes: shadowdiff::writer::BODY_CAP,
        on_new_group: None,
    };
    let writer = StoreWriter::new(config, Redactor::new(&RedactConfig::default()));
    let stop = CancellationToken::new();
    let task = tokio::spawn(writer.clone().run(
        store.clone(),
        stop.clone(),
        Duration::from_millis(300),
    ));
    Running {
        store,
        writer,
        stop,
        task,
        _db: db,
    }
}

impl Running {
    async fn stop(self) -> (Arc<FlakyStore>, HealthSnapshot) {
        self.stop.cancel();
        self.task.await.unwrap();
        (self.store, self.writer.health().snapshot())
    }
}

fn info() -> SampleInfo {
    SampleInfo {
        served_by_candidate: false,
        endpoint: EndpointCatalog::new(10).name(&Method::GET, "/items/1", None),
        method: Method::GET,
        target: "/items/1".into(),
    }
}

/// A mismatch: the candidate's total differs.
fn mismatch(n: u64) -> Outcome {
    let response = |body: String| {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        RecordedResponse {
            status: StatusCode::OK,
            headers,
            body: Bytes::from(body),
            latency: Duration::from_millis(3),
        }
    };
    let exchange = Exchange {
        endpoint: info().endpoint,
        request: RecordedRequest {
            method: Method::GET,
            target: "/items/1".into(),
            headers: HeaderMap::new(),
            body: Bytes::new(),
        },
        primary: response(r#"{"total":1}"#.into()),
        candidate: response(format!(r#"{{"total":{}}}"#, n + 2)),
        candidate_request: None,
    };
    let rules = Arc::new(Rules::default());
    let verdict = compare(&exchange, &rules, 1 << 20, Detail::Grouping);
    assert!(!verdict.matched);
    Outcome::Compared(Box::new(Comparison {
        exchange,
        verdict,
        rules,
        discounted: Vec::new(),
    }))
}

fn around_now() -> Window {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    Window {
        since_ms: now - 3_600_000,
        until_ms: now + 3_600_000,
    }
}

/// The stored count of `outcome`, summed over endpoints.
async fn stored(store: &FlakyStore, outcome: &str) -> i64 {
    let counts = store.counts(around_now(), "", None).await.unwrap();
    counts.iter().filter_map(|e| e.outcomes.get(outcome)).sum()
}

/// Waits (up to 20 s) until `done` holds.
async fn until<F: std::future::Future<Output = bool>>(what: &str, mut done: impl FnMut() -> F) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(tokio::time::Instant::now() < deadline, "waited for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn counts_that_fail_wait_and_are_written_once_the_store_is_back() {
    let running = start(3, 0, 100).await;
    for _ in 0..10 {
        running
            .writer
            .record(&info(), &Outcome::Skipped(SkipReason::BodyTooLarge));
    }
    let health = &running.writer.health();
    until("the failure in the health", move || async move {
        health.snapshot().failing_since_ms.is_some()
    })
    .await;
    assert_eq!(health.snapshot().last_error, Some(ErrorClass::Timeout));
    let store = &*running.store;
    until("the counts in the store", move || async move {
        stored(store, "skipped/body_too_large").await == 10
    })
    .await;
    let (store, health) = running.stop().await;
    assert_eq!(
        store.refused.load(Ordering::SeqCst),
        3,
        "three tries refused"
    );
    assert_eq!(stored(&store, "skipped/body_too_large").await, 10);
    assert_eq!(health.failing_since_ms, None, "{health:?}");
    assert_eq!(health.lost_total(), 0, "{health:?}");
    assert_eq!(health.unwritten, 0, "{health:?}");
    assert_eq!(store.lost(around_now()).await.unwrap(), 0);
}

#[tokio::test]
async fn exemplars_that_fail_give_way_to_counts_and_are_tried_again() {
    let running = start(0, 2, 100).await;
    for n in 0..3 {
        running.writer.record(&info(), &mismatch(n));
    }
    let store = &*running.store;
    until("the exemplars in the store", move || async move {
        store
            .mismatches(MismatchFilter::default(), None, 10)
            .await
            .unwrap()
            .len()
            == 3
    })
    .await;
    let (store, health) = running.stop().await;
    assert_eq!(store.refused.load(Ordering::SeqCst), 2);
    assert_eq!(stored(&store, "mismatched").await, 3);
    assert_eq!(health.last_error, Some(ErrorClass::Timeout), "{health:?}");
    assert_eq!(health.failing_since_ms, None, "{health:?}");
    assert_eq!(health.lost_total(), 0, "{health:?}");
}

#[tokio::test]
async fn exemplars_past_the_queue_while_writes_fail_are_lost_and_counted() {
    // Exemplar writes never succeed; counts always do.
    let running = start(0, usize::MAX, 2).await;
    for n in 0..4 {
        running.writer.record(&info(), &mismatch(n));
    }
    let store = &*running.store;
    until(
        "the counts and the losses in the store",
        move || async move {
            stored(store, "mismatched").await == 4 && store.lost(around_now()).await.unwrap() == 2
        },
    )
    .await;
    let snapshot = running.writer.health().snapshot();
    assert_eq!(snapshot.lost_total(), 2, "{snapshot:?}");
    assert!(
        snapshot.lost.keys().all(|r| matches!(
            r,
            LossReason::ExemplarQueueFull | LossReason::ExemplarWriteFailed
        )),
        "{snapshot:?}"
    );
    // The two exemplars still queued are lost at shutdown, and counted.
    let (store, health) = running.stop().await;
    assert_eq!(
        health.lost.get(&LossReason::Shutdown),
        Some(&2),
        "{health:?}"
    );
    assert_eq!(health.lost_total(), 4, "{health:?}");
    let kept = store.mismatches(MismatchFilter::default(), None, 10).await;
    assert!(kept.unwrap().is_empty());
}

#[tokio::test]
async fn counts_a_store_still_refuses_at_shutdown_are_lost_and_counted() {
    let running = start(usize::MAX, 0, 100).await;
    for _ in 0..3 {
        running
            .writer
            .record(&info(), &Outcome::Skipped(SkipReason::BodyTooLarge));
    }
    for _ in 0..2 {
        running
            .writer
            .record(&info(), &Outcome::Dropped(DropReason::QueueFull));
    }
    let health = &running.writer.health();
    until("the failure in the health", move || async move {
        health.snapshot().failing_since_ms.is_some()
    })
    .await;
    let (store, health) = running.stop().await;
    // Two count rows (one per outcome kind) were waiting.
    assert_eq!(
        health.lost.get(&LossReason::Shutdown),
        Some(&2),
        "{health:?}"
    );
    assert!(health.failing_since_ms.is_some(), "{health:?}");
    assert_eq!(stored(&store, "skipped/body_too_large").await, 0);
}
