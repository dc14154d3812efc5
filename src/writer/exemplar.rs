//! A mismatch as stored: secrets masked, bodies decoded and capped, headers
//! as received (content-encoding included), and the verdict computed again
//! from the masked responses, so no secret can reach the store through a
//! patch or a diff either. A body that did not decode keeps the decode
//! failure the live comparison saw as its reason, not what comparing its
//! masked stand-in would say. The verdict is stored as a `VerdictRecord`,
//! the versioned format the report API serves, never as the engine's own
//! struct.

use crate::compare::decode::BodyKind;
use crate::compare::{compare_responses, decode, Verdict};
use crate::exchange::RecordedResponse;
use crate::outcome::{Comparison, SampleInfo};
use crate::redact::Redactor;
use crate::store::{MismatchDetails, MismatchRecord, SentRequestRecord, StoredBody, StoredMessage};
use crate::verdict_record::{BodyKindRecord, HeaderRecord, StatusRecord, VerdictRecord};

/// Bodies are stored up to this many bytes each by default (the setting
/// `store_body_bytes`), with a truncated flag.
pub const BODY_CAP: usize = 256 * 1024;

/// Builds the stored record of a mismatch seen at `at` (Unix milliseconds):
/// bodies decoded up to the first limit, stored up to the second.
pub fn build(
    redactor: &Redactor,
    (limit, body_cap): (usize, usize),
    at: i64,
    info: &SampleInfo,
    c: &Comparison,
) -> MismatchRecord {
    let r = redactor;
    let request = &c.exchange.request;
    let (path, query) = request
        .target
        .split_once('?')
        .unwrap_or((&request.target, ""));
    let masked = |response: &RecordedResponse| {
        let mut headers = r.header_map(&response.headers);
        // The masked body is decoded (or a stand-in when it does not
        // decode): compared as such, it must not be decoded again.
        headers.remove(http::header::CONTENT_ENCODING);
        RecordedResponse {
            status: response.status,
            body: r.body(&response.body, &response.headers, limit),
            headers,
            latency: response.latency,
        }
    };
    let (primary, candidate) = (masked(&c.exchange.primary), masked(&c.exchange.candidate));
    let mut verdict = compare_responses(
        info.endpoint.as_str(),
        &primary,
        &candidate,
        &c.rules,
        limit,
    );
    // What the live comparison said about a body that did not decode; the
    // decoder's message names the coding and the failure, never the data.
    let mut failures = Vec::new();
    for (side, response) in [
        ("primary", &c.exchange.primary),
        ("candidate", &c.exchange.candidate),
    ] {
        if let Err(e) = decode::decode(&response.body, &response.headers, limit) {
            failures.push((side, format!("{side}: {e}; compared the bytes as received")));
        }
    }
    // What the live comparison discounted as noise, and why.
    verdict.reasons.extend(c.discounted.iter().cloned());
    if !failures.is_empty() {
        let prefixes: Vec<String> = failures.iter().map(|(s, _)| format!("{s}: ")).collect();
        verdict
            .reasons
            .retain(|reason| !prefixes.iter().any(|p| reason.starts_with(p.as_str())));
        let mut reasons: Vec<String> = failures.into_iter().map(|(_, r)| r).collect();
        reasons.append(&mut verdict.reasons);
        verdict.reasons = reasons;
    }
    let message = |received: &RecordedResponse, stored: &RecordedResponse| StoredMessage {
        status: stored.status.as_u16(),
        // The headers as received, masked.
        headers: r.headers(&received.headers),
        body: StoredBody::capped(&stored.body, body_cap),
    };
    MismatchRecord {
        at_ms: at,
        endpoint: info.endpoint.as_str().to_string(),
        // The group is the one the live comparison found.
        fingerprint: c.verdict.fingerprint.clone().unwrap_or_default(),
        method: request.method.as_str().to_string(),
        path: path.to_string(),
        query: r.query(query),
        request: StoredMessage {
            status: 0,
            headers: r.headers(&request.headers),
            body: StoredBody::capped(&r.body(&request.body, &request.headers, limit), body_cap),
        },
        primary: message(&c.exchange.primary, &primary),
        candidate: message(&c.exchange.candidate, &candidate),
        verdict: record_of(verdict).to_stored(),
        details: MismatchDetails {
            primary_latency_us: Some(micros(c.exchange.primary.latency)),
            candidate_latency_us: Some(micros(c.exchange.candidate.latency)),
            served_by_candidate: info.served_by_candidate,
            candidate_request: c.exchange.candidate_request.as_ref().map(|sent| {
                let (path, query) = sent.target.split_once('?').unwrap_or((&sent.target, ""));
                SentRequestRecord {
                    path: path.to_string(),
                    query: r.query(query),
                    headers: r.headers(&sent.headers),
                }
            }),
        },
    }
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The engine's verdict in the stored format, field by field: a change to
/// the engine's struct does not reach the store or the API unless made here.
pub fn record_of(verdict: Verdict) -> VerdictRecord {
    let body_kind = match verdict.body_kind {
        BodyKind::Empty => BodyKindRecord::Empty,
        BodyKind::Json => BodyKindRecord::Json,
        BodyKind::JsonLines => BodyKindRecord::JsonLines,
        BodyKind::Form => BodyKindRecord::Form,
        BodyKind::Text => BodyKindRecord::Text,
        BodyKind::Binary => BodyKindRecord::Binary,
    };
    VerdictRecord {
        version: VerdictRecord::version_for(body_kind),
        matched: verdict.matched,
        byte_equal: verdict.byte_equal,
        body_kind,
        status: verdict.status.map(|s| StatusRecord {
            primary: s.primary,
            candidate: s.candidate,
        }),
        headers: verdict
            .headers
            .into_iter()
            .map(|h| HeaderRecord {
                name: h.name,
                primary: h.primary,
                candidate: h.candidate,
            })
            .collect(),
        patch: verdict.patch,
        text_diff: verdict.text_diff,
        paths: verdict.paths,
        fingerprint: verdict.fingerprint,
        reasons: verdict.reasons,
    }
}

/// About the bytes a record takes on disk (and in memory): bodies, headers
/// and the verdict (whose diff can be as large as the bodies).
pub fn size(record: &MismatchRecord) -> usize {
    let message = |m: &StoredMessage| {
        m.body.bytes.len()
            + m.headers
                .iter()
                .map(|(n, v)| n.len() + v.len() + 8)
                .sum::<usize>()
    };
    let verdict = serde_json::to_vec(&record.verdict).map_or(0, |v| v.len());
    message(&record.request)
        + message(&record.primary)
        + message(&record.candidate)
        + verdict
        + record.path.len()
        + record.query.len()
        + 256
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::Rules;
    use http::{HeaderMap, HeaderValue, StatusCode};

    fn response(status: u16, build: &str, body: &'static str) -> RecordedResponse {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        headers.insert("x-build", HeaderValue::from_str(build).unwrap());
        RecordedResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers,
            body: bytes::Bytes::from_static(body.as_bytes()),
            latency: std::time::Duration::ZERO,
        }
    }

    /// The stored format is the engine's verdict as it was first stored,
    /// field for field, plus its version: what clients read did not change.
    #[test]
    fn the_record_holds_every_field_of_the_verdict_and_its_version() {
        let verdict = compare_responses(
            "GET /a",
            &response(200, "\"a\"", r#"{"total": 30, "id": 1}"#),
            &response(500, "\"b\"", r#"{"total": 3, "id": 1}"#),
            &Rules::default(),
            1 << 20,
        );
        assert!(verdict.patch.is_some() && verdict.status.is_some());
        assert!(!verdict.headers.is_empty() && verdict.fingerprint.is_some());
        let mut engine = serde_json::to_value(&verdict).unwrap();
        engine["version"] = serde_json::json!(1);
        // The class came later and belongs to the group, stored with it:
        // version 1 of the record does not carry it.
        assert!(engine["severity"].is_string());
        engine.as_object_mut().unwrap().remove("severity");
        let stored = record_of(verdict).to_stored();
        assert_eq!(stored, engine);
        assert_eq!(VerdictRecord::read(&stored).unwrap().to_stored(), stored);
    }
}
