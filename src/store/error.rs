//! What can go wrong in the store ([`StoreError`]), and the class of each
//! failure ([`ErrorClass`]) as the writer's health shows it to clients: only
//! the class, never the error's text, so no SQL or paths reach them.

use serde::Serialize;

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

/// What kind of failure a write met, as shown to clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The database refuses writes (file permissions, a read-only file
    /// system, a read-only PostgreSQL transaction or replica).
    ReadOnly,
    /// No room left on the database's disk.
    DiskFull,
    /// The operating system failed a read or write.
    Io,
    /// No connection became free in time, or a write took too long.
    Timeout,
    /// The database could not be reached or opened.
    Unavailable,
    /// The database is not at this version's schema, or refused the data.
    Other,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::ReadOnly => "read_only",
            ErrorClass::DiskFull => "disk_full",
            ErrorClass::Io => "io",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Unavailable => "unavailable",
            ErrorClass::Other => "other",
        }
    }

    /// The class of a store error, from SQLite's result codes, PostgreSQL's
    /// SQLSTATEs and sqlx's own error kinds.
    pub fn of(error: &StoreError) -> ErrorClass {
        match error {
            StoreError::Connect { source, .. } => match ErrorClass::of_sqlx(source) {
                ErrorClass::Other => ErrorClass::Unavailable,
                class => class,
            },
            StoreError::Query(source) => ErrorClass::of_sqlx(source),
            StoreError::Migrate(sqlx::migrate::MigrateError::Execute(source))
            | StoreError::Migrate(sqlx::migrate::MigrateError::ExecuteMigration(source, _)) => {
                ErrorClass::of_sqlx(source)
            }
            StoreError::ReadOnly(_) => ErrorClass::ReadOnly,
            StoreError::Migrate(_) | StoreError::Malformed(_) | StoreError::Schema(_) => {
                ErrorClass::Other
            }
        }
    }

    fn of_sqlx(error: &sqlx::Error) -> ErrorClass {
        match error {
            sqlx::Error::PoolTimedOut => ErrorClass::Timeout,
            sqlx::Error::Io(_) | sqlx::Error::PoolClosed | sqlx::Error::WorkerCrashed => {
                ErrorClass::Unavailable
            }
            sqlx::Error::Database(db) => {
                let code = db.code().unwrap_or_default();
                // PostgreSQL's SQLSTATEs have five characters (some all
                // digits); SQLite's extended result codes fewer.
                if code.len() == 5 {
                    return match &*code {
                        "53100" => ErrorClass::DiskFull,
                        "25006" => ErrorClass::ReadOnly,
                        "58030" => ErrorClass::Io,
                        "57014" | "55P03" | "40P01" | "53300" => ErrorClass::Timeout,
                        c if c.starts_with("08") || c.starts_with("57P") => ErrorClass::Unavailable,
                        _ => ErrorClass::Other,
                    };
                }
                // SQLite's extended result codes keep the primary code in the low byte.
                match code.parse::<i64>().map(|n| n & 0xff) {
                    Ok(8) => ErrorClass::ReadOnly,
                    Ok(13) => ErrorClass::DiskFull,
                    Ok(10 | 11 | 26) => ErrorClass::Io,
                    Ok(14) => ErrorClass::Unavailable,
                    Ok(5 | 6) => ErrorClass::Timeout,
                    _ => ErrorClass::Other,
                }
            }
            _ => ErrorClass::Other,
        }
    }
}
