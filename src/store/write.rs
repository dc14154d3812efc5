//! Writing: a batch of counts, groups, exemplars and losses added in one
//! transaction, in named phases, and pruning past the retention.

use sqlx::{Any, Transaction};

use std::collections::BTreeMap;

use sqlx::Row;

use super::{mismatch, Backend, Batch, GroupDelta, Histogram, SqlStore, StoreError, Written};

/// The transaction a batch is written in.
type Tx = Transaction<'static, Any>;

impl SqlStore {
    /// Adds a batch in one transaction: counters add up, groups merge,
    /// exemplars beyond the hourly cap are left out.
    pub(super) async fn write_batch(
        &self,
        instance: &str,
        run: &str,
        batch: &Batch,
    ) -> Result<Written, StoreError> {
        let mut tx = self.pool.begin().await?;
        self.add_counters(&mut tx, instance, run, batch).await?;
        self.add_latencies(&mut tx, instance, run, batch).await?;
        // Groups (and their triage) belong to live traffic; a replay's
        // mismatches are found through its exemplars and counters.
        let mut written = Written::default();
        if run.is_empty() {
            written.new_groups = self.merge_groups(&mut tx, &batch.groups).await?;
        }
        self.add_group_counts(&mut tx, instance, run, batch).await?;
        mismatch::insert_all(self, &mut tx, instance, run, &batch.mismatches).await?;
        self.add_lost(&mut tx, instance, run, batch).await?;
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
        Ok(written)
    }

    async fn add_counters(
        &self,
        tx: &mut Tx,
        instance: &str,
        run: &str,
        batch: &Batch,
    ) -> Result<(), StoreError> {
        let rows = batch
            .counters
            .iter()
            .map(|c| (c.minute, &*c.endpoint, &*c.outcome, c.count));
        self.add_counts(tx, ("counters", "outcome"), (instance, run), rows)
            .await
    }

    /// Adds each group's per-minute counts, keeping the most severe class.
    async fn add_group_counts(
        &self,
        tx: &mut Tx,
        instance: &str,
        run: &str,
        batch: &Batch,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO group_counts (minute, endpoint, fingerprint, instance, count, run, severity) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (run, minute, endpoint, fingerprint, instance) DO UPDATE SET \
             count = group_counts.count + excluded.count, severity = {}",
            most_severe_sql("group_counts")
        );
        let sql = self.sql(&sql);
        for c in &batch.group_counts {
            sqlx::query(&sql)
                .bind(c.minute)
                .bind(&c.endpoint)
                .bind(&c.fingerprint)
                .bind(instance)
                .bind(c.count)
                .bind(run)
                .bind(c.severity)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Adds per-minute counts to a table keyed by (run, minute, endpoint,
    /// `key`, instance): outcomes in `counters`. (Group counts carry a
    /// severity besides, merged by their own statement.)
    async fn add_counts<'r>(
        &self,
        tx: &mut Tx,
        (table, key): (&str, &str),
        (instance, run): (&str, &str),
        rows: impl Iterator<Item = (i64, &'r str, &'r str, i64)>,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO {table} (minute, endpoint, {key}, instance, count, run) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (run, minute, endpoint, {key}, instance) DO UPDATE SET count = {table}.count + excluded.count"
        );
        let sql = self.sql(&sql);
        for (minute, endpoint, key, count) in rows {
            sqlx::query(&sql)
                .bind(minute)
                .bind(endpoint)
                .bind(key)
                .bind(instance)
                .bind(count)
                .bind(run)
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Each (minute, endpoint, side) this batch touches: its row of this
    /// instance read, the batch's buckets added, written back. Only this
    /// instance writes its rows, so the read and the write cannot race.
    async fn add_latencies(
        &self,
        tx: &mut Tx,
        instance: &str,
        run: &str,
        batch: &Batch,
    ) -> Result<(), StoreError> {
        let mut deltas: BTreeMap<(i64, &str, &str), Histogram> = BTreeMap::new();
        for l in &batch.latencies {
            deltas
                .entry((l.minute, &l.endpoint, l.side))
                .or_default()
                .add(l.bucket, l.count);
        }
        let read = self.sql(
            "SELECT buckets FROM latency_histograms \
             WHERE run = $1 AND minute = $2 AND endpoint = $3 AND side = $4 AND instance = $5",
        );
        let write = self.sql(
            "INSERT INTO latency_histograms (run, minute, endpoint, side, instance, buckets) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (run, minute, endpoint, side, instance) DO UPDATE SET buckets = excluded.buckets",
        );
        for ((minute, endpoint, side), delta) in deltas {
            let stored = sqlx::query(&read)
                .bind(run)
                .bind(minute)
                .bind(endpoint)
                .bind(side)
                .bind(instance)
                .fetch_optional(&mut **tx)
                .await?;
            let mut histogram = match stored {
                Some(row) => Histogram::from_text(&row.try_get::<String, _>("buckets")?),
                None => Histogram::default(),
            };
            histogram.merge(&delta);
            sqlx::query(&write)
                .bind(run)
                .bind(minute)
                .bind(endpoint)
                .bind(side)
                .bind(instance)
                .bind(histogram.to_text())
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Merges the groups; returns those this write created: a row whose
    /// count after the merge is this write's own count did not exist
    /// before (another writer's concurrent insert makes it larger).
    async fn merge_groups(
        &self,
        tx: &mut Tx,
        groups: &[GroupDelta],
    ) -> Result<Vec<String>, StoreError> {
        // Group rows are shared between instances: touched in one order
        // everywhere, so two writers cannot deadlock on them.
        let mut groups: Vec<&GroupDelta> = groups.iter().collect();
        groups.sort_by(|a, b| a.fingerprint.cmp(&b.fingerprint));
        let group = format!(
            "INSERT INTO mismatch_groups (fingerprint, endpoint, first_seen, last_seen, count, paths, headers, statuses, severity) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (fingerprint) DO UPDATE SET \
             first_seen = CASE WHEN excluded.first_seen < mismatch_groups.first_seen THEN excluded.first_seen ELSE mismatch_groups.first_seen END, \
             last_seen = CASE WHEN excluded.last_seen > mismatch_groups.last_seen THEN excluded.last_seen ELSE mismatch_groups.last_seen END, \
             count = mismatch_groups.count + excluded.count, \
             severity = {} \
             RETURNING count",
            most_severe_sql("mismatch_groups")
        );
        let group = self.sql(&group);
        let mut created = Vec::new();
        for g in groups {
            let json =
                |list: &[String]| serde_json::to_string(list).unwrap_or_else(|_| "[]".into());
            let row = sqlx::query(&group)
                .bind(&g.fingerprint)
                .bind(&g.endpoint)
                .bind(g.first_seen)
                .bind(g.last_seen)
                .bind(g.count)
                .bind(json(&g.paths))
                .bind(json(&g.headers))
                .bind(
                    g.statuses
                        .map_or(String::new(), |(p, c)| format!("{p}>{c}")),
                )
                .bind(g.severity)
                .fetch_one(&mut **tx)
                .await?;
            let count: i64 = row.try_get("count")?;
            if count == g.count {
                created.push(g.fingerprint.clone());
            }
        }
        Ok(created)
    }

    async fn add_lost(
        &self,
        tx: &mut Tx,
        instance: &str,
        run: &str,
        batch: &Batch,
    ) -> Result<(), StoreError> {
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
                .execute(&mut **tx)
                .await?;
        }
        Ok(())
    }

    /// Deletes everything older than `before_ms`; returns rows removed.
    pub(super) async fn delete_before(&self, before_ms: i64) -> Result<u64, StoreError> {
        let minute = before_ms.div_euclid(60_000);
        let mut removed = 0;
        let statements: [(&'static str, i64); 9] = [
            ("DELETE FROM counters WHERE minute < $1", minute),
            ("DELETE FROM group_counts WHERE minute < $1", minute),
            ("DELETE FROM latencies WHERE minute < $1", minute),
            ("DELETE FROM latency_histograms WHERE minute < $1", minute),
            ("DELETE FROM lost_records WHERE minute < $1", minute),
            ("DELETE FROM mismatches WHERE at < $1", before_ms),
            ("DELETE FROM triage_history WHERE at < $1", before_ms),
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

/// The upsert's new severity of a row of `table`: the stored and the
/// written rank merged as [`super::most_severe`] does (the smaller, 0 never
/// winning over a known one).
fn most_severe_sql(table: &str) -> String {
    format!(
        "CASE WHEN excluded.severity <> 0 AND ({table}.severity = 0 OR excluded.severity < {table}.severity) \
         THEN excluded.severity ELSE {table}.severity END"
    )
}
