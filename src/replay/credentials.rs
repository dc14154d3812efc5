//! `replay --credentials FILE`: real credentials for recorded requests,
//! whose own were stored as keyed hashes. A credential sets one header,
//! for every request of the endpoints it names, to a value written in the
//! file or read from an environment variable, or, keyed by a value each
//! request carries (`by = "header:x-user-id"`), to that user's value from a
//! JSON file (`{"42": "token-of-42"}`).
//!
//! Every value set is marked sensitive, so the store masks it whatever the
//! header's name; a request a keyed credential has no value for keeps its
//! recorded header and is counted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use http::{HeaderMap, HeaderValue};
use serde::Deserialize;

use crate::config::{HeaderSource, RewritableHeader};
use crate::gate::EndpointGlob;
use crate::sampling::StickyKey;

/// Why a credentials file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    credential: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    header: RewritableHeader,
    #[serde(default)]
    endpoint: Option<String>,
    #[serde(default)]
    value: Option<HeaderSource>,
    #[serde(default)]
    by: Option<StickyKey>,
    #[serde(default)]
    values: Option<PathBuf>,
    #[serde(default)]
    prefix: String,
}

/// Where one credential's value comes from.
enum Value {
    One(HeaderValue),
    /// The request's key value → the header's value.
    Keyed(StickyKey, HashMap<Vec<u8>, HeaderValue>),
}

struct Credential {
    header: RewritableHeader,
    endpoint: Option<EndpointGlob>,
    value: Value,
}

/// The credentials of a replay, in file order.
#[derive(Default)]
pub struct Credentials(Vec<Credential>);

/// Never the values: they are secrets.
impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({} entries)", self.0.len())
    }
}

impl Credentials {
    /// Reads a credentials file; a `values` file is read relative to it.
    pub fn read(path: &Path) -> Result<Credentials, CredentialsError> {
        let invalid = |message: String| CredentialsError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file: File =
            serde_path_to_error::deserialize(toml::Deserializer::new(&text)).map_err(|e| {
                let key = e.path().to_string();
                invalid(format!("key `{key}`: {}", e.into_inner()))
            })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        let mut out = Vec::new();
        for (i, entry) in file.credential.into_iter().enumerate() {
            let key = |k: &str| format!("credential[{i}].{k}");
            let endpoint = entry
                .endpoint
                .map(|e| e.parse::<EndpointGlob>())
                .transpose()
                .map_err(|e| invalid(format!("{}: {e}", key("endpoint"))))?;
            let value = match (entry.value, entry.by, entry.values) {
                (Some(source), None, None) if entry.prefix.is_empty() => {
                    let mut v = source.value().clone();
                    v.set_sensitive(true);
                    Value::One(v)
                }
                (None, Some(by), Some(values)) => {
                    Value::Keyed(by, keyed_values(&dir.join(values), &entry.prefix).map_err(|m| invalid(format!("{}: {m}", key("values"))))?)
                }
                _ => {
                    return Err(invalid(format!(
                        "credential[{i}]: give `value` (text or {{ env = \"NAME\", prefix = \"…\" }}), or `by` and `values` (with an optional `prefix`)"
                    )))
                }
            };
            out.push(Credential {
                header: entry.header,
                endpoint,
                value,
            });
        }
        Ok(Credentials(out))
    }

    /// Sets the credentials of a request of `endpoint`: the first one that
    /// applies to each header. Returns how many keyed credentials had no
    /// value for it.
    pub fn apply(&self, endpoint: &str, headers: &mut HeaderMap, query: Option<&str>) -> usize {
        let mut missing = 0;
        let mut done: Vec<&http::HeaderName> = Vec::new();
        for c in &self.0 {
            let name = c.header.name();
            if done.contains(&name) || c.endpoint.as_ref().is_some_and(|e| !e.matches(endpoint)) {
                continue;
            }
            let value = match &c.value {
                Value::One(v) => Some(v.clone()),
                Value::Keyed(by, values) => {
                    by.find(headers, query).and_then(|k| values.get(k)).cloned()
                }
            };
            match value {
                Some(v) => {
                    headers.insert(name.clone(), v);
                    done.push(name);
                }
                None => missing += 1,
            }
        }
        missing
    }
}

/// A JSON object of key → value, each value a valid (sensitive) header
/// value with `prefix` before it.
fn keyed_values(path: &Path, prefix: &str) -> Result<HashMap<Vec<u8>, HeaderValue>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let map: HashMap<String, String> = serde_json::from_str(&text)
        .map_err(|e| format!("{} is not a JSON object of strings: {e}", path.display()))?;
    map.into_iter()
        .map(|(k, v)| {
            let mut value = HeaderValue::from_str(&format!("{prefix}{v}")).map_err(|_| {
                // The value is a secret: named by its key only.
                format!(
                    "{}: the value for {k:?} is not a valid header value",
                    path.display()
                )
            })?;
            value.set_sensitive(true);
            Ok((k.into_bytes(), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_by_endpoint_and_by_user() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("tokens.json"),
            r#"{"7": "tok-7", "8": "tok-8"}"#,
        )
        .unwrap();
        let file = dir.path().join("credentials.toml");
        std::fs::write(
            &file,
            r#"
            [[credential]]
            header = "x-api-key"
            endpoint = "GET /admin/**"
            value = "admin-key"

            [[credential]]
            header = "authorization"
            by = "header:x-user-id"
            values = "tokens.json"
            prefix = "Bearer "
            "#,
        )
        .unwrap();
        let c = Credentials::read(&file).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-user-id", HeaderValue::from_static("7"));
        h.insert("authorization", HeaderValue::from_static("redacted:abc"));
        assert_eq!(c.apply("GET /orders/{id}", &mut h, None), 0);
        assert_eq!(h["authorization"], "Bearer tok-7");
        assert!(h["authorization"].is_sensitive());
        assert!(!h.contains_key("x-api-key"));
        assert_eq!(c.apply("GET /admin/users", &mut h, None), 0);
        assert_eq!(h["x-api-key"], "admin-key");
        let mut unknown = HeaderMap::new();
        unknown.insert("x-user-id", HeaderValue::from_static("9"));
        assert_eq!(c.apply("GET /orders/{id}", &mut unknown, None), 1);
        assert!(!unknown.contains_key("authorization"));

        std::fs::write(&file, "[[credential]]\nheader = \"authorization\"\n").unwrap();
        let err = Credentials::read(&file).err().unwrap().to_string();
        assert!(err.contains("credential[0]"), "{err}");
        std::fs::write(
            &file,
            "[[credential]]\nheader = \"connection\"\nvalue = \"x\"\n",
        )
        .unwrap();
        let err = Credentials::read(&file).err().unwrap().to_string();
        assert!(
            err.contains("credential[0].header") && err.contains("hop-by-hop"),
            "{err}"
        );
    }
}
