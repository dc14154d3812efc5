//! A mismatch as stored: secrets masked, bodies decoded and capped, headers
//! as received (content-encoding included), and the verdict computed again
//! from the masked responses, so no secret can reach the store through a
//! patch or a diff either. A body that did not decode keeps the decode
//! failure the live comparison saw as its reason, not what comparing its
//! masked stand-in would say.

use crate::compare::{compare_responses, decode};
use crate::exchange::RecordedResponse;
use crate::outcome::{Comparison, SampleInfo};
use crate::redact::Redactor;
use crate::store::{MismatchRecord, StoredBody, StoredMessage};

/// Bodies are stored up to this many bytes each, with a truncated flag.
pub const BODY_CAP: usize = 256 * 1024;

/// Builds the stored record of a mismatch seen at `at` (Unix milliseconds).
pub fn build(
    redactor: &Redactor,
    limit: usize,
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
        body: StoredBody::capped(&stored.body, BODY_CAP),
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
            body: StoredBody::capped(&r.body(&request.body, &request.headers, limit), BODY_CAP),
        },
        primary: message(&c.exchange.primary, &primary),
        candidate: message(&c.exchange.candidate, &candidate),
        verdict: serde_json::to_value(&verdict).unwrap_or_default(),
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
