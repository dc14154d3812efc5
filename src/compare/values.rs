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
    both(p, c, |bytes, side| {
        let value = parse_one(bytes, side, None, reasons);
        if value.is_none() {
            unparsed.push(side);
        }
        value
    })
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
    both(p, c, |bytes, side| {
        let lines = bytes.split(|&b| b == b'\n').map(<[u8]>::trim_ascii);
        let parsed: Option<Vec<Value>> = lines
            .enumerate()
            .filter(|(_, line)| !line.is_empty())
            .map(|(number, line)| parse_one(line, side, Some(number + 1), reasons))
            .collect();
        if parsed.is_none() {
            unparsed.push(side);
        }
        parsed.map(Value::Array)
    })
}

/// Each side parsed by `side`, the primary first (so reasons read in that
/// order); `None` if either fails.
fn both(
    p: &[u8],
    c: &[u8],
    mut side: impl FnMut(&[u8], &'static str) -> Option<Value>,
) -> Option<(Value, Value)> {
    let pv = side(p, "primary");
    let cv = side(c, "candidate");
    Some((pv?, cv?))
}

/// One JSON text of `side` (`line` numbers it in a JSON Lines body), with
/// its NaN tokens or its failure said in the reasons.
fn parse_one(
    bytes: &[u8],
    side: &str,
    line: Option<usize>,
    reasons: &mut Vec<String>,
) -> Option<Value> {
    let (subject, at) = match line {
        Some(n) => (format!("line {n}"), format!("line {n}: ")),
        None => ("body".to_string(), String::new()),
    };
    match json::parse(bytes) {
        Ok(parsed) => {
            if parsed.non_standard {
                reasons.push(format!(
                    "{side}: {at}NaN or Infinity tokens (not JSON; Python writes them) read as strings"
                ));
            }
            Some(parsed.value)
        }
        Err(e) => {
            reasons.push(format!(
                "{side}: {subject} is not valid JSON ({e}); compared as text"
            ));
            None
        }
    }
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
