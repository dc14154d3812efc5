//! Redaction: secrets are replaced before anything is written to the store.
//! Authorization, Proxy-Authorization, Cookie and Set-Cookie always (of a
//! Set-Cookie only the cookie's value: its name and attributes stay), plus
//! the headers, query parameters and JSON paths configured under `[redact]`.
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

mod multipart;
mod params;

use params::{decoded_name, decoded_value, form_like, name_parts, pairs};

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
            .map(|(name, value)| (name.as_str().to_string(), self.shown(name, value)))
            .collect()
    }

    /// A header's value as stored: masked when its name is configured, and
    /// whenever it is marked sensitive (a credential shadowdiff itself set,
    /// such as `replay --credentials`), whatever its name.
    fn shown(&self, name: &http::HeaderName, value: &http::HeaderValue) -> String {
        match value.is_sensitive() {
            true => self.mask(value.as_bytes()),
            false => self.header_value(name.as_str(), value.as_bytes()),
        }
    }

    /// The same headers as a map, for comparing redacted responses.
    pub fn header_map(&self, headers: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            if let Ok(masked) = http::HeaderValue::from_str(&self.shown(name, value)) {
                out.append(name.clone(), masked);
            }
        }
        out
    }

    /// Whether a raw (still percent-encoded) query parameter name is
    /// configured, whatever its case or encoding (`Token`, `t%6Fken`), alone
    /// or as a bracketed or dotted part (`token[]`, `auth[token]`).
    fn is_secret_parameter(&self, raw: &str) -> bool {
        let name = decoded_name(raw);
        let secret = |part: &str| self.query.iter().any(|q| q.eq_ignore_ascii_case(part));
        secret(&name) || name_parts(&name).iter().any(|part| secret(part))
    }

    /// Whether a form field (a form body's or a multipart part's name) is
    /// covered by a JSON path: `password` as `/password`, `user[password]`
    /// as `/user/password`, a repeated `tag[]` as `/tag/0`, whatever its case.
    fn is_secret_field(&self, name: &str) -> bool {
        let name = name.trim();
        let mut parts = name_parts(name);
        if self.is_secret_path(&[name]) || self.is_secret_path(&parts) {
            return true;
        }
        parts.push("0");
        self.is_secret_path(&parts)
    }

    /// Whether a JSON path is configured, matched as written or lower-cased
    /// (a service may read its keys without regard to case).
    fn is_secret_path<S: AsRef<str>>(&self, path: &[S]) -> bool {
        if path.is_empty() {
            return false;
        }
        if self.json.iter().any(|p| p.matches(path)) {
            return true;
        }
        if !path
            .iter()
            .any(|s| s.as_ref().chars().any(char::is_uppercase))
        {
            return false;
        }
        let lower: Vec<String> = path.iter().map(|s| s.as_ref().to_lowercase()).collect();
        self.json.iter().any(|p| p.matches(&lower))
    }

    /// A header value with secrets masked: a listed header whole, a URL in
    /// Location, Content-Location or Referer in its query.
    fn header_value(&self, name: &str, value: &[u8]) -> String {
        // Set-Cookie keeps its name and attributes, unless `[redact]` lists
        // it, which asks for the whole value to go.
        let listed = |header: &str| {
            self.headers[ALWAYS.len()..]
                .iter()
                .any(|h| h.eq_ignore_ascii_case(header))
        };
        if name.eq_ignore_ascii_case("set-cookie") && !listed("set-cookie") {
            return self.set_cookie(value);
        }
        if self.headers.iter().any(|h| h.eq_ignore_ascii_case(name)) {
            return self.mask(value);
        }
        let text = String::from_utf8_lossy(value);
        match (URL_HEADERS.contains(&name), text.split_once('?')) {
            (true, Some((base, query))) => format!("{base}?{}", self.query(query)),
            _ => text.into_owned(),
        }
    }

    /// A Set-Cookie value with the cookie's value masked and its name and
    /// attributes (Path, Domain, Secure, HttpOnly, SameSite, Max-Age,
    /// Expires) kept: they are no secret, and a stored exemplar must show
    /// the attribute difference its group names. Anything else after the
    /// first `;` (a misspelt attribute, or a second cookie folded in after a
    /// comma) keeps its name and has its value masked.
    fn set_cookie(&self, value: &[u8]) -> String {
        let text = String::from_utf8_lossy(value);
        let mut parts = text.split(';');
        let pair = parts.next().unwrap_or_default();
        // A name that is not an RFC 6265 token (a comma, a space, a quote)
        // may be a nameless cookie folded in front of another: all masked.
        let token = |name: &str| {
            let name = name.trim();
            !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_graphic() && !b"()<>@,;:\\\"/[]?={}".contains(&b))
        };
        let first = match pair.split_once('=') {
            Some((name, secret)) if token(name) => {
                format!("{}={}", name.trim(), self.mask(secret.trim().as_bytes()))
            }
            _ => self.mask(pair.trim().as_bytes()),
        };
        std::iter::once(first)
            .chain(parts.map(|part| self.cookie_attribute(part.trim())))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn cookie_attribute(&self, part: &str) -> String {
        const KNOWN: &[&str] = &[
            "path",
            "domain",
            "expires",
            "max-age",
            "samesite",
            "secure",
            "httponly",
            "partitioned",
            "priority",
        ];
        let known = |name: &str| KNOWN.contains(&name.trim().to_ascii_lowercase().as_str());
        match part.split_once('=') {
            Some((name, value)) => {
                // An Expires date has a comma of its own; any other comma may
                // start a folded cookie.
                let plain = match name.trim().eq_ignore_ascii_case("expires") {
                    true => httpdate::parse_http_date(value.trim()).is_ok(),
                    false => !value.contains(','),
                };
                match known(name) && plain {
                    true => part.to_string(),
                    false => format!("{}={}", name.trim(), self.mask(value.trim().as_bytes())),
                }
            }
            None if known(part) => part.to_string(),
            None => self.mask(part.as_bytes()),
        }
    }

    /// A request target (`/path?query`) with the configured query
    /// parameters' values masked.
    pub fn target(&self, target: &str) -> String {
        match target.split_once('?') {
            Some((path, query)) => format!("{path}?{}", self.query(query)),
            None => target.to_string(),
        }
    }

    /// A query string with the configured parameters' values masked. Pairs
    /// are separated by `&` or `;` (servers differ on `;`, so both count).
    pub fn query(&self, query: &str) -> String {
        if self.query.is_empty() && self.json.is_empty() {
            return query.to_string();
        }
        pairs(query, |name, value| match self.is_secret_parameter(name) {
            true => Some(self.mask(value.as_bytes())),
            false => self.json_value(value),
        })
    }

    /// A form body with the fields the JSON paths cover masked; everything
    /// else is kept byte for byte.
    fn form(&self, text: &str) -> String {
        pairs(text, |name, value| {
            match self.is_secret_field(&decoded_name(name)) {
                true => Some(self.mask(value.as_bytes())),
                false => self.json_value(value),
            }
        })
    }

    /// A query or form value that holds JSON (GraphQL's `variables`, say),
    /// redacted as JSON and encoded again; masked whole if it looks like
    /// JSON but does not parse; `None` if it is no JSON or had nothing to mask.
    fn json_value(&self, raw: &str) -> Option<String> {
        if self.json.is_empty() {
            return None;
        }
        let decoded = decoded_value(raw);
        if !looks_like_json(decoded.as_bytes()) {
            return None;
        }
        let Ok(parsed) = crate::compare::json::parse(decoded.as_bytes()) else {
            return Some(self.mask(raw.as_bytes()));
        };
        let mut value = parsed.value;
        if !self.redact_value(&mut value, &mut Vec::new()) {
            return None;
        }
        let text = serde_json::to_string(&value).ok()?;
        Some(form_urlencoded::byte_serialize(text.as_bytes()).collect())
    }

    /// A body as it may be stored: decoded, with the configured JSON paths
    /// masked in JSON, form and multipart bodies. What cannot be read safely
    /// is masked whole: a body that does not decode, and, while JSON paths
    /// are configured, a body that is neither JSON, a form nor multipart
    /// (whatever it is labelled, it is first tried as JSON and as a form),
    /// or that is labelled so but does not parse.
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
        let Ok(decoded) = crate::compare::decode::decode(body, headers, limit) else {
            return Err(self.whole("undecodable body", body).into());
        };
        if self.json.is_empty() {
            return Ok(decoded);
        }
        let content_type = headers
            .get(http::header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        self.content(&decoded, content_type.as_deref(), 0)
            .map(Into::into)
            .map_err(Into::into)
    }

    /// Content of a type (a Content-Type value) with the JSON paths masked;
    /// `Err` holds a stand-in, or content with stand-ins in it.
    fn content(
        &self,
        content: &[u8],
        content_type: Option<&str>,
        depth: usize,
    ) -> Result<Vec<u8>, Vec<u8>> {
        if content.is_empty() {
            return Ok(Vec::new());
        }
        let media = content_type
            .and_then(|t| t.split(';').next())
            .map(|t| t.trim().to_ascii_lowercase())
            .unwrap_or_default();
        if media == "application/json" || media.ends_with("+json") {
            return self
                .json_body(content)
                .ok_or_else(|| self.whole("unparseable JSON body", content));
        }
        if media == "application/x-www-form-urlencoded" {
            return std::str::from_utf8(content)
                .map(|text| self.form(text).into_bytes())
                .map_err(|_| self.whole("form body that is not UTF-8", content));
        }
        if media.starts_with("multipart/") {
            return match (content_type.and_then(multipart::boundary), depth < 4) {
                (Some(boundary), true) => self.multipart(content, &boundary, depth),
                _ => Err(self.whole("unparseable multipart body", content)),
            };
        }
        // Unknown or mislabelled (JSON sent as text/plain, octet-stream…):
        // read as what it turns out to be, else masked whole.
        if let Some(json) = self.json_body(content) {
            return Ok(json);
        }
        match std::str::from_utf8(content) {
            Ok(text) if form_like(text) => Ok(self.form(text).into_bytes()),
            _ => Err(self.whole("body of a type that cannot be redacted", content)),
        }
    }

    /// A JSON document with the configured paths masked, or `None` if it
    /// does not parse.
    fn json_body(&self, content: &[u8]) -> Option<Vec<u8>> {
        let mut value = crate::compare::json::parse(content).ok()?.value;
        self.redact_value(&mut value, &mut Vec::new());
        serde_json::to_vec(&value).ok()
    }

    /// A multipart body redacted part by part: a part whose name is covered
    /// by a JSON path is masked; a text field is redacted as a form field
    /// (kept, unless it is JSON or a form itself); any other part as content
    /// of its own type. Part headers listed under `headers` are masked too.
    fn multipart(&self, body: &[u8], boundary: &str, depth: usize) -> Result<Vec<u8>, Vec<u8>> {
        let unparseable = || self.whole("unparseable multipart body", body);
        let parts = multipart::split(body, boundary).ok_or_else(unparseable)?;
        let mut out = Vec::with_capacity(body.len());
        let mut exact = true;
        for part in parts {
            let headers = multipart::header_lines(part.headers).ok_or_else(unparseable)?;
            let name = multipart::field_name(&headers);
            let content_type = headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| *v);
            let text_field = !multipart::is_file(&headers)
                && content_type.is_none_or(|t| t.to_ascii_lowercase().starts_with("text/plain"));
            let content = if name.as_deref().is_some_and(|n| {
                self.is_secret_field(n) || self.is_secret_field(&multipart::percent_decode(n))
            }) {
                self.mask(part.content).into_bytes()
            } else {
                let redacted = match self.content(part.content, content_type, depth + 1) {
                    // A text field is kept like a form field's value,
                    // unless it looks like broken JSON, which could hide one.
                    Err(_) if text_field && !looks_like_json(part.content) => {
                        Ok(part.content.to_vec())
                    }
                    other => other,
                };
                redacted.unwrap_or_else(|stand_in| {
                    exact = false;
                    stand_in
                })
            };
            out.extend_from_slice(b"--");
            out.extend_from_slice(boundary.as_bytes());
            out.extend_from_slice(b"\r\n");
            for (name, value) in &headers {
                let value = match self.headers.iter().any(|h| h.eq_ignore_ascii_case(name)) {
                    true => self.mask(value.as_bytes()),
                    false => value.to_string(),
                };
                out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
            }
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&content);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        if exact {
            Ok(out)
        } else {
            Err(out)
        }
    }

    /// A stand-in for a whole body that could not be redacted piece by piece.
    fn whole(&self, what: &str, body: &[u8]) -> Vec<u8> {
        format!("{what} of {} bytes, {}", body.len(), self.mask(body)).into_bytes()
    }

    /// Masks matching members in place; `true` if anything changed.
    fn redact_value(&self, value: &mut Value, path: &mut Vec<String>) -> bool {
        if self.is_secret_path(path) {
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

/// Whether content starts like a JSON object or array.
fn looks_like_json(content: &[u8]) -> bool {
    matches!(
        content.iter().find(|b| !b.is_ascii_whitespace()),
        Some(b'{' | b'[')
    )
}

#[cfg(test)]
mod tests;
