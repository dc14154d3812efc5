//! Inline mode, the client's path: the request goes to the primary and its
//! response back to the client as they stream, while a sampled request's
//! bodies are copied by tees for the shadow stage. Nothing here waits on
//! shadow work: the queue slot is taken without waiting, and every phase
//! that could not shadow finishes the sample with its reason instead.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderMap, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::sync::{mpsc, oneshot};

use super::tee::Tee;
use super::{
    authority_of, is_safe, skip_reason, switch_protocols, target_of, Admitted, ClientBodyError,
    PrimaryFailure, Proxy,
};
use crate::budget::Claim;
use crate::config::HostHeader;
use crate::config::{CandidateTarget, Target};
use crate::headers;
use crate::outcome::{Outcome, SkipReason};
use crate::rollout::Side;
use crate::shadow::{
    BodySource, CandidateSource, CopyError, PrimarySource, ResponseCopy, ShadowJob, ShadowRequest,
};
use crate::upstream;

/// Where the primary's response copy goes, when the request is shadowed.
type ResponseReport = oneshot::Sender<Result<ResponseCopy, CopyError>>;

/// A sample with its queue slot and the budget its head holds.
type Reserved<'a> = (mpsc::Permit<'a, ShadowJob>, Admitted, Claim);

impl Proxy {
    pub(super) async fn inline(&self, mut request: Request) -> Response {
        let client_ip = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        let upgrade = headers::is_upgrade(request.headers());
        let on_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
        let (mut parts, body) = request.into_parts();
        let index = self.settings.route_for(&parts.method, parts.uri.path());
        let target = self.targets.get(index);
        let served = self.served_by(target, index, &parts, upgrade);
        let uri = match served {
            None => target.primary.uri(target_of(&parts)),
            Some(c) => c.url.uri(&c.rewrite.target(target_of(&parts))),
        };
        let uri = match uri {
            Ok(uri) => uri,
            Err(e) => {
                return (StatusCode::BAD_REQUEST, format!("shadowdiff: {e}\n")).into_response()
            }
        };
        // Sampled on the client's headers as sent (a sticky key may be a
        // header the forwarding edits), before they are moved and edited.
        let admitted = self.admit(&parts, &parts.headers, upgrade, (index, served.is_some()));
        let incoming = std::mem::take(&mut parts.headers);
        let mut forwarded = headers::forward(incoming, client_ip, upgrade);
        headers::set_host(&mut forwarded, &HostHeader::Client, authority_of(&parts));

        let side = served.map_or(Side::Primary, |_| Side::Candidate);
        // A safe request without a body can be sent again, to the primary.
        let fallback = (served.is_some()
            && self.rollout.falls_back()
            && is_safe(&parts.method)
            && http_body::Body::is_end_stream(&body))
        .then(|| self.primary_headers(forwarded.clone()));
        let reserved = self.reserve(admitted, &forwarded);
        let (sent_body, report) = self.send_job(reserved, &parts, &forwarded, body, side);
        let (headers, limit) = match served {
            None => (
                self.primary_headers(forwarded),
                self.settings.primary_timeout,
            ),
            Some(c) => {
                c.rewrite.headers(&mut forwarded);
                headers::set_host(&mut forwarded, &c.host, None);
                // Given up at the candidate's timeout where the primary can answer instead.
                let limit = fallback
                    .as_ref()
                    .map_or(self.settings.primary_timeout, |_| Some(c.timeout));
                (forwarded, limit)
            }
        };
        let started = Instant::now();
        let response = match self
            .call_backend(&parts.method, uri, headers, sent_body, limit)
            .await
        {
            Ok(response) => response,
            Err(failure) => {
                if let Some(report) = report {
                    let _ = report.send(Err(failure.copy_error(side)));
                }
                return match (fallback, failure.gave_no_head()) {
                    (Some(headers), true) => self.fall_back(&parts, target, headers).await,
                    _ => failure.into_response(target_of(&parts)),
                };
            }
        };
        self.rollout.count_served(side);
        // The network's time to the first byte; the elapsed time where the
        // connection cannot say (HTTP/2).
        let latency = upstream::time_to_first_byte(&response).unwrap_or_else(|| started.elapsed());
        if let Some(on_upgrade) = on_upgrade {
            if response.status() == StatusCode::SWITCHING_PROTOCOLS {
                return switch_protocols(on_upgrade, response);
            }
        }
        self.respond(&parts.method, response, report, latency)
    }

    /// The route's candidate, where its weight has it serve this client
    /// (never a protocol upgrade).
    fn served_by<'t>(
        &self,
        target: &'t Target,
        index: Option<usize>,
        parts: &http::request::Parts,
        upgrade: bool,
    ) -> Option<&'t CandidateTarget> {
        let candidate = target.candidate.as_ref().filter(|_| !upgrade)?;
        let side = self
            .rollout
            .serves(index, &parts.method, &parts.headers, parts.uri.query());
        (side == Side::Candidate).then_some(candidate)
    }

    /// Forwarded headers as the primary gets them: its Host.
    fn primary_headers(&self, mut forwarded: HeaderMap) -> HeaderMap {
        if self.settings.primary_host != HostHeader::Client {
            headers::set_host(&mut forwarded, &self.settings.primary_host, None);
        }
        forwarded
    }

    /// The primary's answer to a safe request the serving candidate could
    /// not answer (no connection, no head in time): counted, never compared
    /// (the sample ended as the candidate's error).
    async fn fall_back(
        &self,
        parts: &http::request::Parts,
        target: &Target,
        headers: HeaderMap,
    ) -> Response {
        self.rollout.count_fallback();
        let uri = match target.primary.uri(target_of(parts)) {
            Ok(uri) => uri,
            Err(e) => {
                return (StatusCode::BAD_REQUEST, format!("shadowdiff: {e}\n")).into_response()
            }
        };
        let limit = self.settings.primary_timeout;
        match self
            .call_backend(&parts.method, uri, headers, Body::empty(), limit)
            .await
        {
            Ok(response) => {
                self.rollout.count_served(Side::Primary);
                self.respond(&parts.method, response, None, Duration::ZERO)
            }
            Err(failure) => failure.into_response(target_of(parts)),
        }
    }

    /// A queue slot for a sampled request that can be shadowed, with its head
    /// counted in the budget (it waits in the queue like a body); a full
    /// queue or budget finishes the sample.
    fn reserve(&self, admitted: Option<Admitted>, forwarded: &HeaderMap) -> Option<Reserved<'_>> {
        let admitted = admitted?;
        let permit = match self.queue.try_reserve() {
            Ok(permit) => permit,
            Err(reason) => {
                admitted.sample.finish(Outcome::Dropped(reason));
                return None;
            }
        };
        let mut claim = self.budget.claim();
        if !claim.grow(headers::size(forwarded)) {
            admitted
                .sample
                .finish(Outcome::Skipped(SkipReason::OverBudget));
            return None;
        }
        Some((permit, admitted, claim))
    }

    /// The body to send the primary and, for a shadowed request, the job
    /// sent: the request body copied by a tee as it passes, the response
    /// to be reported through the returned sender.
    fn send_job(
        &self,
        reserved: Option<Reserved<'_>>,
        parts: &http::request::Parts,
        forwarded: &HeaderMap,
        body: Body,
        side: Side,
    ) -> (Body, Option<ResponseReport>) {
        let empty = http_body::Body::is_end_stream(&body);
        let expected = http_body::Body::size_hint(&body).exact();
        // Marked, so that a broken client body is told from a failed primary.
        let body = body.map_err(ClientBodyError);
        let Some((permit, admitted, claim)) = reserved else {
            return (Body::new(body), None);
        };
        let (report, response_copy) = oneshot::channel();
        let (body_source, primary_body) = if empty {
            let source = BodySource::Ready(Bytes::new(), claim);
            (source, Body::empty())
        } else {
            let (tx, rx) = oneshot::channel();
            let limit = self.settings.max_body_bytes;
            let tee = Tee::new(
                body.into_data_stream(),
                expected,
                limit,
                claim,
                Box::new(move |copy| {
                    let _ = tx.send(copy.map_err(skip_reason));
                }),
            );
            (BodySource::Pending(rx), Body::from_stream(tee))
        };
        // The response the client gets is copied; the other side is called
        // by the shadow stage (the primary, in a reverse shadow).
        let (primary, candidate) = match side {
            Side::Primary => (
                PrimarySource::Pending(response_copy),
                CandidateSource::Fetch,
            ),
            Side::Candidate => (PrimarySource::Fetch, CandidateSource::Served(response_copy)),
        };
        permit.send(ShadowJob {
            sample: admitted.sample,
            rules: admitted.rules,
            target: admitted.target,
            probe: admitted.probe,
            request: ShadowRequest {
                method: parts.method.clone(),
                target: target_of(parts).to_string(),
                headers: headers::detached(forwarded),
                body: body_source,
            },
            primary,
            candidate,
        });
        (primary_body, Some(report))
    }

    /// The serving backend's response head, within `limit` if set.
    async fn call_backend(
        &self,
        method: &http::Method,
        uri: http::Uri,
        headers: HeaderMap,
        body: Body,
        limit: Option<Duration>,
    ) -> Result<http::Response<Incoming>, PrimaryFailure> {
        let mut request = http::Request::new(body);
        *request.method_mut() = method.clone();
        *request.uri_mut() = uri;
        *request.headers_mut() = headers;
        let sent = self.upstream.request(request);
        match limit {
            None => sent.await.map_err(PrimaryFailure::Failed),
            Some(limit) => tokio::time::timeout(limit, sent)
                .await
                .map_err(|_| PrimaryFailure::TimedOut(limit))
                .and_then(|sent| sent.map_err(PrimaryFailure::Failed)),
        }
    }

    /// The client's response: the primary's, less hop-by-hop fields, its body
    /// copied by a tee for a shadowed request unless it cannot be compared.
    fn respond(
        &self,
        method: &http::Method,
        response: http::Response<Incoming>,
        report: Option<ResponseReport>,
        latency: Duration,
    ) -> Response {
        let (mut head, body) = response.into_parts();
        // The HTTP version belongs to each connection: the client's, not the primary's.
        head.version = http::Version::default();
        let Some(report) = report else {
            headers::strip_hop_by_hop(&mut head.headers, false);
            return Response::from_parts(head, Body::new(body));
        };
        let recorded_headers = headers::detached(&head.headers);
        headers::strip_hop_by_hop(&mut head.headers, false);
        let too_large = headers::has_body(method, head.status)
            && headers::content_length(&head.headers)
                .is_some_and(|n| n > self.settings.max_body_bytes as u64);
        let mut claim = self.budget.claim();
        let skip = if too_large {
            Some(SkipReason::BodyTooLarge)
        } else if headers::is_event_stream(&head.headers) {
            Some(SkipReason::EventStream)
        } else if !claim.grow(headers::size(&recorded_headers)) {
            Some(SkipReason::OverBudget)
        } else {
            None
        };
        if let Some(reason) = skip {
            let _ = report.send(Err(reason.into()));
            return Response::from_parts(head, Body::new(body));
        }
        let status = head.status;
        let expected = http_body::Body::size_hint(&body).exact();
        let tee =
            Tee::new(
                body.into_data_stream(),
                expected,
                self.settings.max_body_bytes,
                claim,
                Box::new(move |copy| {
                    let _ = report.send(copy.map_err(|e| skip_reason(e).into()).map(|body| {
                        ResponseCopy {
                            status,
                            headers: recorded_headers,
                            body,
                            latency,
                        }
                    }));
                }),
            );
        Response::from_parts(head, Body::from_stream(tee))
    }
}
