//! Reading: counts, latency histograms and losses over a window, the counts
//! of groups triaged as expected, each group's count and class over a window,
//! and the groups themselves. Columns are read by name; computed ones are
//! named in the statement.

use sqlx::any::AnyRow;
use sqlx::Row;

use std::collections::BTreeMap;

use super::latency::{legacy_bucket, Histogram};
use super::{
    most_severe, EndpointCounts, EndpointLatency, Group, GroupInWindow, SqlStore, StoreError,
    Window,
};

/// Mismatches per group and minute over a window (`$1` and `$2` minutes,
/// `$3` the run), with their severity rank: from `group_counts`, and from
/// `counters` rows `group/<fingerprint>`, where an instance of an earlier
/// release still running during a rolling upgrade counts them (of no known
/// class).
const GROUP_COUNTS_IN_WINDOW: &str = "\
    SELECT endpoint, fingerprint, count, severity FROM group_counts \
      WHERE run = $3 AND minute >= $1 AND minute < $2 \
    UNION ALL \
    SELECT endpoint, substr(outcome, 7) AS fingerprint, count, 0 AS severity FROM counters \
      WHERE run = $3 AND minute >= $1 AND minute < $2 AND substr(outcome, 1, 6) = 'group/'";

impl SqlStore {
    pub(super) async fn read_counts(
        &self,
        window: Window,
        run: &str,
        endpoint: Option<&str>,
    ) -> Result<Vec<EndpointCounts>, StoreError> {
        let sql = self.sql(
            "SELECT endpoint, outcome, CAST(SUM(count) AS BIGINT) AS count FROM counters \
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
            let endpoint: String = row.try_get("endpoint")?;
            let (outcome, count): (String, i64) = (row.try_get("outcome")?, row.try_get("count")?);
            if out.last().is_none_or(|e| e.endpoint != endpoint) {
                out.push(EndpointCounts {
                    endpoint,
                    ..EndpointCounts::default()
                });
            }
            if let Some(last) = out.last_mut() {
                last.outcomes.insert(outcome, count);
            }
        }
        Ok(out)
    }

    /// Both tables: `latency_histograms` (a row of buckets per instance
    /// and minute), and `latencies`, where releases before migration 0004
    /// wrote coarser buckets a row each (and an instance of one still does
    /// during a rolling upgrade), converted at their midpoints. Merged
    /// here, across instances and minutes.
    pub(super) async fn read_latencies(
        &self,
        window: Window,
        run: &str,
        endpoint: Option<&str>,
    ) -> Result<Vec<EndpointLatency>, StoreError> {
        let fine = self.sql(
            "SELECT endpoint, side, buckets FROM latency_histograms \
             WHERE run = $4 AND minute >= $1 AND minute < $2 AND ($3 = '' OR endpoint = $3)",
        );
        let coarse = self.sql(
            "SELECT endpoint, side, bucket, CAST(SUM(count) AS BIGINT) AS count FROM latencies \
             WHERE run = $4 AND minute >= $1 AND minute < $2 AND ($3 = '' OR endpoint = $3) \
             GROUP BY endpoint, side, bucket",
        );
        let mut by_endpoint: BTreeMap<String, EndpointLatency> = BTreeMap::new();
        let mut add = |endpoint: String, side: &str, histogram: &Histogram| {
            let e = by_endpoint
                .entry(endpoint.clone())
                .or_insert_with(|| EndpointLatency {
                    endpoint,
                    ..EndpointLatency::default()
                });
            match side {
                "primary" => e.primary.merge(histogram),
                "candidate" => e.candidate.merge(histogram),
                // A side another release writes is not ours to read.
                _ => {}
            }
        };
        for (is_fine, sql) in [(true, &fine), (false, &coarse)] {
            let rows = sqlx::query(sql)
                .bind(window.first_minute())
                .bind(window.end_minute())
                .bind(endpoint.unwrap_or(""))
                .bind(run)
                .fetch_all(&self.pool)
                .await?;
            for row in rows {
                let (name, side): (String, String) =
                    (row.try_get("endpoint")?, row.try_get("side")?);
                let histogram = if is_fine {
                    Histogram::from_text(&row.try_get::<String, _>("buckets")?)
                } else {
                    let (bucket, count): (i64, i64) =
                        (row.try_get("bucket")?, row.try_get("count")?);
                    Histogram::from_rows([(legacy_bucket(bucket), count)])
                };
                add(name, &side, &histogram);
            }
        }
        Ok(by_endpoint.into_values().collect())
    }

    pub(super) async fn read_expected(
        &self,
        window: Window,
        run: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let query = format!(
            "SELECT c.endpoint AS endpoint, CAST(SUM(c.count) AS BIGINT) AS count \
             FROM ({GROUP_COUNTS_IN_WINDOW}) c JOIN mismatch_groups g ON c.fingerprint = g.fingerprint \
             WHERE g.status = 'expected' GROUP BY c.endpoint ORDER BY c.endpoint"
        );
        self.group_counts_by(&query, "endpoint", window, run).await
    }

    pub(super) async fn read_group_counts(
        &self,
        window: Window,
        run: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let query = format!(
            "SELECT c.fingerprint AS fingerprint, CAST(SUM(c.count) AS BIGINT) AS count \
             FROM ({GROUP_COUNTS_IN_WINDOW}) c GROUP BY c.fingerprint ORDER BY c.fingerprint"
        );
        self.group_counts_by(&query, "fingerprint", window, run)
            .await
    }

    /// Each group's count over the window, its severity (the most severe
    /// of the group's and its counts'), and whether it is triaged expected.
    pub(super) async fn read_groups_in_window(
        &self,
        window: Window,
        run: &str,
    ) -> Result<Vec<GroupInWindow>, StoreError> {
        let sql = format!(
            "SELECT c.endpoint AS endpoint, c.fingerprint AS fingerprint, \
             CAST(SUM(c.count) AS BIGINT) AS count, \
             CAST(COALESCE(MIN(NULLIF(c.severity, 0)), 0) AS BIGINT) AS counted, \
             CAST(COALESCE(MAX(g.severity), 0) AS BIGINT) AS grouped, \
             CAST(MAX(CASE WHEN g.status = 'expected' THEN 1 ELSE 0 END) AS BIGINT) AS expected \
             FROM ({GROUP_COUNTS_IN_WINDOW}) c LEFT JOIN mismatch_groups g ON c.fingerprint = g.fingerprint \
             GROUP BY c.endpoint, c.fingerprint ORDER BY c.endpoint, c.fingerprint"
        );
        let sql = self.sql(&sql);
        let rows = sqlx::query(&sql)
            .bind(window.first_minute())
            .bind(window.end_minute())
            .bind(run)
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let (counted, grouped): (i64, i64) = (r.try_get("counted")?, r.try_get("grouped")?);
                Ok(GroupInWindow {
                    endpoint: r.try_get("endpoint")?,
                    fingerprint: r.try_get("fingerprint")?,
                    count: r.try_get("count")?,
                    severity: most_severe(counted, grouped),
                    expected: r.try_get::<i64, _>("expected")? != 0,
                })
            })
            .collect()
    }

    /// Runs a query over [`GROUP_COUNTS_IN_WINDOW`] for `window` and `run`;
    /// its rows are `key` and `count`.
    async fn group_counts_by(
        &self,
        query: &str,
        key: &str,
        window: Window,
        run: &str,
    ) -> Result<Vec<(String, i64)>, StoreError> {
        let sql = self.sql(query);
        let rows = sqlx::query(&sql)
            .bind(window.first_minute())
            .bind(window.end_minute())
            .bind(run)
            .fetch_all(&self.pool)
            .await?;
        counted(&rows, key)
    }

    pub(super) async fn read_groups(
        &self,
        endpoint: Option<&str>,
        status: Option<&str>,
    ) -> Result<Vec<Group>, StoreError> {
        let sql = self.sql(
            "SELECT fingerprint, endpoint, first_seen, last_seen, count, paths, status, note, headers, statuses, severity FROM mismatch_groups \
             WHERE ($1 = '' OR endpoint = $1) AND ($2 = '' OR status = $2) \
             ORDER BY CASE WHEN severity = 0 THEN 1 ELSE 0 END, severity, count DESC, fingerprint",
        );
        let rows = sqlx::query(&sql)
            .bind(endpoint.unwrap_or(""))
            .bind(status.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(group_from_row).collect()
    }

    pub(super) async fn read_lost(&self, window: Window) -> Result<i64, StoreError> {
        let sql = self.sql(
            "SELECT CAST(COALESCE(SUM(count), 0) AS BIGINT) AS count FROM lost_records \
             WHERE run = '' AND minute >= $1 AND minute < $2",
        );
        let row = sqlx::query(&sql)
            .bind(window.first_minute())
            .bind(window.end_minute())
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("count")?)
    }
}

fn group_from_row(r: &AnyRow) -> Result<Group, StoreError> {
    let json = |column: &str| -> Result<Vec<String>, StoreError> {
        let text: String = r.try_get(column)?;
        serde_json::from_str(&text).map_err(|e| StoreError::Malformed(e.to_string()))
    };
    // The status pair is stored as "200>500", or '' when the statuses agree.
    let statuses: String = r.try_get("statuses")?;
    Ok(Group {
        fingerprint: r.try_get("fingerprint")?,
        endpoint: r.try_get("endpoint")?,
        first_seen: r.try_get("first_seen")?,
        last_seen: r.try_get("last_seen")?,
        count: r.try_get("count")?,
        paths: json("paths")?,
        headers: json("headers")?,
        statuses: statuses
            .split_once('>')
            .and_then(|(p, c)| Some((p.parse().ok()?, c.parse().ok()?))),
        status: r.try_get("status")?,
        note: r.try_get("note")?,
        severity: r.try_get("severity")?,
    })
}

/// Rows of a key column and a count, such as (bucket, count) or (endpoint, count).
fn counted<K>(rows: &[AnyRow], key: &str) -> Result<Vec<(K, i64)>, StoreError>
where
    K: for<'r> sqlx::Decode<'r, sqlx::Any> + sqlx::Type<sqlx::Any>,
{
    rows.iter()
        .map(|r| Ok((r.try_get(key)?, r.try_get("count")?)))
        .collect()
}
