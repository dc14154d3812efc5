//! The two backends as settings name them: a base URL, joined with each
//! request target so the backend gets exactly the path the client asked
//! for, and the Host header each one receives.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// The base URL of a backend: http or https, a host, an optional path prefix.
/// Its scheme, authority and prefix are parsed once, here, so that a request's
/// URI is built from them and its own target without parsing a URL.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BackendUrl {
    /// As given, without a trailing slash, so that text + "/path" is the target.
    text: String,
    scheme: http::uri::Scheme,
    authority: http::uri::Authority,
    /// The path prefix, without a trailing slash ('' for none).
    prefix: String,
}

/// A backend URL that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("backend URL must be http:// or https:// with a host and no query, such as http://127.0.0.1:8001; got {0:?}")]
pub struct BackendUrlError(pub String);

impl FromStr for BackendUrl {
    type Err = BackendUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BackendUrlError(s.to_string());
        let url = reqwest::Url::parse(s).map_err(|_| bad())?;
        let ok = matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty();
        if !ok {
            return Err(bad());
        }
        let authority = match (url.host_str(), url.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            (None, _) => return Err(bad()),
        };
        Ok(BackendUrl {
            text: url.as_str().trim_end_matches('/').to_string(),
            scheme: match url.scheme() {
                "https" => http::uri::Scheme::HTTPS,
                _ => http::uri::Scheme::HTTP,
            },
            authority: authority.parse().map_err(|_| bad())?,
            prefix: url.path().trim_end_matches('/').to_string(),
        })
    }
}

impl TryFrom<String> for BackendUrl {
    type Error = BackendUrlError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl BackendUrl {
    /// The URI to send a request for `path_and_query` (an origin-form
    /// target, as a client sent it) to: the base's scheme, authority and
    /// prefix, then the target byte for byte, re-encoding nothing, so the
    /// backend gets the path the client sent. A path with dot segments is
    /// refused: the backend would resolve them to another path than the
    /// client asked for, one that may even leave the base's prefix (see
    /// [`has_dot_segment`]); so is a backslash in the path, which some
    /// servers read as a separator. `%252e` is left alone: it is a literal
    /// `%2e` to a backend that decodes once, as it should.
    pub fn uri(&self, path_and_query: &str) -> Result<http::Uri, url_error::JoinError> {
        let refuse = || url_error::JoinError(path_and_query.to_string());
        let path = path_and_query.split('?').next().unwrap_or("");
        if !path.starts_with('/') || path.contains('\\') || has_dot_segment(path_and_query) {
            return Err(refuse());
        }
        let mut target = String::with_capacity(self.prefix.len() + path_and_query.len());
        target.push_str(&self.prefix);
        target.push_str(path_and_query);
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(target.try_into().map_err(|_| refuse())?);
        http::Uri::from_parts(parts).map_err(|_| refuse())
    }
}

/// Whether a target's path has a dot segment: a segment is what lies
/// between `/`, `\` or their encodings (`%2f`, `%5c`), and it is a dot
/// segment if, with `%2e` read as `.` and a `;` parameter dropped (as Tomcat
/// does), it is `.` or `..`.
fn has_dot_segment(path_and_query: &str) -> bool {
    let path = path_and_query.split('?').next().unwrap_or("");
    // A dot segment needs a `.` or an encoding (`%2e`): most paths have
    // neither, and are answered without allocating.
    if !path.bytes().any(|b| b == b'.' || b == b'%') {
        return false;
    }
    let lower = path
        .to_ascii_lowercase()
        .replace("%2f", "/")
        .replace("%5c", "/");
    let dot = |segment: &str| {
        let s = segment.split(';').next().unwrap_or("").replace("%2e", ".");
        s == "." || s == ".."
    };
    lower.split(['/', '\\']).any(dot)
}

pub mod url_error {
    /// A request target that does not form a URL with the backend's base.
    #[derive(Debug, thiserror::Error)]
    #[error("request target {0:?} has dot segments or backslashes, or does not form a valid URL")]
    pub struct JoinError(pub String);
}

/// The Host header a backend receives.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum HostHeader {
    /// The client's own Host, as a direct call would carry it.
    Client,
    /// The backend URL's authority.
    Backend,
    /// A fixed name (`api.example.com` or `api.example.com:8443`).
    Fixed(http::HeaderValue),
}

impl FromStr for HostHeader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "client" => Ok(HostHeader::Client),
            "backend" => Ok(HostHeader::Backend),
            name => {
                let valid = !name.is_empty()
                    && name
                        .parse::<http::uri::Authority>()
                        .is_ok_and(|a| a.as_str() == name && !name.contains('@'));
                match valid {
                    true => Ok(HostHeader::Fixed(
                        http::HeaderValue::from_str(name).map_err(|e| e.to_string())?,
                    )),
                    false => Err(format!(
                        "expected \"client\", \"backend\" or a host name such as api.example.com:443; got {name:?}"
                    )),
                }
            }
        }
    }
}

impl TryFrom<String> for HostHeader {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backend_urls_are_checked() {
        assert!("http://127.0.0.1:8001".parse::<BackendUrl>().is_ok());
        assert!("https://api.internal/base/".parse::<BackendUrl>().is_ok());
        for bad in ["127.0.0.1:8001", "ftp://x", "http://x/?q=1", "http://u:p@x"] {
            assert!(bad.parse::<BackendUrl>().is_err(), "{bad}");
        }
        let base: BackendUrl = "http://h:1/base/".parse().unwrap();
        assert_eq!(
            base.uri("/a%20b?x=1&x=2").unwrap().to_string(),
            "http://h:1/base/a%20b?x=1&x=2"
        );
        for escaping in ["/x/../admin", "/x/%2e%2e/admin", "/x/.%2E/admin", "/./a"] {
            assert!(base.uri(escaping).is_err(), "{escaping}");
        }
        assert!(base.uri("/a/..b/c.d?x=..").is_ok());
    }

    #[test]
    fn no_target_reaches_a_backend_as_another_path() {
        let base: BackendUrl = "http://h:1/base".parse().unwrap();
        for refused in [
            "/public/..\\admin",
            "/public\\..\\admin",
            "/public/..%5cadmin",
            "/public/..%5Cadmin",
            "/public%5c..%5cadmin",
            "/public%2f..%2fadmin",
            "/public/%2e%2e/admin",
            "/public/.%2e/admin",
            "/public/%2e./admin",
            "/public/%2E/admin",
            "/public/..;x=1/admin",
            "/a\\b",
        ] {
            assert!(base.uri(refused).is_err(), "{refused}");
        }
        // Literal to a backend that decodes once; forwarded as it is.
        for kept in [
            "/public/%252e%252e/admin",
            "/a/{\"b\"}",
            "/caf\u{e9}?q='x'",
            "/a;b=1?x=1;y=2",
        ] {
            let uri = base.uri(kept).unwrap();
            assert!(uri.path().starts_with("/base/"), "{kept}: {uri}");
        }
        assert_eq!(
            base.uri("/public/%252e%252e/admin").unwrap().path(),
            "/base/public/%252e%252e/admin"
        );
        // Refused and kept as the client sent them.
        for refused in ["/public/..\\admin", "/a\\b", "/x/%2e%2e/y", "x", ""] {
            assert!(base.uri(refused).is_err(), "{refused}");
        }
        for (kept, sent) in [
            (
                "/public/%252e%252e/admin",
                "http://h:1/base/public/%252e%252e/admin",
            ),
            ("/a;b=1?x=1;y=2&x=..", "http://h:1/base/a;b=1?x=1;y=2&x=.."),
            ("/a/{\"b\"}", "http://h:1/base/a/{\"b\"}"),
        ] {
            assert_eq!(base.uri(kept).unwrap().to_string(), sent);
        }
        // A backslash in the query is data.
        assert_eq!(
            base.uri("/search?q=C:\\temp&re=\\d+").unwrap().to_string(),
            "http://h:1/base/search?q=C:\\temp&re=\\d+"
        );
        let bare: BackendUrl = "https://api.example.com/".parse().unwrap();
        assert_eq!(
            bare.uri("/?q=1").unwrap().to_string(),
            "https://api.example.com/?q=1"
        );
        let v6: BackendUrl = "http://[::1]:8001".parse().unwrap();
        assert_eq!(v6.uri("/x").unwrap().to_string(), "http://[::1]:8001/x");
    }
}
