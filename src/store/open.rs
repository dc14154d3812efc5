//! Opening a database: connecting (a SQLite file is created if missing and
//! put in write-ahead-log mode), migrating (after repairing migrations run
//! in a text since extended), checking a database a reader must not change,
//! and closing it whole.

use std::borrow::Cow;

use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, Row};

use super::{repair, Backend, DatabaseUrl, StoreError};

/// The SQL store, for either database.
#[derive(Clone, Debug)]
pub struct SqlStore {
    pub(super) pool: AnyPool,
    pub(super) backend: Backend,
}

pub(super) static SQLITE_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("./migrations/sqlite");
pub(super) static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator =
    sqlx::migrate!("./migrations/postgres");

impl SqlStore {
    /// Opens a database that must exist and be at this version's schema,
    /// changing nothing (no file created, no migration): for readers such as
    /// `gate`, which may run with another version or a read-only user.
    pub async fn open_existing(url: &DatabaseUrl) -> Result<SqlStore, StoreError> {
        let store = Self::open(&url.existing(), false).await?;
        let migrator = store.migrator();
        let expected = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let found: Option<i64> =
            sqlx::query("SELECT CAST(MAX(version) AS BIGINT) AS version FROM _sqlx_migrations")
                .fetch_one(&store.pool)
                .await
                .ok()
                .and_then(|row| row.try_get("version").ok());
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
        if url.backend() == Backend::Sqlite {
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
            .connect(url.connect_str())
            .await
            .map_err(|e| read_only(connect_error(e)))?;
        if url.backend() == Backend::Sqlite && write_ahead_log {
            // With a write-ahead log, the report API's reads do not hold up
            // the writer's commits (the mode is kept in the file).
            sqlx::query("PRAGMA journal_mode=WAL")
                .execute(&pool)
                .await
                .map_err(|e| read_only(connect_error(e)))?;
        }
        Ok(SqlStore {
            pool,
            backend: url.backend(),
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

    /// A statement in this database's parameter syntax: statements are
    /// written once with PostgreSQL's `$n`, which SQLite reads as `?n`.
    pub(super) fn sql<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self.backend {
            Backend::Postgres => text.into(),
            Backend::Sqlite => text.replace('$', "?").into(),
        }
    }
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
