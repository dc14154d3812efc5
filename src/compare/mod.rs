//! The comparison engine: turns an exchange into a verdict. Pure code, no
//! I/O, and never an error: broken encodings, invalid JSON, NaN tokens, deep
//! nesting or huge bodies each become a verdict with a reason.
//!
//! Steps: decode both bodies; compare status and headers; if the decoded
//! bodies are identical, stop (fast path); otherwise compare by kind: JSON
//! (and forms, read as JSON) structurally after normalising each side by the
//! rules, text by lines, binary by length and hash. Each mismatch gets a
//! severity class (`severity`) from what differs.

mod body_rules;
pub mod conflicts;
pub mod decode;
pub mod explain;
mod fingerprint;
pub mod fuzz_input;
pub mod headers;
pub mod json;
mod reconcile;
pub mod rules;
pub mod severity;
mod values;

use std::collections::BTreeSet;

use bytes::Bytes;
use serde::Serialize;
use serde_json::Value;

use crate::exchange::{Exchange, RecordedResponse};
use crate::sampling::stable_hash;
use body_rules::BodyRule;
use decode::BodyKind;
use fingerprint::fingerprint;
pub use fingerprint::{generalise_path, observed_pattern};
use headers::HeaderDiff;
pub use rules::{CompareConfig, Rules};
pub use severity::Severity;
use values::{form_as_json, json_lines, parse_json_lines_pair, parse_json_pair};

/// Patches are cut to this many operations (and say so in the fingerprint).
const MAX_PATCH_OPERATIONS: usize = 1_000;

/// Text diffs longer than this are cut, at a line end.
const TEXT_DIFF_LIMIT: usize = 64 * 1024;

/// What the comparison of one exchange found.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Verdict {
    pub matched: bool,
    /// The decoded bodies are identical byte for byte.
    pub byte_equal: bool,
    /// How the bodies were compared (by the primary's media type).
    pub body_kind: BodyKind,
    /// Present when the statuses differ.
    pub status: Option<StatusDiff>,
    pub headers: Vec<HeaderDiff>,
    /// RFC 6902 operations that turn the normalised primary body into the
    /// normalised candidate body (JSON and form bodies only).
    pub patch: Option<json_patch::Patch>,
    /// A unified diff of the (pretty-printed, normalised) bodies.
    pub text_diff: Option<String>,
    /// JSON Pointers of the differing parts of the body ("" for the whole).
    pub paths: Vec<String>,
    /// Groups mismatches of one kind on one endpoint; `None` when matched.
    pub fingerprint: Option<String>,
    /// How severe the difference is (`severity`); `None` when matched.
    pub severity: Option<Severity>,
    /// Why the comparison went as it did where that is not obvious.
    pub reasons: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct StatusDiff {
    pub primary: u16,
    pub candidate: u16,
}

/// How much of a mismatch a verdict spells out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Detail {
    /// Everything, the line diff of the two bodies included: what is stored
    /// and shown.
    Full,
    /// What counting and grouping need (paths, patch, fingerprint), without
    /// the line diff, the dearest part of a mismatch: for the live
    /// comparison, since a stored exemplar is compared again in full.
    Grouping,
}

/// Compares an exchange's two responses under `rules`. Bodies that decode to
/// more than `max_body_bytes` are compared undecoded.
pub fn compare(
    exchange: &Exchange,
    rules: &Rules,
    max_body_bytes: usize,
    detail: Detail,
) -> Verdict {
    let (p, c) = (&exchange.primary, &exchange.candidate);
    let endpoint = exchange.endpoint.as_str();
    compare_responses_with(endpoint, p, c, rules, (max_body_bytes, detail))
}

/// The comparison in full, for callers without a whole exchange.
pub fn compare_responses(
    endpoint: &str,
    primary: &RecordedResponse,
    candidate: &RecordedResponse,
    rules: &Rules,
    max_body_bytes: usize,
) -> Verdict {
    let limits = (max_body_bytes, Detail::Full);
    compare_responses_with(endpoint, primary, candidate, rules, limits)
}

/// The comparison at the detail asked for, for callers without a whole
/// exchange.
pub fn compare_responses_with(
    endpoint: &str,
    primary: &RecordedResponse,
    candidate: &RecordedResponse,
    rules: &Rules,
    (max_body_bytes, detail): (usize, Detail),
) -> Verdict {
    let mut reasons = Vec::new();
    let status = (primary.status != candidate.status).then(|| StatusDiff {
        primary: primary.status.as_u16(),
        candidate: candidate.status.as_u16(),
    });
    let mut header_diffs = headers::compare(&primary.headers, &candidate.headers, rules);

    let (p_body, c_body, undecoded) = bodies(primary, candidate, max_body_bytes, &mut reasons);
    let undecodable = !undecoded.is_empty();
    // A body that does not decode is not what its headers promise: a client
    // would fail on it, so it cannot count as equal, whatever its bytes.
    let byte_equal = !undecodable && p_body == c_body;
    let kinds = (
        BodyKind::of(&primary.headers, &p_body),
        BodyKind::of(&candidate.headers, &c_body),
    );
    let mut kind = match kinds {
        (BodyKind::Empty, candidate_kind) => candidate_kind,
        (primary_kind, _) => primary_kind,
    };
    if kind == BodyKind::Text && !byte_equal && json_lines(&p_body) && json_lines(&c_body) {
        kind = BodyKind::JsonLines;
    }
    let redirects = rules.redirects_by_location
        && primary.status.is_redirection()
        && candidate.status.is_redirection();
    let mut body = if byte_equal {
        BodyComparison::default()
    } else if redirects {
        reasons.push("both redirect: status and Location compared, not the body".into());
        BodyComparison::default()
    } else {
        match rules.body {
            BodyRule::Compare => {
                let limits = (max_body_bytes, detail, &mut reasons);
                compare_unequal(kind, &p_body, &c_body, rules, limits)
            }
            whole => compare_whole(whole, (&p_body, &c_body), kinds, &mut reasons),
        }
    };
    let ignored = rules.body == BodyRule::Ignore || redirects;
    headers::settle(
        &mut header_diffs,
        &headers::BodyFacts {
            empty: (p_body.is_empty(), c_body.is_empty()),
            equal: body.equal,
            redirects,
        },
        rules,
    );
    if undecodable && body.equal && !ignored {
        body = BodyComparison {
            equal: false,
            paths: vec![String::new()],
            summary: Some("body undecodable".into()),
            severity: Severity::Structure,
            ..BodyComparison::default()
        };
    }

    let matched = status.is_none() && header_diffs.is_empty() && body.equal;
    let fingerprint =
        (!matched).then(|| fingerprint(endpoint, status, &header_diffs, &body, &undecoded));
    // Under `body = "length"` only lengths were asked about, not kinds.
    let kinds_differ = rules.body == BodyRule::Compare && kinds.0 != kinds.1;
    let severity = severity::of(
        status.is_some(),
        &body,
        kinds_differ,
        !header_diffs.is_empty(),
    );
    Verdict {
        matched,
        byte_equal,
        body_kind: kind,
        status,
        headers: header_diffs,
        patch: body.patch,
        text_diff: body.text_diff,
        paths: body.paths,
        fingerprint,
        severity,
        reasons,
    }
}

/// Both bodies as the comparison sees them: decoded (unless their bytes and
/// encodings are the same), with the sides whose decoding failed.
fn bodies(
    primary: &RecordedResponse,
    candidate: &RecordedResponse,
    max_body_bytes: usize,
    reasons: &mut Vec<String>,
) -> (Bytes, Bytes, Vec<&'static str>) {
    let same_encoding = primary
        .headers
        .get_all(http::header::CONTENT_ENCODING)
        .iter()
        .eq(candidate
            .headers
            .get_all(http::header::CONTENT_ENCODING)
            .iter());
    if primary.body == candidate.body && same_encoding {
        return (primary.body.clone(), candidate.body.clone(), Vec::new());
    }
    let mut undecoded = Vec::new();
    let (p, p_failed) = decoded(primary, "primary", max_body_bytes, reasons);
    let (c, c_failed) = decoded(candidate, "candidate", max_body_bytes, reasons);
    undecoded.extend(p_failed.then_some("primary"));
    undecoded.extend(c_failed.then_some("candidate"));
    (p, c, undecoded)
}

/// Two bodies under a whole-body rule: not compared, or by length or kind only.
fn compare_whole(
    rule: BodyRule,
    (p, c): (&[u8], &[u8]),
    (p_kind, c_kind): (BodyKind, BodyKind),
    reasons: &mut Vec<String>,
) -> BodyComparison {
    let (equal, what) = match rule {
        BodyRule::Compare | BodyRule::Ignore => (true, "ignored"),
        BodyRule::Length => (p.len() == c.len(), "length"),
        BodyRule::Kind => (p_kind == c_kind, "kind"),
    };
    reasons.push(match rule {
        BodyRule::Length => format!(
            "body = \"length\": only lengths compared ({} and {} bytes)",
            p.len(),
            c.len()
        ),
        BodyRule::Kind => format!(
            "body = \"kind\": only kinds compared ({} and {})",
            kind_name(p_kind),
            kind_name(c_kind)
        ),
        BodyRule::Compare | BodyRule::Ignore => "body = \"ignore\": bodies not compared".into(),
    });
    match equal {
        true => BodyComparison::default(),
        false => BodyComparison {
            equal: false,
            paths: vec![String::new()],
            summary: Some(format!("body {what}")),
            severity: match rule {
                BodyRule::Kind => Severity::Structure,
                _ => Severity::Value,
            },
            ..BodyComparison::default()
        },
    }
}

/// Two bodies that are not byte-equal: diffed structurally, or compared by
/// bytes only when they are over `max_body_bytes` or too intricate to diff
/// within memory (with a reason saying so).
fn compare_unequal(
    kind: BodyKind,
    p_body: &[u8],
    c_body: &[u8],
    rules: &Rules,
    (max_body_bytes, detail, reasons): (usize, Detail, &mut Vec<String>),
) -> BodyComparison {
    let by_bytes = |summary: &str| BodyComparison {
        equal: false,
        paths: vec![String::new()],
        summary: Some(summary.into()),
        ..BodyComparison::default()
    };
    if p_body.len().max(c_body.len()) > max_body_bytes {
        // Parsing and diffing beyond the limit would cost what the limit is for.
        reasons.push(format!(
            "bodies of {} and {} bytes exceed max_body_bytes ({max_body_bytes}): compared by bytes only",
            p_body.len(),
            c_body.len()
        ));
        return by_bytes("body too large");
    }
    if let Some((units, limit)) =
        too_intricate(kind, p_body, c_body, max_body_bytes / BYTES_PER_UNIT)
    {
        reasons.push(format!(
            "a body holds {units} {}, more than max_body_bytes / {BYTES_PER_UNIT} ({limit}) allows to diff within memory: compared by bytes only",
            match kind {
                BodyKind::Json | BodyKind::JsonLines | BodyKind::Form => "values",
                _ => "lines",
            }
        ));
        return by_bytes("body too intricate");
    }
    compare_bodies(kind, p_body, c_body, (rules, detail), reasons)
}

/// Body bytes per JSON value (or text line) that a structural (or line) diff
/// is allowed: each value costs a few hundred bytes while two bodies are
/// parsed, normalised and diffed, so without this cap a body of tiny values
/// (`[0,0,0,…]`) would take over a hundred times its size in memory. With
/// it, a comparison holds at most about 40 times `max_body_bytes`; ordinary
/// API bodies, at well over 16 bytes a value, never reach it.
pub const BYTES_PER_UNIT: usize = 16;

/// The larger side's count of values (JSON, forms) or lines (text), and the
/// limit, when it is over the limit.
fn too_intricate(kind: BodyKind, p: &[u8], c: &[u8], limit: usize) -> Option<(usize, usize)> {
    let units = |body: &[u8]| match kind {
        BodyKind::Json => json::count_values(body),
        // Lines of scalars (`0\n0\n…`) hold no separator the count sees.
        BodyKind::JsonLines => {
            json::count_values(body) + body.iter().filter(|&&b| b == b'\n').count()
        }
        BodyKind::Form => body.iter().filter(|&&b| b == b'&' || b == b';').count() + 1,
        BodyKind::Text => body.iter().filter(|&&b| b == b'\n').count() + 1,
        BodyKind::Empty | BodyKind::Binary => 0,
    };
    let most = units(p).max(units(c));
    (most > limit.max(MIN_UNITS)).then_some((most, limit.max(MIN_UNITS)))
}

/// Small limits still diff small bodies.
const MIN_UNITS: usize = 1_024;

/// The decoded body, or the body as received and `true` if it did not decode.
fn decoded(
    response: &RecordedResponse,
    side: &str,
    limit: usize,
    reasons: &mut Vec<String>,
) -> (Bytes, bool) {
    match decode::decode(&response.body, &response.headers, limit) {
        Ok(body) => (body, false),
        Err(e) => {
            reasons.push(format!("{side}: {e}; compared the bytes as received"));
            (response.body.clone(), true)
        }
    }
}

/// The outcome of comparing two bodies that are not byte-identical.
struct BodyComparison {
    equal: bool,
    patch: Option<json_patch::Patch>,
    text_diff: Option<String>,
    paths: Vec<String>,
    /// What the fingerprint should say about a body that could not be diffed structurally.
    summary: Option<String>,
    /// Generalised paths of arrays whose lengths differ: how their elements
    /// shifted depends on the data, so the fingerprint names the array instead.
    resized: BTreeSet<String>,
    /// How severe the body's difference is, when it differs; bodies of one
    /// kind compared by bytes or as text differ in value.
    severity: Severity,
}

impl Default for BodyComparison {
    fn default() -> Self {
        BodyComparison {
            equal: true,
            patch: None,
            text_diff: None,
            paths: Vec::new(),
            summary: None,
            resized: BTreeSet::new(),
            severity: Severity::Value,
        }
    }
}

fn compare_bodies(
    kind: BodyKind,
    p: &[u8],
    c: &[u8],
    (rules, detail): (&Rules, Detail),
    reasons: &mut Vec<String>,
) -> BodyComparison {
    let mut unparsed = Vec::new();
    let structured = match kind {
        BodyKind::Json => parse_json_pair(p, c, reasons, &mut unparsed),
        BodyKind::JsonLines => parse_json_lines_pair(p, c, reasons, &mut unparsed),
        BodyKind::Form => Some((form_as_json(p), form_as_json(c))),
        _ => None,
    };
    if let Some((pv, cv)) = structured {
        return compare_structured(pv, cv, rules, detail);
    }
    name_path_rules_not_applied(kind, rules, reasons);
    let (p_text, c_text) = (String::from_utf8_lossy(p), String::from_utf8_lossy(c));
    // Only text that is text: lossy decoding would make any two invalid
    // byte sequences of one length look alike.
    let valid_text = std::str::from_utf8(p).is_ok() && std::str::from_utf8(c).is_ok();
    let normalised = (kind != BodyKind::Binary && !rules.text.is_off() && valid_text)
        .then(|| (rules.text.apply(&p_text), rules.text.apply(&c_text)));
    if let Some((p_text, c_text)) = &normalised {
        if p_text == c_text {
            reasons.push("text bodies equal under normalise_text".into());
            return BodyComparison::default();
        }
    }
    if kind == BodyKind::Binary && !rules.text.is_off() {
        reasons.push("normalise_text does not apply to binary bodies".into());
    }
    let (p_text, c_text) = match &normalised {
        Some((p, c)) => (p.as_str().into(), c.as_str().into()),
        None => (p_text, c_text),
    };
    match kind {
        BodyKind::Binary => {
            reasons.push(format!(
                "binary bodies differ: primary {} bytes (hash {:016x}), candidate {} bytes (hash {:016x})",
                p.len(),
                stable_hash(p),
                c.len(),
                stable_hash(c)
            ));
            BodyComparison {
                equal: false,
                paths: vec![String::new()],
                summary: Some("body binary".into()),
                ..BodyComparison::default()
            }
        }
        _ => BodyComparison {
            equal: false,
            text_diff: (detail == Detail::Full).then(|| text_diff(&p_text, &c_text)),
            paths: vec![String::new()],
            // One side not the JSON its kind promises, the other one is:
            // another structure. Neither is: two texts that differ.
            severity: match unparsed.len() {
                1 => Severity::Structure,
                _ => Severity::Value,
            },
            // Which side failed to parse tells bugs apart: a text 404 from
            // the candidate is not the same bug as a truncated primary body.
            summary: Some(match unparsed.is_empty() {
                true => format!("body {}", kind_name(kind)),
                false => format!(
                    "body {} unparseable: {}",
                    kind_name(kind),
                    unparsed.join(", ")
                ),
            }),
            ..BodyComparison::default()
        },
    }
}

/// Says so when path rules were written but the bodies are not JSON or a
/// form, where a path means nothing: the rules are not silently dropped.
fn name_path_rules_not_applied(kind: BodyKind, rules: &Rules, reasons: &mut Vec<String>) {
    let mut patterns: Vec<String> = rules.path_rules().map(|p| format!("\"{p}\"")).collect();
    patterns.dedup();
    if patterns.is_empty() {
        return;
    }
    const SHOWN: usize = 5;
    let more = patterns.len().saturating_sub(SHOWN);
    patterns.truncate(SHOWN);
    reasons.push(format!(
        "path rules ({}{}) apply to JSON, JSON Lines and form bodies, not to a {} body",
        patterns.join(", "),
        match more {
            0 => String::new(),
            n => format!(" and {n} more"),
        },
        kind_name(kind)
    ));
}

fn kind_name(kind: BodyKind) -> &'static str {
    match kind {
        BodyKind::Empty => "empty",
        BodyKind::Json => "json",
        BodyKind::JsonLines => "json lines",
        BodyKind::Form => "form",
        BodyKind::Text => "text",
        BodyKind::Binary => "binary",
    }
}

fn compare_structured(p: Value, c: Value, rules: &Rules, detail: Detail) -> BodyComparison {
    let (p, c) = json::normal_forms(p, c, rules);
    if p == c {
        return BodyComparison::default();
    }
    let mut patch = json_patch::diff(&p, &c);
    let mut resized = BTreeSet::new();
    resized_arrays(&p, &c, &mut String::new(), &mut resized);
    // Of the whole patch: what is cut below may hold the worst difference.
    let severity = severity::of_patch(&p, &patch, &resized);
    // Two long arrays shifted by one differ everywhere: keep the verdict small.
    let truncated = patch.0.len() > MAX_PATCH_OPERATIONS;
    patch.0.truncate(MAX_PATCH_OPERATIONS);
    let paths: Vec<String> = patch.0.iter().map(|op| op.path().to_string()).collect();
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    BodyComparison {
        equal: false,
        text_diff: (detail == Detail::Full).then(|| text_diff(&pretty(&p), &pretty(&c))),
        patch: Some(patch),
        paths,
        summary: truncated.then(|| "patch truncated".to_string()),
        resized,
        severity,
    }
}

/// Collects the generalised paths of arrays whose lengths differ.
fn resized_arrays(p: &Value, c: &Value, at: &mut String, out: &mut BTreeSet<String>) {
    match (p, c) {
        (Value::Array(a), Value::Array(b)) if a.len() != b.len() => {
            out.insert(generalise_path(at));
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                let len = at.len();
                at.push_str(&format!("/{i}"));
                resized_arrays(x, y, at, out);
                at.truncate(len);
            }
        }
        (Value::Object(a), Value::Object(b)) => {
            for (key, x) in a {
                if let Some(y) = b.get(key) {
                    let len = at.len();
                    at.push('/');
                    at.push_str(&key.replace('~', "~0").replace('/', "~1"));
                    resized_arrays(x, y, at, out);
                    at.truncate(len);
                }
            }
        }
        _ => {}
    }
}

/// A unified line diff, cut at [`TEXT_DIFF_LIMIT`].
fn text_diff(primary: &str, candidate: &str) -> String {
    let diff = similar::TextDiff::configure()
        .algorithm(similar::Algorithm::Myers)
        .timeout(std::time::Duration::from_millis(500))
        .diff_lines(primary, candidate);
    let mut out = diff
        .unified_diff()
        .context_radius(3)
        .header("primary", "candidate")
        .to_string();
    if out.len() > TEXT_DIFF_LIMIT {
        let cut = out[..TEXT_DIFF_LIMIT]
            .rfind('\n')
            .map_or(TEXT_DIFF_LIMIT, |i| i + 1);
        out.truncate(cut);
        out.push_str("… (diff truncated)\n");
    }
    out
}

#[cfg(test)]
mod tests;
