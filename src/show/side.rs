//! The two bodies of a mismatch side by side: the primary's on the left,
//! the candidate's on the right, aligned line by line by a line diff
//! (`similar`, Myers), so that a changed value sits on the same row as the
//! value it replaced.
//!
//! A JSON body is pretty-printed with its object keys sorted, whatever
//! order it was stored in: the comparison reads objects without regard to
//! key order, so sorting puts the same key on the same row on both sides
//! and leaves only what the verdict counts as different. A body of JSON
//! Lines is each line pretty-printed so; any other text is shown as it is.
//!
//! The gutter between the columns marks each row as `sdiff` does, so the
//! view reads without colour: ` ` the same, `|` changed, `<` only the
//! primary has it, `>` only the candidate. With colour the primary's
//! differing lines are red and the candidate's green. Long lines wrap
//! within their column; runs of equal lines are cut to a few lines of
//! context around each change.

use serde_json::Value;
use similar::{Algorithm, DiffTag, TextDiff};

use super::table::{printable, width_of, wrap, Paint};

/// Equal lines kept before and after a change.
const CONTEXT: usize = 3;
/// What the diff may take before it settles for a coarser alignment.
const DIFF_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);
/// The gutter: a space, the mark, a space.
const GUTTER: usize = 3;

/// How a body was made readable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    Empty,
    Json,
    JsonLines,
    Text,
    /// Not UTF-8: the API serves it in base64, which says nothing to a reader.
    Binary,
}

impl Form {
    pub fn describe(self) -> &'static str {
        match self {
            Form::Empty => "empty",
            Form::Json => "JSON, keys sorted",
            Form::JsonLines => "JSON Lines, keys sorted",
            Form::Text => "text",
            Form::Binary => "binary",
        }
    }
}

/// A body as the API serves it (`{"encoding", "data", "truncated"}`) as
/// text to compare line by line, and what it was.
pub fn readable(body: &Value) -> (String, Form) {
    let data = body["data"].as_str().unwrap_or("");
    let truncated = body["truncated"] == true;
    let (text, form) = if body["encoding"] == "base64" {
        let note = format!("({} base64 characters of binary data)", data.len());
        (note, Form::Binary)
    } else if data.is_empty() {
        (String::new(), Form::Empty)
    } else if let Ok(value) = serde_json::from_str::<Value>(data) {
        (pretty(&value), Form::Json)
    } else if let Some(lines) = json_lines(data) {
        (lines, Form::JsonLines)
    } else {
        (data.to_string(), Form::Text)
    };
    match truncated {
        true => (
            text + "\n(cut where the store's size limit was reached)",
            form,
        ),
        false => (text, form),
    }
}

/// Each non-empty line pretty-printed, if every one is JSON.
fn json_lines(data: &str) -> Option<String> {
    let lines = data
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<Value>(l).ok().map(|v| pretty(&v)))
        .collect::<Option<Vec<_>>>()?;
    (lines.len() > 1).then(|| lines.join("\n"))
}

/// Pretty JSON with every object's keys in sorted order (built sorted
/// explicitly, so that the result does not hang on how serde_json's map
/// keeps its keys in this build).
fn pretty(value: &Value) -> String {
    fn sorted(value: &Value) -> Value {
        match value {
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                Value::Object(
                    entries
                        .into_iter()
                        .map(|(k, v)| (k.clone(), sorted(v)))
                        .collect(),
                )
            }
            Value::Array(items) => Value::Array(items.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    serde_json::to_string_pretty(&sorted(value)).unwrap_or_else(|_| value.to_string())
}

/// How a row of the two columns compares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mark {
    Same,
    Changed,
    PrimaryOnly,
    CandidateOnly,
}

impl Mark {
    fn symbol(self) -> char {
        match self {
            Mark::Same => ' ',
            Mark::Changed => '|',
            Mark::PrimaryOnly => '<',
            Mark::CandidateOnly => '>',
        }
    }
}

/// One row: a line of each side (or none) and how they compare.
struct Row<'a> {
    primary: Option<&'a str>,
    candidate: Option<&'a str>,
    mark: Mark,
}

/// The rows of the two texts aligned: equal lines side by side; within a
/// changed stretch, the n-th line of one side beside the n-th of the other,
/// the longer side's rest alone.
fn rows<'a>(primary: &'a str, candidate: &'a str) -> Vec<Row<'a>> {
    let diff = TextDiff::configure()
        .algorithm(Algorithm::Myers)
        .timeout(DIFF_TIMEOUT)
        .diff_lines(primary, candidate);
    let (old, new) = (diff.old_slices(), diff.new_slices());
    let mut rows = Vec::new();
    let (mut removed, mut added): (Vec<&str>, Vec<&str>) = (Vec::new(), Vec::new());
    let flush = |rows: &mut Vec<Row<'a>>, removed: &mut Vec<&'a str>, added: &mut Vec<&'a str>| {
        for i in 0..removed.len().max(added.len()) {
            let (p, c) = (removed.get(i).copied(), added.get(i).copied());
            let mark = match (p, c) {
                (Some(_), Some(_)) => Mark::Changed,
                (Some(_), None) => Mark::PrimaryOnly,
                _ => Mark::CandidateOnly,
            };
            rows.push(Row {
                primary: p,
                candidate: c,
                mark,
            });
        }
        removed.clear();
        added.clear();
    };
    for op in diff.ops() {
        let (tag, old_range, new_range) = op.as_tag_tuple();
        match tag {
            DiffTag::Equal => {
                flush(&mut rows, &mut removed, &mut added);
                for (p, c) in old[old_range].iter().zip(&new[new_range]) {
                    rows.push(Row {
                        primary: Some(p),
                        candidate: Some(c),
                        mark: Mark::Same,
                    });
                }
            }
            DiffTag::Delete | DiffTag::Insert | DiffTag::Replace => {
                removed.extend_from_slice(&old[old_range]);
                added.extend_from_slice(&new[new_range]);
            }
        }
    }
    flush(&mut rows, &mut removed, &mut added);
    rows
}

/// Which rows to show: every changed one and [`CONTEXT`] rows each side
/// of it; `None` stands for a run of hidden equal rows.
fn shown(rows: &[Row<'_>]) -> Vec<Option<usize>> {
    let near_change = |i: usize| {
        let from = i.saturating_sub(CONTEXT);
        let to = (i + CONTEXT + 1).min(rows.len());
        rows[from..to].iter().any(|r| r.mark != Mark::Same)
    };
    let mut out = Vec::new();
    for i in 0..rows.len() {
        match (near_change(i), out.last()) {
            (true, _) => out.push(Some(i)),
            (false, Some(None)) => {}
            (false, _) => out.push(None),
        }
    }
    out
}

/// The two texts in two columns fitting `width`, aligned line by line,
/// marked in the gutter and, with `color`, painted.
pub fn side_by_side(primary: &str, candidate: &str, width: usize, color: bool) -> String {
    let column = (width.saturating_sub(GUTTER) / 2).max(10);
    let rows = rows(primary, candidate);
    if rows.iter().all(|r| r.mark == Mark::Same) {
        // Nothing to set side by side: the difference is elsewhere.
        return match rows.len() {
            0 => "both empty\n".to_string(),
            n => format!("the same on both sides ({n} lines)\n"),
        };
    }
    let mut out = String::new();
    let title = |t: &str| Paint::Bold.apply(t, color);
    let pad = " ".repeat(column.saturating_sub(width_of("PRIMARY")));
    out.push_str(&format!(
        "{}{pad}   {}\n",
        title("PRIMARY"),
        title("CANDIDATE")
    ));
    let shown = shown(&rows);
    let hidden_before = |k: usize| {
        let next = shown[k + 1..].iter().flatten().next().copied();
        let previous = shown[..k]
            .iter()
            .rev()
            .flatten()
            .next()
            .map_or(0, |p| p + 1);
        next.unwrap_or(rows.len()) - previous
    };
    for (k, entry) in shown.iter().enumerate() {
        let Some(i) = entry else {
            let note = format!("··· {} equal lines ···", hidden_before(k));
            out.push_str(&Paint::Dim.apply(&note, color));
            out.push('\n');
            continue;
        };
        let row = &rows[*i];
        let side = |line: Option<&str>| {
            let text = printable(line.unwrap_or("").trim_end_matches(['\n', '\r']));
            wrap(&text, column)
        };
        let (left, right) = (side(row.primary), side(row.candidate));
        let (left_paint, right_paint) = match row.mark {
            Mark::Same => (Paint::Plain, Paint::Plain),
            _ => (Paint::Red, Paint::Green),
        };
        for n in 0..left.len().max(right.len()) {
            let l = left.get(n).map_or("", String::as_str);
            let r = right.get(n).map_or("", String::as_str);
            let pad = " ".repeat(column - width_of(l));
            let line = format!(
                "{}{pad} {} {}",
                left_paint.apply(l, color),
                row.mark.symbol(),
                right_paint.apply(r, color)
            );
            out.push_str(line.trim_end_matches(' '));
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body(data: &str) -> Value {
        json!({"encoding": "utf-8", "data": data, "truncated": false})
    }

    #[test]
    fn json_is_pretty_printed_with_sorted_keys() {
        let (text, form) = readable(&body(r#"{"z":1,"a":{"y":[1.50,2],"b":null}}"#));
        assert_eq!(form, Form::Json);
        let expected = "{\n  \"a\": {\n    \"b\": null,\n    \"y\": [\n      1.50,\n      2\n    ]\n  },\n  \"z\": 1\n}";
        assert_eq!(text, expected);
        let (text, form) = readable(&body("{\"b\":1,\"a\":2}\n{\"c\":3}\n"));
        assert_eq!(form, Form::JsonLines);
        assert!(
            text.starts_with("{\n  \"a\": 2,\n  \"b\": 1\n}\n{"),
            "{text}"
        );
        assert_eq!(readable(&body("<html>")).1, Form::Text);
        assert_eq!(readable(&body("")).1, Form::Empty);
        let binary = json!({"encoding": "base64", "data": "AAEC", "truncated": true});
        let (text, form) = readable(&binary);
        assert_eq!(form, Form::Binary);
        assert!(text.contains("4 base64 characters") && text.contains("size limit"));
        // Whatever the shape, something is shown.
        assert_eq!(readable(&json!(7)).1, Form::Empty);
    }

    #[test]
    fn a_changed_value_sits_beside_the_one_it_replaced() {
        let (p, _) = readable(&body(r#"{"id":7,"name":"item","price":3}"#));
        let (c, _) = readable(&body(r#"{"price":3,"name":"?","id":7,"tags":[]}"#));
        let out = side_by_side(&p, &c, 80, false);
        let lines: Vec<&str> = out.lines().collect();
        let name = lines.iter().find(|l| l.contains("\"item\"")).unwrap();
        assert!(name.contains("\"?\""), "{out}");
        assert_eq!(name.chars().nth(39), Some('|'), "{out}");
        let tags = lines.iter().find(|l| l.contains("tags")).unwrap();
        assert_eq!(tags.chars().nth(39), Some('>'), "{out}");
        let id = lines.iter().find(|l| l.contains("\"id\"")).unwrap();
        assert_eq!(id.matches("\"id\": 7").count(), 2, "{out}");
        assert_eq!(id.chars().nth(39), Some(' '), "{out}");
        // The candidate's column starts at the same place on every row.
        for line in &lines[1..] {
            if line.chars().count() > 41 {
                assert_eq!(line.chars().nth(40), Some(' '), "{line:?}");
            }
        }
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn colour_marks_the_sides_and_only_the_changed_rows() {
        let out = side_by_side("a\nb\nc\n", "a\nB\nc\n", 40, true);
        assert!(out.contains("\x1b[31mb\x1b[0m"), "{out:?}");
        assert!(out.contains("\x1b[32mB\x1b[0m"), "{out:?}");
        assert!(!out.contains("\x1b[31ma"), "{out:?}");
    }

    #[test]
    fn lines_only_one_side_has_are_marked_with_its_direction() {
        let out = side_by_side("a\nx\nb\n", "a\nb\ny\n", 40, false);
        let marks: Vec<char> = out
            .lines()
            .skip(1)
            .map(|l| l.chars().nth(19).unwrap_or(' '))
            .collect();
        assert_eq!(marks, [' ', '<', ' ', '>'], "{out}");
    }

    #[test]
    fn long_lines_wrap_in_their_column_and_long_equal_runs_are_cut() {
        let long = "x".repeat(50);
        let out = side_by_side(&long, "short", 40, false);
        assert_eq!(out.lines().count(), 1 + 3, "{out}");
        assert!(out.lines().all(|l| l.chars().count() <= 40), "{out}");
        let same: String = (0..40).map(|i| format!("line {i}\n")).collect();
        let changed = same.replace("line 20\n", "line twenty\n");
        let out = side_by_side(&same, &changed, 60, false);
        assert!(out.contains("··· 17 equal lines ···"), "{out}");
        assert!(out.contains("··· 16 equal lines ···"), "{out}");
        assert!(
            out.contains("line twenty") && out.contains("line 17"),
            "{out}"
        );
        let hidden = |l: &str| l.starts_with("line 16 ") || l.starts_with("line 24 ");
        assert!(!out.lines().any(hidden), "{out}");
    }

    #[test]
    fn equal_bodies_are_said_to_be_equal() {
        assert_eq!(
            side_by_side("a\nb\n", "a\nb\n", 40, true),
            "the same on both sides (2 lines)\n"
        );
        assert_eq!(side_by_side("", "", 40, false), "both empty\n");
    }

    #[test]
    fn control_characters_in_a_body_are_shown_escaped() {
        let out = side_by_side("\x1b[2Jboom\ttab", "fine", 60, false);
        assert!(
            !out.contains('\x1b') && out.contains("\\u{1b}[2Jboom\\ttab"),
            "{out}"
        );
    }
}
