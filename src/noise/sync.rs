//! Keeping learned noise in the store: every interval, what this instance
//! counted since the last sync is added to its rows (put back to try again
//! when the store fails), and every instance's sum is read back, so that
//! instances on one database learn together and a restart keeps what was
//! learned.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{EndpointCounts, Noise, PathCounts, Volatility};
use crate::store::{DatabaseUrl, NoiseEndpointRow, NoisePathRow, NoiseRows, SqlStore};

/// Syncs `noise` with the store at `url` every `every` until `stop`, and
/// once more then.
pub async fn sync_task(
    noise: Arc<Noise>,
    url: DatabaseUrl,
    instance: String,
    every: Duration,
    stop: CancellationToken,
) {
    let mut store: Option<SqlStore> = None;
    loop {
        let stopping = tokio::select! {
            () = stop.cancelled() => true,
            () = tokio::time::sleep(every) => false,
        };
        if store.is_none() {
            // The writer creates and migrates the database; until it has,
            // there is nothing to sync with.
            store = SqlStore::open_existing(&url).await.ok();
        }
        if let Some(s) = &store {
            if let Err(error) = once(&noise, s, &instance).await {
                tracing::warn!(error = %error, "learned noise not synced with the store; trying again");
                store = None;
            }
        }
        if stopping {
            return;
        }
    }
}

/// Adds what was counted here, then reads every instance's sum.
async fn once(
    noise: &Noise,
    store: &SqlStore,
    instance: &str,
) -> Result<(), crate::store::StoreError> {
    let local = noise.local_snapshot();
    if !local.is_empty() {
        store.add_noise(instance, &rows_of(&local)).await?;
    }
    // Stored but not read back (the store failed between): the totals
    // would miss them until the next read, so they leave the local counts
    // only with a successful read.
    match store.noise(None).await {
        Ok(read) => {
            noise.set_stored(counts_of(&read), &local);
            Ok(())
        }
        Err(error) => {
            noise.set_stored_failed(&local);
            Err(error)
        }
    }
}

fn rows_of(counts: &HashMap<String, EndpointCounts>) -> NoiseRows {
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let mut rows = NoiseRows::default();
    for (endpoint, c) in counts {
        rows.endpoints.push(NoiseEndpointRow {
            endpoint: endpoint.clone(),
            compared: as_i64(c.compared),
            paired: as_i64(c.paired),
        });
        for (path, p) in &c.paths {
            rows.paths.push(NoisePathRow {
                endpoint: endpoint.clone(),
                path: path.clone(),
                noise: as_i64(p.noise),
                raw_paired: as_i64(p.raw_paired),
                raw: as_i64(p.raw),
                looks_uuid: as_i64(p.volatile.uuid),
                looks_timestamp: as_i64(p.volatile.timestamp),
                looks_token: as_i64(p.volatile.token),
                looks_counter: as_i64(p.volatile.counter),
            });
        }
    }
    rows
}

/// The counts the store's rows hold, per endpoint.
pub fn counts_of(rows: &NoiseRows) -> HashMap<String, EndpointCounts> {
    let as_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
    let mut out: HashMap<String, EndpointCounts> = HashMap::new();
    for e in &rows.endpoints {
        let c = out.entry(e.endpoint.clone()).or_default();
        c.compared = as_u64(e.compared);
        c.paired = as_u64(e.paired);
    }
    for p in &rows.paths {
        let c = out.entry(p.endpoint.clone()).or_default();
        c.paths.insert(
            p.path.clone(),
            PathCounts {
                noise: as_u64(p.noise),
                raw_paired: as_u64(p.raw_paired),
                raw: as_u64(p.raw),
                volatile: Volatility {
                    uuid: as_u64(p.looks_uuid),
                    timestamp: as_u64(p.looks_timestamp),
                    token: as_u64(p.looks_token),
                    counter: as_u64(p.looks_counter),
                },
            },
        );
    }
    out
}
