//! The cutover's shared state (migration 0005): each route's serving
//! weight, where it stands in its plan, and the history of every change.
//! Every instance on one database reads the weights every second; a change
//! is conditional on the version it was decided from, so that two
//! instances deciding the same step at once change it once.

use sqlx::Row;

use super::{SqlStore, StoreError};

/// One route's weight as stored (`*` for requests no route matches).
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutRow {
    pub route: String,
    pub weight: f64,
    /// Index in the route's plan; -1 off the plan.
    pub step: i64,
    pub paused: bool,
    /// When this weight was set, Unix milliseconds.
    pub since_ms: i64,
    pub version: i64,
}

/// A change of one route's weight, and why.
#[derive(Clone, Debug)]
pub struct RolloutChange<'a> {
    pub route: &'a str,
    pub weight: f64,
    pub step: i64,
    pub paused: bool,
    /// Applied only if the route is still at this version (`None`: whatever
    /// it is; 0: only if it has no row yet).
    pub expected_version: Option<i64>,
    /// The weight it had when no row says otherwise (its configured one).
    pub configured: f64,
    pub at_ms: i64,
    /// `command`, `plan`, `rollback` or `kill`.
    pub reason: &'a str,
    pub detail: &'a str,
    pub instance: &'a str,
}

/// One change as the history keeps it.
#[derive(Clone, Debug, PartialEq)]
pub struct RolloutEvent {
    pub id: i64,
    pub at_ms: i64,
    pub route: String,
    pub from_weight: f64,
    pub to_weight: f64,
    pub reason: String,
    pub detail: String,
    pub instance: String,
}

fn row_of(r: &sqlx::any::AnyRow) -> Result<RolloutRow, StoreError> {
    Ok(RolloutRow {
        route: r.try_get("route")?,
        weight: r.try_get("weight")?,
        step: r.try_get("step")?,
        paused: r.try_get::<i64, _>("paused")? != 0,
        since_ms: r.try_get("since_ms")?,
        version: r.try_get("version")?,
    })
}

impl SqlStore {
    /// Every route's stored weight.
    pub async fn rollout_weights(&self) -> Result<Vec<RolloutRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT route, weight, step, paused, since_ms, version FROM rollout_weights ORDER BY route",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(row_of).collect()
    }

    /// Applies a change and records it in the history, in one transaction;
    /// `None` when the route had moved on from the expected version.
    pub async fn change_rollout(
        &self,
        c: &RolloutChange<'_>,
    ) -> Result<Option<RolloutRow>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let select = self.sql(
            "SELECT route, weight, step, paused, since_ms, version FROM rollout_weights WHERE route = $1",
        );
        let current = match sqlx::query(&select)
            .bind(c.route)
            .fetch_optional(&mut *tx)
            .await?
        {
            Some(r) => Some(row_of(&r)?),
            None => None,
        };
        let version = current.as_ref().map_or(0, |r| r.version);
        if c.expected_version.is_some_and(|v| v != version) {
            return Ok(None);
        }
        let from = current.as_ref().map_or(c.configured, |r| r.weight);
        let paused = i64::from(c.paused);
        let applied = match current {
            None => {
                let insert = self.sql(
                    "INSERT INTO rollout_weights (route, weight, step, paused, since_ms, version) \
                     VALUES ($1, $2, $3, $4, $5, 1) ON CONFLICT (route) DO NOTHING",
                );
                sqlx::query(&insert)
                    .bind(c.route)
                    .bind(c.weight)
                    .bind(c.step)
                    .bind(paused)
                    .bind(c.at_ms)
                    .execute(&mut *tx)
                    .await?
            }
            Some(_) => {
                let update = self.sql(
                    "UPDATE rollout_weights SET weight = $1, step = $2, paused = $3, since_ms = $4, \
                     version = version + 1 WHERE route = $5 AND version = $6",
                );
                sqlx::query(&update)
                    .bind(c.weight)
                    .bind(c.step)
                    .bind(paused)
                    .bind(c.at_ms)
                    .bind(c.route)
                    .bind(version)
                    .execute(&mut *tx)
                    .await?
            }
        };
        if applied.rows_affected() == 0 {
            return Ok(None);
        }
        let history = self.sql(
            "INSERT INTO rollout_history (at_ms, route, from_weight, to_weight, reason, detail, instance) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        );
        sqlx::query(&history)
            .bind(c.at_ms)
            .bind(c.route)
            .bind(from)
            .bind(c.weight)
            .bind(c.reason)
            .bind(c.detail)
            .bind(c.instance)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(RolloutRow {
            route: c.route.to_string(),
            weight: c.weight,
            step: c.step,
            paused: c.paused,
            since_ms: c.at_ms,
            version: version + 1,
        }))
    }

    /// The latest changes, newest first.
    pub async fn rollout_history(&self, limit: i64) -> Result<Vec<RolloutEvent>, StoreError> {
        let sql = self.sql(
            "SELECT id, at_ms, route, from_weight, to_weight, reason, detail, instance \
             FROM rollout_history ORDER BY id DESC LIMIT $1",
        );
        let rows = sqlx::query(&sql).bind(limit).fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(RolloutEvent {
                    id: r.try_get("id")?,
                    at_ms: r.try_get("at_ms")?,
                    route: r.try_get("route")?,
                    from_weight: r.try_get("from_weight")?,
                    to_weight: r.try_get("to_weight")?,
                    reason: r.try_get("reason")?,
                    detail: r.try_get("detail")?,
                    instance: r.try_get("instance")?,
                })
            })
            .collect()
    }
}
