//! The watched gate (`notify_gate`): decided every `notify_gate_every_ms`
//! over its window, from the store, as `/api/v1/gate` decides; a verdict
//! other than the last one (the first one included) is notified. A store
//! that cannot be read, or whose writes fail, decides nothing: the last
//! verdict stands until one can be reached.

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Event, GateChange, Notifier};
use crate::config::GateWatch;
use crate::gate::{decide, gather, store_problem, GateVerdict};
use crate::store::{DatabaseUrl, SqlStore, Window};
use crate::writer::health::StoreHealth;

/// Decides the gate every `every` until `stop`, sending each change.
pub async fn watch_gate(
    gate: GateWatch,
    every: Duration,
    database: DatabaseUrl,
    health: Option<StoreHealth>,
    notifier: Notifier,
    stop: CancellationToken,
) {
    let mut store: Option<SqlStore> = None;
    let mut last: Option<GateVerdict> = None;
    let mut ticks = tokio::time::interval(every);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = ticks.tick() => {}
        }
        if store.is_none() {
            // Read-only, like `gate --database-url`: the writer creates it.
            store = SqlStore::open_existing(&database).await.ok();
        }
        let Some(s) = &store else { continue };
        let until_ms = crate::time::now_ms();
        let window = Window {
            since_ms: until_ms - i64::try_from(gate.window.as_millis()).unwrap_or(i64::MAX / 2),
            until_ms,
        };
        if store_problem(window, health.as_ref().map(|h| h.snapshot()).as_ref()).is_some() {
            continue;
        }
        let data = match gather(s, window, "", &gate.criteria).await {
            Ok(data) => data,
            Err(e) => {
                tracing::debug!(error = %e, "the watched gate could not read the store");
                continue;
            }
        };
        let report = decide(&gate.criteria, window, None, &data);
        if last != Some(report.verdict) {
            tracing::info!(
                gate = %gate.text,
                from = last.map_or("none", |v| v.as_str()),
                to = report.verdict.as_str(),
                reason = %report.reason,
                "the watched gate's verdict changed"
            );
            notifier.send(Event::GateChanged(GateChange {
                gate: gate.text.clone(),
                from: last,
                to: report.verdict,
                reason: report.reason,
                since_ms: window.since_ms,
                until_ms: window.until_ms,
            }));
            last = Some(report.verdict);
        }
    }
}
