//! Notification settings as typed values: where to send them
//! ([`WebhookUrl`], shown without its path, which often holds the secret)
//! and which gate to watch ([`GateWatch`]: criteria and window parsed once,
//! as `/api/v1/gate` parses its query).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::gate::{Criteria, CRITERIA_PARAMETERS};

/// An http or https URL notifications are posted to. Its path and query
/// (a Slack webhook's token) never appear in logs or errors.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct WebhookUrl(reqwest::Url);

impl TryFrom<String> for WebhookUrl {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl WebhookUrl {
    pub fn url(&self) -> &reqwest::Url {
        &self.0
    }
}

impl FromStr for WebhookUrl {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            "expected an http:// or https:// URL with a host, such as https://hooks.example.com/services/…".to_string()
        };
        let url = reqwest::Url::parse(s.trim()).map_err(|_| bad())?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(bad());
        }
        Ok(WebhookUrl(url))
    }
}

/// Scheme, host and port only.
impl fmt::Display for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = self.0.host_str().unwrap_or("");
        match self.0.port() {
            Some(port) => write!(f, "{}://{host}:{port}/…", self.0.scheme()),
            None => write!(f, "{}://{host}/…", self.0.scheme()),
        }
    }
}

impl fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookUrl({self})")
    }
}

/// A gate whose verdict changes are notified: the criteria `/api/v1/gate`
/// takes, as its query text (`min_parity=99.9&max_latency_ratio=p99=1.05`),
/// and `since`, the window back from each decision (default 1h).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct GateWatch {
    pub criteria: Criteria,
    pub window: Duration,
    /// As given, to name the gate in notifications.
    pub text: String,
}

impl TryFrom<String> for GateWatch {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl FromStr for GateWatch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let text = s.trim();
        let mut pairs = Vec::new();
        let mut window = Duration::from_secs(3_600);
        for part in text.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            if name == "since" {
                window = crate::time::parse_duration(value).map_err(|e| format!("`since`: {e}"))?;
            } else if CRITERIA_PARAMETERS.contains(&name) {
                pairs.push((name.to_string(), value.to_string()));
            } else {
                return Err(format!(
                    "`{name}` is not a gate criterion; use {} or since",
                    CRITERIA_PARAMETERS.join(", ")
                ));
            }
        }
        let criteria = Criteria::from_query(&pairs).map_err(|e| e.to_string())?;
        Ok(GateWatch {
            criteria,
            window,
            text: text.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_hide_their_path() {
        let url: WebhookUrl = "https://hooks.slack.com/services/T0/B0/s3cret"
            .parse()
            .unwrap();
        assert_eq!(url.to_string(), "https://hooks.slack.com/…");
        assert!(!format!("{url:?}").contains("s3cret"));
        for bad in ["", "hooks.slack.com/x", "ftp://a/b", "http://"] {
            assert!(bad.parse::<WebhookUrl>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn gates_parse_once_and_name_bad_parts() {
        let g: GateWatch = "min_parity=99&max_latency_ratio=p99=1.05&since=30m&per_endpoint=true"
            .parse()
            .unwrap();
        assert_eq!(g.window, Duration::from_secs(1_800));
        assert!(g.criteria.per_endpoint);
        assert_eq!(g.criteria.min_parity.percent(), 99.0);
        assert!("colour=red"
            .parse::<GateWatch>()
            .unwrap_err()
            .contains("colour"));
        assert!("min_parity=abc"
            .parse::<GateWatch>()
            .unwrap_err()
            .contains("min_parity"));
        assert!("since=soon"
            .parse::<GateWatch>()
            .unwrap_err()
            .contains("since"));
    }
}
