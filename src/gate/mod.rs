//! The rollout gate: decides from stored outcomes whether the candidate may
//! take the next traffic step. Parity is matched / (matched + mismatched +
//! candidate errors); a scope passes only when the Wilson lower bound of its
//! parity reaches the minimum, fails when the upper bound stays below it, and
//! is inconclusive in between, so twelve lucky requests never pass.
//!
//! The decision itself ([`decide`]) is pure; [`gather`] reads what it needs
//! through the `Store` trait, and [`remote`] asks a running report API. The
//! CLI and `/api/v1/gate` both end in [`decide`], so they cannot disagree.

mod classes;
mod counts;
mod criteria;
mod decide;
mod gather;
mod latency;
pub mod remote;
pub mod render;
pub mod report;
mod scope;
mod stats;
mod window;

pub use classes::ClassCounts;
pub use counts::{CountKey, Counts};
pub use criteria::{
    parse_flag, Confidence, Criteria, CriteriaError, EndpointGlob, FailOn, Limit, MinParity,
    CRITERIA_PARAMETERS,
};
pub use decide::{decide, TOTAL};
pub use gather::{gather, store_problem, EndpointData, Side};
pub use latency::{cost, LatencyLimits, Percentile};
pub use report::{
    GateByteParity, GateCost, GateCriteria, GateErrors, GateLatency, GateLatencyPercentile,
    GateReport, GateScope, GateSeverity, GateVerdict, SideCost, WindowView, REPORT_VERSION,
};
pub use scope::error_rates;
pub use stats::{comparisons_to_decide, normal_quantile, wilson_interval};
pub use window::{window, TimeBound, WindowError, DEFAULT_WINDOW_MS};

use crate::store::StoreError;

/// Where a gate reads from.
pub enum Source<'a> {
    /// A running report API: base URL and token.
    Api {
        url: &'a str,
        token: Option<&'a str>,
    },
    /// The database itself.
    Database(&'a crate::store::DatabaseUrl),
}

/// Why a gate could not decide at all (exit 2, never a verdict).
#[derive(Debug, thiserror::Error)]
pub enum GateError {
    /// The report API gave no decision.
    #[error(transparent)]
    Remote(#[from] remote::RemoteError),
    /// The database could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The window is empty or out of range.
    #[error("{0}")]
    Window(#[from] WindowError),
}

/// Decides from a report API or a database.
pub async fn evaluate(
    source: Source<'_>,
    criteria: &Criteria,
    since: Option<&TimeBound>,
    until: Option<&TimeBound>,
    run: Option<&str>,
) -> Result<GateReport, GateError> {
    match source {
        Source::Api { url, token } => Ok(remote::fetch(
            url,
            token,
            criteria,
            since.map(TimeBound::as_str),
            until.map(TimeBound::as_str),
            run,
        )
        .await?),
        Source::Database(url) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as i64);
            let window = window(since, until, run, now)?;
            // Read only: a gate never migrates or creates a database.
            let store = crate::store::SqlStore::open_existing(url).await?;
            let data = gather(&store, window, run.unwrap_or(""), criteria).await?;
            Ok(decide(criteria, window, run, &data))
        }
    }
}
