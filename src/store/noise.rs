//! Learned noise (migration 0008): per endpoint, samples compared and
//! paired with a secondary; per endpoint and generalised path, how often
//! the two primaries differed, how often the primary and the candidate did,
//! and how volatile the differing values looked. Each instance adds its own
//! rows; reads sum them. Reset per endpoint.

use std::collections::BTreeMap;

use sqlx::Row;

use super::{SqlStore, StoreError};

/// One endpoint's sample counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoiseEndpointRow {
    pub endpoint: String,
    pub compared: i64,
    pub paired: i64,
}

/// One path's counts.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoisePathRow {
    pub endpoint: String,
    pub path: String,
    pub noise: i64,
    pub raw_paired: i64,
    pub raw: i64,
    pub looks_uuid: i64,
    pub looks_timestamp: i64,
    pub looks_token: i64,
    pub looks_counter: i64,
}

/// Counts to add, or counts read back (summed over instances).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NoiseRows {
    pub endpoints: Vec<NoiseEndpointRow>,
    pub paths: Vec<NoisePathRow>,
}

impl SqlStore {
    /// Adds this instance's counts, in one transaction.
    pub async fn add_noise(&self, instance: &str, rows: &NoiseRows) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        let endpoint = self.sql(
            "INSERT INTO noise_endpoints (endpoint, instance, compared, paired) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (endpoint, instance) DO UPDATE SET \
             compared = noise_endpoints.compared + excluded.compared, \
             paired = noise_endpoints.paired + excluded.paired",
        );
        for e in &rows.endpoints {
            sqlx::query(&endpoint)
                .bind(&e.endpoint)
                .bind(instance)
                .bind(e.compared)
                .bind(e.paired)
                .execute(&mut *tx)
                .await?;
        }
        let path = self.sql(
            "INSERT INTO noise_paths (endpoint, path, instance, noise, raw_paired, raw, \
                                      looks_uuid, looks_timestamp, looks_token, looks_counter) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
             ON CONFLICT (endpoint, path, instance) DO UPDATE SET \
             noise = noise_paths.noise + excluded.noise, \
             raw_paired = noise_paths.raw_paired + excluded.raw_paired, \
             raw = noise_paths.raw + excluded.raw, \
             looks_uuid = noise_paths.looks_uuid + excluded.looks_uuid, \
             looks_timestamp = noise_paths.looks_timestamp + excluded.looks_timestamp, \
             looks_token = noise_paths.looks_token + excluded.looks_token, \
             looks_counter = noise_paths.looks_counter + excluded.looks_counter",
        );
        for p in &rows.paths {
            sqlx::query(&path)
                .bind(&p.endpoint)
                .bind(&p.path)
                .bind(instance)
                .bind(p.noise)
                .bind(p.raw_paired)
                .bind(p.raw)
                .bind(p.looks_uuid)
                .bind(p.looks_timestamp)
                .bind(p.looks_token)
                .bind(p.looks_counter)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Every instance's counts summed, for one endpoint or all.
    pub async fn noise(&self, endpoint: Option<&str>) -> Result<NoiseRows, StoreError> {
        let endpoints = self.sql(
            "SELECT endpoint, CAST(SUM(compared) AS BIGINT) AS compared, CAST(SUM(paired) AS BIGINT) AS paired \
             FROM noise_endpoints WHERE ($1 = '' OR endpoint = $1) GROUP BY endpoint ORDER BY endpoint",
        );
        let endpoints = sqlx::query(&endpoints)
            .bind(endpoint.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|r| {
                Ok(NoiseEndpointRow {
                    endpoint: r.try_get("endpoint")?,
                    compared: r.try_get("compared")?,
                    paired: r.try_get("paired")?,
                })
            })
            .collect::<Result<_, StoreError>>()?;
        let sum = |column: &str| format!("CAST(SUM({column}) AS BIGINT) AS {column}");
        let columns = [
            "noise",
            "raw_paired",
            "raw",
            "looks_uuid",
            "looks_timestamp",
            "looks_token",
            "looks_counter",
        ];
        let summed: Vec<String> = columns.iter().map(|c| sum(c)).collect();
        let text = format!(
            "SELECT endpoint, path, {} FROM noise_paths WHERE ($1 = '' OR endpoint = $1) \
             GROUP BY endpoint, path ORDER BY endpoint, path",
            summed.join(", ")
        );
        let paths = self.sql(&text);
        let rows = sqlx::query(&paths)
            .bind(endpoint.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        let mut paths = Vec::with_capacity(rows.len());
        for r in &rows {
            let mut n: BTreeMap<&str, i64> = BTreeMap::new();
            for c in columns {
                n.insert(c, r.try_get(c)?);
            }
            paths.push(NoisePathRow {
                endpoint: r.try_get("endpoint")?,
                path: r.try_get("path")?,
                noise: n["noise"],
                raw_paired: n["raw_paired"],
                raw: n["raw"],
                looks_uuid: n["looks_uuid"],
                looks_timestamp: n["looks_timestamp"],
                looks_token: n["looks_token"],
                looks_counter: n["looks_counter"],
            });
        }
        Ok(NoiseRows { endpoints, paths })
    }

    /// Forgets what was learned about one endpoint; returns the rows removed.
    pub async fn reset_noise(&self, endpoint: &str) -> Result<u64, StoreError> {
        let mut removed = 0;
        for sql in [
            "DELETE FROM noise_endpoints WHERE endpoint = $1",
            "DELETE FROM noise_paths WHERE endpoint = $1",
        ] {
            removed += sqlx::query(&self.sql(sql))
                .bind(endpoint)
                .execute(&self.pool)
                .await?
                .rows_affected();
        }
        Ok(removed)
    }
}
