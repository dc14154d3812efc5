//! The call to the second instance of the primary (`secondary`), made
//! concurrently with the candidate's, with the request the primary got:
//! what it answers is compared with the primary's only to learn what the
//! old code differs in with itself (`noise`). Only requests to the primary
//! it is an instance of are paired with it, only safe methods, and only
//! beside a primary called now. Its failure, or its slowness past a short
//! grace, costs the sample nothing but that lesson.

use http::HeaderMap;

use super::fetch::{fetch, Call};
use super::ShadowConfig;
use crate::budget::Claim;
use crate::config::BackendUrl;
use crate::exchange::RecordedResponse;

/// The secondary's response, when there is a secondary and it answered.
pub(super) async fn secondary_response(
    config: &ShadowConfig,
    (pairable, primary): (bool, &BackendUrl),
    call: &Call<'_>,
    headers: HeaderMap,
) -> Option<(RecordedResponse, Claim)> {
    if !pairable {
        return None;
    }
    let base = config.noise.as_ref()?.secondary_for(primary)?;
    fetch(config, base, call, headers, config.timeout)
        .await
        .ok()
}

/// How long the secondary may still take once the primary and the candidate
/// have answered: a slow secondary must not hold the sample's shadow slot
/// for its whole timeout.
const GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// Runs the primary's and candidate's calls (`both`) and the secondary's
/// together; once `both` is done, the secondary gets [`GRACE`] more, then
/// is given up (the sample is compared without the lesson).
pub(super) async fn beside<B: std::future::Future>(
    both: B,
    secondary: impl std::future::Future<Output = Option<(RecordedResponse, Claim)>>,
) -> (B::Output, Option<(RecordedResponse, Claim)>) {
    tokio::pin!(both, secondary);
    let mut answered = None;
    let pair = loop {
        tokio::select! {
            s = &mut secondary, if answered.is_none() => answered = Some(s),
            b = &mut both => break b,
        }
    };
    let secondary = match answered {
        Some(s) => s,
        None => tokio::time::timeout(GRACE, secondary).await.ok().flatten(),
    };
    (pair, secondary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_secondary_that_never_answers_costs_only_the_grace() {
        let started = std::time::Instant::now();
        let never = std::future::pending::<Option<(RecordedResponse, Claim)>>();
        let (pair, secondary) = beside(async { 7 }, never).await;
        assert_eq!(pair, 7);
        assert!(secondary.is_none());
        assert!(started.elapsed() < GRACE * 20, "{:?}", started.elapsed());
    }
}
