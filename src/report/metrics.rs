//! GET /metrics: this process's live counts in Prometheus' text exposition
//! format (version 0.0.4), read from memory on every scrape, never from the
//! store: sampled requests by endpoint and outcome, client connections, the
//! store writer's backlog and losses, and build information. Endpoint
//! labels are bounded by the endpoint cap (`max_endpoints`, then `other`).

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ReportState;

/// The exposition's media type.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics, as text.
pub(super) async fn metrics(State(state): State<Arc<ReportState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], render(&state))
}

fn render(state: &ReportState) -> String {
    let mut out = String::new();
    family(
        &mut out,
        "shadowdiff_build_info",
        "gauge",
        "Build information; always 1.",
    );
    let _ = writeln!(
        out,
        "shadowdiff_build_info{{version=\"{}\"}} 1",
        label(env!("CARGO_PKG_VERSION"))
    );
    if let Some(recorder) = &state.recorder {
        family(
            &mut out,
            "shadowdiff_samples_total",
            "counter",
            "Sampled requests by endpoint and how they ended (matched, mismatched, candidate_error/KIND, skipped/REASON, dropped/REASON).",
        );
        for (endpoint, outcomes) in &recorder.tally().by_endpoint {
            for (outcome, count) in outcomes {
                let _ = writeln!(
                    out,
                    "shadowdiff_samples_total{{endpoint=\"{}\",outcome=\"{}\"}} {count}",
                    label(endpoint.as_str()),
                    label(&outcome.to_string())
                );
            }
        }
    }
    if let Some(stats) = &state.connections {
        let counters = [
            ("accepted", &stats.accepted),
            ("accept_errors", &stats.accept_errors),
            ("header_timeouts", &stats.header_timeouts),
            ("idle_closed", &stats.idle_closed),
            ("evicted", &stats.evicted),
        ];
        family(
            &mut out,
            "shadowdiff_client_connections_total",
            "counter",
            "Client connections by event: accepted, failed accepts, closed for a slow head, for idleness or to make room.",
        );
        for (event, counter) in counters {
            let _ = writeln!(
                out,
                "shadowdiff_client_connections_total{{event=\"{event}\"}} {}",
                counter.load(Ordering::Relaxed)
            );
        }
        family(
            &mut out,
            "shadowdiff_client_connections_open",
            "gauge",
            "Client connections open now.",
        );
        let _ = writeln!(
            out,
            "shadowdiff_client_connections_open {}",
            stats.open.load(Ordering::Relaxed)
        );
    }
    if let Some(health) = &state.health {
        let health = health.snapshot();
        family(
            &mut out,
            "shadowdiff_store_unwritten",
            "gauge",
            "Rows and exemplars waiting in memory for the store.",
        );
        let _ = writeln!(out, "shadowdiff_store_unwritten {}", health.unwritten);
        family(
            &mut out,
            "shadowdiff_store_records_lost_total",
            "counter",
            "Records the store writer lost, by reason.",
        );
        for (reason, count) in &health.lost {
            let _ = writeln!(
                out,
                "shadowdiff_store_records_lost_total{{reason=\"{}\"}} {count}",
                reason.as_str()
            );
        }
        family(
            &mut out,
            "shadowdiff_store_failing",
            "gauge",
            "1 while the store's writes fail.",
        );
        let _ = writeln!(
            out,
            "shadowdiff_store_failing {}",
            u8::from(health.failing_since_ms.is_some())
        );
    }
    out
}

/// A metric family's HELP and TYPE lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A label value escaped as the format asks: backslash, quote, newline.
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("GET /a\"b\\c\nd"), "GET /a\\\"b\\\\c\\nd");
    }
}
