//! Sustained mismatch writes per second to a store, as the writer does them:
//! batches of mismatch records (each with 2 KB bodies, its own group, so no
//! exemplar cap applies) plus their counters, one transaction per batch.
//! Usage: `store_write_bench DATABASE_URL [SECONDS] [BATCH]`.

use std::time::{Duration, Instant};

use shadowdiff::store::{
    Batch, CounterDelta, GroupDelta, MismatchRecord, SqlStore, Store, StoredBody, StoredMessage,
};

fn record(n: u64, at_ms: i64) -> MismatchRecord {
    let body = |total: u64| StoredBody {
        bytes: format!(
            "{{\"id\":{n},\"total\":{total},\"items\":[{}]}}",
            "{\"sku\":\"abc-123\",\"qty\":1},"
                .repeat(60)
                .trim_end_matches(',')
        )
        .into_bytes(),
        truncated: false,
    };
    let message = |status, total| StoredMessage {
        status,
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-request-id".into(), format!("r-{n}")),
        ],
        body: body(total),
    };
    MismatchRecord {
        at_ms,
        endpoint: "GET /api/orders/{id}".into(),
        fingerprint: format!("{n:016x}"),
        method: "GET".into(),
        path: format!("/api/orders/{n}"),
        query: "expand=items".into(),
        request: StoredMessage {
            status: 0,
            headers: vec![("accept".into(), "application/json".into())],
            body: StoredBody {
                bytes: vec![],
                truncated: false,
            },
        },
        primary: message(200, 30),
        candidate: message(200, 3),
        verdict: serde_json::json!({"patch": [{"op": "replace", "path": "/total", "value": 3}], "paths": ["/total"]}),
        details: shadowdiff::store::MismatchDetails::default(),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: store_write_bench DATABASE_URL [SECONDS] [BATCH]")?
        .parse()?;
    let seconds: u64 = args.next().map_or(Ok(10), |s| s.parse())?;
    let batch_size: u64 = args.next().map_or(Ok(100), |s| s.parse())?;
    let store = SqlStore::connect(&url).await?;
    store.migrate().await?;
    let start = Instant::now();
    let mut written = 0u64;
    let mut latencies = Vec::new();
    while start.elapsed() < Duration::from_secs(seconds) {
        let now = start.elapsed().as_millis() as i64 + 1_767_225_600_000;
        let records: Vec<MismatchRecord> = (written..written + batch_size)
            .map(|n| record(n, now))
            .collect();
        let batch = Batch {
            counters: vec![CounterDelta {
                minute: now / 60_000,
                endpoint: "GET /api/orders/{id}".into(),
                outcome: "mismatched".into(),
                count: batch_size as i64,
            }],
            groups: records
                .iter()
                .map(|r| GroupDelta {
                    fingerprint: r.fingerprint.clone(),
                    endpoint: r.endpoint.clone(),
                    first_seen: now,
                    last_seen: now,
                    count: 1,
                    paths: vec!["/total".into()],
                    ..GroupDelta::default()
                })
                .collect(),
            mismatches: records,
            ..Batch::default()
        };
        let t = Instant::now();
        store.write("bench", "", &batch).await?;
        latencies.push(t.elapsed());
        written += batch_size;
    }
    let elapsed = start.elapsed().as_secs_f64();
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "{url}: {written} mismatch records in {elapsed:.1} s = {:.0} records/s; batch of {batch_size}: p50 {:?}, p99 {:?}",
        written as f64 / elapsed,
        p(0.5),
        p(0.99)
    );
    Ok(())
}
