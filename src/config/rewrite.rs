//! What a candidate's request may differ in from the client's: headers set
//! (literal values, or secrets read from environment variables, never
//! written in the config file) or removed, the Host it gets, and a path
//! prefix replaced (`/api/v1/orders` → `/orders`). A `[backend.NAME.rewrite]`
//! table and a route's `[route.rewrite]` are both a [`Rewrite`]; the route's
//! is laid over its backend's. The primary's request is never rewritten.
//!
//! Every value is checked as it is read: a hop-by-hop header, a header
//! value HTTP does not allow, an environment variable that is not set, a
//! prefix that is not a path.

use std::collections::BTreeMap;
use std::fmt;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use super::HostHeader;

/// A request rewrite for one side, as configured.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// Headers set, replacing any the client sent under the same name.
    #[serde(default)]
    pub set_headers: BTreeMap<RewritableHeader, HeaderSource>,
    /// Headers taken out of the request.
    #[serde(default)]
    pub remove_headers: Vec<RewritableHeader>,
    /// The Host to send: `client`, `backend` or a fixed name.
    #[serde(default)]
    pub host: Option<HostHeader>,
    /// A path prefix replaced by another.
    #[serde(default)]
    pub path_prefix: Option<PathPrefix>,
}

impl Rewrite {
    /// Whether it changes nothing.
    pub fn is_empty(&self) -> bool {
        self.set_headers.is_empty()
            && self.remove_headers.is_empty()
            && self.host.is_none()
            && self.path_prefix.is_none()
    }

    /// This rewrite with `over`'s settings laid over it: headers `over`
    /// sets or removes win, and its Host and prefix replace these.
    pub fn with(&self, over: &Rewrite) -> Rewrite {
        let mut set = self.set_headers.clone();
        for removed in &over.remove_headers {
            set.remove(removed);
        }
        set.extend(over.set_headers.clone());
        let mut remove: Vec<RewritableHeader> = self
            .remove_headers
            .iter()
            .filter(|h| !over.set_headers.contains_key(*h))
            .cloned()
            .collect();
        remove.extend(over.remove_headers.iter().cloned());
        Rewrite {
            set_headers: set,
            remove_headers: remove,
            host: over.host.clone().or_else(|| self.host.clone()),
            path_prefix: over
                .path_prefix
                .clone()
                .or_else(|| self.path_prefix.clone()),
        }
    }

    /// The target to send: the prefix replaced where the path starts with it.
    pub fn target(&self, target: &str) -> String {
        match &self.path_prefix {
            Some(prefix) => prefix.apply(target),
            None => target.to_string(),
        }
    }

    /// Removes and sets the headers (Host is set apart, with the backend's URL).
    pub fn headers(&self, headers: &mut HeaderMap) {
        for name in &self.remove_headers {
            headers.remove(&name.0);
        }
        for (name, source) in &self.set_headers {
            headers.insert(name.0.clone(), source.value().clone());
        }
    }

    /// The headers whose values come from the environment, and the
    /// placeholder shown for each wherever the request is shown or stored.
    pub fn secrets(&self) -> impl Iterator<Item = (&HeaderName, String)> {
        self.set_headers
            .iter()
            .filter_map(|(name, source)| match source {
                HeaderSource::Literal(_) => None,
                HeaderSource::Env { var, .. } => Some((&name.0, format!("[from ${var}]"))),
            })
    }
}

/// A header name a rewrite may set or remove: not a hop-by-hop field
/// (which belongs to one connection and is never forwarded), not Host
/// (set with `host`), not Content-Length (the body is the client's).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RewritableHeader(HeaderName);

/// By name, so that a table of them reads in a stable order.
impl Ord for RewritableHeader {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.as_str().cmp(other.0.as_str())
    }
}

impl PartialOrd for RewritableHeader {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl RewritableHeader {
    pub fn name(&self) -> &HeaderName {
        &self.0
    }
}

impl fmt::Debug for RewritableHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.as_str())
    }
}

/// Connection-specific fields (RFC 9110 §7.6.1), never forwarded.
pub(super) const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

impl TryFrom<String> for RewritableHeader {
    type Error = String;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        let name = HeaderName::from_bytes(text.as_bytes())
            .map_err(|_| format!("{text:?} is not a header name"))?;
        match name.as_str() {
            n if HOP_BY_HOP.contains(&n) => Err(format!(
                "`{n}` is a hop-by-hop header: it belongs to one connection and is never forwarded, so it cannot be rewritten"
            )),
            "host" => Err("Host is set with `host = \"client\" | \"backend\" | \"NAME\"`, not as a header".into()),
            "content-length" => Err("Content-Length follows the body, which is the client's; it cannot be rewritten".into()),
            _ => Ok(RewritableHeader(name)),
        }
    }
}

/// Where a header's value comes from: written in the file, or read from an
/// environment variable at start (for secrets).
#[derive(Clone, Deserialize)]
#[serde(try_from = "SourceText")]
pub enum HeaderSource {
    Literal(HeaderValue),
    /// Read once at start; marked sensitive, shown only as the variable's name.
    Env {
        var: String,
        value: HeaderValue,
    },
}

impl HeaderSource {
    pub fn value(&self) -> &HeaderValue {
        match self {
            HeaderSource::Literal(v) | HeaderSource::Env { value: v, .. } => v,
        }
    }
}

impl fmt::Debug for HeaderSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderSource::Literal(v) => write!(f, "{v:?}"),
            HeaderSource::Env { var, .. } => write!(f, "${var}"),
        }
    }
}

/// A header value as written: text, or `{ env = "VAR", prefix = "Bearer " }`.
#[derive(Deserialize)]
#[serde(untagged)]
enum SourceText {
    Literal(String),
    Env(EnvSource),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvSource {
    env: String,
    #[serde(default)]
    prefix: String,
}

impl TryFrom<SourceText> for HeaderSource {
    type Error = String;
    fn try_from(text: SourceText) -> Result<Self, Self::Error> {
        match text {
            SourceText::Literal(v) => HeaderValue::from_str(&v)
                .map(HeaderSource::Literal)
                .map_err(|_| format!("{v:?} is not a valid header value")),
            SourceText::Env(EnvSource { env, prefix }) => {
                let secret = std::env::var(&env).map_err(|e| match e {
                    std::env::VarError::NotPresent => format!(
                        "environment variable {env} is not set (secrets are read from the environment, never written in the config file)"
                    ),
                    std::env::VarError::NotUnicode(_) => {
                        format!("environment variable {env} is not UTF-8 text")
                    }
                })?;
                if secret.is_empty() {
                    return Err(format!("environment variable {env} is empty"));
                }
                // The value itself is never quoted back: it is a secret.
                let mut value = HeaderValue::from_str(&format!("{prefix}{secret}")).map_err(|_| {
                    format!("environment variable {env} (with its prefix) is not a valid header value")
                })?;
                value.set_sensitive(true);
                Ok(HeaderSource::Env { var: env, value })
            }
        }
    }
}

/// `{ from = "/api/v1/orders", to = "/orders" }`: a path equal to `from`,
/// or under it (`from` then `/`), has `from` replaced by `to`; other paths
/// and the query are sent as they are.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PrefixText")]
pub struct PathPrefix {
    from: String,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrefixText {
    from: String,
    to: String,
}

impl TryFrom<PrefixText> for PathPrefix {
    type Error = String;
    fn try_from(p: PrefixText) -> Result<Self, Self::Error> {
        let path = |what: &str, s: &str, empty_ok: bool| {
            let valid = (empty_ok && s.is_empty())
                || (s.starts_with('/')
                    && !s.contains(['?', '#'])
                    && s.parse::<http::uri::PathAndQuery>().is_ok()
                    && !s.split('/').any(|seg| seg == "." || seg == ".."));
            match valid {
                true => Ok(s.trim_end_matches('/').to_string()),
                false => Err(format!(
                    "path_prefix.{what} must be a path starting with / (no query, no dot segments); got {s:?}"
                )),
            }
        };
        Ok(PathPrefix {
            from: path("from", &p.from, false)?,
            to: path("to", &p.to, true)?,
        })
    }
}

impl PathPrefix {
    fn apply(&self, target: &str) -> String {
        let (path, query) = match target.find('?') {
            Some(i) => target.split_at(i),
            None => (target, ""),
        };
        let rest = match path.strip_prefix(self.from.as_str()) {
            Some(rest) if rest.is_empty() || rest.starts_with('/') => rest,
            _ => return target.to_string(),
        };
        match format!("{}{rest}", self.to) {
            p if p.is_empty() => format!("/{query}"),
            p => format!("{p}{query}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Rewrite, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn prefixes_replace_whole_segments_and_keep_the_query() {
        let r = parse("path_prefix = { from = \"/api/v1/orders\", to = \"/orders\" }").unwrap();
        assert_eq!(r.target("/api/v1/orders/7?x=1"), "/orders/7?x=1");
        assert_eq!(r.target("/api/v1/orders"), "/orders");
        assert_eq!(r.target("/api/v1/orders?all"), "/orders?all");
        assert_eq!(r.target("/api/v1/ordersX/1"), "/api/v1/ordersX/1");
        assert_eq!(r.target("/users/1"), "/users/1");
        let strip = parse("path_prefix = { from = \"/api/\", to = \"\" }").unwrap();
        assert_eq!(strip.target("/api/users"), "/users");
        assert_eq!(strip.target("/api?q"), "/?q");
        for bad in [
            "{ from = \"api\", to = \"/x\" }",
            "{ from = \"/a/../b\", to = \"/x\" }",
            "{ from = \"/a\", to = \"/x?y\" }",
        ] {
            assert!(parse(&format!("path_prefix = {bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn hop_by_hop_host_and_length_are_refused() {
        for name in [
            "connection",
            "Transfer-Encoding",
            "te",
            "host",
            "content-length",
        ] {
            let err = parse(&format!("remove_headers = [\"{name}\"]")).unwrap_err();
            assert!(
                err.contains("cannot") || err.contains("Host"),
                "{name}: {err}"
            );
            let err = parse(&format!("set_headers = {{ \"{name}\" = \"x\" }}")).unwrap_err();
            assert!(!err.is_empty(), "{name}");
        }
        assert!(parse("set_headers = { \"x-ok\" = \"a\\nb\" }").is_err());
    }

    #[test]
    fn secrets_come_from_the_environment_and_are_never_shown() {
        // PATH is set wherever tests run.
        let r = parse("set_headers = { authorization = { env = \"PATH\", prefix = \"Bearer \" } }")
            .unwrap();
        let path = std::env::var("PATH").unwrap();
        let mut h = HeaderMap::new();
        r.headers(&mut h);
        assert_eq!(h["authorization"], format!("Bearer {path}").as_str());
        assert!(h["authorization"].is_sensitive());
        assert!(!format!("{r:?}").contains(&path));
        let shown: Vec<_> = r.secrets().map(|(n, s)| (n.as_str(), s)).collect();
        assert_eq!(shown, [("authorization", "[from $PATH]".to_string())]);
        let err =
            parse("set_headers = { authorization = { env = \"SHADOWDIFF_TEST_NEVER_SET\" } }")
                .unwrap_err();
        assert!(
            err.contains("SHADOWDIFF_TEST_NEVER_SET is not set"),
            "{err}"
        );
    }

    #[test]
    fn a_route_rewrite_lies_over_its_backends() {
        let backend = parse(
            "set_headers = { a = \"1\", b = \"2\" }\nremove_headers = [\"cookie\"]\nhost = \"backend\"",
        )
        .unwrap();
        let route =
            parse("set_headers = { b = \"3\", cookie = \"c\" }\nremove_headers = [\"a\"]").unwrap();
        let both = backend.with(&route);
        let mut h = HeaderMap::new();
        h.insert("cookie", HeaderValue::from_static("client"));
        h.insert("a", HeaderValue::from_static("client"));
        both.headers(&mut h);
        assert!(!h.contains_key("a"));
        assert_eq!(h["b"], "3");
        assert_eq!(h["cookie"], "c");
        assert_eq!(both.host, Some(HostHeader::Backend));
    }
}
