//! Redaction: secrets are replaced before anything is written to the store.
//! Authorization, Proxy-Authorization, Cookie and Set-Cookie always, plus the
//! headers, query parameters and JSON paths configured under `[redact]`.
//!
//! A redacted value becomes `redacted:` and a keyed hash (HMAC-SHA-256) of
//! it: the same value gives the same hash, so a stored diff still shows
//! whether two secrets were equal, and nobody without the key can test a
//! guess against it.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

use crate::compare::rules::PathPattern;

/// Headers that are always redacted.
pub const ALWAYS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// `[redact]` as written.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactConfig {
    /// More header names to redact.
    #[serde(default)]
    pub headers: Vec<String>,
    /// Query parameter names whose values are redacted.
    #[serde(default)]
    pub query: Vec<String>,
    /// JSON paths (with `*` and `**`) redacted in request and response bodies.
    #[serde(default)]
    pub json: Vec<PathPattern>,
    /// The hash key; set the same on every instance so hashes agree. Without
    /// one, a random key is drawn at start.
    pub key: Option<String>,
}

/// Redacts with one key and one set of rules.
#[derive(Clone)]
pub struct Redactor {
    key: Vec<u8>,
    headers: Vec<String>,
    query: Vec<String>,
    json: Vec<PathPattern>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactor")
            .field("headers", &self.headers)
            .field("query", &self.query)
            .field("json", &self.json)
            .finish_non_exhaustive()
    }
}

impl Redactor {
    pub fn new(config: &RedactConfig) -> Redactor {
        let key = match &config.key {
            Some(key) => key.as_bytes().to_vec(),
            None => rand::random::<[u8; 32]>().to_vec(),
        };
        let mut headers: Vec<String> = ALWAYS.iter().map(|h| h.to_string()).collect();
        headers.extend(config.headers.iter().map(|h| h.trim().to_ascii_lowercase()));
        Redactor {
            key,
            headers,
            query: config.query.clone(),
            json: config.json.clone(),
        }
    }

    /// The stand-in for a secret value.
    pub fn mask(&self, value: &[u8]) -> String {
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("HMAC takes any key length");
        mac.update(value);
        let digest = mac.finalize().into_bytes();
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("redacted:{hex}")
    }

    /// Headers as name/value pairs, secrets masked.
    pub fn headers(&self, headers: &HeaderMap) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(name, value)| {
                let value = if self.headers.iter().any(|h| h == name.as_str()) {
                    self.mask(value.as_bytes())
                } else {
                    String::from_utf8_lossy(value.as_bytes()).into_owned()
                };
                (name.as_str().to_string(), value)
            })
            .collect()
    }

    /// The same headers as a map, for comparing redacted responses.
    pub fn header_map(&self, headers: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            if self.headers.iter().any(|h| h == name.as_str()) {
                if let Ok(masked) = http::HeaderValue::from_str(&self.mask(value.as_bytes())) {
                    out.append(name.clone(), masked);
                }
            } else {
                out.append(name.clone(), value.clone());
            }
        }
        out
    }

    /// A query string with the configured parameters' values masked.
    pub fn query(&self, query: &str) -> String {
        if self.query.is_empty() {
            return query.to_string();
        }
        query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) if self.query.iter().any(|q| q == name) => {
                    format!("{name}={}", self.mask(value.as_bytes()))
                }
                _ => pair.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    /// A JSON body with the configured paths masked; other bodies unchanged.
    pub fn body(&self, body: &[u8]) -> Vec<u8> {
        if self.json.is_empty() {
            return body.to_vec();
        }
        let Ok(mut value) = serde_json::from_slice::<Value>(body) else {
            return body.to_vec();
        };
        let mut path = Vec::new();
        if self.redact_value(&mut value, &mut path) {
            serde_json::to_vec(&value).unwrap_or_else(|_| body.to_vec())
        } else {
            body.to_vec()
        }
    }

    /// Masks matching members in place; `true` if anything changed.
    fn redact_value(&self, value: &mut Value, path: &mut Vec<String>) -> bool {
        if !path.is_empty() && self.json.iter().any(|p| p.matches(path)) {
            *value = Value::String(self.mask(value.to_string().as_bytes()));
            return true;
        }
        let mut changed = false;
        match value {
            Value::Object(map) => {
                for (key, child) in map.iter_mut() {
                    path.push(key.clone());
                    changed |= self.redact_value(child, path);
                    path.pop();
                }
            }
            Value::Array(items) => {
                for (i, child) in items.iter_mut().enumerate() {
                    path.push(i.to_string());
                    changed |= self.redact_value(child, path);
                    path.pop();
                }
            }
            _ => {}
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn redactor() -> Redactor {
        Redactor::new(
            &toml::from_str::<RedactConfig>(
                "headers = [\"X-Api-Key\"]\nquery = [\"token\"]\njson = [\"/**/password\", \"/card/number\"]\nkey = \"k\"",
            )
            .unwrap(),
        )
    }

    #[test]
    fn secrets_are_masked_consistently() {
        let r = redactor();
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer abc"));
        h.insert("x-api-key", HeaderValue::from_static("xyz"));
        h.insert("accept", HeaderValue::from_static("*/*"));
        let pairs = r.headers(&h);
        assert!(pairs
            .iter()
            .all(|(_, v)| !v.contains("abc") && !v.contains("xyz")));
        assert!(pairs.contains(&("accept".into(), "*/*".into())));
        assert_eq!(r.mask(b"same"), r.mask(b"same"));
        assert_ne!(r.mask(b"same"), r.mask(b"other"));

        let q = r.query("token=s3cr3t&page=2");
        assert!(!q.contains("s3cr3t") && q.ends_with("&page=2"), "{q}");

        let body = br#"{"user":{"password":"hunter2"},"card":{"number":"4111"},"n":1}"#;
        let out = String::from_utf8(r.body(body)).unwrap();
        assert!(
            !out.contains("hunter2") && !out.contains("4111") && out.contains("\"n\":1"),
            "{out}"
        );
    }

    #[test]
    fn without_a_key_hashes_differ_between_runs() {
        let a = Redactor::new(&RedactConfig::default());
        let b = Redactor::new(&RedactConfig::default());
        assert_ne!(a.mask(b"x"), b.mask(b"x"));
    }
}
