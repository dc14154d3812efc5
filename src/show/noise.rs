//! `shadowdiff noise` (and `show noise`): `GET /api/v1/noise` per endpoint,
//! as a line of sample counts and an aligned row per learned path (its
//! rates and why), or, with `--suggest`, only the config snippets to copy.

use serde_json::Value;

use super::table::{Cell, Column, Paint, Table};
use super::{percent, text, Layout};

/// The report as text fitting `layout`.
pub fn render(report: &Value, layout: Layout) -> String {
    let endpoints = report["endpoints"].as_array().cloned().unwrap_or_default();
    let mut out = format!(
        "{} (a path is noise after {} paired samples)\n",
        match report["secondary"].as_bool() {
            Some(true) => "learning from a secondary",
            _ => "no secondary: volatile-looking values only",
        },
        text(&report["min_samples"])
    );
    for e in &endpoints {
        out.push_str(&format!(
            "\n{}  compared {}, paired {}\n",
            text(&e["endpoint"]),
            text(&e["compared"]),
            text(&e["paired"])
        ));
        let paths = e["paths"].as_array().cloned().unwrap_or_default();
        if paths.is_empty() {
            out.push_str("  nothing learned\n");
            continue;
        }
        let mut table = Table::new(vec![
            Column::left("PATH"),
            Column::right("NOISE"),
            Column::right("RAW"),
            Column::left("LEARNED"),
            Column::left("WHY").shrinking_first(),
        ]);
        for p in &paths {
            let learned = match (p["noise"].as_bool(), p["volatile"].as_str()) {
                (Some(true), _) => Cell::new("noise", Paint::Yellow),
                (_, Some(kind)) => Cell::new(format!("looks {kind}"), Paint::Yellow),
                _ => Cell::plain("-"),
            };
            table.push(vec![
                Cell::plain(text(&p["path"])),
                Cell::plain(percent(p["noise_rate"].as_f64().unwrap_or(0.0))),
                Cell::plain(percent(p["raw_rate"].as_f64().unwrap_or(0.0))),
                learned,
                Cell::plain(text(&p["why"])),
            ]);
        }
        out.push_str(&table.render(layout.width, layout.color));
    }
    if endpoints.is_empty() {
        out.push_str("nothing learned yet\n");
    }
    out
}

/// Only the snippets, each under a comment naming its endpoint.
pub fn suggestions(report: &Value) -> String {
    let mut out = String::new();
    for e in report["endpoints"].as_array().into_iter().flatten() {
        if let Some(snippet) = e["suggestion"].as_str() {
            out.push_str(&format!("# {}\n{snippet}\n", text(&e["endpoint"])));
        }
    }
    if out.is_empty() {
        out.push_str("# nothing to suggest yet\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_and_snippets_are_shown() {
        let report = json!({
            "min_samples": 20, "secondary": true,
            "endpoints": [{
                "endpoint": "GET /a", "compared": 50, "paired": 50,
                "paths": [{"path": "/now", "noise_rate": 1.0, "raw_rate": 1.0, "raw_rate_all": 1.0,
                           "noise": true, "volatile": null, "why": "discounted as noise"}],
                "suggestion": "[[route]]\nmatch = \"GET /a\"\n[route.compare]\nignore = [\"/now\"]\n"
            }]
        });
        let layout = Layout {
            width: 120,
            color: false,
        };
        let shown = render(&report, layout);
        assert!(shown.contains("GET /a  compared 50, paired 50"), "{shown}");
        assert!(shown.contains("/now") && shown.contains("100.00%") && shown.contains("noise"));
        let snippets = suggestions(&report);
        assert!(snippets.starts_with("# GET /a\n[[route]]"), "{snippets}");
        assert_eq!(suggestions(&json!({})), "# nothing to suggest yet\n");
    }
}
