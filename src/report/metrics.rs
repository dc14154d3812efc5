//! GET /metrics: this process's live counts in Prometheus' text exposition
//! format (version 0.0.4), read from memory on every scrape, never from the
//! store: requests, sampled requests by endpoint and outcome, mismatches by
//! kind of difference, byte-equal pairs, per backend its 5xx, response
//! bytes and latency histogram, the shadow stage's queue, work in flight,
//! comparing time and rechecks, client connections, the store writer's
//! backlog and losses, and build information. Endpoint labels are bounded
//! by the endpoint cap (`max_endpoints`, then `other`).

use std::fmt::Write;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::ReportState;
use crate::connections::ConnectionStats;
use crate::notify::NotifyStats;
use crate::outcome::live::{bucket_bound, Compared, BACKENDS, BOUNDS, DIFFERENCES};
use crate::outcome::{OutcomeKey, Tally};
use crate::shadow::ShadowStats;
use crate::writer::health::HealthSnapshot;

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
        let tally = recorder.tally();
        samples(&mut out, &tally);
        compared(&mut out, &tally);
        latency(&mut out, &tally);
    }
    if let Some(shadow) = &state.shadow {
        shadow_stage(&mut out, shadow);
    }
    if let Some(stats) = &state.connections {
        connections(&mut out, stats);
    }
    if let Some(stats) = &state.notify {
        notifications(&mut out, stats);
    }
    if let Some(cutover) = &state.cutover {
        rollout(&mut out, cutover);
    }
    if let Some(health) = &state.health {
        store(&mut out, &health.snapshot());
    }
    out
}

fn samples(out: &mut String, tally: &Tally) {
    family(
        out,
        "shadowdiff_samples_total",
        "counter",
        "Sampled requests by endpoint and how they ended (matched, mismatched, candidate_error/KIND, skipped/REASON, dropped/REASON).",
    );
    for (endpoint, outcomes) in &tally.by_endpoint {
        // `matched` and `mismatched` always, zero or not: a ratio of rates
        // over a series that does not exist is empty, not 0, and an alert
        // on parity would stay silent when nothing matches.
        let mut outcomes = outcomes.clone();
        for key in [OutcomeKey::Matched, OutcomeKey::Mismatched] {
            outcomes.entry(key).or_insert(0);
        }
        for (outcome, count) in &outcomes {
            let _ = writeln!(
                out,
                "shadowdiff_samples_total{{endpoint=\"{}\",outcome=\"{}\"}} {count}",
                label(endpoint.as_str()),
                label(&outcome.to_string())
            );
        }
    }
}

/// Per endpoint, one line per value of a per-kind array.
fn per_kind(
    out: &mut String,
    tally: &Tally,
    (name, kind_label, kinds): (&str, &str, &[&str]),
    values: impl Fn(&Compared) -> &[u64],
) {
    for (endpoint, c) in &tally.compared {
        for (kind, n) in kinds.iter().zip(values(c)) {
            let _ = writeln!(
                out,
                "{name}{{endpoint=\"{}\",{kind_label}=\"{kind}\"}} {n}",
                label(endpoint.as_str())
            );
        }
    }
}

fn compared(out: &mut String, tally: &Tally) {
    family(
        out,
        "shadowdiff_mismatches_total",
        "counter",
        "Mismatches by endpoint and what differed (status, headers, body); one mismatch may count under several.",
    );
    let mismatches = (
        "shadowdiff_mismatches_total",
        "difference",
        &DIFFERENCES[..],
    );
    per_kind(out, tally, mismatches, |c| &c.mismatches);
    family(
        out,
        "shadowdiff_byte_equal_total",
        "counter",
        "Compared pairs whose decoded bodies were identical bytes.",
    );
    for (endpoint, c) in &tally.compared {
        let _ = writeln!(
            out,
            "shadowdiff_byte_equal_total{{endpoint=\"{}\"}} {}",
            label(endpoint.as_str()),
            c.byte_equal
        );
    }
    family(
        out,
        "shadowdiff_backend_5xx_total",
        "counter",
        "Compared responses with a 5xx status, by endpoint and backend.",
    );
    let errors = ("shadowdiff_backend_5xx_total", "backend", &BACKENDS[..]);
    per_kind(out, tally, errors, |c| &c.server_errors);
    family(
        out,
        "shadowdiff_backend_response_bytes_total",
        "counter",
        "Response body bytes of compared pairs as received (compressed bodies count compressed), by endpoint and backend.",
    );
    let bytes = (
        "shadowdiff_backend_response_bytes_total",
        "backend",
        &BACKENDS[..],
    );
    per_kind(out, tally, bytes, |c| &c.response_bytes);
}

fn latency(out: &mut String, tally: &Tally) {
    let name = "shadowdiff_backend_latency_seconds";
    family(
        out,
        name,
        "histogram",
        "Time from a compared request's last byte sent to its response's first byte received, by endpoint and backend; buckets about 4.4% wide from 1 ms to 16.4 s.",
    );
    // The bounds as text once, not per endpoint.
    let bounds: Vec<String> = (0..BOUNDS)
        .map(|i| format!("{}", bucket_bound(i)))
        .chain(std::iter::once("+Inf".to_string()))
        .collect();
    for (endpoint, c) in &tally.compared {
        let endpoint = label(endpoint.as_str());
        for (backend, h) in BACKENDS.iter().zip(&c.latency) {
            let labels = format!("endpoint=\"{endpoint}\",backend=\"{backend}\"");
            for (le, n) in bounds.iter().zip(h.cumulative()) {
                let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
            }
            let _ = writeln!(out, "{name}_sum{{{labels}}} {}", h.sum_seconds());
            let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.count());
        }
    }
}

fn shadow_stage(out: &mut String, shadow: &ShadowStats) {
    let (comparisons, seconds) = shadow.comparisons();
    for (name, kind, help, value) in [
        (
            "shadowdiff_shadow_queue_depth",
            "gauge",
            "Sampled requests waiting in the shadow queue for a slot.",
            shadow.queued() as f64,
        ),
        (
            "shadowdiff_shadows_in_flight",
            "gauge",
            "Shadow jobs running: candidate calls and comparisons.",
            shadow.in_flight() as f64,
        ),
        (
            "shadowdiff_comparisons_total",
            "counter",
            "Comparisons made.",
            comparisons as f64,
        ),
        (
            "shadowdiff_compare_seconds_total",
            "counter",
            "Time spent comparing, in all.",
            seconds,
        ),
    ] {
        single(out, (name, kind, help), value);
    }
    let rechecks = shadow.rechecks();
    family(
        out,
        "shadowdiff_rechecks_total",
        "counter",
        "Mismatches of safe requests called again (recheck), by result: transient (the difference had gone: skipped/transient), differing (still there) or incomplete (not completed); the last two stay mismatches.",
    );
    for (result, n) in [
        ("transient", rechecks.transient),
        ("differing", rechecks.differing),
        ("incomplete", rechecks.incomplete),
    ] {
        let _ = writeln!(out, "shadowdiff_rechecks_total{{result=\"{result}\"}} {n}");
    }
    single(
        out,
        (
            "shadowdiff_rechecks_waiting",
            "gauge",
            "Mismatches waiting for their recheck or being rechecked, each holding a shadow slot.",
        ),
        rechecks.waiting,
    );
}

fn connections(out: &mut String, stats: &ConnectionStats) {
    single(
        out,
        (
            "shadowdiff_requests_total",
            "counter",
            "Requests read from clients, sampled or not.",
        ),
        stats.requests.load(Ordering::Relaxed),
    );
    let counters = [
        ("accepted", &stats.accepted),
        ("accept_errors", &stats.accept_errors),
        ("header_timeouts", &stats.header_timeouts),
        ("idle_closed", &stats.idle_closed),
        ("evicted", &stats.evicted),
    ];
    family(
        out,
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
    single(
        out,
        (
            "shadowdiff_client_connections_open",
            "gauge",
            "Client connections open now.",
        ),
        stats.open.load(Ordering::Relaxed),
    );
}

fn notifications(out: &mut String, stats: &NotifyStats) {
    family(
        out,
        "shadowdiff_notifications_total",
        "counter",
        "Notifications by target (webhook, slack) and result: sent, or failed after the last retry.",
    );
    let by_target = stats.by_target();
    for (target, sent, failed, _) in by_target {
        for (result, n) in [("sent", sent), ("failed", failed)] {
            let _ = writeln!(
                out,
                "shadowdiff_notifications_total{{target=\"{target}\",result=\"{result}\"}} {n}"
            );
        }
    }
    family(
        out,
        "shadowdiff_notification_retries_total",
        "counter",
        "Notification attempts that failed and were retried, by target.",
    );
    for (target, _, _, retries) in by_target {
        let _ = writeln!(
            out,
            "shadowdiff_notification_retries_total{{target=\"{target}\"}} {retries}"
        );
    }
    single(
        out,
        (
            "shadowdiff_notifications_dropped_total",
            "counter",
            "Notifications dropped because their queue was full or shutdown came first.",
        ),
        stats.dropped.load(Ordering::Relaxed),
    );
}

/// The cutover: each route's serving weight (bounded by the routes), the
/// requests each side served, the fallbacks, the kill file.
fn rollout(out: &mut String, cutover: &crate::rollout::Cutover) {
    let rollout = &cutover.rollout;
    family(
        out,
        "shadowdiff_rollout_weight_percent",
        "gauge",
        "The share of clients the candidate serves, by route (its match; * for the rest), as this instance applies it.",
    );
    for (i, key) in rollout.keys().iter().enumerate() {
        let weight = rollout.weight(i.checked_sub(1)).percent();
        let _ = writeln!(
            out,
            "shadowdiff_rollout_weight_percent{{route=\"{}\"}} {weight}",
            label(key)
        );
    }
    let (primary, candidate, fallbacks) = rollout.served();
    family(
        out,
        "shadowdiff_served_requests_total",
        "counter",
        "Client requests by the side that served them.",
    );
    for (side, n) in [("primary", primary), ("candidate", candidate)] {
        let _ = writeln!(
            out,
            "shadowdiff_served_requests_total{{side=\"{side}\"}} {n}"
        );
    }
    single(
        out,
        (
            "shadowdiff_rollout_fallbacks_total",
            "counter",
            "Safe requests the primary answered after the serving candidate could not.",
        ),
        fallbacks,
    );
    single(
        out,
        (
            "shadowdiff_rollout_killed",
            "gauge",
            "1 while the kill file exists here (every weight 0), else 0.",
        ),
        u8::from(cutover.killed_by_file()),
    );
}

fn store(out: &mut String, health: &HealthSnapshot) {
    single(
        out,
        (
            "shadowdiff_store_unwritten",
            "gauge",
            "Rows and exemplars waiting in memory for the store.",
        ),
        health.unwritten,
    );
    family(
        out,
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
    single(
        out,
        (
            "shadowdiff_store_failing",
            "gauge",
            "1 while the store's writes fail.",
        ),
        u8::from(health.failing_since_ms.is_some()),
    );
}

/// A family of one unlabelled series: its HELP and TYPE lines and value.
fn single(out: &mut String, (name, kind, help): (&str, &str, &str), value: impl std::fmt::Display) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
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
