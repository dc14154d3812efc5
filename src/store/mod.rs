//! The store: outcome counters, latency histograms, mismatch groups and
//! redacted mismatch exemplars, in SQLite (the default, embedded: nothing to
//! set up) or PostgreSQL (shared by several instances, whose writes add up).
//!
//! Only this module contains SQL. One implementation serves both databases
//! through sqlx's Any driver: statements are written once with `$n`
//! parameters (rewritten to SQLite's `?n`), in SQL both dialects share.
//! Migrations live in migrations/sqlite and migrations/postgres.

pub mod exemplar;
pub mod health;
mod repair;
pub mod reserve;
pub mod writer;

use std::fmt;
use std::str::FromStr;

use futures_util::future::BoxFuture;
use serde::{Deserialize, Serialize};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A database URL: `sqlite://FILE` (created if missing) or `postgres://…`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct DatabaseUrl {
    url: String,
    backend: Backend,
}

/// A database URL that names no database shadowdiff can use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DatabaseUrlError {
    /// Neither SQLite nor PostgreSQL.
    #[error("database URL must start with sqlite:// (such as sqlite://shadowdiff.db) or postgres://; got {0:?}")]
    Scheme(String),
    /// A SQLite URL without a file: SQLite would make a private temporary
    /// database that the report API and the gate cannot see.
    #[error("database URL {0:?} names no file: give one, such as sqlite://shadowdiff.db")]
    NoFile(String),
}

impl FromStr for DatabaseUrl {
    type Err = DatabaseUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let backend = if s.starts_with("sqlite:") {
            Backend::Sqlite
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(DatabaseUrlError::Scheme(redact_password(s)));
        };
        if backend == Backend::Sqlite {
            let file = sqlite_file(s);
            if file.is_empty() || file == ":memory:" {
                return Err(DatabaseUrlError::NoFile(s.to_string()));
            }
        }
        let mut url = s.to_string();
        // SQLite opens read-write only by default; the file is created on first start.
        if backend == Backend::Sqlite && !url.contains("mode=") && !url.contains(":memory:") {
            url.push_str(if url.contains('?') {
                "&mode=rwc"
            } else {
                "?mode=rwc"
            });
        }
        Ok(DatabaseUrl { url, backend })
    }
}

impl TryFrom<String> for DatabaseUrl {
    type Error = DatabaseUrlError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl DatabaseUrl {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// For SQLite, the database file's path.
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        (self.backend == Backend::Sqlite).then(|| sqlite_file(&self.url).into())
    }

    /// Checks, without creating anything, that a SQLite file can be made
    /// where the URL says: its folder must exist. (A PostgreSQL server is
    /// only known to be there by connecting to it.)
    pub fn check_location(&self) -> Result<(), String> {
        let Some(path) = self.sqlite_path() else {
            return Ok(());
        };
        let folder = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => std::path::PathBuf::from("."),
        };
        if folder.is_dir() {
            Ok(())
        } else {
            Err(format!(
                "the folder {} of the database {self} does not exist: create it or give another --database-url",
                folder.display()
            ))
        }
    }
}

/// The file part of a SQLite URL: after the scheme, before the parameters.
fn sqlite_file(url: &str) -> &str {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    rest.split('?').next().unwrap_or("")
}

/// Shown without its password, so logs and errors never carry it.
impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_password(&self.url))
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

fn redact_password(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// Why the store could not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be reached or opened.
    #[error("cannot open the database {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    /// Applying the migrations failed.
    #[error("migrating the database failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A statement failed (database down, disk full, constraint).
    #[error("database statement failed: {0}")]
    Query(#[from] sqlx::Error),
    /// Data read back could not be decoded (a JSON column).
    #[error("stored data is malformed: {0}")]
    Malformed(String),
    /// The database is not at this version's schema (for readers that do not migrate).
    #[error("{0}")]
    Schema(String),
    /// The SQLite file or its folder cannot be written.
    #[error("the database {0} cannot be written: the file or its folder is read-only")]
    ReadOnly(String),
}

/// Whether a SQLite file (or its folder, where the log files go) cannot be
/// written: a read-only file system, or permissions.
fn sqlite_read_only(path: &std::path::Path) -> bool {
    let refused = |e: std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
        )
    };
    if let Err(e) = std::fs::OpenOptions::new().write(true).open(path) {
        return refused(e);
    }
    let folder = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    std::fs::metadata(folder).is_ok_and(|m| m.permissions().readonly())
}

/// A body as stored: capped, with a flag saying so.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredBody {
    pub bytes: Vec<u8>,
    pub truncated: bool,
}

impl StoredBody {
    pub fn capped(bytes: &[u8], cap: usize) -> StoredBody {
        StoredBody {
            bytes: bytes[..bytes.len().min(cap)].to_vec(),
            truncated: bytes.len() > cap,
        }
    }
}

/// One side of a stored exchange.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct StoredMessage {
    /// The status, for responses; 0 for the request.
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: StoredBody,
}

/// A mismatch exemplar, already redacted.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MismatchRecord {
    pub at_ms: i64,
    pub endpoint: String,
    pub fingerprint: String,
    pub method: String,
    pub path: String,
    pub query: String,
    pub request: StoredMessage,
    pub primary: StoredMessage,
    pub candidate: StoredMessage,
    /// The verdict as JSON (patch, text diff, paths, reasons).
    pub verdict: serde_json::Value,
}

/// A stored mismatch as read back, with its id and instance.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredMismatch {
    pub id: i64,
    pub instance: String,
    /// The replay run it came from; empty for live traffic.
    pub run: String,
    #[serde(flatten)]
    pub record: MismatchRecord,
}

/// Counts to add to one (minute, endpoint, outcome).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CounterDelta {
    pub minute: i64,
    pub endpoint: String,
    pub outcome: String,
    pub count: i64,
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
}

/// Everything one write adds, applied in one transaction.
#[derive(Clone, Debug, Default)]
pub struct Batch {
    pub counters: Vec<CounterDelta>,
    pub latencies: Vec<LatencyDelta>,
    pub groups: Vec<GroupDelta>,
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
            && self.mismatches.is_empty()
            && self.lost.is_empty()
    }
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
}

/// Outcome counts of one endpoint over a window, summed over instances.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EndpointCounts {
    pub endpoint: String,
    /// By outcome key (`matched`, `candidate_error/timeout`, …).
    pub outcomes: std::collections::BTreeMap<String, i64>,
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

/// Exemplars kept per group per hour; beyond, occurrences are only counted.
pub const EXEMPLARS_PER_GROUP_HOUR: i64 = 20;

/// What the rest of the program needs from a database.
pub trait Store: Send + Sync {
    /// Adds a batch in one transaction: counters add up, groups merge,
    /// exemplars beyond the hourly cap are left out.
    fn write<'a>(
        &'a self,
        instance: &'a str,
        run: &'a str,
        batch: &'a Batch,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    /// Outcome counts per endpoint over a window.
    fn counts<'a>(
        &'a self,
        window: Window,
        run: &'a str,
        endpoint: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<EndpointCounts>, StoreError>>;
    /// Latency histogram (bucket → count) of one side, over a window.
    fn latency<'a>(
        &'a self,
        window: Window,
        run: &'a str,
        endpoint: &'a str,
        side: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(i64, i64)>, StoreError>>;
    /// Mismatches per endpoint over a window that belong to groups triaged
    /// as `expected`.
    fn expected<'a>(
        &'a self,
        window: Window,
        run: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, i64)>, StoreError>>;
    /// Groups, most frequent first.
    fn groups<'a>(
        &'a self,
        endpoint: Option<&'a str>,
        status: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Group>, StoreError>>;
    /// Sets a group's triage status and note; `false` if there is no such group.
    fn triage<'a>(
        &'a self,
        fingerprint: &'a str,
        status: &'a str,
        note: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
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

/// The SQL store, for either database.
#[derive(Clone, Debug)]
pub struct SqlStore {
    pool: AnyPool,
    backend: Backend,
}

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

impl SqlStore {
    /// Opens a database that must exist and be at this version's schema,
    /// changing nothing (no file created, no migration): for readers such as
    /// `gate`, which may run with another version or a read-only user.
    pub async fn open_existing(url: &DatabaseUrl) -> Result<SqlStore, StoreError> {
        let existing = DatabaseUrl {
            url: url.url.replace("mode=rwc", "mode=rw"),
            backend: url.backend,
        };
        let store = Self::open(&existing, false).await?;
        let migrator = store.migrator();
        let expected = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let found: Option<i64> =
            sqlx::query("SELECT CAST(MAX(version) AS BIGINT) FROM _sqlx_migrations")
                .fetch_one(&store.pool)
                .await
                .ok()
                .and_then(|row| row.try_get(0).ok());
        match found {
            None => Err(StoreError::Schema(format!(
                "{url} holds no shadowdiff data: give the database serve writes to"
            ))),
            Some(v) if v < expected => Err(StoreError::Schema(format!(
                "{url} is at schema version {v}, this shadowdiff reads {expected}: \
                 run `shadowdiff migrate --database-url …` (stop older instances first)"
            ))),
            Some(v) if v > expected => Err(StoreError::Schema(format!(
                "{url} is at schema version {v}, written by a newer shadowdiff: use that version"
            ))),
            Some(v) => match repair::needed(&store.pool, store.backend).await?.first() {
                Some(old) => Err(StoreError::Schema(format!(
                    "{url} ran migration {old} in the text of an earlier release (schema version {v}): \
                     run `shadowdiff migrate --database-url …` to bring it up to date"
                ))),
                None => Ok(store),
            },
        }
    }

    /// Opens the database (creating a SQLite file if missing).
    pub async fn connect(url: &DatabaseUrl) -> Result<SqlStore, StoreError> {
        Self::open(url, true).await
    }

    async fn open(url: &DatabaseUrl, write_ahead_log: bool) -> Result<SqlStore, StoreError> {
        sqlx::any::install_default_drivers();
        let connect_error = |source| StoreError::Connect {
            url: url.to_string(),
            source,
        };
        let mut options = AnyPoolOptions::new()
            .acquire_timeout(std::time::Duration::from_secs(5))
            .max_connections(8);
        if url.backend == Backend::Sqlite {
            // One writer at a time is SQLite's rule; one connection keeps it simple.
            options = options.max_connections(1);
        }
        // SQLite says only "unable to open" of a file it may not write:
        // the file itself says whether that is why.
        let read_only = |e: StoreError| match url.sqlite_path().filter(|p| sqlite_read_only(p)) {
            Some(_) if write_ahead_log => StoreError::ReadOnly(url.to_string()),
            _ => e,
        };
        let pool = options
            .connect(&url.url)
            .await
            .map_err(|e| read_only(connect_error(e)))?;
        if url.backend == Backend::Sqlite && write_ahead_log {
            // With a write-ahead log, the report API's reads do not hold up
            // the writer's commits (the mode is kept in the file).
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .map_err(|e| read_only(connect_error(e)))?;
        }
        Ok(SqlStore {
            pool,
            backend: url.backend,
        })
    }

    /// Moves the write-ahead log into the database file (SQLite) and closes
    /// every connection, so that the file alone holds everything: a copy of
    /// it after a clean shutdown is whole.
    pub async fn checkpoint_and_close(&self) {
        if self.backend == Backend::Sqlite {
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
                .execute(&self.pool)
                .await
            {
                tracing::warn!(error = %e, "moving the write-ahead log into the database file failed");
            }
        }
        self.pool.close().await;
    }

    /// This database's migrations, as embedded in the binary.
    fn migrator(&self) -> &'static sqlx::migrate::Migrator {
        match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        }
    }

    /// Applies the migrations not applied yet, after repairing those run in
    /// a text since extended (the `repair` module).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        repair::repair(&self.pool, self.backend, self.migrator()).await?;
        self.migrator().run(&self.pool).await?;
        Ok(())
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// A statement in this database's parameter syntax.
    fn sql(&self, text: &'static str) -> std::borrow::Cow<'static, str> {
        match self.backend {
            Backend::Postgres => text.into(),
            Backend::Sqlite => text.replace('$', "?").into(),
        }
    }

    async fn write_batch(
        &self,
        instance: &str,
        run: &str,
        batch: &Batch,
    ) -> Result<(), StoreError> {
        // Rows shared between instances (groups, exemplar quotas) are touched
        // in one order everywhere, so two writers cannot deadlock on them.
        let mut groups: Vec<&GroupDelta> = batch.groups.iter().collect();
        groups.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        let mut mismatches: Vec<&MismatchRecord> = batch.mismatches.iter().collect();
        mismatches.sort_by(|a, b| (&a.fingerprint, a.at_ms).cmp(&(&b.fingerprint, b.at_ms)));
        let mut tx = self.pool.begin().await?;
        let counter = self.sql(
            "INSERT INTO counters (minute, endpoint, outcome, instance, count, run) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (run, minute, endpoint, outcome, instance) DO UPDATE SET count = counters.count + excluded.count",
        );
        for c in &batch.counters {
            sqlx::query(&counter)
                .bind(c.minute)
                .bind(&c.endpoint)
                .bind(&c.outcome)
                .bind(instance)
                .bind(c.count)
                .bind(run)
                .execute(&mut *tx)
                .await?;
        }
        let latency = self.sql(
            "INSERT INTO latencies (minute, endpoint, side, bucket, instance, count, run) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (run, minute, endpoint, side, bucket, instance) DO UPDATE SET count = latencies.count + excluded.count",
        );
        for l in &batch.latencies {
            sqlx::query(&latency)
                .bind(l.minute)
                .bind(&l.endpoint)
                .bind(l.side)
                .bind(l.bucket)
                .bind(instance)
                .bind(l.count)
                .bind(run)
                .execute(&mut *tx)
                .await?;
        }
        let group = self.sql(
            "INSERT INTO mismatch_groups (fingerprint, endpoint, first_seen, last_seen, count, paths, headers, statuses) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (fingerprint) DO UPDATE SET \
             first_seen = CASE WHEN excluded.first_seen < mismatch_groups.first_seen THEN excluded.first_seen ELSE mismatch_groups.first_seen END, \
             last_seen = CASE WHEN excluded.last_seen > mismatch_groups.last_seen THEN excluded.last_seen ELSE mismatch_groups.last_seen END, \
             count = mismatch_groups.count + excluded.count",
        );
        // Groups (and their triage) belong to live traffic; a replay's
        // mismatches are found through its exemplars and counters.
        for g in groups.into_iter().filter(|_| run.is_empty()) {
            let paths = serde_json::to_string(&g.paths).unwrap_or_else(|_| "[]".into());
            sqlx::query(&group)
                .bind(&g.fingerprint)
                .bind(&g.endpoint)
                .bind(g.first_seen)
                .bind(g.last_seen)
                .bind(g.count)
                .bind(paths)
                .bind(serde_json::to_string(&g.headers).unwrap_or_else(|_| "[]".into()))
                .bind(
                    g.statuses
                        .map_or(String::new(), |(p, c)| format!("{p}>{c}")),
                )
                .execute(&mut *tx)
                .await?;
        }
        let quota = self.sql(
            "INSERT INTO exemplar_quota (fingerprint, hour, count, run) VALUES ($1, $2, 1, $3) \
             ON CONFLICT (run, fingerprint, hour) DO UPDATE SET count = exemplar_quota.count + 1 RETURNING count",
        );
        let insert = self.sql(
            "INSERT INTO mismatches (at, instance, endpoint, fingerprint, method, path, query, \
             request_headers, request_body, request_truncated, primary_status, primary_headers, primary_body, primary_truncated, \
             candidate_status, candidate_headers, candidate_body, candidate_truncated, verdict, run) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
        );
        for m in mismatches {
            let used: i64 = sqlx::query(&quota)
                .bind(&m.fingerprint)
                .bind(m.at_ms.div_euclid(3_600_000))
                .bind(run)
                .fetch_one(&mut *tx)
                .await?
                .try_get(0)?;
            if used > EXEMPLARS_PER_GROUP_HOUR {
                continue;
            }
            sqlx::query(&insert)
                .bind(m.at_ms)
                .bind(instance)
                .bind(&m.endpoint)
                .bind(&m.fingerprint)
                .bind(&m.method)
                .bind(&m.path)
                .bind(&m.query)
                .bind(headers_json(&m.request.headers))
                .bind(m.request.body.bytes.clone())
                .bind(i64::from(m.request.body.truncated))
                .bind(i64::from(m.primary.status))
                .bind(headers_json(&m.primary.headers))
                .bind(m.primary.body.bytes.clone())
                .bind(i64::from(m.primary.body.truncated))
                .bind(i64::from(m.candidate.status))
                .bind(headers_json(&m.candidate.headers))
                .bind(m.candidate.body.bytes.clone())
                .bind(i64::from(m.candidate.body.truncated))
                .bind(m.verdict.to_string())
                .bind(run)
                .execute(&mut *tx)
                .await?;
        }
        let lost = self.sql(
            "INSERT INTO lost_records (minute, instance, count, run) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (run, minute, instance) DO UPDATE SET count = lost_records.count + excluded.count",
        );
        for (minute, count) in &batch.lost {
            sqlx::query(&lost)
                .bind(*minute)
                .bind(instance)
                .bind(*count)
                .bind(run)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        if self.backend == Backend::Sqlite {
            // Moving the log into the file after each write lets the next
            // write reuse the log's space from its start instead of growing
            // it: on a full disk, small writes (counts) still fit. Best
            // effort: a checkpoint that cannot finish now finishes later.
            let _ = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&self.pool)
                .await;
        }
        Ok(())
    }

    async fn read_counts(
        &self,
        window: Window,
        run: &str,
        endpoint: Option<&str>,
    ) -> Result<Vec<EndpointCounts>, StoreError> {
        let sql = self.sql(
            "SELECT endpoint, outcome, CAST(SUM(count) AS BIGINT) FROM counters \
             WHERE run = $4 AND minute >= $1 AND minute < $2 AND ($3 = '' OR endpoint = $3) \
             GROUP BY endpoint, outcome ORDER BY endpoint, outcome",
        );
        let rows = sqlx::query(&sql)
            .bind(window.first_minute())
            .bind(window.end_minute())
            .bind(endpoint.unwrap_or(""))
            .bind(run)
            .fetch_all(&self.pool)
            .await?;
        let mut out: Vec<EndpointCounts> = Vec::new();
        for row in rows {
            let (endpoint, outcome, count): (String, String, i64) =
                (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
            if out.last().is_none_or(|e| e.endpoint != endpoint) {
                out.push(EndpointCounts {
                    endpoint: endpoint.clone(),
                    ..EndpointCounts::default()
                });
            }
            if let Some(last) = out.last_mut() {
                last.outcomes.insert(outcome, count);
            }
        }
        Ok(out)
    }

    async fn read_latency(
        &self,
        window: Window,
        run: &str,
        endpoint: &str,
        side: &str,
    ) -> Result<Vec<(i64, i64)>, StoreError> {
        let sql = self.sql(
            "SELECT bucket, CAST(SUM(count) AS BIGINT) FROM latencies \
             WHERE run = $5 AND minute >= $1 AND minute < $2 AND endpoint = $3 AND side = $4 GROUP BY bucket ORDER BY bucket",
        );
        let rows = sqlx::query(&sql)
            .bind(window.first_minute())
            .bind(window.end_minute())
            .bind(endpoint)
            .bind(side)
            .bind(run)
            .fetch_all(&self.pool)
            .await?;
        pairs(&rows)
    }

    async fn read_expected(
        &self,
        window: Window,
        run: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        // The writer counts each group's occurrences per minute as outcome
        // `group/<fingerprint>`, beside `mismatched`.
        let sql = self.sql(
            "SELECT c.endpoint, CAST(SUM(c.count) AS BIGINT) FROM counters c \
             JOIN mismatch_groups g ON c.outcome = 'group/' || g.fingerprint \
             WHERE c.run = $3 AND c.minute >= $1 AND c.minute < $2 AND g.status = 'expected' \
             GROUP BY c.endpoint ORDER BY c.endpoint",
        );
        let rows = sqlx::query(&sql)
            .bind(window.first_minute())
            .bind(window.end_minute())
            .bind(run)
            .fetch_all(&self.pool)
            .await?;
        pairs(&rows)
    }

    async fn read_groups(
        &self,
        endpoint: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<Group>, StoreError> {
        let sql = self.sql(
            "SELECT fingerprint, endpoint, first_seen, last_seen, count, paths, status, note, headers, statuses FROM mismatch_groups \
             WHERE ($1 = '' OR endpoint = $1) AND ($2 = '' OR status = $2) ORDER BY count DESC, fingerprint",
        );
        let rows = sqlx::query(&sql)
            .bind(endpoint.unwrap_or(""))
            .bind(status.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let paths: String = r.try_get(5)?;
                let headers: String = r.try_get(8)?;
                let statuses: String = r.try_get(9)?;
                Ok(Group {
                    headers: serde_json::from_str(&headers)
                        .map_err(|e| StoreError::Malformed(e.to_string()))?,
                    statuses: statuses
                        .split_once('>')
                        .and_then(|(p, c)| Some((p.parse().ok()?, c.parse().ok()?))),
                    fingerprint: r.try_get(0)?,
                    endpoint: r.try_get(1)?,
                    first_seen: r.try_get(2)?,
                    last_seen: r.try_get(3)?,
                    count: r.try_get(4)?,
                    paths: serde_json::from_str(&paths)
                        .map_err(|e| StoreError::Malformed(e.to_string()))?,
                    status: r.try_get(6)?,
                    note: r.try_get(7)?,
                })
            })
            .collect()
    }

    async fn set_triage(
        &self,
        fingerprint: &str,
        status: &str,
        note: &str,
    ) -> Result<bool, StoreError> {
        let sql =
            self.sql("UPDATE mismatch_groups SET status = $1, note = $2 WHERE fingerprint = $3");
        let done = sqlx::query(&sql)
            .bind(status)
            .bind(note)
            .bind(fingerprint)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    const MISMATCH_COLUMNS: &'static str = "id, instance, at, endpoint, fingerprint, method, path, query, \
        request_headers, request_body, request_truncated, primary_status, primary_headers, primary_body, primary_truncated, \
        candidate_status, candidate_headers, candidate_body, candidate_truncated, verdict, run";

    async fn read_mismatches(
        &self,
        filter: MismatchFilter<'_>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<StoredMismatch>, StoreError> {
        // Keyset pagination on the id: stable while new rows arrive.
        let sql = format!(
            "SELECT {} FROM mismatches WHERE ($1 = '' OR endpoint = $1) AND ($2 = '' OR fingerprint = $2) AND id < $3 \
             AND at >= $4 AND ($6 = 0 OR run = $7) ORDER BY id DESC LIMIT $5",
            Self::MISMATCH_COLUMNS
        );
        let sql = match self.backend {
            Backend::Postgres => sql,
            Backend::Sqlite => sql.replace('$', "?"),
        };
        let rows = sqlx::query(&sql)
            .bind(filter.endpoint.unwrap_or(""))
            .bind(filter.fingerprint.unwrap_or(""))
            .bind(before.unwrap_or(i64::MAX))
            .bind(filter.since_ms.unwrap_or(i64::MIN))
            .bind(limit)
            .bind(i64::from(filter.run.is_some()))
            .bind(filter.run.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(mismatch_from_row).collect()
    }

    async fn read_mismatch(&self, id: i64) -> Result<Option<StoredMismatch>, StoreError> {
        let sql = format!(
            "SELECT {} FROM mismatches WHERE id = $1",
            Self::MISMATCH_COLUMNS
        );
        let sql = match self.backend {
            Backend::Postgres => sql,
            Backend::Sqlite => sql.replace('$', "?"),
        };
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(mismatch_from_row).transpose()
    }

    async fn read_lost(&self, window: Window) -> Result<i64, StoreError> {
        let sql = self.sql(
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) FROM lost_records WHERE run = '' AND minute >= $1 AND minute < $2",
        );
        let row = sqlx::query(&sql)
            .bind(window.first_minute())
            .bind(window.end_minute())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get(0)?)
    }

    async fn delete_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        let minute = before_ms.div_euclid(60_000);
        let mut removed = 0;
        let statements: [(&'static str, i64); 6] = [
            ("DELETE FROM counters WHERE minute < $1", minute),
            ("DELETE FROM latencies WHERE minute < $1", minute),
            ("DELETE FROM lost_records WHERE minute < $1", minute),
            ("DELETE FROM mismatches WHERE at < $1", before_ms),
            (
                "DELETE FROM mismatch_groups WHERE last_seen < $1",
                before_ms,
            ),
            (
                "DELETE FROM exemplar_quota WHERE hour < $1",
                before_ms.div_euclid(3_600_000),
            ),
        ];
        for (sql, bound) in statements {
            removed += sqlx::query(&self.sql(sql))
                .bind(bound)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(removed)
    }
}

/// Rows of two columns, such as (bucket, count) or (endpoint, count).
fn pairs<A, B>(rows: &[AnyRow]) -> Result<Vec<(A, B)>, StoreError>
where
    A: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
    B: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

fn ceil_div(a: i64, b: i64) -> i64 {
    a.div_euclid(b) + i64::from(a.rem_euclid(b) != 0)
}

fn headers_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).unwrap_or_else(|_| "[]".into())
}

fn mismatch_from_row(r: &AnyRow) -> Result<StoredMismatch, StoreError> {
    let malformed = |e: serde_json::Error| StoreError::Malformed(e.to_string());
    let headers = |i: usize| -> Result<Vec<(String, String)>, StoreError> {
        let text: String = r.try_get(i)?;
        serde_json::from_str(&text).map_err(malformed)
    };
    // Flags are stored as 0 or 1: the one boolean both databases agree on.
    let flag = |i: usize| -> Result<bool, StoreError> {
        let n: i64 = r.try_get(i)?;
        Ok(n != 0)
    };
    let status = |i: usize| -> Result<u16, StoreError> {
        let n: i64 = r.try_get(i)?;
        Ok(u16::try_from(n).unwrap_or(0))
    };
    // A message is its status (none for the request), then headers, body and
    // truncated flag in consecutive columns.
    let message = |status_at: Option<usize>, at: usize| -> Result<StoredMessage, StoreError> {
        Ok(StoredMessage {
            status: status_at.map(status).transpose()?.unwrap_or(0),
            headers: headers(at)?,
            body: StoredBody {
                bytes: r.try_get(at + 1)?,
                truncated: flag(at + 2)?,
            },
        })
    };
    let verdict: String = r.try_get(19)?;
    Ok(StoredMismatch {
        id: r.try_get(0)?,
        instance: r.try_get(1)?,
        run: r.try_get(20)?,
        record: MismatchRecord {
            at_ms: r.try_get(2)?,
            endpoint: r.try_get(3)?,
            fingerprint: r.try_get(4)?,
            method: r.try_get(5)?,
            path: r.try_get(6)?,
            query: r.try_get(7)?,
            request: message(None, 8)?,
            primary: message(Some(11), 12)?,
            candidate: message(Some(15), 16)?,
            verdict: serde_json::from_str(&verdict).map_err(malformed)?,
        },
    })
}

impl Store for SqlStore {
    fn write<'a>(
        &'a self,
        instance: &'a str,
        run: &'a str,
        batch: &'a Batch,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
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
    fn latency<'a>(
        &'a self,
        window: Window,
        run: &'a str,
        endpoint: &'a str,
        side: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(i64, i64)>, StoreError>> {
        Box::pin(self.read_latency(window, run, endpoint, side))
    }
    fn expected<'a>(
        &'a self,
        window: Window,
        run: &'a str,
    ) -> BoxFuture<'a, Result<Vec<(String, i64)>, StoreError>> {
        Box::pin(self.read_expected(window, run))
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
        fingerprint: &'a str,
        status: &'a str,
        note: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(self.set_triage(fingerprint, status, note))
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

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn urls_are_checked_and_passwords_hidden() {
        let pg: DatabaseUrl = "postgres://app:s3cret@db:5432/shadow".parse().unwrap();
        assert_eq!(pg.backend(), Backend::Postgres);
        assert_eq!(pg.to_string(), "postgres://app:***@db:5432/shadow");
        let lite: DatabaseUrl = "sqlite://shadowdiff.db".parse().unwrap();
        assert_eq!(lite.to_string(), "sqlite://shadowdiff.db?mode=rwc");
        let err = "mysql://root:pw@x/db".parse::<DatabaseUrl>().unwrap_err();
        assert!(!err.to_string().contains("pw"), "{err}");
        for anonymous in [
            "sqlite://",
            "sqlite:",
            "sqlite://?mode=rwc",
            "sqlite::memory:",
        ] {
            let err = anonymous.parse::<DatabaseUrl>().unwrap_err();
            assert!(err.to_string().contains("names no file"), "{err}");
        }
        assert_eq!(
            lite.sqlite_path(),
            Some(std::path::PathBuf::from("shadowdiff.db"))
        );
        let nowhere: DatabaseUrl = "sqlite:///no/such/folder/x.db".parse().unwrap();
        assert!(nowhere
            .check_location()
            .unwrap_err()
            .contains("/no/such/folder"));
        assert!(lite.check_location().is_ok());
    }
}
