//! A mismatch exemplar as stored (already redacted), and all the SQL that
//! writes and reads one. A new field that is shown but never filtered on
//! goes into [`MismatchDetails`] (one JSON column): a change to this file
//! alone. A new column to filter on is a change here and a migration.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::{MismatchFilter, SqlStore, StoreError, EXEMPLARS_PER_GROUP_HOUR};

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

/// What a mismatch carries besides its columns, stored as one JSON object
/// in `details`. Every field is optional: rows written before a field
/// existed read it as absent, and a release that does not know a field
/// (written by a newer one) leaves it out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MismatchDetails {
    /// How long the primary took to answer, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_latency_us: Option<u64>,
    /// How long the candidate took to answer, in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_latency_us: Option<u64>,
    /// The request as the candidate received it, where a rewrite made it
    /// differ from the client's (redacted; secrets from the environment
    /// shown as the variable's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_request: Option<SentRequestRecord>,
    /// The candidate served the client (a cutover), the primary called
    /// in the background; false (and absent) when the primary served.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub served_by_candidate: bool,
}

/// A rewritten request as stored: path, query (redacted) and headers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentRequestRecord {
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
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
    pub details: MismatchDetails,
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

/// The columns a mismatch is written to, in the order [`insert`] binds them.
const COLUMNS: &str = "at, instance, endpoint, fingerprint, method, path, query, \
    request_headers, request_body, request_truncated, \
    primary_status, primary_headers, primary_body, primary_truncated, \
    candidate_status, candidate_headers, candidate_body, candidate_truncated, verdict, run, details";

/// `$1, $2, …` for every column.
fn placeholders() -> String {
    let n = COLUMNS.split(',').count();
    (1..=n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn headers_json(headers: &[(String, String)]) -> String {
    serde_json::to_string(headers).unwrap_or_else(|_| "[]".into())
}

/// Writes the exemplars of a batch within their groups' hourly cap, in the
/// transaction of the rest of the batch.
pub(super) async fn insert_all(
    store: &SqlStore,
    tx: &mut Transaction<'static, Any>,
    instance: &str,
    run: &str,
    mismatches: &[MismatchRecord],
) -> Result<(), StoreError> {
    // Quota rows are shared between instances: touched in one order
    // everywhere, so two writers cannot deadlock on them.
    let mut mismatches: Vec<&MismatchRecord> = mismatches.iter().collect();
    mismatches.sort_by(|a, b| (&a.fingerprint, a.at_ms).cmp(&(&b.fingerprint, b.at_ms)));
    let quota = store.sql(
        "INSERT INTO exemplar_quota (fingerprint, hour, count, run) VALUES ($1, $2, 1, $3) \
         ON CONFLICT (run, fingerprint, hour) DO UPDATE SET count = exemplar_quota.count + 1 RETURNING count",
    );
    let insert = format!(
        "INSERT INTO mismatches ({COLUMNS}) VALUES ({})",
        placeholders()
    );
    let insert = store.sql(&insert);
    for m in mismatches {
        let used: i64 = sqlx::query(&quota)
            .bind(&m.fingerprint)
            .bind(m.at_ms.div_euclid(3_600_000))
            .bind(run)
            .fetch_one(&mut **tx)
            .await?
            .try_get("count")?;
        if used <= EXEMPLARS_PER_GROUP_HOUR {
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
                .bind(serde_json::to_string(&m.details).unwrap_or_else(|_| "{}".into()))
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

impl SqlStore {
    pub(super) async fn read_mismatches(
        &self,
        filter: MismatchFilter<'_>,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Vec<StoredMismatch>, StoreError> {
        // Keyset pagination on the id: stable while new rows arrive.
        let sql = format!(
            "SELECT id, {COLUMNS} FROM mismatches WHERE ($1 = '' OR endpoint = $1) AND ($2 = '' OR fingerprint = $2) \
             AND id < $3 AND at >= $4 AND ($6 = 0 OR run = $7) ORDER BY id DESC LIMIT $5"
        );
        let rows = sqlx::query(&self.sql(&sql))
            .bind(filter.endpoint.unwrap_or(""))
            .bind(filter.fingerprint.unwrap_or(""))
            .bind(before.unwrap_or(i64::MAX))
            .bind(filter.since_ms.unwrap_or(i64::MIN))
            .bind(limit)
            .bind(i64::from(filter.run.is_some()))
            .bind(filter.run.unwrap_or(""))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    pub(super) async fn read_mismatch(
        &self,
        id: i64,
    ) -> Result<Option<StoredMismatch>, StoreError> {
        let sql = format!("SELECT id, {COLUMNS} FROM mismatches WHERE id = $1");
        let row = sqlx::query(&self.sql(&sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }
}

fn from_row(r: &AnyRow) -> Result<StoredMismatch, StoreError> {
    let malformed = |e: serde_json::Error| StoreError::Malformed(e.to_string());
    // Each side is stored as `<side>_status` (none for the request),
    // `<side>_headers` (JSON), `<side>_body` and `<side>_truncated`; flags
    // as 0 or 1, the one boolean both databases agree on.
    let message = |side: &str| -> Result<StoredMessage, StoreError> {
        let status: i64 = match side {
            "request" => 0,
            _ => r.try_get(&*format!("{side}_status"))?,
        };
        let headers: String = r.try_get(&*format!("{side}_headers"))?;
        let truncated: i64 = r.try_get(&*format!("{side}_truncated"))?;
        Ok(StoredMessage {
            status: u16::try_from(status).unwrap_or(0),
            headers: serde_json::from_str(&headers).map_err(malformed)?,
            body: StoredBody {
                bytes: r.try_get(&*format!("{side}_body"))?,
                truncated: truncated != 0,
            },
        })
    };
    let (verdict, details): (String, String) = (r.try_get("verdict")?, r.try_get("details")?);
    Ok(StoredMismatch {
        id: r.try_get("id")?,
        instance: r.try_get("instance")?,
        run: r.try_get("run")?,
        record: MismatchRecord {
            at_ms: r.try_get("at")?,
            endpoint: r.try_get("endpoint")?,
            fingerprint: r.try_get("fingerprint")?,
            method: r.try_get("method")?,
            path: r.try_get("path")?,
            query: r.try_get("query")?,
            request: message("request")?,
            primary: message("primary")?,
            candidate: message("candidate")?,
            verdict: serde_json::from_str(&verdict).map_err(malformed)?,
            details: serde_json::from_str(&details).map_err(malformed)?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::MismatchDetails;

    #[test]
    fn details_read_across_releases() {
        // A row stored before any detail existed.
        let old: MismatchDetails = serde_json::from_str("{}").unwrap();
        assert_eq!(old, MismatchDetails::default());
        // A row a newer release wrote, with a field this one does not know.
        let newer: MismatchDetails =
            serde_json::from_str(r#"{"primary_latency_us":5,"retries":2}"#).unwrap();
        assert_eq!(newer.primary_latency_us, Some(5));
        assert_eq!(serde_json::to_string(&old).unwrap(), "{}");
    }
}
