//! What a gate reads from a store: each selected endpoint's outcome counts,
//! expected mismatches, mismatches by severity class and latency histograms
//! over the window, and whether the store's own health lets those counts be
//! decided on at all.

use std::collections::HashMap;

use super::{ClassCounts, Counts, Criteria};
use crate::store::{EndpointLatency, Histogram, Store, StoreError, Window};

/// Which backend a latency histogram measures. The store keeps it as text
/// ([`Side::as_str`]) in its `side` column; callers name it by this type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Side {
    Primary,
    Candidate,
}

impl Side {
    /// As the store writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Primary => "primary",
            Side::Candidate => "candidate",
        }
    }
}

/// Why the store cannot be decided on, if it cannot: a writer whose writes
/// fail now (its counts wait in memory, so the stored ones are short), or
/// records this process lost to a failure in the window. Either makes the
/// gate an operational error rather than a verdict. Exemplars left out by
/// their bounds in a mismatch storm (`lost_records`) do not: the counts the
/// gate decides on are whole.
pub fn store_problem(
    window: Window,
    health: Option<&crate::writer::health::HealthSnapshot>,
) -> Option<String> {
    use crate::time::format_millis;
    let health = health?;
    if let (Some(since), Some(class)) = (health.failing_since_ms, health.last_error) {
        return Some(format!(
            "the store is unhealthy: its writes have failed since {} ({}), so the stored counts are incomplete; see `store` in /api/v1/summary",
            format_millis(since),
            class.as_str()
        ));
    }
    let lost_in_window = health
        .last_failure_loss_ms
        .is_some_and(|at| at >= window.since_ms && at < window.until_ms);
    lost_in_window.then(|| {
        "the store is unhealthy: records were lost to failed writes in the window; see `store` in /api/v1/summary".to_string()
    })
}

/// One endpoint's stored numbers over the window.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EndpointData {
    pub endpoint: String,
    /// Its counts, by key, read once from the store's rows.
    pub outcomes: Counts,
    /// Mismatches in groups triaged as expected (read only when excluded).
    pub expected: i64,
    /// Latency histograms, for the latency check and the cost.
    pub primary_latency: Histogram,
    pub candidate_latency: Histogram,
    /// Mismatches by their group's severity class, groups triaged
    /// expected left out.
    pub classes: ClassCounts,
}

/// Reads what [`decide`] needs for the endpoints the criteria select.
pub async fn gather(
    store: &dyn Store,
    window: Window,
    run: &str,
    criteria: &Criteria,
) -> Result<Vec<EndpointData>, StoreError> {
    let expected: HashMap<String, i64> = if criteria.exclude_expected {
        store.expected(window, run).await?.into_iter().collect()
    } else {
        HashMap::new()
    };
    let mut classes: HashMap<String, ClassCounts> = HashMap::new();
    for g in store.groups_in_window(window, run).await? {
        if !g.expected {
            classes
                .entry(g.endpoint)
                .or_default()
                .add(g.severity, g.count);
        }
    }
    let mut latencies: HashMap<String, EndpointLatency> = store
        .latencies(window, run, None)
        .await?
        .into_iter()
        .map(|l| (l.endpoint.clone(), l))
        .collect();
    let mut out = Vec::new();
    for counts in store.counts(window, run, None).await? {
        if !criteria.selects(&counts.endpoint) {
            continue;
        }
        let latency = latencies.remove(&counts.endpoint).unwrap_or_default();
        out.push(EndpointData {
            expected: expected.get(&counts.endpoint).copied().unwrap_or(0),
            classes: classes.remove(&counts.endpoint).unwrap_or_default(),
            endpoint: counts.endpoint,
            outcomes: Counts::from_stored(counts.outcomes),
            primary_latency: latency.primary,
            candidate_latency: latency.candidate,
        });
    }
    Ok(out)
}
