//! What each backend's shadow call carries: the role header, each backend's
//! Host, and the candidate's rewrite; and the rewritten request as it is
//! kept for the stored exemplar, each secret replaced by its placeholder.

use http::{HeaderMap, HeaderValue};

use super::ShadowConfig;
use crate::config::{CandidateTarget, RoleHeader};
use crate::exchange::SentRequest;
use crate::headers::set_host;

/// The headers each backend's shadow call carries: the role header (unless
/// off), each backend's own Host, and the candidate's rewrite.
pub(super) fn backend_headers(
    config: &ShadowConfig,
    candidate: &CandidateTarget,
    forwarded: &HeaderMap,
) -> (HeaderMap, HeaderMap) {
    let mut primary = forwarded.clone();
    if let Some(name) = config.role_header.name() {
        primary.insert(name.clone(), HeaderValue::from_static(RoleHeader::SHADOW));
    }
    let mut rewritten = primary.clone();
    candidate.rewrite.headers(&mut rewritten);
    set_host(&mut rewritten, &candidate.host, None);
    set_host(&mut primary, &config.primary_host, None);
    (primary, rewritten)
}

/// The rewritten request as the candidate got it, for the stored exemplar:
/// each value read from the environment replaced by its placeholder.
pub(super) fn sent_request(
    candidate: &CandidateTarget,
    target: &str,
    headers: &HeaderMap,
) -> SentRequest {
    let mut shown = crate::headers::detached(headers);
    for (name, placeholder) in candidate.rewrite.secrets() {
        if let Ok(value) = HeaderValue::from_str(&placeholder) {
            shown.insert(name.clone(), value);
        }
    }
    SentRequest {
        target: target.to_string(),
        headers: shown,
    }
}
