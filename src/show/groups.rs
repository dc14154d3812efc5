//! `show groups`: `GET /api/v1/groups` as one aligned row per mismatch
//! group, most severe first as the API lists them: the newest stored
//! mismatch's id (what `show mismatch` takes), the fingerprint's first
//! characters, endpoint, count, severity class, triage status, first and
//! last seen, and what differs (statuses, headers, body paths), cut to the
//! terminal's width. On a narrow terminal the group and the first
//! seen are left out before what differs is cut: the id already names the
//! group for `show mismatch`, and what differs is why one reads the list.

use std::collections::HashMap;

use serde_json::Value;

use super::table::{cut, Cell, Column, Paint, Table};
use super::{instant, text, Layout};

/// Characters of a fingerprint shown: enough to tell a screenful of groups
/// apart (`--json` has them whole).
const SHORT: usize = 8;

/// The groups as text fitting `layout`; `latest` is a page of
/// `GET /api/v1/mismatches`, newest first, if it could be read.
pub fn render(groups: &Value, latest: Option<&Value>, layout: Layout) -> String {
    let Some(groups) = groups.as_array() else {
        // Something else answered (the proxy's port, another service).
        return "the answer is not a list of groups: is --report-url the report API's address?\n"
            .into();
    };
    if groups.is_empty() {
        return "no mismatch groups\n".into();
    }
    let newest = newest_ids(latest);
    let mut table = Table::new(vec![
        Column::right("ID"),
        Column::left("GROUP").optional(1),
        Column::left("ENDPOINT").shrinking(),
        Column::right("COUNT"),
        Column::left("SEVERITY"),
        Column::left("STATUS"),
        Column::left("FIRST SEEN (UTC)").optional(2),
        Column::left("LAST SEEN (UTC)"),
        Column::left("DIFFERS").shrinking_first(),
    ]);
    for g in groups {
        let fingerprint = text(&g["fingerprint"]);
        let status = text(&g["status"]);
        let paint = match status.as_str() {
            "open" => Paint::Yellow,
            "bug" => Paint::Red,
            "fixed" => Paint::Green,
            "expected" => Paint::Dim,
            _ => Paint::Plain,
        };
        table.push(vec![
            Cell::plain(newest.get(fingerprint.as_str()).map_or("-", String::as_str)),
            Cell::plain(fingerprint.chars().take(SHORT).collect::<String>()),
            Cell::plain(text(&g["endpoint"])),
            Cell::plain(text(&g["count"])),
            severity(&g["severity"]),
            Cell::new(status, paint),
            Cell::plain(instant(&text(&g["first_seen"]))),
            Cell::plain(instant(&text(&g["last_seen"]))),
            Cell::plain(differs(g)),
        ]);
    }
    let mut out = table.render(layout.width, layout.color);
    let hint = "show mismatch ID: the newest of a group in full";
    out.push_str(&format!("\n{}\n", cut(hint, layout.width)));
    out
}

/// A group's class, the worst in red; `-` for a group stored before
/// classes were kept (null).
fn severity(class: &Value) -> Cell {
    let name = class
        .as_str()
        .map_or_else(|| "-".to_string(), str::to_string);
    let paint = match name.as_str() {
        "status" | "structure" => Paint::Red,
        "membership" | "value" => Paint::Yellow,
        "headers" => Paint::Dim,
        _ => Paint::Plain,
    };
    Cell::new(name, paint)
}

/// Each group's newest mismatch id in the page (newest first, so the first
/// one met).
fn newest_ids(page: Option<&Value>) -> HashMap<String, String> {
    let mut ids = HashMap::new();
    let items = page.and_then(|p| p["items"].as_array());
    for item in items.into_iter().flatten() {
        if let (Some(fingerprint), Some(id)) = (item["fingerprint"].as_str(), item["id"].as_i64()) {
            ids.entry(fingerprint.to_string())
                .or_insert_with(|| id.to_string());
        }
    }
    ids
}

/// What differs in a group: `status 200 → 500`, `header etag`, body paths.
fn differs(g: &Value) -> String {
    let mut parts = Vec::new();
    let statuses = &g["statuses"];
    if statuses.is_object() {
        parts.push(format!(
            "status {} → {}",
            text(&statuses["primary"]),
            text(&statuses["candidate"])
        ));
    }
    let list = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(text)
            .collect::<Vec<_>>()
    };
    parts.extend(
        list(&g["headers"])
            .into_iter()
            .map(|h| format!("header {h}")),
    );
    parts.extend(list(&g["paths"]).into_iter().map(|p| match p.is_empty() {
        // The empty pointer: the body as a whole.
        true => "body".to_string(),
        false => p,
    }));
    match parts.is_empty() {
        true => "-".into(),
        false => parts.join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn group(fingerprint: &str, endpoint: &str, count: u64) -> Value {
        json!({
            "fingerprint": fingerprint, "endpoint": endpoint, "count": count,
            "first_seen": "2026-11-30T11:02:03.400Z", "last_seen": "2026-11-30T11:05:09Z",
            "paths": ["/name", "/items/*/price"], "headers": ["etag"],
            "statuses": {"primary": 200, "candidate": 500}, "status": "open", "note": "",
            "severity": "status"
        })
    }

    #[test]
    fn a_row_per_group_with_its_newest_mismatch() {
        let mut before_classes = group("fedcba9876543210", "POST /orders", 3);
        before_classes["severity"] = Value::Null;
        let groups = json!([
            group("0123456789abcdef", "GET /items/{id}", 12),
            before_classes
        ]);
        let page = json!({"items": [
            {"id": 9, "fingerprint": "fedcba9876543210"},
            {"id": 8, "fingerprint": "0123456789abcdef"},
            {"id": 7, "fingerprint": "0123456789abcdef"}
        ]});
        let layout = Layout {
            width: 160,
            color: false,
        };
        let out = render(&groups, Some(&page), layout);
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].starts_with("ID  GROUP     ENDPOINT"), "{out}");
        assert_eq!(
            lines[1],
            " 8  01234567  GET /items/{id}     12  status    open    2026-11-30 11:02:03  \
             2026-11-30 11:05:09  status 200 → 500, header etag, /name, /items/*/price"
        );
        assert!(
            lines[2].starts_with(" 9  fedcba98  POST /orders         3  -         open"),
            "{out}"
        );
        // Without the page the ids are unknown, not wrong.
        let out = render(&groups, None, layout);
        assert!(
            out.lines().nth(1).unwrap().starts_with(" -  01234567"),
            "{out}"
        );
    }

    #[test]
    fn rows_are_cut_to_the_width() {
        let mut long = group("0123456789abcdef", "GET /items/{id}", 12);
        long["paths"] = json!((0..50).map(|i| format!("/field{i}")).collect::<Vec<_>>());
        let out = render(
            &json!([long]),
            None,
            Layout {
                width: 130,
                color: false,
            },
        );
        for line in out.lines() {
            assert!(line.chars().count() <= 130, "{line}");
        }
        assert!(
            out.contains("  GET /items/{id}  "),
            "the endpoint is whole: {out}"
        );
        assert!(out.contains("status 200 → 500, header etag"), "{out}");
        assert!(out.contains('…'), "{out}");
    }

    #[test]
    fn odd_answers_render_what_is_there() {
        let layout = Layout {
            width: 80,
            color: true,
        };
        assert_eq!(render(&json!([]), None, layout), "no mismatch groups\n");
        let other = render(&json!({"error": 1}), None, layout);
        assert!(
            other.contains("is --report-url the report API's address?"),
            "{other}"
        );
        let out = render(&json!([{"count": "many"}, 3]), Some(&json!([1])), layout);
        assert!(out.contains("many"), "{out}");
        let paths = json!({"paths": [""], "statuses": null});
        assert_eq!(differs(&paths), "body");
    }
}
