//! `show summary`: the totals of `GET /api/v1/summary` as a few lines, then
//! one aligned row per endpoint: comparisons, parity and the lower bound of
//! its Wilson interval, mismatches, candidate errors, drops, p50 and p99
//! latency of both backends and byte parity.
//!
//! The lower bound is the API's where it serves one (`parity_lower_bound`),
//! else computed here from the API's counts at the gate's default
//! confidence (95%), the way the gate judges parity: 100% over 20
//! comparisons is not yet 99.9%, and the column says so.

use serde_json::Value;

use super::table::{Cell, Column, Paint, Table};
use super::{instant, millis, percent, text, Layout};
use crate::gate::{wilson_interval, Confidence};

/// Parity below this is painted red, at or above green: the gate's default
/// `--min-parity`.
const MIN_PARITY: f64 = 0.999;
/// A candidate this much slower than the primary at a percentile is
/// painted yellow.
const SLOWER: f64 = 1.10;

/// Said above whatever is shown of an answer without a summary's fields:
/// a URL of something else (the proxy's port, another service) answers too.
const NOT_A_SUMMARY: &str =
    "note: the answer has no totals and no endpoints: is --report-url the report API's address?\n";

/// The summary as text fitting `layout`.
pub fn render(summary: &Value, layout: Layout) -> String {
    let color = layout.color;
    let mut out = String::new();
    if summary.get("totals").is_none() && summary.get("endpoints").is_none() {
        out.push_str(NOT_A_SUMMARY);
    }
    let window = &summary["window"];
    out.push_str(&format!(
        "window    {} to {} UTC\n",
        instant(&text(&window["since"])),
        instant(&text(&window["until"]))
    ));
    let t = &summary["totals"];
    out.push_str(&format!(
        "compared  {}: {} matched, {} mismatched, {} candidate errors; {} skipped, {} dropped\n",
        text(&t["compared"]),
        text(&t["matched"]),
        paint_count(&t["mismatched"], Paint::Red, color),
        paint_count(&t["candidate_errors"], Paint::Red, color),
        text(&t["skipped"]),
        paint_count(&t["dropped"], Paint::Yellow, color),
    ));
    let (parity, _) = parity_cell(t);
    let lower = lower_bound(t).map_or("-".into(), percent);
    let bytes = t["byte_parity"].as_f64().map_or("-".into(), percent);
    out.push_str(&format!(
        "parity    {} (lower bound {lower}), byte parity {bytes}\n",
        parity.paint.apply(&parity.text, color)
    ));
    let l = &summary["latency_ms"];
    out.push_str(&format!(
        "latency   p50 {} ms, p99 {} ms (primary / candidate)\n",
        latency(l, "p50").text,
        latency(l, "p99").text
    ));
    out.push_str(&store_lines(summary, color));
    out.push('\n');
    let endpoints = summary["endpoints"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    if endpoints.is_empty() {
        out.push_str("no samples in this window\n");
        return out;
    }
    let mut table = Table::new(vec![
        Column::left("ENDPOINT").shrinking(),
        Column::right("COMPARED"),
        Column::right("PARITY"),
        Column::right("LOWER 95%"),
        Column::right("MISMATCHED"),
        Column::right("CAND ERR"),
        Column::right("DROPPED"),
        Column::right("P50 ms P/C"),
        Column::right("P99 ms P/C"),
        Column::right("BYTE PARITY"),
    ]);
    for e in endpoints {
        let (parity, _) = parity_cell(e);
        let lower = lower_bound(e).map_or("-".into(), percent);
        table.push(vec![
            Cell::plain(text(&e["endpoint"])),
            Cell::plain(text(&e["compared"])),
            Cell::new(parity.text, parity.paint),
            Cell::plain(lower),
            count_cell(&e["mismatched"], Paint::Red),
            count_cell(&e["candidate_errors"], Paint::Red),
            count_cell(&e["dropped"], Paint::Yellow),
            latency(&e["latency_ms"], "p50").cell(),
            latency(&e["latency_ms"], "p99").cell(),
            Cell::plain(e["byte_parity"].as_f64().map_or("-".into(), percent)),
        ]);
    }
    out.push_str(&table.render(layout.width, color));
    out
}

/// A cell's text and colour, before it becomes a cell.
struct Shown {
    text: String,
    paint: Paint,
}

impl Shown {
    fn cell(self) -> Cell {
        Cell::new(self.text, self.paint)
    }
}

/// Parity as a percentage, red under [`MIN_PARITY`]; its value.
fn parity_cell(totals: &Value) -> (Shown, Option<f64>) {
    let parity = totals["parity"].as_f64();
    let shown = match parity {
        Some(p) if p < MIN_PARITY => Shown {
            text: percent(p),
            paint: Paint::Red,
        },
        Some(p) => Shown {
            text: percent(p),
            paint: Paint::Green,
        },
        None => Shown {
            text: "-".into(),
            paint: Paint::Plain,
        },
    };
    (shown, parity)
}

/// The Wilson lower bound of parity: the API's, else from its counts.
fn lower_bound(totals: &Value) -> Option<f64> {
    if let Some(served) = totals["parity_lower_bound"].as_f64() {
        return Some(served);
    }
    let count = |k: &str| totals[k].as_u64();
    let matched = count("matched")?;
    // Checked: the counts are whatever the API sent.
    let judged = matched
        .checked_add(count("mismatched")?)?
        .checked_add(count("candidate_errors")?)?;
    (judged > 0).then(|| {
        let z = Confidence::default().z();
        wilson_interval(matched as f64, judged as f64, z).0
    })
}

/// A count, painted when it is not zero (a mismatch, a drop).
fn count_cell(v: &Value, paint: Paint) -> Cell {
    match v.as_i64() {
        Some(n) if n > 0 => Cell::new(n.to_string(), paint),
        _ => Cell::plain(text(v)),
    }
}

fn paint_count(v: &Value, paint: Paint, color: bool) -> String {
    match v.as_i64() {
        Some(n) if n > 0 => paint.apply(&n.to_string(), color),
        _ => text(v),
    }
}

/// `primary / candidate` at a percentile of a `latency_ms` object, yellow
/// when the candidate is [`SLOWER`].
fn latency(l: &Value, q: &str) -> Shown {
    let (p, c) = (l["primary"][q].as_f64(), l["candidate"][q].as_f64());
    let side = |v: Option<f64>| v.map_or("-".into(), millis);
    let slower = matches!((p, c), (Some(p), Some(c)) if p > 0.0 && c / p > SLOWER);
    Shown {
        text: format!("{} / {}", side(p), side(c)),
        paint: if slower { Paint::Yellow } else { Paint::Plain },
    }
}

/// The store writer's trouble and the records lost, when there are any.
fn store_lines(summary: &Value, color: bool) -> String {
    let mut out = String::new();
    let store = &summary["store"];
    if store["status"] == "failing" {
        let line = format!(
            "store     failing since {} ({}), {} records waiting",
            instant(&text(&store["failing_since"])),
            text(&store["last_error"]),
            text(&store["unwritten"])
        );
        out.push_str(&Paint::Red.apply(&line, color));
        out.push('\n');
    }
    if let Some(lost) = summary["lost_records"].as_i64().filter(|n| *n > 0) {
        let line = format!("lost      {lost} records in this window (see the store's health)");
        out.push_str(&Paint::Yellow.apply(&line, color));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn layout() -> Layout {
        Layout {
            width: 120,
            color: false,
        }
    }

    #[test]
    fn endpoints_are_rows_with_the_api_numbers() {
        let endpoint = |name: &str, matched: u64, mismatched: u64| {
            json!({
                "endpoint": name, "compared": matched + mismatched, "matched": matched,
                "mismatched": mismatched, "candidate_errors": 0, "skipped": 0, "dropped": 1,
                "parity": matched as f64 / (matched + mismatched) as f64, "byte_parity": 1.0,
                "latency_ms": {"primary": {"p50": 1.234, "p95": 2.0, "p99": 3.5},
                               "candidate": {"p50": 1.5, "p95": 2.0, "p99": 30.0}}
            })
        };
        let summary = json!({
            "window": {"since": "2026-11-30T11:00:00Z", "until": "2026-12-01T11:01:00Z"},
            "totals": {"compared": 30, "matched": 25, "mismatched": 5, "candidate_errors": 0,
                       "skipped": 2, "dropped": 2, "parity": 0.8333, "byte_parity": null},
            "latency_ms": {"primary": null, "candidate": null},
            "lost_records": 0,
            "endpoints": [endpoint("GET /a", 10, 0), endpoint("GET /items/{id}", 15, 5)],
        });
        let out = render(&summary, layout());
        assert!(out.contains("window    2026-11-30 11:00:00 to 2026-12-01 11:01:00 UTC"));
        assert!(
            out.contains("compared  30: 25 matched, 5 mismatched"),
            "{out}"
        );
        assert!(
            out.contains("parity    83.33% (lower bound 66.43%)"),
            "{out}"
        );
        let rows: Vec<&str> = out
            .lines()
            .skip_while(|l| !l.starts_with("ENDPOINT"))
            .collect();
        assert_eq!(rows.len(), 3, "{out}");
        fn cells(row: &str) -> Vec<&str> {
            row.split("  ")
                .filter(|c| !c.is_empty())
                .map(str::trim)
                .collect()
        }
        assert_eq!(
            cells(rows[2]),
            [
                "GET /items/{id}",
                "20",
                "75.00%",
                "53.12%",
                "5",
                "0",
                "1",
                "1.23 / 1.50",
                "3.50 / 30.0",
                "100.00%"
            ]
        );
        assert_eq!(cells(rows[1])[2..4], ["100.00%", "72.24%"]);
    }

    #[test]
    fn any_shape_renders_without_panicking() {
        assert!(render(&json!({"error": "not found"}), layout()).starts_with(NOT_A_SUMMARY));
        for odd in [
            json!(null),
            json!([1, 2]),
            json!({"endpoints": {"a": 1}}),
            json!({"endpoints": [7, {"compared": "x"}]}),
        ] {
            let out = render(&odd, layout());
            assert!(out.contains("window"), "{out}");
        }
        let out = render(&json!({"endpoints": [7]}), layout());
        assert!(out.contains("ENDPOINT"), "{out}");
    }

    #[test]
    fn a_lower_bound_the_api_serves_is_shown_as_served() {
        let totals = json!({"parity_lower_bound": 0.5, "matched": 10, "mismatched": 0, "candidate_errors": 0});
        assert_eq!(lower_bound(&totals), Some(0.5));
        let counted = json!({"matched": 10, "mismatched": 0, "candidate_errors": 0});
        assert!((lower_bound(&counted).unwrap() - 0.7225).abs() < 1e-3);
        assert_eq!(
            lower_bound(&json!({"matched": 0, "mismatched": 0, "candidate_errors": 0})),
            None
        );
        let huge = json!({"matched": u64::MAX, "mismatched": 1, "candidate_errors": 0});
        assert_eq!(lower_bound(&huge), None);
    }

    #[test]
    fn trouble_with_the_store_is_said() {
        let summary = json!({"store": {"status": "failing", "failing_since": "2026-11-30T11:00:00Z",
                             "last_error": "disk_full", "unwritten": 12}, "lost_records": 3});
        let out = render(&summary, layout());
        assert!(
            out.contains(
                "store     failing since 2026-11-30 11:00:00 (disk_full), 12 records waiting"
            ),
            "{out}"
        );
        assert!(out.contains("lost      3 records"), "{out}");
    }
}
