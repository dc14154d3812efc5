//! What a notification says, as sent: the generic webhook's JSON, a
//! versioned wire format (fields are only ever added; `version` 1), and the
//! Slack-compatible text. A leaf of its own beside the sender rather than
//! in `report`, whose API it is not. Neither carries a body, a header's
//! value or a query: only what the report API's group list shows.
//!
//! ```json
//! {"version": 1, "event": "new_mismatch_group", "at": "…", "instance": "…",
//!  "group": {"fingerprint": "…", "endpoint": "GET /users/{id}",
//!            "paths": ["/email"], "headers": [], "statuses": null,
//!            "first_seen": "…"}}
//! {"version": 1, "event": "gate_verdict_changed", "at": "…", "instance": "…",
//!  "gate": {"criteria": "min_parity=99.9", "from": "pass", "to": "fail",
//!           "reason": "…", "window": {"since": "…", "until": "…"}}}
//! ```

use serde::Serialize;
use serde_json::json;

use super::{Event, GateChange, NewGroup};
use crate::time::format_millis;

/// The version of the webhook's JSON.
pub const PAYLOAD_VERSION: u32 = 1;

#[derive(Serialize)]
struct Statuses {
    primary: u16,
    candidate: u16,
}

/// The generic webhook's JSON for an event.
pub fn webhook(event: &Event, instance: &str, at_ms: i64) -> String {
    let (name, detail) = match event {
        Event::NewGroup(g) => ("new_mismatch_group", ("group", group(g))),
        Event::GateChanged(c) => ("gate_verdict_changed", ("gate", gate(c))),
    };
    let mut body = json!({
        "version": PAYLOAD_VERSION,
        "event": name,
        "at": format_millis(at_ms),
        "instance": instance,
    });
    body[detail.0] = detail.1;
    body.to_string()
}

fn group(g: &NewGroup) -> serde_json::Value {
    json!({
        "fingerprint": g.fingerprint,
        "endpoint": g.endpoint,
        "paths": g.paths,
        "headers": g.headers,
        "statuses": g.statuses.map(|(primary, candidate)| Statuses { primary, candidate }),
        "first_seen": format_millis(g.first_seen_ms),
    })
}

fn gate(c: &GateChange) -> serde_json::Value {
    json!({
        "criteria": c.gate,
        "from": c.from.map(|v| v.as_str()),
        "to": c.to.as_str(),
        "reason": c.reason,
        "window": {"since": format_millis(c.since_ms), "until": format_millis(c.until_ms)},
    })
}

/// Slack's `{"text": …}` for an event: one line, with the names in code.
pub fn slack(event: &Event, instance: &str) -> String {
    let text = match event {
        Event::NewGroup(g) => {
            let mut what = Vec::new();
            if let Some((p, c)) = g.statuses {
                what.push(format!("status {p} → {c}"));
            }
            if !g.headers.is_empty() {
                what.push(format!("headers {}", code_list(&g.headers)));
            }
            if !g.paths.is_empty() {
                what.push(format!("body at {}", code_list(&g.paths)));
            }
            format!(
                "shadowdiff ({}): new mismatch group `{}` on `{}`: {}",
                escape(instance),
                escape(&g.fingerprint),
                escape(&g.endpoint),
                if what.is_empty() {
                    "the body differs".to_string()
                } else {
                    what.join("; ")
                }
            )
        }
        Event::GateChanged(c) => format!(
            "shadowdiff ({}): the gate `{}` is now *{}* (was {}): {}",
            escape(instance),
            escape(&c.gate),
            c.to.as_str(),
            c.from.map_or("not yet decided", |v| v.as_str()),
            escape(&c.reason)
        ),
    };
    json!({ "text": text }).to_string()
}

/// At most five, in code, and how many more.
fn code_list(items: &[String]) -> String {
    let mut list: Vec<String> = items
        .iter()
        .take(5)
        .map(|i| format!("`{}`", escape(i)))
        .collect();
    if items.len() > 5 {
        list.push(format!("and {} more", items.len() - 5));
    }
    list.join(", ")
}

/// Slack's three control characters, and backticks, which would end a code span.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('`', "'")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::GateVerdict;

    fn new_group() -> Event {
        Event::NewGroup(NewGroup {
            fingerprint: "0123abcd".into(),
            endpoint: "GET /users/{id}".into(),
            paths: vec!["/email".into()],
            headers: vec![],
            statuses: Some((200, 500)),
            first_seen_ms: 0,
        })
    }

    #[test]
    fn the_webhook_json_is_versioned_and_complete() {
        let body: serde_json::Value =
            serde_json::from_str(&webhook(&new_group(), "i-1", 60_000)).unwrap();
        assert_eq!(body["version"], 1);
        assert_eq!(body["event"], "new_mismatch_group");
        assert_eq!(body["at"], "1970-01-01T00:01:00Z");
        assert_eq!(
            body["group"]["statuses"],
            json!({"primary": 200, "candidate": 500})
        );
        assert_eq!(body["group"]["paths"], json!(["/email"]));
        let change = Event::GateChanged(GateChange {
            gate: "min_parity=99".into(),
            from: None,
            to: GateVerdict::Fail,
            reason: "parity 98%".into(),
            since_ms: 0,
            until_ms: 3_600_000,
        });
        let body: serde_json::Value = serde_json::from_str(&webhook(&change, "i-1", 0)).unwrap();
        assert_eq!(body["gate"]["from"], serde_json::Value::Null);
        assert_eq!(body["gate"]["to"], "fail");
        assert_eq!(body["gate"]["window"]["until"], "1970-01-01T01:00:00Z");
    }

    #[test]
    fn slack_text_escapes_what_slack_reads_as_markup() {
        let mut g = match new_group() {
            Event::NewGroup(g) => g,
            _ => unreachable!(),
        };
        g.endpoint = "GET /<script>&`x`".into();
        let body: serde_json::Value =
            serde_json::from_str(&slack(&Event::NewGroup(g), "i")).unwrap();
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("GET /&lt;script&gt;&amp;'x'"), "{text}");
        assert!(
            text.contains("status 200 → 500") && text.contains("`/email`"),
            "{text}"
        );
    }
}
