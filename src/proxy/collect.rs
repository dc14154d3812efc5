//! Collector mode: `POST /collect` takes requests together with the
//! responses the primary already gave (an Envoy tap, a gateway's log hook,
//! an application middleware), as JSON Lines in the format `replay` reads
//! (each line's `response` required), and shadows each to its route's
//! candidate. The primary is never called; the responses compared are the
//! ones its users received.
//!
//! Every line ends as an outcome (sampled out, skipped, dropped or queued)
//! or is answered back as a problem; nothing waits for a comparison.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Json;
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;

use super::{is_safe, Proxy};
use crate::headers;
use crate::outcome::{Outcome, SampleInfo, SkipReason};
use crate::replay::input::{from_jsonl, with_responses, ReplayRequest};
use crate::sampling::SampleRate;
use crate::shadow::{BodySource, CandidateSource, PrimarySource, ShadowJob, ShadowRequest};

/// The one path the collector answers.
pub const COLLECT_PATH: &str = "/collect";

impl Proxy {
    pub(super) async fn collect(&self, request: Request) -> Response {
        if request.uri().path() != COLLECT_PATH {
            return problem(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("a collector takes POST {COLLECT_PATH} only"),
            );
        }
        if request.method() != Method::POST {
            return problem(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("send the pairs with POST {COLLECT_PATH}"),
            );
        }
        // A batch holds at most what the comparison budget could.
        let limit = self.settings.max_buffered_bytes;
        let body = match http_body_util::Limited::new(request.into_body(), limit)
            .collect()
            .await
        {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.is::<http_body_util::LengthLimitError>() => {
                return problem(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("a batch is at most {limit} bytes (max_buffered_bytes); send fewer pairs at once"),
                )
            }
            Err(_) => {
                return problem(
                    StatusCode::BAD_REQUEST,
                    "incomplete",
                    "the request body broke off".into(),
                )
            }
        };
        let (pairs, problems) = {
            let (requests, problems) = from_jsonl(&body);
            with_responses(requests, problems)
        };
        if pairs.is_empty() && !problems.is_empty() {
            tracing::warn!(
                problems = problems.len(),
                "a collected batch had no usable pair"
            );
        }
        let accepted = pairs.len();
        for pair in pairs {
            self.shadow_collected(pair);
        }
        let problems: Vec<_> = problems
            .iter()
            .map(|p| json!({"at": p.origin, "message": p.message}))
            .collect();
        let status = match (accepted, problems.is_empty()) {
            (0, false) => StatusCode::BAD_REQUEST,
            _ => StatusCode::ACCEPTED,
        };
        (
            status,
            Json(json!({"accepted": accepted, "problems": problems})),
        )
            .into_response()
    }

    /// One pair: sampled and named as live traffic would be, then queued
    /// without waiting, or finished with the reason it cannot be.
    fn shadow_collected(&self, pair: ReplayRequest) {
        let ReplayRequest {
            method,
            target,
            headers: fields,
            body,
            response,
            ..
        } = pair;
        let Some(response) = response else { return };
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target.as_str(), None),
        };
        let index = self.settings.route_for(&method, path);
        let route = index.map(|i| &self.settings.routes[i]);
        let rate: SampleRate = route
            .and_then(|r| r.sample_rate)
            .unwrap_or(self.settings.sample_rate);
        if !self.sampler.decide(rate, &fields, query) {
            return;
        }
        let endpoint = self.catalog.name(&method, path, route.map(|r| &r.pattern));
        let sample = self.recorder.sample(SampleInfo {
            served_by_candidate: false,
            endpoint,
            method: method.clone(),
            target: target.clone(),
        });
        let target_backends = self.targets.get(index);
        let mut claim = self.budget.claim();
        let limit = self.settings.max_body_bytes;
        let skip = if target_backends.candidate.is_none() {
            Some(SkipReason::NoCandidate)
        } else if !is_safe(&method) && !route.is_some_and(|r| r.mirror_unsafe) {
            Some(SkipReason::UnsafeMethod)
        } else if body.len() > limit || response.body.len() > limit {
            Some(SkipReason::BodyTooLarge)
        } else if !claim.grow(
            body.len()
                + response.body.len()
                + headers::size(&fields)
                + headers::size(&response.headers),
        ) {
            Some(SkipReason::OverBudget)
        } else {
            None
        };
        if let Some(reason) = skip {
            sample.finish(Outcome::Skipped(reason));
            return;
        }
        let rules = match index {
            Some(i) => self.route_rules[i].clone(),
            None => self.default_rules.clone(),
        };
        match self.queue.try_reserve() {
            Err(reason) => sample.finish(Outcome::Dropped(reason)),
            Ok(permit) => permit.send(ShadowJob {
                sample,
                rules,
                request: ShadowRequest {
                    method,
                    target,
                    headers: fields,
                    body: BodySource::Ready(body, claim),
                },
                primary: PrimarySource::Given(response, self.budget.claim()),
                candidate: CandidateSource::Fetch,
                target: std::sync::Arc::clone(target_backends),
                probe: false,
            }),
        }
    }
}

/// The collector's refusals, as one small JSON shape.
fn problem(status: StatusCode, error: &str, message: String) -> Response {
    (status, Json(json!({"error": error, "message": message}))).into_response()
}
