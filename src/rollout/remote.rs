//! `shadowdiff rollout …` asks a running shadowdiff's report API: the
//! status (`GET /api/v1/rollout`) or a command (`POST`), with the report
//! token, and renders the answer as text for a terminal.

use std::time::Duration;

use serde_json::Value;

use crate::gate::remote::RemoteError;

/// Sends `command` (or asks for the status without one) and returns the
/// API's view of the cutover.
pub async fn call(
    base: &str,
    token: Option<&str>,
    command: Option<Value>,
) -> Result<Value, RemoteError> {
    let trimmed = base.trim_end_matches('/');
    let url = reqwest::Url::parse(&format!("{trimmed}/api/v1/rollout"))
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
        .ok_or_else(|| RemoteError::BadUrl(base.to_string()))?;
    let unreachable = |source| RemoteError::Unreachable {
        url: trimmed.to_string(),
        source,
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(unreachable)?;
    let request = match &command {
        Some(body) => client
            .post(url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string()),
        None => client.get(url),
    };
    let body = crate::gate::remote::send(request, trimmed, token).await?;
    serde_json::from_slice(&body).map_err(|e| RemoteError::Malformed {
        url: trimmed.to_string(),
        detail: e.to_string(),
    })
}

/// Whether the API refused the request (the caller's to fix: exit 2),
/// rather than failed or could not be reached.
pub fn is_refusal(e: &RemoteError) -> bool {
    match e {
        RemoteError::Refused { status, .. } => *status < 500,
        RemoteError::Unauthorized | RemoteError::BadUrl(_) => true,
        RemoteError::Unreachable { .. } | RemoteError::Malformed { .. } => false,
    }
}

/// A weight as people write it: `25%`, `0.5%`.
fn percent(v: &Value) -> String {
    match v.as_f64() {
        Some(p) if p.fract() == 0.0 => format!("{p:.0}%"),
        Some(p) => format!("{p}%"),
        None => "-".into(),
    }
}

/// The cutover as aligned text: each route's weight, plan and state, what
/// was served, and the latest changes.
pub fn render(view: &Value) -> String {
    let mut out = String::new();
    if view["killed_by_file"] == true {
        out.push_str("KILLED: the kill file exists on this instance; every weight is 0 here\n\n");
    }
    let rows: Vec<[String; 5]> = view["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let stored = &r["stored"];
            let plan = r["plan"]["steps"]
                .as_array()
                .map(|s| s.iter().map(percent).collect::<Vec<_>>().join(" → "))
                .unwrap_or_else(|| "-".into());
            let state = match (stored.is_null(), stored["paused"] == true) {
                (true, _) => "configured".to_string(),
                (false, true) => format!("paused since {}", stored["since"].as_str().unwrap_or("")),
                (false, false) => format!("since {}", stored["since"].as_str().unwrap_or("")),
            };
            [
                r["route"].as_str().unwrap_or("").to_string(),
                percent(&r["weight"]),
                stored["step"]
                    .as_i64()
                    .map_or("-".into(), |s| s.to_string()),
                plan,
                state,
            ]
        })
        .collect();
    let header = ["ROUTE", "WEIGHT", "STEP", "PLAN", "STATE"].map(String::from);
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    let s = &view["served"];
    out.push_str(&format!(
        "\nserved here: {} by the primary, {} by the candidate, {} fallbacks\n",
        s["primary"], s["candidate"], s["fallbacks"]
    ));
    let history = view["history"].as_array().map_or(&[][..], |h| h.as_slice());
    if !history.is_empty() {
        out.push_str("\nlatest changes:\n");
        for e in history.iter().take(10) {
            out.push_str(&format!(
                "  {}  {}  {} → {}  {}: {} ({})\n",
                e["at"].as_str().unwrap_or(""),
                e["route"].as_str().unwrap_or(""),
                percent(&e["from"]),
                percent(&e["to"]),
                e["reason"].as_str().unwrap_or(""),
                e["detail"].as_str().unwrap_or(""),
                e["instance"].as_str().unwrap_or(""),
            ));
        }
    }
    out
}
