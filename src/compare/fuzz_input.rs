//! Turns arbitrary bytes into two responses and the rules to compare them
//! under, and states what every verdict must satisfy. Shared by the fuzz
//! target (`fuzz/fuzz_targets/decode_compare.rs`) and the test that replays
//! its corpus (`tests/integration/fuzz_corpus.rs`), so a corpus file means the
//! same thing to both.
//!
//! The layout of an input, every part optional (missing bytes read as 0):
//!
//! | byte | meaning |
//! |---|---|
//! | 0 | Content-Encoding: primary `b % 8`, candidate `(b / 8) % 8`, see [`ENCODINGS`] |
//! | 1 | Content-Type: both `b % 5`; if the top bit is set the candidate's is `(b / 5) % 5`, see [`CONTENT_TYPES`] |
//! | 2 | flags: bit 0 python-go rules, bit 1 candidate body is the primary's, bit 2 the backends name themselves in `x-powered-by`, bit 3 the port rules (pair, text, header and media-type rules; over bit 0) |
//! | 3 | status: primary [`STATUSES`]`[b % 8]`; if the top bit is set the candidate's is `[(b / 8) % 8]` |
//! | 4, 5 | length of the primary body, little-endian, cut to what is left |
//! | 6.. | the primary body, then the candidate body |
//!
//! The bodies are used as the encoded bytes, never compressed here, so that
//! the decoders see broken streams as often as well-formed ones.
//!
//! The layout is the corpus's format: changing it changes what every corpus
//! file means, so after a change run the fuzzer again and re-minimise.

use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};

use super::{CompareConfig, Rules, Verdict};
use crate::exchange::RecordedResponse;

/// Content-Encoding values; `None` sends no header. Beyond the four codings,
/// a stacked list, an alias and an unsupported coding reach the header parsing.
pub const ENCODINGS: [Option<&str>; 8] = [
    None,
    Some("gzip"),
    Some("deflate"),
    Some("br"),
    Some("zstd"),
    Some("identity, gzip"),
    Some("x-gzip"),
    Some("compress"),
];

/// Content-Type values: JSON, text, form, binary, and none (sniffed as text
/// when UTF-8).
pub const CONTENT_TYPES: [Option<&str>; 5] = [
    Some("application/json"),
    Some("text/plain; charset=utf-8"),
    Some("application/x-www-form-urlencoded"),
    Some("application/octet-stream"),
    None,
];

/// Statuses a backend might answer with; 200 first, as the common case.
pub const STATUSES: [u16; 8] = [200, 201, 204, 301, 400, 404, 500, 503];

/// The non-default rule set: the python-go preset plus one rule of each path
/// kind, with patterns that hand-written seeds and mutations can hit.
const PYTHON_GO_RULES: &str = r#"
preset = "python-go"
ignore = ["/**/request_id", "/meta/served_at", "/items/*/updated_at"]
mask = { "/**/trace_id" = "uuid", "/created" = "timestamp", "/token" = "^tok_[a-z]+$", "/n" = "number" }
unordered = ["/tags", "/results"]
keyed = { "/items" = "id" }
number_tolerance = { abs = 0.0, rel = 1e-9 }
ignore_headers = ["x-powered-by"]
"#;

/// The rules a Python-to-Go port adds beside the preset: one of each pair
/// rule, text normalisation, header masks and media-type sets.
const PORT_RULES: &str = r#"
preset = "python-go"
scalar_as_array = ["/args/*", "/q"]
comma_joined = ["/accept", "/**/tags"]
candidate_may_add = ["/etag", "/items/*/etag"]
candidate_may_omit = ["/nickname", "/**/note"]
normalise_text = ["line_endings", "trailing_whitespace", "final_newline"]
media_types_equal = [["text/plain", "application/octet-stream"]]
header_mask = { "x-powered-by" = "^[A-Z][a-z]+$", "location" = "any" }
"#;

/// The port rules, parsed once.
fn port_rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let config = toml::from_str::<CompareConfig>(PORT_RULES)
            .expect("the fixed port fuzz rules are valid");
        Rules::from(&config)
    })
}

/// The rules for the python-go rule set, parsed once: toml and regex
/// compilation would otherwise dominate each fuzz iteration.
fn python_go_rules() -> &'static Rules {
    static RULES: OnceLock<Rules> = OnceLock::new();
    RULES.get_or_init(|| {
        let config = toml::from_str::<CompareConfig>(PYTHON_GO_RULES)
            .expect("the fixed python-go fuzz rules are valid");
        Rules::from(&config)
    })
}

/// Splits `data` into a primary response, a candidate response and rules, as
/// the module documentation lays out. Total: any input gives some answer.
pub fn responses_from_bytes(data: &[u8]) -> (RecordedResponse, RecordedResponse, Rules) {
    let byte = |i: usize| data.get(i).copied().unwrap_or(0);
    let (encoding, content_type, flags, status) = (byte(0), byte(1), byte(2), byte(3));

    let primary_encoding = ENCODINGS[usize::from(encoding) % ENCODINGS.len()];
    let candidate_encoding = ENCODINGS[usize::from(encoding) / ENCODINGS.len() % ENCODINGS.len()];

    // Mostly the same type on both sides: a differing type is a header diff
    // that ends the interesting part of the comparison early.
    let type_index = usize::from(content_type) % CONTENT_TYPES.len();
    let candidate_type_index = if content_type & 0x80 == 0 {
        type_index
    } else {
        usize::from(content_type) / CONTENT_TYPES.len() % CONTENT_TYPES.len()
    };

    let python_go = flags & 1 != 0;
    let port = flags & 8 != 0;
    let same_body = flags & 2 != 0;
    let powered_by = flags & 4 != 0;

    let primary_status = STATUSES[usize::from(status) % STATUSES.len()];
    let candidate_status = if status & 0x80 == 0 {
        primary_status
    } else {
        STATUSES[usize::from(status) / STATUSES.len() % STATUSES.len()]
    };

    let rest = data.get(6..).unwrap_or(&[]);
    let declared = usize::from(u16::from_le_bytes([byte(4), byte(5)]));
    let (primary_body, candidate_body) = rest.split_at(declared.min(rest.len()));
    let candidate_body = if same_body {
        primary_body
    } else {
        candidate_body
    };

    let primary = response(
        primary_status,
        primary_encoding,
        CONTENT_TYPES[type_index],
        powered_by.then_some("Python"),
        primary_body,
    );
    let candidate = response(
        candidate_status,
        candidate_encoding,
        CONTENT_TYPES[candidate_type_index],
        powered_by.then_some("Go"),
        candidate_body,
    );
    let rules = match (port, python_go) {
        (true, _) => port_rules().clone(),
        (false, true) => python_go_rules().clone(),
        (false, false) => Rules::from(&CompareConfig::default()),
    };
    (primary, candidate, rules)
}

fn response(
    status: u16,
    encoding: Option<&'static str>,
    content_type: Option<&'static str>,
    powered_by: Option<&'static str>,
    body: &[u8],
) -> RecordedResponse {
    let mut headers = HeaderMap::new();
    if let Some(encoding) = encoding {
        headers.insert(CONTENT_ENCODING, HeaderValue::from_static(encoding));
    }
    if let Some(content_type) = content_type {
        headers.insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    }
    if let Some(server) = powered_by {
        headers.insert(
            HeaderName::from_static("x-powered-by"),
            HeaderValue::from_static(server),
        );
    }
    RecordedResponse {
        // Every entry of STATUSES is a valid code; the fallback only keeps
        // this function free of a panic path.
        status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
        headers,
        body: Bytes::copy_from_slice(body),
        latency: Duration::ZERO,
    }
}

/// What any verdict must satisfy whatever the bodies held: a match carries
/// no fingerprint and no patch, a mismatch always has a fingerprint, a status
/// difference is reported exactly when the statuses differ, and identical
/// decoded bodies with the same status and no header difference match.
/// `Err` describes the first broken invariant.
pub fn check_verdict_invariants(
    primary: &RecordedResponse,
    candidate: &RecordedResponse,
    verdict: &Verdict,
) -> Result<(), String> {
    if verdict.matched && verdict.fingerprint.is_some() {
        return Err(format!(
            "matched verdict has a fingerprint: {:?}",
            verdict.fingerprint
        ));
    }
    if verdict.matched && verdict.patch.is_some() {
        return Err(format!("matched verdict has a patch: {:?}", verdict.patch));
    }
    if !verdict.matched && verdict.fingerprint.is_none() {
        return Err("mismatched verdict has no fingerprint".to_string());
    }
    let same_status = primary.status == candidate.status;
    if verdict.status.is_some() == same_status {
        return Err(format!(
            "status diff {:?} disagrees with statuses {} and {}",
            verdict.status, primary.status, candidate.status
        ));
    }
    if verdict.byte_equal && same_status && verdict.headers.is_empty() && !verdict.matched {
        return Err(format!(
            "byte-equal bodies, same status and no header diff, yet not matched: {verdict:?}"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_inputs_read_missing_bytes_as_zero() {
        // The last declares a 255-byte primary body with no bytes left for it.
        for data in [&b""[..], b"\x01", b"\x01\x02\x03", b"\x01\x02\x03\x00\xff"] {
            let (p, c, _) = responses_from_bytes(data);
            assert_eq!(p.status, StatusCode::OK);
            assert!(p.body.is_empty() && c.body.is_empty());
        }
    }

    #[test]
    fn the_layout_is_read_as_documented() {
        // gzip / br, JSON both sides, python-go rules, 200 / 404, primary "ab".
        let data = b"\x19\x00\x01\xa8\x02\x00abcd";
        let (p, c, rules) = responses_from_bytes(data);
        assert_eq!(p.headers[CONTENT_ENCODING], "gzip");
        assert_eq!(c.headers[CONTENT_ENCODING], "br");
        assert_eq!(p.headers[CONTENT_TYPE], "application/json");
        assert_eq!(c.headers[CONTENT_TYPE], "application/json");
        assert!(rules.numeric_strings, "python-go preset");
        assert_eq!((p.status.as_u16(), c.status.as_u16()), (200, 404));
        assert_eq!((&p.body[..], &c.body[..]), (&b"ab"[..], &b"cd"[..]));
    }

    #[test]
    fn the_fixed_rule_sets_parse() {
        assert!(!python_go_rules().paths.is_empty());
        assert!(!port_rules().header_masks.is_empty() && !port_rules().text.is_off());
        let (_, _, rules) = responses_from_bytes(b"\x00\x00\x08");
        assert!(!rules.media_types_equal.is_empty());
    }
}
