//! Asks a running report API for the gate's decision (`--report-url`), so CI
//! needs no database access: the API computes it exactly as locally.

use std::time::Duration;

use super::{Criteria, GateReport};

/// Why the report API gave no decision.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The URL is not an http(s) URL.
    #[error("--report-url {0:?} is not an http:// or https:// URL")]
    BadUrl(String),
    /// Nothing answered, or the connection broke.
    #[error("cannot reach the report API at {url}: {source}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The API wants a (different) token.
    #[error("the report API refused the token (401): give the right one with --report-token or SHADOWDIFF_REPORT_TOKEN")]
    Unauthorized,
    /// The API refused a parameter; its message names it.
    #[error("the report API refused the request ({status}): {message}")]
    Refused { status: u16, message: String },
    /// The answer was not a gate report.
    #[error("the report API at {url} did not answer with a gate report: {detail}")]
    Malformed { url: String, detail: String },
}

/// Sends a request to the report API at `base` (with the token) and
/// returns a successful answer's body; a refusal carries the API's message.
pub async fn send(
    request: reqwest::RequestBuilder,
    base: &str,
    token: Option<&str>,
) -> Result<bytes::Bytes, RemoteError> {
    let request = match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let unreachable = |source| RemoteError::Unreachable {
        url: base.to_string(),
        source,
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let body = response.bytes().await.map_err(unreachable)?;
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(RemoteError::Unauthorized);
    }
    if !status.is_success() {
        // The API's error shape: {"error": {"message": …}}.
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(300).collect());
        return Err(RemoteError::Refused {
            status: status.as_u16(),
            message,
        });
    }
    Ok(body)
}

/// GET `{base}/api/v1/gate` with the criteria, window and run as query parameters.
pub async fn fetch(
    base: &str,
    token: Option<&str>,
    criteria: &Criteria,
    since: Option<&str>,
    until: Option<&str>,
    run: Option<&str>,
) -> Result<GateReport, RemoteError> {
    let trimmed = base.trim_end_matches('/');
    let mut url = reqwest::Url::parse(&format!("{trimmed}/api/v1/gate"))
        .map_err(|_| RemoteError::BadUrl(base.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(RemoteError::BadUrl(base.to_string()));
    }
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in criteria.to_query() {
            q.append_pair(k, &v);
        }
        if let Some(since) = since {
            q.append_pair("since", since);
        }
        if let Some(until) = until {
            q.append_pair("until", until);
        }
        if let Some(run) = run {
            q.append_pair("run", run);
        }
    }
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|source| RemoteError::Unreachable {
            url: url.to_string(),
            source,
        })?;
    let body = send(client.get(url.clone()), trimmed, token).await?;
    serde_json::from_slice(&body).map_err(|e| RemoteError::Malformed {
        url: trimmed.to_string(),
        detail: e.to_string(),
    })
}
