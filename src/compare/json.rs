//! JSON bodies: parsing that tolerates Python's NaN and Infinity, canonical
//! numbers, and the normalisation that applies the rules to one side.
//!
//! Normalisation works on each side alone and is idempotent; then
//! `reconcile` applies the rules that need both sides (number tolerance,
//! null against empty, numeric strings against numbers, and the pair rules
//! at their paths). Two bodies match
//! exactly when the resulting [`normal_forms`] are equal. One exception: a rule
//! that names an array index (`/list/0`) applies to the index as received,
//! so normalising twice can reach another element; each side is normalised
//! once, so verdicts are not affected. Exponents beyond the i64 range are
//! compared as written (a false mismatch at worst, never a false match).

use serde_json::{Map, Number, Value};

use super::reconcile::reconcile;
use super::rules::{Action, Cursor, MaskKind, Rules};
use crate::time::canonical_instant;

/// A body that parsed, and whether it needed Python's non-standard tokens.
#[derive(Debug)]
pub struct Parsed {
    pub value: Value,
    pub non_standard: bool,
}

/// Parses a JSON body. `NaN`, `Infinity` and `-Infinity` (which Python's json
/// module writes by default) are read as the strings of the same name.
/// About how many values a JSON text holds (separators and openings outside
/// strings, plus one), found in one pass without parsing: what a structural
/// diff of it would cost.
pub fn count_values(bytes: &[u8]) -> usize {
    let (mut count, mut in_string, mut escaped) = (1, false, false);
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else {
            match b {
                b'"' => in_string = true,
                b',' | b'[' | b'{' => count += 1,
                _ => {}
            }
        }
    }
    count
}

pub fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Ok(Parsed {
            value,
            non_standard: false,
        }),
        Err(first) => match quote_non_standard_tokens(bytes) {
            Some(rewritten) => serde_json::from_slice(&rewritten)
                .map(|value| Parsed {
                    value,
                    non_standard: true,
                })
                .map_err(|e| e.to_string()),
            None => Err(first.to_string()),
        },
    }
}

/// Quotes bare NaN/Infinity tokens outside strings; `None` if there are none.
fn quote_non_standard_tokens(bytes: &[u8]) -> Option<Vec<u8>> {
    const TOKENS: [&[u8]; 3] = [b"-Infinity", b"Infinity", b"NaN"];
    let mut out = Vec::with_capacity(bytes.len() + 16);
    let (mut in_string, mut escaped, mut found) = (false, false, false);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if in_string {
            out.push(b);
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            i += 1;
            continue;
        }
        if b == b'"' {
            in_string = true;
        }
        if let Some(token) = TOKENS.iter().find(|t| bytes[i..].starts_with(t)) {
            out.push(b'"');
            out.extend_from_slice(token);
            out.push(b'"');
            i += token.len();
            found = true;
            continue;
        }
        out.push(b);
        i += 1;
    }
    found.then_some(out)
}

/// The one spelling of a JSON number's value: `1.0`, `1`, `1e0` and `10e-1`
/// are all `1`; `1e2` is `100`; big integers keep every digit.
pub fn canonical_number(text: &str) -> String {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], &unsigned[at + 1..]),
        None => (unsigned, "0"),
    };
    let Ok(exponent) = exponent.parse::<i64>() else {
        return text.to_string();
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    // value = digits × 10^(exponent − frac.len()); zeros at either end of the
    // digits are dropped, the trailing ones moving into the exponent.
    let digits: String = int.chars().chain(frac.chars()).collect();
    let significant = digits.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    if trimmed.is_empty() {
        return "0".to_string();
    }
    // In i128 an i64 exponent plus a body length cannot overflow.
    let shift = (significant.len() - trimmed.len()) as i128 - frac.len() as i128;
    // With `point` the place of the decimal point: value = 0.<trimmed> × 10^point.
    let point = i128::from(exponent) + shift + trimmed.len() as i128;
    let n = trimmed.len() as i128;
    let sign = if negative { "-" } else { "" };
    if (n..=64).contains(&point) {
        format!("{sign}{trimmed}{}", "0".repeat((point - n) as usize))
    } else if point > 0 && point < n {
        let (whole, fraction) = trimmed.split_at(point as usize);
        format!("{sign}{whole}.{fraction}")
    } else if point <= 0 && point > -6 {
        format!("{sign}0.{}{trimmed}", "0".repeat((-point) as usize))
    } else {
        let (first, rest) = trimmed.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        format!("{sign}{first}{dot}{rest}e{}", point - 1)
    }
}

/// A quick, allocation-free "already canonical" for the common shapes (plain
/// integers and short decimals); `false` only means "canonicalise to be sure".
fn is_canonical(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let b = digits.as_bytes();
    if b.is_empty() || b.len() > 40 || !b.iter().all(|c| c.is_ascii_digit() || *c == b'.') {
        return false;
    }
    match digits.split_once('.') {
        None => (b[0] != b'0' || b.len() == 1) && text != "-0",
        Some((int, frac)) => {
            // "0.05" is canonical; "0.0000005" is written 5e-7.
            let leading = frac.len() - frac.trim_start_matches('0').len();
            let int_ok = if int == "0" {
                leading <= 5
            } else {
                !int.is_empty() && !int.starts_with('0')
            };
            int_ok && !frac.is_empty() && !frac.ends_with('0') && !frac.contains('.')
        }
    }
}

fn number(text: &str) -> Option<Number> {
    serde_json::from_str(text).ok()
}

/// Whether a string is a JSON number, such as Django REST framework's
/// decimals ("12.50"), which a Go service would write as a number.
pub(super) fn numeric_string(s: &str) -> Option<Number> {
    let b = s.as_bytes();
    let first = *b.first()?;
    if !(first == b'-' || first.is_ascii_digit()) || s.len() > 64 {
        return None;
    }
    number(s)
}

impl MaskKind {
    /// Whether a text (a header value) is of this kind.
    pub fn accepts_text(&self, text: &str) -> bool {
        match self {
            MaskKind::Any | MaskKind::String => true,
            MaskKind::Number => numeric_string(text).is_some(),
            MaskKind::Uuid => is_uuid(text),
            MaskKind::Timestamp => canonical_instant(text).is_some(),
            MaskKind::Regex(re) => re.is_match(text),
        }
    }

    fn accepts(&self, value: &Value) -> bool {
        match (self, value) {
            (MaskKind::Any, _) => true,
            (MaskKind::Number, Value::Number(_)) => true,
            (MaskKind::String, Value::String(_)) => true,
            (MaskKind::Uuid, Value::String(s)) => is_uuid(s),
            (MaskKind::Timestamp, Value::String(s)) => canonical_instant(s).is_some(),
            (MaskKind::Regex(re), Value::String(s)) => re.is_match(s),
            _ => false,
        }
    }
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        })
}

/// A value in normal form for these rules. An ignored root becomes null.
pub fn normalize(mut value: Value, rules: &Rules) -> Value {
    let cursors: Vec<Cursor> = rules.paths.iter().map(|(p, _)| Cursor::start(p)).collect();
    let walk = Walk { rules };
    if walk.visit(&mut value, &cursors) {
        value
    } else {
        Value::Null
    }
}

struct Walk<'r> {
    rules: &'r Rules,
}

impl Walk<'_> {
    fn advance(&self, cursors: &[Cursor], segment: &str) -> Vec<Cursor> {
        self.rules
            .paths
            .iter()
            .zip(cursors)
            .map(|((pattern, _), c)| c.advance(pattern, segment))
            .collect()
    }

    /// Normalises `value` in place; `false` means "remove it" (ignored).
    fn visit(&self, value: &mut Value, cursors: &[Cursor]) -> bool {
        let (mut unordered, mut keyed, mut mask) = (false, None, None);
        for ((pattern, action), cursor) in self.rules.paths.iter().zip(cursors) {
            if !cursor.accepts(pattern) {
                continue;
            }
            match action {
                Action::Ignore => return false,
                Action::Mask(kind) => mask = Some(kind),
                Action::Unordered => unordered = true,
                Action::Keyed(field) => keyed = Some(field.as_str()),
                // Applied when both sides are reconciled.
                Action::Pair(_) => {}
            }
        }
        if let Some(kind) = mask {
            // A null that may stand for a missing member stays null, so that
            // null_equals_missing can still pair it with an absent one.
            let null_as_missing = value.is_null() && self.rules.null_equals_missing;
            if kind.accepts(value) && !null_as_missing {
                *value = Value::String(kind.placeholder().to_string());
                return true;
            }
        }
        if let (Some(field), Value::Array(items)) = (keyed, &mut *value) {
            *value = Value::Object(by_key(std::mem::take(items), field, self.rules));
        }
        let track = !self.rules.paths.is_empty();
        match value {
            Value::Object(map) => {
                map.retain(|key, child| {
                    let kept = if track {
                        self.visit(child, &self.advance(cursors, key))
                    } else {
                        self.visit(child, cursors)
                    };
                    kept && !(self.rules.null_equals_missing && child.is_null())
                });
            }
            Value::Array(items) => {
                let mut index = 0usize;
                items.retain_mut(|child| {
                    let kept = if track {
                        self.visit(child, &self.advance(cursors, &index.to_string()))
                    } else {
                        self.visit(child, cursors)
                    };
                    index += 1;
                    kept
                });
                if unordered {
                    items.sort_by_cached_key(|item| item.to_string());
                }
            }
            Value::Number(n) => {
                if !is_canonical(n.as_str()) {
                    if let Some(c) = number(&canonical_number(n.as_str())) {
                        *n = c;
                    }
                }
            }
            Value::String(s) => {
                if self.rules.timestamps_as_instants {
                    if let Some(instant) = canonical_instant(s) {
                        *s = instant;
                        // A mask sees the value in either spelling: otherwise
                        // a second pass would mask what the first did not.
                        if let Some(kind) = mask {
                            if kind.accepts(value) {
                                *value = Value::String(kind.placeholder().to_string());
                            }
                        }
                        return true;
                    }
                }
            }
            Value::Null | Value::Bool(_) => {}
        }
        true
    }
}

/// An array of objects as an object keyed `field=value`, so that elements
/// pair up by identity rather than position. Elements without the field keep
/// their position as `#index`; a repeated key gets `#n` appended.
fn by_key(items: Vec<Value>, field: &str, rules: &Rules) -> Map<String, Value> {
    let mut out = Map::new();
    // How often each key came before, so a repeat finds its suffix at once
    // (a linear probe would make many repeats quadratic).
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (index, item) in items.into_iter().enumerate() {
        let base = match item.get(field) {
            // The key as the rules read it, so "1.0" pairs with 1 and a
            // +00:00 time with a Z one when those rules are on.
            Some(Value::String(s)) => match (
                rules
                    .timestamps_as_instants
                    .then(|| canonical_instant(s))
                    .flatten(),
                rules.numeric_strings.then(|| numeric_string(s)).flatten(),
            ) {
                (Some(instant), _) => format!("{field}={instant}"),
                (None, Some(n)) => format!("{field}={}", canonical_number(n.as_str())),
                (None, None) => format!("{field}={s}"),
            },
            Some(Value::Number(n)) => format!("{field}={}", canonical_number(n.as_str())),
            Some(other @ (Value::Bool(_) | Value::Null)) => format!("{field}={other}"),
            _ => format!("#{index}"),
        };
        let count = seen.entry(base.clone()).or_insert(0);
        *count += 1;
        let mut key = if *count == 1 {
            base.clone()
        } else {
            format!("{base}#{count}")
        };
        // A literal key such as "id=1#2" could still collide; step past it.
        while out.contains_key(&key) {
            *count += 1;
            key = format!("{base}#{count}");
        }
        out.insert(key, item);
    }
    out
}

/// The two normal forms a verdict compares: each side normalised alone, then
/// the candidate reconciled with the primary. A match means they are equal;
/// a mismatch's patch turns the first into the second.
pub fn normal_forms(primary: Value, candidate: Value, rules: &Rules) -> (Value, Value) {
    let p = normalize(primary, rules);
    let mut c = normalize(candidate, rules);
    reconcile(&p, &mut c, rules);
    (p, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_counted_outside_strings_only() {
        assert_eq!(count_values(b"1"), 1);
        assert_eq!(count_values(b"[1,2,3]"), 4);
        assert_eq!(count_values(br#"{"a":[1,{"b":2}],"c":"x,y[{"}"#), 6);
        assert_eq!(count_values(br#"["a\",b",1]"#), 3);
    }

    #[test]
    fn numbers_have_one_spelling() {
        let cases = [
            ("1", "1"),
            ("1.0", "1"),
            ("1.50", "1.5"),
            ("1e2", "100"),
            ("10e-1", "1"),
            ("0.000", "0"),
            ("-0", "0"),
            ("-0.0", "0"),
            ("0.001", "0.001"),
            ("0.0012e1", "0.012"),
            ("1e-7", "1e-7"),
            (
                "123456789012345678901234567890",
                "123456789012345678901234567890",
            ),
            ("1e70", "1e70"),
            (
                "1.5e63",
                "1500000000000000000000000000000000000000000000000000000000000000",
            ),
            ("1.5e64", "1.5e64"),
            ("0.1e-9223372036854775808", "1e-9223372036854775809"),
            ("10e9223372036854775807", "1e9223372036854775808"),
            ("12345678901234567890", "12345678901234567890"),
            ("1E+25", "10000000000000000000000000"),
            ("-2.5E-10", "-2.5e-10"),
            ("00012.3400", "12.34"),
            ("100", "100"),
        ];
        for (input, want) in cases {
            assert_eq!(canonical_number(input), want, "{input}");
            assert_eq!(canonical_number(want), want, "{want} must be a fixed point");
            // The quick check may say "not sure", never "canonical" wrongly.
            if is_canonical(input) {
                assert_eq!(input, want, "{input} is not canonical");
            }
        }
        for quick in ["0", "7", "-12", "1.5", "-0.5", "10.25", "0.000001"] {
            assert!(is_canonical(quick), "{quick}");
            assert_eq!(canonical_number(quick), quick);
        }
    }

    #[test]
    fn python_non_standard_tokens_parse_as_strings() {
        let parsed =
            parse(br#"{"a": NaN, "b": [Infinity, -Infinity], "c": "NaN inside"}"#).unwrap();
        assert!(parsed.non_standard);
        assert_eq!(parsed.value["a"], "NaN");
        assert_eq!(parsed.value["b"][1], "-Infinity");
        assert!(parse(b"{\"a\": nope}").is_err());
        assert!(!parse(b"{\"a\": 1}").unwrap().non_standard);
    }

    #[test]
    fn many_repeated_keys_stay_linear_and_distinct() {
        let items: Vec<Value> = (0..50_000)
            .map(|i| serde_json::json!({"id": 1, "n": i}))
            .collect();
        let map = by_key(items, "id", &Rules::default());
        assert_eq!(map.len(), 50_000);
        assert!(
            map.contains_key("id=1")
                && map.contains_key("id=1#2")
                && map.contains_key("id=1#50000")
        );
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(parse(deep.as_bytes()).unwrap_err().contains("recursion"));
    }
}
