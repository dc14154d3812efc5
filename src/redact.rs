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

/// Headers that carry a URL, whose query parameters are redacted.
const URL_HEADERS: &[&str] = &["location", "content-location", "referer"];

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
                (
                    name.as_str().to_string(),
                    self.header_value(name.as_str(), value.as_bytes()),
                )
            })
            .collect()
    }

    /// The same headers as a map, for comparing redacted responses.
    pub fn header_map(&self, headers: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            if let Ok(masked) =
                http::HeaderValue::from_str(&self.header_value(name.as_str(), value.as_bytes()))
            {
                out.append(name.clone(), masked);
            }
        }
        out
    }

    /// Whether a raw (still percent-encoded) parameter name is configured,
    /// whatever its case or encoding (`Token`, `t%6Fken`).
    fn is_secret_parameter(&self, raw: &str) -> bool {
        let name: String = form_urlencoded::parse(raw.as_bytes())
            .next()
            .map(|(k, _)| k.into_owned())
            .unwrap_or_default();
        self.query.iter().any(|q| q.eq_ignore_ascii_case(&name))
    }

    /// A header value with secrets masked: a listed header whole, a URL in
    /// Location, Content-Location or Referer in its query.
    fn header_value(&self, name: &str, value: &[u8]) -> String {
        if self.headers.iter().any(|h| h == name) {
            return self.mask(value);
        }
        let text = String::from_utf8_lossy(value);
        match (URL_HEADERS.contains(&name), text.split_once('?')) {
            (true, Some((base, query))) => format!("{base}?{}", self.query(query)),
            _ => text.into_owned(),
        }
    }

    /// A query string with the configured parameters' values masked.
    pub fn query(&self, query: &str) -> String {
        if self.query.is_empty() {
            return query.to_string();
        }
        query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, value)) if self.is_secret_parameter(name) => {
                    format!("{name}={}", self.mask(value.as_bytes()))
                }
                _ => pair.to_string(),
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    /// A body as it may be stored: decoded, with the configured JSON paths
    /// masked in JSON and form bodies. What cannot be read safely is masked
    /// whole: a body that does not decode, or a JSON or form body that does
    /// not parse while JSON paths are configured.
    pub fn body(&self, body: &bytes::Bytes, headers: &HeaderMap, limit: usize) -> bytes::Bytes {
        self.body_or_stand_in(body, headers, limit)
            .unwrap_or_else(|stand_in| stand_in)
    }

    /// The redacted body, or `None` where only a stand-in could be given:
    /// for copies that must be the request itself (the record file).
    pub fn body_exact(
        &self,
        body: &bytes::Bytes,
        headers: &HeaderMap,
        limit: usize,
    ) -> Option<bytes::Bytes> {
        self.body_or_stand_in(body, headers, limit).ok()
    }

    fn body_or_stand_in(
        &self,
        body: &bytes::Bytes,
        headers: &HeaderMap,
        limit: usize,
    ) -> Result<bytes::Bytes, bytes::Bytes> {
        use crate::compare::decode::{self, BodyKind};
        let Ok(decoded) = decode::decode(body, headers, limit) else {
            return Err(self.whole("undecodable body", body).into());
        };
        if self.json.is_empty() {
            return Ok(decoded);
        }
        match BodyKind::of(headers, &decoded) {
            BodyKind::Json => match crate::compare::json::parse(&decoded) {
                Ok(parsed) => {
                    let mut value = parsed.value;
                    self.redact_value(&mut value, &mut Vec::new());
                    serde_json::to_vec(&value)
                        .map(Into::into)
                        .map_err(|_| self.whole("body", &decoded).into())
                }
                Err(_) => Err(self.whole("unparseable JSON body", &decoded).into()),
            },
            BodyKind::Form => {
                let mut out = form_urlencoded::Serializer::new(String::new());
                for (key, value) in form_urlencoded::parse(&decoded) {
                    let secret = self
                        .json
                        .iter()
                        .any(|p| p.matches(&[key.as_ref()]) || p.matches(&[key.as_ref(), "0"]));
                    let value = if secret {
                        self.mask(value.as_bytes())
                    } else {
                        value.into_owned()
                    };
                    out.append_pair(&key, &value);
                }
                Ok(out.finish().into_bytes().into())
            }
            _ => Ok(decoded),
        }
    }

    /// A stand-in for a whole body that could not be redacted piece by piece.
    fn whole(&self, what: &str, body: &[u8]) -> Vec<u8> {
        format!("{what} of {} bytes, {}", body.len(), self.mask(body)).into_bytes()
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

        let json = json_headers("application/json");
        let body = bytes::Bytes::from_static(
            br#"{"user":{"password":"hunter2"},"card":{"number":"4111"},"n":1}"#,
        );
        let out = String::from_utf8(r.body(&body, &json, 1 << 20).to_vec()).unwrap();
        assert!(
            !out.contains("hunter2") && !out.contains("4111") && out.contains("\"n\":1"),
            "{out}"
        );

        // Python's NaN, forms, bodies that do not parse or decode: nothing leaks.
        let nan = bytes::Bytes::from_static(br#"{"password":"hunter2","score":NaN}"#);
        assert!(!String::from_utf8_lossy(&r.body(&nan, &json, 1 << 20)).contains("hunter2"));
        let form = bytes::Bytes::from_static(b"user=ada&password=hunter2");
        let out = r.body(
            &form,
            &json_headers("application/x-www-form-urlencoded"),
            1 << 20,
        );
        let out = String::from_utf8_lossy(&out);
        assert!(
            !out.contains("hunter2") && out.contains("user=ada"),
            "{out}"
        );
        let broken = bytes::Bytes::from_static(br#"{"password":"hunter2""#);
        assert!(!String::from_utf8_lossy(&r.body(&broken, &json, 1 << 20)).contains("hunter2"));
        let mut gzip = json_headers("application/json");
        gzip.insert("content-encoding", HeaderValue::from_static("gzip"));
        let undecodable = bytes::Bytes::from_static(b"\x1f\x8b not really gzip hunter2");
        assert!(
            !String::from_utf8_lossy(&r.body(&undecodable, &gzip, 1 << 20)).contains("hunter2")
        );

        assert!(!r.query("Token=s3cr3t").contains("s3cr3t"));
        assert!(!r.query("t%6Fken=s3cr3t").contains("s3cr3t"));
        let mut location = HeaderMap::new();
        location.insert("location", HeaderValue::from_static("/cb?token=s3cr3t&x=1"));
        assert!(!r.headers(&location)[0].1.contains("s3cr3t"));
    }

    fn json_headers(content_type: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static(content_type));
        h
    }

    #[test]
    fn without_a_key_hashes_differ_between_runs() {
        let a = Redactor::new(&RedactConfig::default());
        let b = Redactor::new(&RedactConfig::default());
        assert_ne!(a.mask(b"x"), b.mask(b"x"));
    }
}
