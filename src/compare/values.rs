//! Bodies as JSON values, for the structural comparison: JSON (Python's
//! NaN tokens allowed, with a reason), JSON Lines (an array of the lines'
//! values, so paths start with the line's number) and forms (an object of
//! arrays). A body that does not parse says why in the reasons.

use serde_json::Value;

use super::json;

/// Whether a text body is JSON Lines: two or more lines that are not blank,
/// each an object or array (a cheap look, confirmed when the lines are
/// parsed). One line of JSON sent as text stays text.
pub(super) fn json_lines(body: &[u8]) -> bool {
    let mut lines = body
        .split(|&b| b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty());
    let mut count = 0;
    lines.all(|line| {
        count += 1;
        matches!(
            (line.first(), line.last()),
            (Some(b'{'), Some(b'}')) | (Some(b'['), Some(b']'))
        )
    }) && count >= 2
}

/// Both bodies as JSON, or `None` (with the reasons) if either is not.
pub(super) fn parse_json_pair(
    p: &[u8],
    c: &[u8],
    reasons: &mut Vec<String>,
    unparsed: &mut Vec<&'static str>,
) -> Option<(Value, Value)> {
    let mut side = |bytes: &[u8], name: &'static str| match json::parse(bytes) {
        Ok(parsed) => {
            if parsed.non_standard {
                reasons.push(format!(
                    "{name}: NaN or Infinity tokens (not JSON; Python writes them) read as strings"
                ));
            }
            Some(parsed.value)
        }
        Err(e) => {
            reasons.push(format!(
                "{name}: body is not valid JSON ({e}); compared as text"
            ));
            unparsed.push(name);
            None
        }
    };
    let pv = side(p, "primary");
    let cv = side(c, "candidate");
    Some((pv?, cv?))
}

/// Both JSON Lines bodies as arrays of their lines' values (blank lines
/// skipped), so paths start with the line's number; `None` (with the
/// reasons) if a line of either is not JSON.
pub(super) fn parse_json_lines_pair(
    p: &[u8],
    c: &[u8],
    reasons: &mut Vec<String>,
    unparsed: &mut Vec<&'static str>,
) -> Option<(Value, Value)> {
    let mut side = |bytes: &[u8], name: &'static str| {
        let mut lines = Vec::new();
        let body = bytes.split(|&b| b == b'\n').map(<[u8]>::trim_ascii);
        for (number, line) in body.enumerate().filter(|(_, l)| !l.is_empty()) {
            match json::parse(line) {
                Ok(parsed) => {
                    if parsed.non_standard {
                        reasons.push(format!(
                            "{name}: line {}: NaN or Infinity tokens (not JSON; Python writes them) read as strings",
                            number + 1
                        ));
                    }
                    lines.push(parsed.value);
                }
                Err(e) => {
                    reasons.push(format!(
                        "{name}: line {} is not valid JSON ({e}); compared as text",
                        number + 1
                    ));
                    unparsed.push(name);
                    return None;
                }
            }
        }
        Some(Value::Array(lines))
    };
    let pv = side(p, "primary");
    let cv = side(c, "candidate");
    Some((pv?, cv?))
}

/// A form body as an object of arrays: `a=1&a=2&b=x` is `{"a":["1","2"],"b":["x"]}`.
pub(super) fn form_as_json(body: &[u8]) -> Value {
    let mut map = serde_json::Map::new();
    for (key, value) in form_urlencoded::parse(body) {
        let entry = map
            .entry(key.into_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = entry {
            values.push(Value::String(value.into_owned()));
        }
    }
    Value::Object(map)
}
