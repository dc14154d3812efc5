//! The client-facing proxy: answers every request from the primary, exactly
//! and as it streams, and hands sampled ones to the shadow stage.
//!
//! The client's path never waits on shadow work: a queue slot is taken with a
//! non-blocking call, and the primary's body is copied (not buffered) as it
//! passes. In mirror mode the caller gets 202 at once instead.

mod collect;
mod inline;
pub mod tee;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;

use crate::compare::Rules;
use crate::config::{HostHeader, Mode, Settings, Target, Targets};
use crate::endpoint::EndpointCatalog;
use crate::headers;

use crate::breaker::{Admission, Breaker};
use crate::budget::BodyBudget;
use crate::outcome::{Outcome, Recorder, Sample, SampleInfo, SkipReason};
use crate::sampling::{SampleRate, Sampler};
use crate::shadow::{
    BodySource, CandidateSource, PrimarySource, ShadowJob, ShadowQueue, ShadowRequest,
};
use tee::TeeError;

/// Everything the request handlers share.
pub struct Proxy {
    settings: Settings,
    /// Comparison rules for requests no route matches.
    default_rules: Arc<Rules>,
    /// Comparison rules per route, global ones included, in route order.
    route_rules: Vec<Arc<Rules>>,
    /// Each route's backends, resolved at start.
    targets: Targets,
    /// Who serves each request: the serving weights.
    rollout: Arc<crate::rollout::Rollout>,
    /// The primary's client.
    upstream: crate::upstream::Upstream,
    sampler: Sampler,
    catalog: EndpointCatalog,
    queue: ShadowQueue,
    recorder: Arc<Recorder>,
    budget: BodyBudget,
    /// Sheds samples while the candidate keeps failing.
    breaker: Option<Arc<Breaker>>,
}

impl Proxy {
    pub fn new(
        settings: Settings,
        Routing { targets, rollout }: Routing,
        upstream: crate::upstream::Upstream,
        queue: ShadowQueue,
        recorder: Arc<Recorder>,
        budget: BodyBudget,
        breaker: Option<Arc<Breaker>>,
    ) -> Self {
        let (default_rules, route_rules) = settings.route_rules();
        Proxy {
            default_rules,
            route_rules,
            targets,
            rollout,
            sampler: Sampler::new(settings.sticky_key.clone()),
            catalog: EndpointCatalog::new(settings.max_endpoints.get()),
            settings,
            upstream,
            queue,
            recorder,
            budget,
            breaker,
        }
    }
}

/// Where requests go: each route's backends, and who serves each client.
pub struct Routing {
    pub targets: Targets,
    pub rollout: Arc<crate::rollout::Rollout>,
}

/// The proxy's router: every method and path goes to the one handler.
pub fn router(proxy: Arc<Proxy>) -> Router {
    Router::new().fallback(handle).with_state(proxy)
}

async fn handle(State(proxy): State<Arc<Proxy>>, request: Request) -> Response {
    // A forward proxy's tunnel request: no backend of a reverse proxy can answer it.
    if request.method() == Method::CONNECT {
        return (
            StatusCode::METHOD_NOT_ALLOWED,
            "shadowdiff: CONNECT is not supported: this is a reverse proxy, not a forward proxy\n",
        )
            .into_response();
    }
    match proxy.settings.mode {
        Mode::Inline => proxy.inline(request).await,
        Mode::Mirror => proxy.mirror(request).await,
        Mode::Collector => proxy.collect(request).await,
    }
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

fn target_of(parts: &http::request::Parts) -> &str {
    parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/")
}

fn bad_gateway(what: &str) -> Response {
    (StatusCode::BAD_GATEWAY, format!("shadowdiff: {what}\n")).into_response()
}

/// A sampled request that can be shadowed.
struct Admitted {
    sample: Sample,
    rules: Arc<Rules>,
    /// Its route's backends.
    target: Arc<Target>,
    /// The breaker's probe: never shed once queued.
    probe: bool,
}

impl Proxy {
    /// Decides whether to shadow a request; a sampled request that cannot be
    /// shadowed is finished here as skipped.
    fn admit(
        &self,
        parts: &http::request::Parts,
        fields: &http::HeaderMap,
        upgrade: bool,
        (index, served_by_candidate): (Option<usize>, bool),
    ) -> Option<Admitted> {
        let (method, path) = (&parts.method, parts.uri.path());
        let target = self.targets.get(index);
        let route = index.map(|i| &self.settings.routes[i]);
        let rate: SampleRate = route
            .and_then(|r| r.sample_rate)
            .unwrap_or(self.settings.sample_rate);
        if !self.sampler.decide(rate, fields, parts.uri.query()) {
            return None;
        }
        let endpoint = self.catalog.name(method, path, route.map(|r| &r.pattern));
        let sample = self.recorder.sample(SampleInfo {
            served_by_candidate,
            endpoint,
            method: method.clone(),
            target: target_of(parts).to_string(),
        });
        let mut probe = false;
        let skip = if target.candidate.is_none() {
            Some(SkipReason::NoCandidate)
        } else if upgrade {
            Some(SkipReason::Upgrade)
        } else if !is_safe(method) && !route.is_some_and(|r| r.mirror_unsafe) {
            Some(SkipReason::UnsafeMethod)
        } else if headers::content_length(fields)
            .is_some_and(|n| n > self.settings.max_body_bytes as u64)
        {
            Some(SkipReason::BodyTooLarge)
        } else if served_by_candidate {
            // A reverse shadow calls the primary, not the candidate: the
            // breaker's sheds are for calls to a failing candidate, and the
            // serving candidate's parity must stay measured.
            None
        } else {
            // Last, so that a probe is only spent on a request that can be shadowed.
            match self.breaker.as_ref().map(|b| b.admit()) {
                Some(Admission::Shed) => Some(SkipReason::CandidateUnhealthy),
                Some(Admission::Probe) => {
                    probe = true;
                    None
                }
                Some(Admission::Shadow) | None => None,
            }
        };
        match skip {
            Some(reason) => {
                sample.finish(Outcome::Skipped(reason));
                None
            }
            None => {
                let rules = match index {
                    Some(i) => self.route_rules[i].clone(),
                    None => self.default_rules.clone(),
                };
                Some(Admitted {
                    sample,
                    rules,
                    target: Arc::clone(target),
                    probe,
                })
            }
        }
    }

    async fn mirror(&self, request: Request) -> Response {
        let upgrade = headers::is_upgrade(request.headers());
        let (parts, body) = request.into_parts();
        let index = self.settings.route_for(&parts.method, parts.uri.path());
        // Refused as inline mode refuses it: no backend gets another path.
        if let Err(e) = self.targets.get(index).primary.uri(target_of(&parts)) {
            return (StatusCode::BAD_REQUEST, format!("shadowdiff: {e}\n")).into_response();
        }
        if let Some(Admitted {
            sample,
            rules,
            target,
            probe,
        }) = self.admit(&parts, &parts.headers, upgrade, (index, false))
        {
            let limited = http_body_util::Limited::new(body, self.settings.max_body_bytes);
            match limited.collect().await {
                Err(error) => {
                    let reason = if error.is::<http_body_util::LengthLimitError>() {
                        SkipReason::BodyTooLarge
                    } else {
                        SkipReason::Incomplete
                    };
                    sample.finish(Outcome::Skipped(reason));
                }
                Ok(collected) => {
                    let body = collected.to_bytes();
                    let mut claim = self.budget.claim();
                    if !claim.grow(body.len() + headers::size(&parts.headers)) {
                        sample.finish(Outcome::Skipped(SkipReason::OverBudget));
                        return StatusCode::ACCEPTED.into_response();
                    }
                    match self.queue.try_reserve() {
                        Err(reason) => sample.finish(Outcome::Dropped(reason)),
                        Ok(permit) => {
                            let client_ip = parts
                                .extensions
                                .get::<ConnectInfo<SocketAddr>>()
                                .map(|c| c.0.ip());
                            permit.send(ShadowJob {
                                sample,
                                rules,
                                probe,
                                request: ShadowRequest {
                                    method: parts.method.clone(),
                                    target: target_of(&parts).to_string(),
                                    headers: {
                                        let mut h = headers::forward(
                                            parts.headers.clone(),
                                            client_ip,
                                            false,
                                        );
                                        headers::set_host(
                                            &mut h,
                                            &HostHeader::Client,
                                            authority_of(&parts),
                                        );
                                        h
                                    },
                                    body: BodySource::Ready(body, claim),
                                },
                                primary: PrimarySource::Fetch,
                                candidate: CandidateSource::Fetch,
                                target,
                            });
                        }
                    }
                }
            }
        }
        StatusCode::ACCEPTED.into_response()
    }
}

/// The client's request body failed (a malformed chunked encoding, a body
/// shorter than declared): marked so that it is told apart from a primary failure.
#[derive(Debug, thiserror::Error)]
#[error("the request body could not be read: {0}")]
struct ClientBodyError(axum::Error);

/// Why the primary gave no response head.
enum PrimaryFailure {
    TimedOut(std::time::Duration),
    Failed(hyper_util::client::legacy::Error),
}

impl PrimaryFailure {
    /// What the job is told: the primary's failure leaves nothing to
    /// compare; a serving candidate's is the candidate's error.
    fn copy_error(&self, side: crate::rollout::Side) -> crate::shadow::CopyError {
        use crate::outcome::CandidateErrorKind;
        match (side, self) {
            (crate::rollout::Side::Primary, PrimaryFailure::TimedOut(_)) => {
                SkipReason::PrimaryTimeout.into()
            }
            (crate::rollout::Side::Primary, PrimaryFailure::Failed(_)) => {
                SkipReason::PrimaryError.into()
            }
            (crate::rollout::Side::Candidate, PrimaryFailure::TimedOut(_)) => {
                crate::shadow::CopyError::CandidateFailed(CandidateErrorKind::Timeout)
            }
            (crate::rollout::Side::Candidate, PrimaryFailure::Failed(e)) => {
                crate::shadow::CopyError::CandidateFailed(match e.is_connect() {
                    true => CandidateErrorKind::Connect,
                    false => CandidateErrorKind::Reset,
                })
            }
        }
    }

    /// Whether the backend gave no response head (could not be reached,
    /// closed or reset the connection, or did not answer in time): a safe
    /// request without a body may then go to the other one, unchanged.
    fn gave_no_head(&self) -> bool {
        match self {
            PrimaryFailure::TimedOut(_) => true,
            // The client's own broken body is the client's answer.
            PrimaryFailure::Failed(e) => {
                !std::iter::successors(Some(e as &(dyn std::error::Error + 'static)), |e| {
                    e.source()
                })
                .any(|e| e.is::<ClientBodyError>())
            }
        }
    }

    /// What the client gets: 400 for its own broken body, 504 for a primary
    /// past `primary_timeout_ms`, 502 for a primary that failed.
    fn into_response(self, target: &str) -> Response {
        match self {
            PrimaryFailure::TimedOut(limit) => {
                tracing::warn!(
                    path = path_of(target),
                    timeout_ms = limit.as_millis() as u64,
                    "the primary did not answer in time"
                );
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "shadowdiff: the primary backend did not answer within {} ms\n",
                        limit.as_millis()
                    ),
                )
                    .into_response()
            }
            PrimaryFailure::Failed(error) => {
                let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&error);
                while let Some(e) = source {
                    if let Some(body) = e.downcast_ref::<ClientBodyError>() {
                        tracing::debug!(path = path_of(target), error = %body, "bad request body");
                        return (StatusCode::BAD_REQUEST, format!("shadowdiff: {body}\n"))
                            .into_response();
                    }
                    source = e.source();
                }
                // The client's error names neither the path nor the query,
                // which may hold secrets.
                tracing::warn!(path = path_of(target), error = %error, "primary request failed");
                bad_gateway("the primary backend did not answer")
            }
        }
    }
}

/// The path alone: query strings may hold secrets, and logs are no place for them.
fn path_of(target: &str) -> &str {
    target.split_once('?').map_or(target, |(path, _)| path)
}

/// The authority the request was sent to, where HTTP/2 carries it.
fn authority_of(parts: &http::request::Parts) -> Option<&str> {
    parts.uri.authority().map(|a| a.as_str())
}

fn skip_reason(error: TeeError) -> SkipReason {
    match error {
        TeeError::TooLarge => SkipReason::BodyTooLarge,
        TeeError::OverBudget => SkipReason::OverBudget,
        TeeError::Incomplete => SkipReason::Incomplete,
    }
}

/// Answers 101 and joins the client's and the primary's upgraded connections.
fn switch_protocols(
    client: hyper::upgrade::OnUpgrade,
    primary: http::Response<hyper::body::Incoming>,
) -> Response {
    let mut head = Response::new(Body::empty());
    *head.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    *head.headers_mut() = primary.headers().clone();
    headers::strip_hop_by_hop(head.headers_mut(), true);
    tokio::spawn(async move {
        let (client, primary) = tokio::join!(client, hyper::upgrade::on(primary));
        match (client, primary) {
            (Ok(client), Ok(primary)) => {
                let (mut client, mut primary) = (TokioIo::new(client), TokioIo::new(primary));
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut primary).await {
                    tracing::debug!(error = %e, "upgraded connection ended");
                }
            }
            (Err(e), _) => tracing::debug!(error = %e, "client upgrade failed"),
            (_, Err(e)) => tracing::debug!(error = %e, "primary upgrade failed"),
        }
    });
    head
}
