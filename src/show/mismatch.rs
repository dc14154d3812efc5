//! `show mismatch ID`: one stored mismatch (`GET /api/v1/mismatches/{id}`)
//! for a reader: the request line and headers (and the candidate's own
//! request where a rewrite changed it), both statuses and latencies, the
//! response headers aligned by name with the differing ones marked, the
//! two bodies side by side, the differing JSON paths, and the curl
//! commands (`…/curl`) that send the request to each backend again.
//!
//! Header marks: `!` differs and the comparison counted it (it is in the
//! verdict's headers); `~` differs but the rules ignore it (a mask, a
//! header left out of the comparison), so the reader can tell noise from
//! the difference.

use serde_json::Value;

use super::side::{readable, side_by_side, Form};
use super::table::{printable, width_of, Cell, Column, Paint, Table};
use super::{instant, millis, text, Layout};

/// Lines of a request body shown; the rest is counted.
const REQUEST_BODY_LINES: usize = 40;

/// The mismatch and its curl commands as text fitting `layout`.
pub fn render(detail: &Value, curl: Option<&Value>, layout: Layout) -> String {
    let color = layout.color;
    let bold = |t: &str| Paint::Bold.apply(t, color);
    let mut out = String::new();
    if detail.get("id").is_none() && detail.get("verdict").is_none() {
        // Something else answered (the proxy's port, another service).
        out.push_str("note: the answer has no id and no verdict: is --report-url the report API's address?\n");
    }
    out.push_str(&format!(
        "{} {}  at {} UTC  on {}  served by {}\n",
        bold("mismatch"),
        printable(&text(&detail["id"])),
        instant(&text(&detail["at"])),
        printable(&text(&detail["instance"])),
        printable(&text(&detail["served_by"])),
    ));
    out.push_str(&format!(
        "endpoint {}  group {}\n\n",
        printable(&text(&detail["endpoint"])),
        printable(&text(&detail["fingerprint"])),
    ));
    out.push_str(&request(detail, layout));
    out.push('\n');
    out.push_str(&responses(detail, layout));
    out.push('\n');
    let headers = headers(detail, layout);
    if !headers.is_empty() {
        out.push_str(&headers);
        out.push('\n');
    }
    let (primary, primary_form) = readable(&detail["primary"]["body"]);
    let (candidate, candidate_form) = readable(&detail["candidate"]["body"]);
    let forms = match primary_form == candidate_form {
        true => primary_form.describe().to_string(),
        false => format!(
            "{} / {}",
            primary_form.describe(),
            candidate_form.describe()
        ),
    };
    out.push_str(&format!(
        "{} ({forms}; | changed, < primary only, > candidate only)\n",
        bold("BODY")
    ));
    out.push_str(&side_by_side(&primary, &candidate, layout.width, color));
    for section in [
        verdict(&detail["verdict"], color),
        curl.map(|c| curls(c, layout)).unwrap_or_default(),
    ] {
        if !section.is_empty() {
            out.push('\n');
            out.push_str(&section);
        }
    }
    out
}

/// The request line, its headers and body; the candidate's request where
/// a rewrite made it differ.
fn request(detail: &Value, layout: Layout) -> String {
    let query = text(&detail["query"]);
    let target = match query.as_str() {
        "" | "-" => text(&detail["path"]),
        q => format!("{}?{q}", text(&detail["path"])),
    };
    let mut out = format!(
        "{} {}\n",
        Paint::Bold.apply(&printable(&text(&detail["method"])), layout.color),
        printable(&target)
    );
    out.push_str(&header_list(&detail["request"]["headers"], layout));
    let (body, form) = readable(&detail["request"]["body"]);
    if form != Form::Empty {
        let lines: Vec<&str> = body.lines().collect();
        out.push_str(&format!("body ({}):\n", form.describe()));
        for line in lines.iter().take(REQUEST_BODY_LINES) {
            out.push_str(&format!("  {}\n", printable(line)));
        }
        if lines.len() > REQUEST_BODY_LINES {
            let more = lines.len() - REQUEST_BODY_LINES;
            out.push_str(&format!("  … {more} more lines (--json has it all)\n"));
        }
    }
    let rewritten = &detail["candidate_request"];
    if rewritten.is_object() {
        let query = text(&rewritten["query"]);
        let path = text(&rewritten["path"]);
        let target = match query.as_str() {
            "" | "-" => path,
            q => format!("{path}?{q}"),
        };
        out.push_str(&format!(
            "the candidate was sent (rewritten): {}\n",
            printable(&target)
        ));
        out.push_str(&header_list(&rewritten["headers"], layout));
    }
    out
}

/// `[[name, value], …]` as aligned `name  value` lines, indented.
fn header_list(headers: &Value, layout: Layout) -> String {
    let mut table = Table::new(vec![Column::left(""), Column::left("").shrinking()]);
    for (name, value) in pairs(headers) {
        table.push(vec![Cell::plain(format!("  {name}")), Cell::plain(value)]);
    }
    table.render(layout.width, layout.color)
}

/// A header list's `[name, value]` pairs; anything else in it is skipped.
fn pairs(headers: &Value) -> Vec<(String, String)> {
    headers
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|pair| Some((pair[0].as_str()?.to_string(), text(&pair[1]))))
        .collect()
}

/// Both statuses and latencies, the status marked where it differs.
fn responses(detail: &Value, layout: Layout) -> String {
    let (p, c) = (&detail["primary"], &detail["candidate"]);
    let mut table = Table::new(vec![
        Column::left(""),
        Column::left(""),
        Column::left("PRIMARY"),
        Column::left("CANDIDATE"),
    ]);
    let (ps, cs) = (text(&p["status"]), text(&c["status"]));
    let status_differs = ps != cs;
    let (mark, left, right) = marked(status_differs, true);
    table.push(vec![
        Cell::plain(mark),
        Cell::plain("status"),
        Cell::new(ps, left),
        Cell::new(cs, right),
    ]);
    let latency = |v: &Value| {
        v["latency_ms"]
            .as_f64()
            .map_or("-".into(), |ms| format!("{} ms", millis(ms)))
    };
    table.push(vec![
        Cell::plain(""),
        Cell::plain("latency"),
        Cell::plain(latency(p)),
        Cell::plain(latency(c)),
    ]);
    table.render(layout.width, layout.color)
}

/// A row's mark and the paints of its two values: `!` red/green when it
/// differs and counts, `~` yellow when it differs but the rules ignore it.
fn marked(differs: bool, counted: bool) -> (&'static str, Paint, Paint) {
    match (differs, counted) {
        (false, _) => (" ", Paint::Plain, Paint::Plain),
        (true, true) => ("!", Paint::Red, Paint::Green),
        (true, false) => ("~", Paint::Yellow, Paint::Yellow),
    }
}

/// The response headers aligned by name (the primary's order, then the
/// candidate's own), repeated fields joined with `, `.
fn headers(detail: &Value, layout: Layout) -> String {
    let (primary, candidate) = (
        pairs(&detail["primary"]["headers"]),
        pairs(&detail["candidate"]["headers"]),
    );
    let counted: Vec<String> = detail["verdict"]["headers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["name"].as_str().map(str::to_ascii_lowercase))
        .collect();
    let mut names: Vec<String> = Vec::new();
    for (name, _) in primary.iter().chain(&candidate) {
        let name = name.to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    // A header the verdict names that neither list holds still shows.
    for name in &counted {
        if !names.contains(name) {
            names.push(name.clone());
        }
    }
    let value = |list: &[(String, String)], name: &str| {
        let values: Vec<&str> = list
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        (!values.is_empty()).then(|| values.join(", "))
    };
    if names.is_empty() {
        return String::new();
    }
    let mut table = Table::new(vec![
        Column::left(""),
        Column::left("HEADER"),
        Column::left("PRIMARY").shrinking(),
        Column::left("CANDIDATE").shrinking(),
    ]);
    let mut any_marked = false;
    for name in &names {
        let (p, c) = (value(&primary, name), value(&candidate, name));
        let is_counted = counted.contains(name);
        let (mark, left, right) = marked(p != c || is_counted, is_counted);
        any_marked |= mark != " ";
        let shown = |v: Option<String>, paint| match v {
            Some(v) => Cell::new(v, paint),
            None => Cell::new("(absent)", Paint::Dim),
        };
        table.push(vec![
            Cell::plain(mark),
            Cell::plain(name),
            shown(p, left),
            shown(c, right),
        ]);
    }
    let mut out = table.render(layout.width, layout.color);
    if any_marked {
        out.push_str("(! differs, ~ differs but the rules ignore it)\n");
    }
    out
}

/// The verdict's differing paths, status and reasons.
fn verdict(verdict: &Value, color: bool) -> String {
    let mut out = String::new();
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|p| printable(&text(p)))
            .collect()
    };
    let paths = list(&verdict["paths"]);
    if !paths.is_empty() {
        out.push_str(&format!(
            "{}\n",
            Paint::Bold.apply("differing paths", color)
        ));
        for path in paths {
            let path = if path.is_empty() {
                "(the whole body)".into()
            } else {
                path
            };
            out.push_str(&format!("  {path}\n"));
        }
    }
    let reasons = list(&verdict["reasons"]);
    if !reasons.is_empty() {
        out.push_str(&format!("{}\n", Paint::Bold.apply("reasons", color)));
        for reason in reasons {
            out.push_str(&format!("  {reason}\n"));
        }
    }
    out
}

/// The curl commands, whole (they are for copying), and the API's note
/// wrapped to the width.
fn curls(curl: &Value, layout: Layout) -> String {
    let mut out = format!("{}\n", Paint::Bold.apply("curl", layout.color));
    if let Some(note) = curl["note"].as_str() {
        for line in words(&printable(note), layout.width.saturating_sub(2)) {
            out.push_str(&format!("  {line}\n"));
        }
    }
    for side in ["primary", "candidate"] {
        if let Some(command) = curl[side].as_str() {
            out.push_str(&format!("  {side}:\n    {}\n", printable(command)));
        }
    }
    out
}

/// `text` in lines of at most `width` chars, broken between words (a
/// longer word alone on its line).
fn words(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && width_of(&line) + 1 + width_of(word) > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn detail() -> Value {
        json!({
            "id": 42, "at": "2026-11-30T11:02:03.120Z", "instance": "web-1",
            "endpoint": "GET /items/{id}", "fingerprint": "0123456789abcdef",
            "method": "GET", "path": "/items/7", "query": "full=1",
            "primary_status": 200, "candidate_status": 500, "paths": ["/name"],
            "request": {"headers": [["accept", "application/json"], ["x-request-id", "r-1"]],
                        "body": {"encoding": "utf-8", "data": "", "truncated": false}},
            "primary": {"status": 200, "latency_ms": 3.2,
                        "headers": [["content-type", "application/json"], ["etag", "\"a\""], ["date", "Mon"]],
                        "body": {"encoding": "utf-8", "data": "{\"id\":7,\"name\":\"item\"}", "truncated": false}},
            "candidate": {"status": 500, "latency_ms": 41.0,
                          "headers": [["content-type", "application/json"], ["etag", "\"b\""], ["date", "Tue"], ["x-new", "1"]],
                          "body": {"encoding": "utf-8", "data": "{\"name\":\"?\",\"id\":7}", "truncated": false}},
            "served_by": "primary",
            "verdict": {"paths": ["/name"], "reasons": ["body differs"],
                        "headers": [{"name": "etag", "primary": "\"a\"", "candidate": "\"b\""},
                                    {"name": "x-new", "primary": null, "candidate": "1"}]}
        })
    }

    fn curl() -> Value {
        json!({"primary": "curl -X 'GET' 'http://p/items/7?full=1'",
               "candidate": "curl -X 'GET' 'http://c/items/7?full=1'", "note": "secrets are redacted"})
    }

    #[test]
    fn the_whole_mismatch_reads_top_to_bottom() {
        let out = render(
            &detail(),
            Some(&curl()),
            Layout {
                width: 100,
                color: false,
            },
        );
        assert!(
            out.starts_with(
                "mismatch 42  at 2026-11-30 11:02:03 UTC  on web-1  served by primary\n"
            ),
            "{out}"
        );
        assert!(
            out.contains(
                "\nGET /items/7?full=1\n  accept        application/json\n  x-request-id  r-1\n"
            ),
            "{out}"
        );
        assert!(out.contains("!  status   200      500"), "{out}");
        assert!(out.contains("   latency  3.20 ms  41.0 ms"), "{out}");
        let line = |needle: &str| {
            out.lines()
                .find(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle} in {out}"))
        };
        assert!(line("etag").starts_with("!  etag"), "{out}");
        assert!(line("date ").starts_with("~  date"), "{out}");
        assert!(line("x-new").contains("(absent)"), "{out}");
        assert!(line("content-type").starts_with("   content-type"), "{out}");
        let name = line("\"item\"");
        assert!(name.contains('|') && name.contains("\"?\""), "{out}");
        assert!(out.contains("differing paths\n  /name\n"), "{out}");
        assert!(
            out.contains("  primary:\n    curl -X 'GET' 'http://p/items/7?full=1'\n"),
            "{out}"
        );
        assert!(!out.contains('\x1b'));
    }

    #[test]
    fn colour_paints_the_differences() {
        let out = render(
            &detail(),
            None,
            Layout {
                width: 100,
                color: true,
            },
        );
        assert!(out.contains("\x1b[31m200\x1b[0m"), "{out:?}");
        assert!(out.contains("\x1b[32m500\x1b[0m"), "{out:?}");
        assert!(out.contains("\x1b[33mMon\x1b[0m"), "{out:?}");
    }

    #[test]
    fn a_rewritten_request_and_a_request_body_are_shown() {
        let mut d = detail();
        d["request"]["body"] =
            json!({"encoding": "utf-8", "data": "{\"b\":1,\"a\":2}", "truncated": false});
        d["candidate_request"] = json!({"path": "/v2/items/7", "query": "", "headers": [["authorization", "[from $TOKEN]"]]});
        let out = render(
            &d,
            None,
            Layout {
                width: 100,
                color: false,
            },
        );
        assert!(
            out.contains("body (JSON, keys sorted):\n  {\n    \"a\": 2,"),
            "{out}"
        );
        assert!(
            out.contains(
                "the candidate was sent (rewritten): /v2/items/7\n  authorization  [from $TOKEN]\n"
            ),
            "{out}"
        );
    }

    #[test]
    fn the_curl_note_wraps_between_words() {
        assert_eq!(words("aa bb cc dd", 5), ["aa bb", "cc dd"]);
        assert_eq!(words("a verylongword b", 4), ["a", "verylongword", "b"]);
        assert!(words("", 10).is_empty());
    }

    #[test]
    fn any_shape_renders_without_panicking() {
        for odd in [
            json!(null),
            json!([]),
            json!({"request": 3, "primary": {"headers": [[1, 2], "x"], "body": 5}, "verdict": {"paths": 9}}),
        ] {
            let out = render(
                &odd,
                Some(&json!("no")),
                Layout {
                    width: 40,
                    color: true,
                },
            );
            assert!(out.contains(" -  at - UTC"), "{out}");
        }
    }
}
