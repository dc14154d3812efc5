//! Endpoint naming: every request is filed under a "METHOD /template" name.
//!
//! The name comes from the first configured route whose pattern fits, else from
//! an automatic template in which ids become `{id}`. Automatic names are capped
//! in number (then `other`), so an unexpected id shape cannot flood counters.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, RwLock};

use http::Method;

/// The name a request is counted under, such as `GET /api/users/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint(Arc<str>);

impl Endpoint {
    /// The catch-all name used once the cap on distinct endpoints is reached.
    pub const OTHER: &'static str = "other";

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    /// `{name}` or `*`: exactly one segment.
    One,
    /// `{*name}` or `**` as the last segment: the rest of the path, possibly empty.
    Rest,
}

/// A route's `match`, such as `GET /api/users/{id}` or `* /static/**`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct RoutePattern {
    /// `None` matches every method (`*`).
    method: Option<Method>,
    segments: Vec<Segment>,
    path: String,
}

/// A route pattern that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("route match {pattern:?}: {reason}; expected \"METHOD /path\" such as \"GET /api/users/{{id}}\"")]
pub struct RoutePatternError {
    pub pattern: String,
    pub reason: &'static str,
}

impl FromStr for RoutePattern {
    type Err = RoutePatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = |reason| RoutePatternError {
            pattern: s.to_string(),
            reason,
        };
        let (method, path) = s
            .trim()
            .split_once(char::is_whitespace)
            .ok_or_else(|| bad("a method and a path are needed"))?;
        let path = path.trim();
        let method = match method {
            "*" => None,
            m if m.chars().all(|c| c.is_ascii_uppercase()) => {
                Some(Method::from_bytes(m.as_bytes()).map_err(|_| bad("the method is not valid"))?)
            }
            _ => return Err(bad("the method must be upper case, or * for any")),
        };
        if !path.starts_with('/') {
            return Err(bad("the path must start with /"));
        }
        let raw: Vec<&str> = path[1..].split('/').collect();
        let mut segments = Vec::with_capacity(raw.len());
        for (i, seg) in raw.iter().enumerate() {
            let last = i + 1 == raw.len();
            let segment = if *seg == "**" || (seg.starts_with("{*") && seg.ends_with('}')) {
                if !last {
                    return Err(bad("** may only be the last segment"));
                }
                Segment::Rest
            } else if *seg == "*" || (seg.starts_with('{') && seg.ends_with('}') && seg.len() > 2) {
                Segment::One
            } else if seg.contains(['{', '}', '*']) {
                return Err(bad("a segment is either literal, {name}, * or a final **"));
            } else {
                Segment::Literal((*seg).to_string())
            };
            segments.push(segment);
        }
        Ok(RoutePattern {
            method,
            segments,
            path: path.to_string(),
        })
    }
}

impl TryFrom<String> for RoutePattern {
    type Error = RoutePatternError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for RoutePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.method {
            Some(m) => write!(f, "{m} {}", self.path),
            None => write!(f, "* {}", self.path),
        }
    }
}

impl RoutePattern {
    pub fn matches(&self, method: &Method, path: &str) -> bool {
        if self.method.as_ref().is_some_and(|m| m != method) {
            return false;
        }
        let mut parts = path.strip_prefix('/').unwrap_or(path).split('/');
        for segment in &self.segments {
            match segment {
                Segment::Rest => return true,
                Segment::One => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
                Segment::Literal(lit) => match parts.next() {
                    Some(p) if p == lit => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }

    /// The endpoint name of a request this pattern matched.
    fn endpoint_name(&self, method: &Method) -> String {
        format!("{method} {}", self.path)
    }
}

/// Whether a path segment looks like an identifier rather than a resource name.
fn is_id_segment(seg: &str) -> bool {
    let numeric = !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit());
    let uuid = seg.len() == 36
        && seg.bytes().enumerate().all(|(i, b)| match i {
            8 | 13 | 18 | 23 => b == b'-',
            _ => b.is_ascii_hexdigit(),
        });
    let long_hex = seg.len() >= 16 && seg.bytes().all(|b| b.is_ascii_hexdigit());
    numeric || uuid || long_hex
}

/// The automatic name of a request no route matched: `/api/users/42` becomes
/// `GET /api/users/{id}`.
pub fn auto_template(method: &Method, path: &str) -> String {
    let mut name = String::with_capacity(method.as_str().len() + 1 + path.len());
    name.push_str(method.as_str());
    name.push(' ');
    let mut first = true;
    for seg in path.split('/') {
        if !first {
            name.push('/');
        }
        first = false;
        name.push_str(if is_id_segment(seg) { "{id}" } else { seg });
    }
    name
}

/// Hands out endpoint names and keeps their number bounded.
#[derive(Debug)]
pub struct EndpointCatalog {
    limit: usize,
    known: RwLock<HashSet<Endpoint>>,
    other: Endpoint,
}

impl EndpointCatalog {
    /// `limit` bounds the number of distinct automatic names; names from
    /// configured routes are already bounded by the configuration.
    pub fn new(limit: usize) -> Self {
        EndpointCatalog {
            limit,
            known: RwLock::new(HashSet::new()),
            other: Endpoint(Arc::from(Endpoint::OTHER)),
        }
    }

    /// The endpoint for a request, given the pattern of the route it matched.
    pub fn name(&self, method: &Method, path: &str, route: Option<&RoutePattern>) -> Endpoint {
        let (name, capped) = match route {
            Some(pattern) => (pattern.endpoint_name(method), false),
            None => (auto_template(method, path), true),
        };
        // The read lock is the common case: a name seen before.
        if let Some(known) = self
            .known
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name.as_str())
        {
            return known.clone();
        }
        let mut known = self.known.write().unwrap_or_else(|e| e.into_inner());
        if let Some(existing) = known.get(name.as_str()) {
            return existing.clone();
        }
        if capped && known.len() >= self.limit {
            return self.other.clone();
        }
        let endpoint = Endpoint(Arc::from(name));
        known.insert(endpoint.clone());
        endpoint
    }
}

impl std::borrow::Borrow<str> for Endpoint {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(s: &str) -> RoutePattern {
        s.parse().unwrap()
    }

    #[test]
    fn patterns_match_segments() {
        let p = pattern("GET /api/users/{id}");
        assert!(p.matches(&Method::GET, "/api/users/42"));
        assert!(!p.matches(&Method::POST, "/api/users/42"));
        assert!(!p.matches(&Method::GET, "/api/users"));
        assert!(!p.matches(&Method::GET, "/api/users/42/orders"));
        assert!(!p.matches(&Method::GET, "/api/users/"));
        let any = pattern("* /static/**");
        assert!(any.matches(&Method::PUT, "/static/a/b.css"));
        assert!(any.matches(&Method::GET, "/static"));
        assert!(!any.matches(&Method::GET, "/api"));
        assert!(pattern("GET /").matches(&Method::GET, "/"));
    }

    #[test]
    fn bad_patterns_say_why() {
        for bad in [
            "/api",
            "get /api",
            "GET api",
            "GET /a/**/b",
            "GET /a{id}",
            "GET /{}",
        ] {
            let err = bad.parse::<RoutePattern>().unwrap_err();
            assert!(err.to_string().contains(bad), "{err}");
        }
    }

    #[test]
    fn auto_template_replaces_ids() {
        let t = |p| auto_template(&Method::GET, p);
        assert_eq!(t("/api/users/42"), "GET /api/users/{id}");
        assert_eq!(
            t("/o/3f2504e0-4f89-11d3-9a0c-0305e82c3301/items"),
            "GET /o/{id}/items"
        );
        assert_eq!(t("/blob/deadbeefdeadbeef00"), "GET /blob/{id}");
        assert_eq!(t("/blob/cafe"), "GET /blob/cafe");
        assert_eq!(t("/"), "GET /");
        assert_eq!(t("/v2/users"), "GET /v2/users");
    }

    #[test]
    fn catalog_caps_automatic_names() {
        let catalog = EndpointCatalog::new(2);
        let route = pattern("GET /fixed/{x}");
        assert_eq!(catalog.name(&Method::GET, "/a", None).as_str(), "GET /a");
        assert_eq!(catalog.name(&Method::GET, "/b", None).as_str(), "GET /b");
        assert_eq!(catalog.name(&Method::GET, "/c", None).as_str(), "other");
        assert_eq!(catalog.name(&Method::GET, "/a", None).as_str(), "GET /a");
        assert_eq!(
            catalog
                .name(&Method::GET, "/fixed/1", Some(&route))
                .as_str(),
            "GET /fixed/{x}"
        );
    }
}
