//! A verdict as text for people at a terminal (`shadowdiff diff`): the
//! verdict on one line, then what differs, in the order a reader checks it:
//! status, headers, body paths, the JSON Patch, the line diff, the reasons.

use std::fmt::Write;

use super::Verdict;

/// The verdict, spelled out.
pub fn explain(verdict: &Verdict) -> String {
    let mut out = String::new();
    let kind = serde_json::to_value(verdict.body_kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let _ = match (verdict.matched, verdict.byte_equal) {
        (true, true) => writeln!(out, "equal (bodies byte for byte; {kind})"),
        (true, false) => writeln!(out, "equal under the rules ({kind} bodies differ in bytes)"),
        (false, _) => writeln!(out, "different ({kind})"),
    };
    if let Some(status) = verdict.status {
        let _ = writeln!(
            out,
            "status: primary {}, candidate {}",
            status.primary, status.candidate
        );
    }
    let shown = |v: &Option<String>| {
        v.as_deref()
            .map_or("(absent)".to_string(), |v| format!("{v:?}"))
    };
    for header in &verdict.headers {
        let _ = writeln!(
            out,
            "header {}: primary {}, candidate {}",
            header.name,
            shown(&header.primary),
            shown(&header.candidate)
        );
    }
    if !verdict.paths.is_empty() {
        let _ = writeln!(out, "body differs at: {}", body_paths(&verdict.paths));
    }
    if let Some(patch) = &verdict.patch {
        let pretty = serde_json::to_string_pretty(patch).unwrap_or_default();
        let _ = writeln!(out, "JSON Patch (primary to candidate):\n{pretty}");
    }
    if let Some(diff) = &verdict.text_diff {
        out.push_str(diff);
        if !diff.ends_with('\n') {
            out.push('\n');
        }
    }
    for reason in &verdict.reasons {
        let _ = writeln!(out, "note: {reason}");
    }
    if let Some(fingerprint) = &verdict.fingerprint {
        let _ = writeln!(out, "fingerprint: {fingerprint}");
    }
    out
}

/// The differing paths, the whole body shown as such.
fn body_paths(paths: &[String]) -> String {
    paths
        .iter()
        .map(|p| match p.as_str() {
            "" => "(the whole body)".to_string(),
            p => p.to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ")
}
