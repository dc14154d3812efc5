//! Triage and its history (migration 0006): a group's status and note set
//! together with a history row saying who set them and when, in one
//! transaction, and the history read back newest first. Also the outcome
//! counts over time that the review page draws as a trend.

use sqlx::Row;

use super::{SqlStore, StoreError, Window};

/// One triage of a group, as asked.
#[derive(Clone, Copy, Debug)]
pub struct TriageChange<'a> {
    pub fingerprint: &'a str,
    pub status: &'a str,
    pub note: &'a str,
    /// Who, as the reviewer gave it; '' when not given.
    pub reviewer: &'a str,
    /// Unix milliseconds.
    pub at_ms: i64,
}

/// One triage as kept in the history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TriageEntry {
    pub at_ms: i64,
    pub status: String,
    pub note: String,
    pub reviewer: String,
}

/// Outcome counts of one step of a trend: `minute` is the first minute of
/// the step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrendRow {
    pub minute: i64,
    pub outcome: String,
    pub count: i64,
}

impl SqlStore {
    /// Sets a group's status and note and keeps the change in the history;
    /// `false` (and nothing written) if there is no such group.
    pub(super) async fn set_triage(&self, change: &TriageChange<'_>) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let update =
            self.sql("UPDATE mismatch_groups SET status = $1, note = $2 WHERE fingerprint = $3");
        let done = sqlx::query(&update)
            .bind(change.status)
            .bind(change.note)
            .bind(change.fingerprint)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        let insert = self.sql(
            "INSERT INTO triage_history (fingerprint, at, status, note, reviewer) \
             VALUES ($1, $2, $3, $4, $5)",
        );
        sqlx::query(&insert)
            .bind(change.fingerprint)
            .bind(change.at_ms)
            .bind(change.status)
            .bind(change.note)
            .bind(change.reviewer)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A group's triage history, newest first (at most `limit` entries).
    pub(super) async fn read_triage_history(
        &self,
        fingerprint: &str,
        limit: i64,
    ) -> Result<Vec<TriageEntry>, StoreError> {
        let sql = self.sql(
            "SELECT at, status, note, reviewer FROM triage_history \
             WHERE fingerprint = $1 ORDER BY at DESC, id DESC LIMIT $2",
        );
        let rows = sqlx::query(&sql)
            .bind(fingerprint)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TriageEntry {
                    at_ms: r.try_get("at")?,
                    status: r.try_get("status")?,
                    note: r.try_get("note")?,
                    reviewer: r.try_get("reviewer")?,
                })
            })
            .collect()
    }

    /// Outcome counts per step of `step_minutes` over a window, summed over
    /// instances (and endpoints, unless one is named), oldest first.
    pub(super) async fn read_trend(
        &self,
        window: Window,
        run: &str,
        endpoint: Option<&str>,
        step_minutes: i64,
    ) -> Result<Vec<TrendRow>, StoreError> {
        // Whole minutes are non-negative, so integer division floors in
        // both dialects.
        let sql = self.sql(
            "SELECT CAST((minute / $5) * $5 AS BIGINT) AS step, outcome, \
                    CAST(SUM(count) AS BIGINT) AS count FROM counters \
             WHERE run = $4 AND minute >= $1 AND minute < $2 AND ($3 = '' OR endpoint = $3) \
             GROUP BY step, outcome ORDER BY step, outcome",
        );
        let rows = sqlx::query(&sql)
            .bind(window.first_minute())
            .bind(window.end_minute())
            .bind(endpoint.unwrap_or(""))
            .bind(run)
            .bind(step_minutes.max(1))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(TrendRow {
                    minute: r.try_get("step")?,
                    outcome: r.try_get("outcome")?,
                    count: r.try_get("count")?,
                })
            })
            .collect()
    }
}
