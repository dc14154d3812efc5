//! From a difference to a rule: for each differing JSON path (and header) of
//! one stored mismatch, the comparison rules that would forgive it, the
//! narrowest first, each as a TOML snippet for the endpoint's route or for
//! the whole config. Pure: two bodies and a patch in, suggestions out.
//!
//! "Narrowest" means the rule covers no more than what was seen to differ:
//! a path pattern only generalises array indexes (never `**`, never a
//! sibling key), a kind mask names the kind both values share, and
//! `ignore` (any difference at the path) always comes last.

use serde::Serialize;
use serde_json::Value;

use crate::compare::observed_pattern;
use crate::compare::rules::MaskKind;

/// One way to forgive one difference.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Suggestion {
    /// The difference: a JSON Pointer into the bodies as the patch names it,
    /// or `header:<name>`.
    pub path: String,
    /// The pattern the rule names (array indexes as `*`), or the header name.
    pub pattern: String,
    /// The config key the rule sets (`mask`, `ignore`, `unordered`, …).
    pub rule: &'static str,
    /// What the rule forgives, in a sentence.
    pub why: String,
    /// The rule for this endpoint alone: a `[[route]]` with its
    /// `[route.compare]`; absent for endpoints no route can name (`other`).
    pub endpoint_toml: Option<String>,
    /// The rule for every endpoint, under `[compare]`.
    pub global_toml: String,
}

/// A differing header as the verdict names it.
pub struct HeaderDifference<'a> {
    pub name: &'a str,
    pub primary: Option<&'a str>,
    pub candidate: Option<&'a str>,
}

/// Every suggestion for one mismatch: per body path of the patch (in its
/// order), then per header.
pub fn suggest(
    endpoint: &str,
    bodies: Option<(&Value, &Value)>,
    patch_paths: &[String],
    headers: &[HeaderDifference<'_>],
) -> Vec<Suggestion> {
    let mut out = Vec::new();
    if let Some((primary, candidate)) = bodies {
        let mut seen = Vec::new();
        for pointer in patch_paths {
            if seen.contains(pointer) {
                continue;
            }
            seen.push(pointer.clone());
            for (rule, pattern, value, why) in body_rules(pointer, primary, candidate) {
                out.push(suggestion(endpoint, pointer, &pattern, rule, &value, why));
            }
        }
    }
    for header in headers {
        let pointer = format!("header:{}", header.name);
        for (rule, value, why) in header_rules(header) {
            out.push(suggestion(
                endpoint,
                &pointer,
                header.name,
                rule,
                &value,
                why,
            ));
        }
    }
    out
}

/// A rule's config line: its key and its value as TOML.
type RuleLine = (&'static str, String, String, String);

/// The rules for one body path, narrowest first: (key, pattern, TOML value, why).
fn body_rules(pointer: &str, primary: &Value, candidate: &Value) -> Vec<RuleLine> {
    let Some(pattern) = pattern_of(pointer, primary, candidate) else {
        return Vec::new();
    };
    let list = || format!("[{}]", quoted(&pattern));
    let mut rules: Vec<RuleLine> = Vec::new();
    if let Some(parent) = reordered_parent(pointer, primary, candidate) {
        if let Some(parent_pattern) = pattern_of(&parent, primary, candidate) {
            rules.push((
                "unordered",
                parent_pattern.clone(),
                format!("[{}]", quoted(&parent_pattern)),
                format!("{parent_pattern} holds the same items on both sides, in another order"),
            ));
        }
    }
    match (primary.pointer(pointer), candidate.pointer(pointer)) {
        (None, Some(_)) => rules.push((
            "candidate_may_add",
            pattern.clone(),
            list(),
            format!("only the candidate sends {pattern}; still compared where both do"),
        )),
        (Some(_), None) => rules.push((
            "candidate_may_omit",
            pattern.clone(),
            list(),
            format!("the candidate may leave out {pattern}; still compared where both send it"),
        )),
        (Some(a), Some(b)) => rules.extend(value_rules(&pattern, a, b)),
        (None, None) => {}
    }
    rules.push((
        "ignore",
        pattern.clone(),
        list(),
        format!("{pattern} is not compared at all"),
    ));
    rules
}

/// The rules for two differing values at one pattern, narrowest first.
fn value_rules(pattern: &str, a: &Value, b: &Value) -> Vec<RuleLine> {
    let mask = |kind: &str, why: String| {
        (
            "mask",
            pattern.to_string(),
            format!("{{ {} = {} }}", quoted(pattern), quoted(kind)),
            why,
        )
    };
    let mut rules = Vec::new();
    let both = |kind: &MaskKind| match (a, b) {
        (Value::String(x), Value::String(y)) => kind.accepts_text(x) && kind.accepts_text(y),
        _ => false,
    };
    if both(&MaskKind::Uuid) {
        rules.push(mask(
            "uuid",
            format!("{pattern} is a UUID on both sides, equal whatever its value"),
        ));
    } else if both(&MaskKind::Timestamp) {
        rules.push(mask(
            "timestamp",
            format!("{pattern} is a date-time on both sides, equal whatever its value"),
        ));
    }
    match (a, b) {
        (Value::Number(_), Value::String(s)) | (Value::String(s), Value::Number(_))
            if MaskKind::Number.accepts_text(s) =>
        {
            rules.push((
                "numeric_strings",
                pattern.to_string(),
                "true".into(),
                "a number and the same number as a string are equal (for every path of the scope)"
                    .into(),
            ));
        }
        (Value::Number(_), Value::Number(_)) => {
            rules.push(mask(
                "number",
                format!("{pattern} is a number on both sides, equal whatever its value"),
            ));
        }
        (Value::String(_), Value::String(_)) if rules.is_empty() => {
            rules.push(mask(
                "string",
                format!("{pattern} is a string on both sides, equal whatever its value"),
            ));
        }
        (Value::Array(items), other) | (other, Value::Array(items))
            if items.len() == 1 && !other.is_array() && items[0] == *other =>
        {
            rules.push((
                "scalar_as_array",
                pattern.to_string(),
                format!("[{}]", quoted(pattern)),
                format!("{pattern}: a value and a one-item array of it are equal"),
            ));
        }
        _ => {}
    }
    rules
}

/// The rules for one differing header, narrowest first: (key, TOML value, why).
fn header_rules(h: &HeaderDifference<'_>) -> Vec<(&'static str, String, String)> {
    let name = h.name.to_ascii_lowercase();
    let mut rules = Vec::new();
    if let (Some(a), Some(b)) = (h.primary, h.candidate) {
        let kind = [
            ("uuid", MaskKind::Uuid),
            ("timestamp", MaskKind::Timestamp),
            ("number", MaskKind::Number),
        ]
        .into_iter()
        .find(|(_, kind)| kind.accepts_text(a) && kind.accepts_text(b))
        .map(|(text, _)| text)
        .or_else(|| {
            (httpdate::parse_http_date(a).is_ok() && httpdate::parse_http_date(b).is_ok())
                .then_some("http-date")
        });
        if let Some(kind) = kind {
            rules.push((
                "header_mask",
                format!("{{ {} = {} }}", quoted(&name), quoted(kind)),
                format!("the {name} header is a {kind} on both sides, equal whatever its value"),
            ));
        }
    }
    rules.push((
        "ignore_headers",
        format!("[{}]", quoted(&name)),
        format!("the {name} header is not compared at all"),
    ));
    rules
}

fn suggestion(
    endpoint: &str,
    pointer: &str,
    pattern: &str,
    rule: &'static str,
    value: &str,
    why: String,
) -> Suggestion {
    let line = format!("{rule} = {value}\n");
    Suggestion {
        path: pointer.to_string(),
        pattern: pattern.to_string(),
        rule,
        why,
        endpoint_toml: nameable(endpoint).then(|| {
            format!(
                "# If the config has a route with this match, add the rule to its [route.compare].\n\
                 [[route]]\nmatch = {}\n[route.compare]\n{line}",
                quoted(endpoint)
            )
        }),
        global_toml: format!("[compare]\n{line}"),
    }
}

/// Whether a route's `match` can name the endpoint: `METHOD /path`, not
/// the overflow bucket `other`.
fn nameable(endpoint: &str) -> bool {
    endpoint
        .split_once(' ')
        .is_some_and(|(method, path)| !method.is_empty() && path.starts_with('/'))
}

/// The pattern of a pointer as both bodies show it.
fn pattern_of(pointer: &str, primary: &Value, candidate: &Value) -> Option<String> {
    observed_pattern(pointer, [Some(primary), Some(candidate)])
}

/// The pointer's parent when it is an array on both sides holding the same
/// items in another order.
fn reordered_parent(pointer: &str, primary: &Value, candidate: &Value) -> Option<String> {
    let (parent, _) = pointer.rsplit_once('/')?;
    let (Some(Value::Array(a)), Some(Value::Array(b))) =
        (primary.pointer(parent), candidate.pointer(parent))
    else {
        return None;
    };
    if a.len() != b.len() || a == b {
        return None;
    }
    let mut left: Vec<String> = a.iter().map(Value::to_string).collect();
    let mut right: Vec<String> = b.iter().map(Value::to_string).collect();
    left.sort();
    right.sort();
    (left == right).then(|| parent.to_string())
}

/// A TOML basic string.
fn quoted(text: &str) -> String {
    toml::Value::String(text.to_string()).to_string()
}

#[cfg(test)]
mod tests;
