//! Where each part of a job comes from: the request body (read already, or
//! copied as it streams), the primary's response (the client's exchange
//! copied, a call of the stage's own, or given by a collector), and the
//! candidate's (a shadow call, or the copy of the response it served the
//! client in a cutover).

use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use tokio::sync::oneshot;

use super::fetch::{fetch, Call, FetchError};
use super::ShadowConfig;
use crate::breaker::Health;
use crate::budget::{Claim, Copied};
use crate::config::CandidateTarget;
use crate::exchange::{concat, RecordedResponse};
use crate::outcome::{CandidateErrorKind, Outcome, SkipReason};

/// Where the request body comes from.
pub enum BodySource {
    /// Read already, holding its share of the memory budget.
    Ready(Bytes, Claim),
    /// Still streaming to the primary; the copy arrives when it is whole.
    Pending(oneshot::Receiver<Result<Copied, SkipReason>>),
}

/// A response as copied from the client's exchange: the primary's, or the
/// candidate's where it served the client.
pub struct ResponseCopy {
    pub status: http::StatusCode,
    pub headers: HeaderMap,
    pub body: Copied,
    pub latency: Duration,
}

/// Where the primary's response comes from.
pub enum PrimarySource {
    /// Inline mode: the client's own exchange, copied as it streams.
    Pending(oneshot::Receiver<Result<ResponseCopy, CopyError>>),
    /// Mirror mode: the shadow stage calls the primary itself.
    Fetch,
    /// Collector mode and `replay --recorded-primary`: the response the
    /// primary already gave, captured elsewhere; the primary is not called.
    Given(RecordedResponse, Claim),
}

/// Why a response the client received has no copy to compare.
#[derive(Debug)]
pub enum CopyError {
    /// It cannot be compared (too large, an event stream, incomplete…).
    Skip(SkipReason),
    /// The candidate serving the client gave no response.
    CandidateFailed(CandidateErrorKind),
}

impl From<SkipReason> for CopyError {
    fn from(reason: SkipReason) -> Self {
        CopyError::Skip(reason)
    }
}

/// Where the candidate's response comes from.
pub enum CandidateSource {
    /// A shadow call of the stage's own, to the route's candidate.
    Fetch,
    /// The candidate served the client (its route's weight chose it): its
    /// response as copied; the primary is the one called in the background.
    Served(oneshot::Receiver<Result<ResponseCopy, CopyError>>),
}

/// The whole request body, or why there is none. A body that broke off
/// because the primary failed is skipped for the primary's reason.
pub(super) async fn request_body(
    body: BodySource,
    primary: &mut PrimarySource,
) -> Result<(Bytes, Claim), SkipReason> {
    match body {
        BodySource::Ready(body, claim) => Ok((body, claim)),
        BodySource::Pending(rx) => match rx.await {
            Ok(Ok(copy)) => Ok((concat(copy.chunks), copy.claim)),
            Ok(Err(reason)) => Err(reason),
            Err(_) => match primary {
                PrimarySource::Pending(copy) => match copy.try_recv() {
                    Ok(Err(CopyError::Skip(reason))) => Err(reason),
                    _ => Err(SkipReason::Incomplete),
                },
                PrimarySource::Fetch | PrimarySource::Given(..) => Err(SkipReason::Incomplete),
            },
        },
    }
}

/// The primary's response: the client's own exchange copied (inline), or a
/// call of our own (mirror mode).
pub(super) async fn primary_response(
    config: &ShadowConfig,
    primary: PrimarySource,
    base: &crate::config::BackendUrl,
    call: &Call<'_>,
    headers: HeaderMap,
) -> Result<(RecordedResponse, Claim), SkipReason> {
    match primary {
        PrimarySource::Given(response, claim) => Ok((response, claim)),
        // The primary's own exchange may stream for long; past the shadow
        // timeout it holds a slot for nothing.
        PrimarySource::Pending(copy) => match copied(config, copy).await {
            Ok(response) => Ok(response),
            Err(CopyError::Skip(reason)) => Err(reason),
            // Only a served candidate's copy says so.
            Err(CopyError::CandidateFailed(_)) => Err(SkipReason::Incomplete),
        },
        PrimarySource::Fetch => fetch(config, base, call, headers, config.timeout)
            .await
            .map_err(|e| match e {
                FetchError::TooLarge => SkipReason::BodyTooLarge,
                FetchError::OverBudget => SkipReason::OverBudget,
                FetchError::Failed(CandidateErrorKind::Timeout) => SkipReason::PrimaryTimeout,
                FetchError::Failed(_) => SkipReason::PrimaryError,
            }),
    }
}

/// A response copied from the client's exchange, within the shadow
/// timeout: the client's exchange may stream for long, and past the timeout
/// it holds a slot for nothing.
async fn copied(
    config: &ShadowConfig,
    copy: oneshot::Receiver<Result<ResponseCopy, CopyError>>,
) -> Result<(RecordedResponse, Claim), CopyError> {
    match tokio::time::timeout(config.timeout, copy).await {
        Ok(Ok(Ok(copy))) => Ok((
            RecordedResponse {
                status: copy.status,
                headers: copy.headers,
                body: concat(copy.body.chunks),
                latency: copy.latency,
            },
            copy.body.claim,
        )),
        Ok(Ok(Err(e))) => Err(e),
        Ok(Err(_)) => Err(SkipReason::Incomplete.into()),
        Err(_) => Err(SkipReason::PrimaryTimeout.into()),
    }
}

/// The candidate's response: a call of the stage's own (its failure told to
/// the breaker), or the copy of the one it served the client.
pub(super) async fn candidate_response(
    config: &ShadowConfig,
    source: CandidateSource,
    call: (&CandidateTarget, &Call<'_>, HeaderMap),
) -> Result<(RecordedResponse, Claim), Outcome> {
    let (target, call, headers) = call;
    match source {
        CandidateSource::Fetch => {
            let fetched = fetch(config, &target.url, call, headers, target.timeout).await;
            judge_candidate(config, fetched)
        }
        CandidateSource::Served(copy) => copied(config, copy).await.map_err(|e| match e {
            CopyError::Skip(reason) => Outcome::Skipped(reason),
            CopyError::CandidateFailed(kind) => Outcome::CandidateError(kind),
        }),
    }
}

/// Tells the breaker what the candidate's call found, and turns a failure
/// into its outcome.
fn judge_candidate(
    config: &ShadowConfig,
    candidate: Result<(RecordedResponse, Claim), FetchError>,
) -> Result<(RecordedResponse, Claim), Outcome> {
    let health = match &candidate {
        Ok(_) => Some(Health::Usable),
        Err(FetchError::TooLarge | FetchError::Failed(_)) => Some(Health::Failed),
        // Our own memory ran short: not the candidate's doing.
        Err(FetchError::OverBudget) => None,
    };
    if let (Some(breaker), Some(health)) = (&config.breaker, health) {
        breaker.report(health);
    }
    candidate.map_err(|e| match e {
        FetchError::TooLarge => Outcome::Skipped(SkipReason::BodyTooLarge),
        FetchError::OverBudget => Outcome::Skipped(SkipReason::OverBudget),
        FetchError::Failed(kind) => Outcome::CandidateError(kind),
    })
}
