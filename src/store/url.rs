//! Database URLs: which database a URL names, checked once when parsed, and
//! shown without its password so that logs and errors never carry it.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

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

    /// The URL as the driver takes it, password included: for connecting only.
    pub(super) fn connect_str(&self) -> &str {
        &self.url
    }

    /// The same database, which must exist already: SQLite opens the file
    /// without creating it.
    pub(super) fn existing(&self) -> DatabaseUrl {
        DatabaseUrl {
            url: self.url.replace("mode=rwc", "mode=rw"),
            backend: self.backend,
        }
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

#[cfg(test)]
mod tests {
    use super::*;

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
