//! The gate's report as people and CI tools read it: an aligned text table,
//! Markdown for a pull-request comment or job summary, JUnit XML for test
//! report views, and the versioned JSON of the report API.

use std::fmt::Write as _;

use super::{GateReport, GateScope, GateSeverity, GateVerdict};

/// How `shadowdiff gate` prints its report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// An aligned table with the reasons below it.
    Text,
    /// The report API's JSON, stable and versioned.
    Json,
    /// A Markdown table, for a pull-request comment or a CI job summary.
    Markdown,
    /// JUnit XML: one testcase per endpoint, for CI test reports.
    Junit,
}

pub fn render(report: &GateReport, format: Format) -> String {
    match format {
        Format::Text => text(report),
        Format::Json => {
            let mut json = serde_json::to_string_pretty(report).unwrap_or_default();
            json.push('\n');
            json
        }
        Format::Markdown => markdown(report),
        Format::Junit => junit(report),
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}%"))
}

fn verdict_label(scope: &GateScope) -> String {
    if scope.enforced {
        scope.verdict.as_str().to_string()
    } else {
        format!("{} (info)", scope.verdict.as_str())
    }
}

fn rows(report: &GateReport) -> Vec<[String; 9]> {
    std::iter::once(&report.total)
        .chain(&report.endpoints)
        .map(|s| {
            [
                s.endpoint.clone(),
                verdict_label(s),
                s.comparisons.to_string(),
                s.mismatched.to_string(),
                s.candidate_errors.to_string(),
                pct(s.parity_percent),
                pct(s.lower_bound_percent),
                pct(s.coverage_percent),
                s.more_comparisons_needed
                    .map_or("-".into(), |n| n.to_string()),
            ]
        })
        .collect()
}

const HEADER: [&str; 9] = [
    "ENDPOINT",
    "VERDICT",
    "COMPARED",
    "MISMATCHED",
    "CAND.ERRORS",
    "PARITY",
    "LOWER BOUND",
    "COVERAGE",
    "MORE NEEDED",
];

fn criteria_line(report: &GateReport) -> String {
    let c = &report.criteria;
    let mut line = format!(
        "min parity {}% at {}% confidence (Wilson lower bound)",
        c.min_parity_percent,
        c.confidence * 100.0
    );
    if c.per_endpoint {
        line.push_str(", every endpoint");
    }
    if c.min_samples > 0 {
        let _ = write!(line, ", at least {} comparisons", c.min_samples);
    }
    if c.exclude_expected {
        line.push_str(", expected groups left out");
    }
    for (p, r) in &c.max_latency_ratio {
        let _ = write!(line, ", {p} ratio ≤ {r}");
    }
    if c.max_latency_ratio.is_empty() {
        // A report from a release before percentiles were named.
        if let Some(r) = c.max_p99_ratio {
            let _ = write!(line, ", p99 ratio ≤ {r}");
        }
    }
    if let Some(b) = c.min_byte_parity_percent {
        let _ = write!(line, ", byte parity ≥ {b}%");
    }
    if let Some(d) = c.max_error_rate_delta_points {
        let _ = write!(line, ", error rate +{d} points at most");
    }
    if !c.fail_on.is_empty() {
        let _ = write!(line, ", fail on {}", c.fail_on.join(","));
    }
    line
}

/// Mismatches by class, most severe first: `status 0, structure 1, …`,
/// the unknown ones only when there are some.
fn classes(s: &GateSeverity) -> String {
    let mut line = format!(
        "status {}, structure {}, membership {}, value {}, headers {}",
        s.status, s.structure, s.membership, s.value, s.headers
    );
    if s.unknown > 0 {
        let _ = write!(line, ", unknown {}", s.unknown);
    }
    line
}

fn scope_of(report: &GateReport) -> String {
    let mut s = format!("{} to {}", report.window.since, report.window.until);
    if let Some(run) = &report.run {
        let _ = write!(s, ", replay run {run}");
    }
    if !report.criteria.endpoints.is_empty() {
        let _ = write!(s, ", endpoints {}", report.criteria.endpoints.join(" | "));
    }
    s
}

fn text(report: &GateReport) -> String {
    let mut out = format!(
        "gate: {} — {}\n{}\n{}\n\n",
        report.verdict.as_str().to_uppercase(),
        report.reason,
        scope_of(report),
        criteria_line(report)
    );
    let rows = rows(report);
    let mut widths = HEADER.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Names and verdicts left, numbers right.
            if i < 2 {
                let _ = write!(l, "{cell:<w$}  ");
            } else {
                let _ = write!(l, "{cell:>w$}  ");
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(HEADER.to_vec()));
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    let notes = notes(report);
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            let _ = writeln!(out, "{n}");
        }
    }
    out
}

/// Reasons and side checks of every scope that did not simply pass.
fn notes(report: &GateReport) -> Vec<String> {
    let mut notes = Vec::new();
    for s in std::iter::once(&report.total).chain(&report.endpoints) {
        for r in &s.reasons {
            notes.push(format!("{}: {r}", s.endpoint));
        }
        for p in s.latency.iter().flat_map(|l| &l.percentiles) {
            if p.verdict == GateVerdict::Pass {
                notes.push(format!(
                    "{}: {} {} ms vs {} ms (ratio {:.3}, max {})",
                    s.endpoint,
                    p.percentile,
                    ms(p.candidate_ms),
                    ms(p.primary_ms),
                    p.ratio.unwrap_or(0.0),
                    p.max_ratio
                ));
            }
        }
        if let Some(b) = s
            .byte_parity
            .as_ref()
            .filter(|b| b.verdict == GateVerdict::Pass)
        {
            notes.push(format!(
                "{}: byte parity {}% ({} of {} pairs; lower bound {}%, min {}%)",
                s.endpoint,
                b.percent.unwrap_or(0.0),
                b.byte_equal,
                b.pairs,
                b.lower_bound_percent.unwrap_or(0.0),
                b.min_percent
            ));
        }
    }
    // The total's classes always; an endpoint's when it had mismatches.
    for s in std::iter::once(&report.total).chain(&report.endpoints) {
        if let Some(c) = &s.severity {
            let any = c.status + c.structure + c.membership + c.value + c.headers + c.unknown;
            if any > 0 || std::ptr::eq(s, &report.total) {
                notes.push(format!(
                    "{}: mismatches by severity: {}",
                    s.endpoint,
                    classes(c)
                ));
            }
        }
    }
    if let Some(c) = &report.total.cost {
        let ratio = |r: Option<f64>| r.map_or("-".into(), |r| format!("{r:.3}"));
        let bytes = |b: Option<f64>| b.map_or("-".into(), |b| format!("{b:.0}"));
        notes.push(format!(
            "cost per request: candidate {} ms and {} bytes, primary {} ms and {} bytes (time ratio {}, bytes ratio {})",
            ms(c.candidate.mean_ms),
            bytes(c.candidate.bytes_per_request),
            ms(c.primary.mean_ms),
            bytes(c.primary.bytes_per_request),
            ratio(c.time_ratio),
            ratio(c.bytes_ratio)
        ));
    }
    notes
}

fn ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn markdown(report: &GateReport) -> String {
    let icon = match report.verdict {
        GateVerdict::Pass => "✅",
        GateVerdict::Fail => "❌",
        GateVerdict::Inconclusive => "⏳",
    };
    let mut out = format!(
        "### {icon} shadowdiff gate: {}\n\n{}\n\n_{}; {}_\n\n",
        report.verdict.as_str(),
        md_escape(&report.reason),
        md_escape(&scope_of(report)),
        md_escape(&criteria_line(report))
    );
    let _ = writeln!(out, "| {} |", HEADER.map(title_case).join(" | "));
    let _ = writeln!(
        out,
        "|{}",
        HEADER
            .iter()
            .enumerate()
            .map(|(i, _)| if i < 2 { " --- |" } else { " ---: |" })
            .collect::<String>()
    );
    for row in rows(report) {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                if i == 0 {
                    format!("`{c}`")
                } else {
                    md_escape(c)
                }
            })
            .collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let notes = notes(report);
    if !notes.is_empty() {
        out.push('\n');
        for n in notes {
            let _ = writeln!(out, "- {}", md_escape(&n));
        }
    }
    out
}

fn title_case(h: &str) -> String {
    let lower = h.to_lowercase();
    let mut chars = lower.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

fn md_escape(s: &str) -> String {
    s.replace('|', "\\|")
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Control characters are not allowed in XML 1.0.
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

// One XML document written top to bottom: splitting it would scatter its nesting.
fn junit(report: &GateReport) -> String {
    let scopes: Vec<&GateScope> = std::iter::once(&report.total)
        .chain(&report.endpoints)
        .collect();
    let failing = |s: &GateScope| s.enforced && s.verdict == GateVerdict::Fail;
    let failures = scopes.iter().filter(|s| failing(s)).count();
    let skipped = scopes
        .iter()
        .filter(|s| s.enforced && s.verdict == GateVerdict::Inconclusive)
        .count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"shadowdiff gate\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\">",
        scopes.len()
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"shadowdiff gate\" tests=\"{}\" failures=\"{failures}\" skipped=\"{skipped}\" timestamp=\"{}\">",
        scopes.len(),
        xml_escape(&report.window.until)
    );
    let _ = writeln!(
        out,
        "    <properties>\n      <property name=\"verdict\" value=\"{}\"/>\n      <property name=\"criteria\" value=\"{}\"/>\n      <property name=\"window\" value=\"{}\"/>\n    </properties>",
        report.verdict.as_str(),
        xml_escape(&criteria_line(report)),
        xml_escape(&scope_of(report))
    );
    for s in scopes {
        let mut summary = format!(
            "{} comparisons, {} mismatched, {} candidate errors, parity {}, lower bound {}",
            s.comparisons,
            s.mismatched,
            s.candidate_errors,
            pct(s.parity_percent),
            pct(s.lower_bound_percent)
        );
        for p in s.latency.iter().flat_map(|l| &l.percentiles) {
            let ratio = p.ratio.map_or("-".into(), |r| format!("{r:.3}"));
            let _ = write!(summary, ", {} ratio {ratio}", p.percentile);
        }
        if let Some(b) = &s.byte_parity {
            let _ = write!(summary, ", byte parity {}", pct(b.percent));
        }
        if let Some(r) = s.cost.as_ref().and_then(|c| c.time_ratio) {
            let _ = write!(summary, ", time ratio {r:.3}");
        }
        if let Some(c) = &s.severity {
            let _ = write!(summary, ", by severity: {}", classes(c));
        }
        let why = if s.reasons.is_empty() {
            summary.clone()
        } else {
            s.reasons.join("; ")
        };
        let _ = write!(
            out,
            "    <testcase classname=\"shadowdiff.gate\" name=\"{}\">",
            xml_escape(&s.endpoint)
        );
        if failing(s) {
            let _ = write!(
                out,
                "\n      <failure message=\"{}\" type=\"parity\">{}</failure>\n    ",
                xml_escape(&why),
                xml_escape(&summary)
            );
        } else if s.enforced && s.verdict == GateVerdict::Inconclusive {
            let _ = write!(
                out,
                "\n      <skipped message=\"inconclusive: {}\"/>\n    ",
                xml_escape(&why)
            );
        } else {
            let note = if s.enforced {
                summary
            } else {
                format!(
                    "{}: {summary} (not enforced without --per-endpoint)",
                    s.verdict.as_str()
                )
            };
            let _ = write!(
                out,
                "\n      <system-out>{}</system-out>\n    ",
                xml_escape(&note)
            );
        }
        out.push_str("</testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::{decide, Criteria, EndpointData};
    use crate::store::Window;

    fn report() -> GateReport {
        let d = |e: &str, m: i64, x: i64| EndpointData {
            endpoint: e.into(),
            outcomes: crate::gate::Counts::from_stored([("matched", m), ("mismatched", x)]),
            ..EndpointData::default()
        };
        let c = Criteria {
            per_endpoint: true,
            ..Criteria::default()
        };
        decide(
            &c,
            Window {
                since_ms: 0,
                until_ms: 60_000,
            },
            None,
            &[d("GET /a/{id}", 30_000, 0), d("GET /b<&>", 90, 10)],
        )
    }

    #[test]
    fn text_is_an_aligned_table() {
        let t = render(&report(), Format::Text);
        assert!(t.starts_with("gate: FAIL — fail on GET /b<&>\n"), "{t}");
        let lines: Vec<&str> = t.lines().filter(|l| l.contains("%")).collect();
        let header = t.lines().find(|l| l.starts_with("ENDPOINT")).unwrap();
        let at = header.find("PARITY").unwrap() + "PARITY".len();
        for l in &lines[1..] {
            assert_eq!(&l[at - 1..at], "%", "column not aligned: {l}");
        }
    }

    #[test]
    fn junit_is_well_formed_and_escaped() {
        let x = render(&report(), Format::Junit);
        assert!(x.contains("name=\"GET /b&lt;&amp;&gt;\""));
        assert!(x.contains("tests=\"3\" failures=\"1\" skipped=\"0\""));
        assert_eq!(x.matches("<testcase").count(), 3);
        assert_eq!(x.matches("</testcase>").count(), 3);
        assert_eq!(x.matches("<failure").count(), 1);
    }

    #[test]
    fn markdown_has_a_table_row_per_scope() {
        let m = render(&report(), Format::Markdown);
        assert!(m.starts_with("### ❌ shadowdiff gate: fail"));
        assert_eq!(m.lines().filter(|l| l.starts_with("| `")).count(), 3);
    }

    #[test]
    fn every_format_shows_mismatches_by_severity_and_what_fails() {
        let mut d = EndpointData {
            endpoint: "GET /a".into(),
            outcomes: crate::gate::Counts::from_stored([("matched", 30_000), ("mismatched", 4)]),
            ..EndpointData::default()
        };
        d.classes.add(2, 1);
        d.classes.add(4, 3);
        let c = Criteria {
            fail_on: "structure".parse().unwrap(),
            ..Criteria::default()
        };
        let window = Window {
            since_ms: 0,
            until_ms: 60_000,
        };
        let r = decide(&c, window, None, &[d]);
        let line = "status 0, structure 1, membership 0, value 3, headers 0";
        for format in [Format::Text, Format::Markdown, Format::Junit] {
            let out = render(&r, format);
            assert!(out.contains(line), "{format:?}: {out}");
            assert!(out.contains("fail on structure"), "{format:?}: {out}");
        }
        let json = render(&r, Format::Json);
        assert!(json.contains("\"structure\": 1"), "{json}");
        assert!(render(&r, Format::Junit).contains("<failure"));
    }

    #[test]
    fn json_round_trips() {
        let r = report();
        let back: GateReport = serde_json::from_str(&render(&r, Format::Json)).unwrap();
        assert_eq!(back, r);
    }
}
