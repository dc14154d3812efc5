//! Repair of a released migration that was later extended.
//!
//! Migration 0002 was released, then statements were appended to it (the
//! `headers` and `statuses` columns of `mismatch_groups`). sqlx records a
//! checksum of each migration's text and refuses a database whose recorded
//! checksum differs from the text it embeds, so a database that ran the first
//! text would never open again. Its first text is a prefix of the current
//! one: such a database runs the appended statements and records the current
//! checksum, in one transaction, and is then exactly what the current text
//! makes. Only the first text's known checksum is repaired; any other
//! difference is still refused by sqlx.

use sha2::{Digest, Sha384};
use sqlx::migrate::Migrator;
use sqlx::{AnyPool, Row};

use super::{Backend, StoreError};

/// A released migration whose text was extended after release.
struct Extended {
    version: i64,
    /// Bytes of the text as first released: the current text begins with them.
    first_len: usize,
    /// SHA-384 (as sqlx records it) of the text as first released, in hex.
    first_checksum: &'static str,
}

/// The migrations extended after release, per backend.
fn extended(backend: Backend) -> &'static [Extended] {
    match backend {
        Backend::Sqlite => &[Extended {
            version: 2,
            first_len: 2314,
            first_checksum: "122315af666cfa09a9c77f3f23b54b096ff5ef63ad4c11699a4560c113b2a4dbca8a11fa8299a60ffe9cc17d2e94dd85",
        }],
        Backend::Postgres => &[Extended {
            version: 2,
            first_len: 1165,
            first_checksum: "7e5ac9e1ff9f34955f3d39c5f643cb29e230bb5edbc7d255068c65c81176caa121b0a41faca73f38507f221fb300719a",
        }],
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether sqlx's table of applied migrations exists yet (not on a new database).
async fn has_migrations_table(pool: &AnyPool, backend: Backend) -> Result<bool, StoreError> {
    let sql = match backend {
        Backend::Sqlite => {
            "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'"
        }
        Backend::Postgres => {
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM information_schema.tables \
             WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'"
        }
    };
    let n: i64 = sqlx::query(sql).fetch_one(pool).await?.try_get("n")?;
    Ok(n > 0)
}

/// The checksum recorded for `version`, if it was applied.
async fn recorded_checksum(
    pool: &AnyPool,
    backend: Backend,
    version: i64,
) -> Result<Option<Vec<u8>>, StoreError> {
    if !has_migrations_table(pool, backend).await? {
        return Ok(None);
    }
    let sql = match backend {
        Backend::Sqlite => "SELECT checksum FROM _sqlx_migrations WHERE version = ?1",
        Backend::Postgres => "SELECT checksum FROM _sqlx_migrations WHERE version = $1",
    };
    let row = sqlx::query(sql).bind(version).fetch_optional(pool).await?;
    Ok(row.map(|r| r.try_get("checksum")).transpose()?)
}

/// The migrations this database ran in a text since extended: they need
/// [`repair`] (a reader that must not change the database refuses them).
pub(super) async fn needed(pool: &AnyPool, backend: Backend) -> Result<Vec<i64>, StoreError> {
    let mut versions = Vec::new();
    for e in extended(backend) {
        let recorded = recorded_checksum(pool, backend, e.version).await?;
        if recorded.is_some_and(|c| hex(&c) == e.first_checksum) {
            versions.push(e.version);
        }
    }
    Ok(versions)
}

/// Brings every migration this database ran in its first text up to its
/// current text: runs what was appended and records the current checksum.
pub(super) async fn repair(
    pool: &AnyPool,
    backend: Backend,
    migrator: &'static Migrator,
) -> Result<(), StoreError> {
    for version in needed(pool, backend).await? {
        let Some(e) = extended(backend).iter().find(|e| e.version == version) else {
            continue;
        };
        let Some(current) = migrator.iter().find(|m| m.version == version) else {
            continue;
        };
        let (first, appended) = match current.sql.split_at_checked(e.first_len) {
            Some((first, appended)) if hex(&Sha384::digest(first)) == e.first_checksum => {
                (Sha384::digest(first).to_vec(), appended)
            }
            // Cannot happen while released migrations never change (a test
            // checks them); refused rather than guessed at.
            _ => {
                return Err(StoreError::Schema(format!(
                "migration {version} no longer begins with its first released text: cannot repair"
            )))
            }
        };
        let update = match backend {
            Backend::Sqlite => {
                "UPDATE _sqlx_migrations SET checksum = ?1 WHERE version = ?2 AND checksum = ?3"
            }
            Backend::Postgres => {
                "UPDATE _sqlx_migrations SET checksum = $1 WHERE version = $2 AND checksum = $3"
            }
        };
        let mut tx = pool.begin().await?;
        // The checksum is changed first: of two instances repairing at once,
        // the second waits for the first's row lock, then finds nothing left
        // to change and runs nothing.
        let changed = sqlx::query(update)
            .bind(current.checksum.to_vec())
            .bind(version)
            .bind(first)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if changed == 1 {
            sqlx::Executor::execute(&mut *tx, appended).await?;
        }
        tx.commit().await?;
        if changed == 1 {
            tracing::info!(
                version,
                "repaired a migration run in its first released text: its appended statements ran"
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every repair's first text is a prefix of the embedded migration.
    #[test]
    fn first_texts_are_prefixes_of_the_current_ones() {
        for (backend, migrator) in [
            (Backend::Sqlite, &super::super::open::SQLITE_MIGRATIONS),
            (Backend::Postgres, &super::super::open::POSTGRES_MIGRATIONS),
        ] {
            for e in extended(backend) {
                let current = migrator.iter().find(|m| m.version == e.version).unwrap();
                let first = &current.sql.as_bytes()[..e.first_len];
                assert_eq!(hex(&Sha384::digest(first)), e.first_checksum, "{backend:?}");
            }
        }
    }
}
