//! Response header comparison: by name, case-insensitively, skipping headers
//! that differ by nature between any two servers or responses; masked
//! headers by the kind of their values; and, once the bodies are compared,
//! the Content-Type differences that the bodies show to be harmless
//! ([`settle`]).

use std::collections::BTreeSet;

use http::HeaderMap;
use serde::Serialize;

use super::rules::Rules;

/// Headers that differ between servers or between two responses of one
/// server without saying anything about the application.
pub const IGNORED_BY_DEFAULT: &[&str] = &[
    "age",
    "alt-svc",
    "connection",
    "content-encoding", // bodies are compared decoded
    "content-length",
    "date",
    "etag",
    "expires",
    "keep-alive",
    "last-modified",
    "proxy-connection",
    "request-id",
    "server",
    "te",
    "traceparent",
    "tracestate",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "via",
    "x-amzn-trace-id",
    "x-correlation-id",
    "x-request-id",
    "x-response-time",
    "x-runtime",
    "x-trace-id",
];

/// One header that differs; `None` where a side lacks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeaderDiff {
    pub name: String,
    pub primary: Option<String>,
    pub candidate: Option<String>,
}

pub fn compare(primary: &HeaderMap, candidate: &HeaderMap, rules: &Rules) -> Vec<HeaderDiff> {
    let names: BTreeSet<&str> = primary
        .keys()
        .chain(candidate.keys())
        .map(|n| n.as_str())
        .collect();
    names
        .into_iter()
        .filter(|name| {
            // A mask asks for the header's shape to be compared, even one
            // ignored by default (Last-Modified).
            let forced =
                rules.compare_headers.iter().any(|h| h == name) || mask(rules, name).is_some();
            forced
                || !(IGNORED_BY_DEFAULT.contains(name)
                    || rules.ignore_headers.iter().any(|h| h == name))
        })
        .filter_map(|name| {
            let forced = rules.compare_headers.iter().any(|h| h == name);
            let p = comparable(primary, name, rules, forced);
            let c = comparable(candidate, name, rules, forced);
            let masked = match (mask(rules, name), &p, &c) {
                (Some(mask), Some(p), Some(c)) => mask.accepts(p) && mask.accepts(c),
                _ => false,
            };
            (p != c && !masked).then(|| HeaderDiff {
                name: name.to_string(),
                primary: p,
                candidate: c,
            })
        })
        .collect()
}

fn mask<'r>(rules: &'r Rules, name: &str) -> Option<&'r super::rules::HeaderMask> {
    rules
        .header_masks
        .iter()
        .find(|(n, _)| n.as_str() == name)
        .map(|(_, mask)| mask)
}

/// What the body comparison found, as far as headers care.
pub struct BodyFacts {
    /// Whether each side's decoded body is empty.
    pub empty: (bool, bool),
    /// Whether the bodies compared equal (under the rules).
    pub equal: bool,
    /// Both responses redirect, and the rules compare redirects by Location.
    pub redirects: bool,
}

/// Drops the Content-Type differences the bodies show to be harmless: a
/// type on one side only, where that side's body is empty (frameworks label
/// an empty body, others do not); any, between two redirects compared by
/// Location; and two media types the rules declare one, where the bodies
/// are equal.
pub fn settle(diffs: &mut Vec<HeaderDiff>, facts: &BodyFacts, rules: &Rules) {
    diffs.retain(|diff| {
        if diff.name != "content-type" {
            return true;
        }
        // The media type, and what follows it (a charset, compared with
        // `compare_charset`), which must be the same to be forgiven.
        let media = |v: &str| {
            let (media, rest) = v.split_once(';').unwrap_or((v, ""));
            (media.trim().to_string(), rest.trim().to_string())
        };
        let harmless = match (&diff.primary, &diff.candidate) {
            _ if facts.redirects => true,
            (Some(_), None) => facts.empty.0,
            (None, Some(_)) => facts.empty.1,
            (Some(p), Some(c)) => {
                let ((p, p_rest), (c, c_rest)) = (media(p), media(c));
                facts.equal
                    && p_rest == c_rest
                    && rules.media_types_equal.iter().any(|set| set.holds(&p, &c))
            }
            (None, None) => false,
        };
        !harmless
    });
}

/// The value of a header as compared: most are the joined raw values; a few
/// compare by meaning (Content-Type's media type, Vary's set, cookie names).
fn comparable(headers: &HeaderMap, name: &str, rules: &Rules, forced: bool) -> Option<String> {
    let values: Vec<&str> = headers
        .get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap_or("<non-text value>"))
        .collect();
    if values.is_empty() {
        return None;
    }
    Some(match name {
        "content-type" => {
            let value = values[0];
            let mut parts = value.split(';').map(str::trim);
            let media = parts.next().unwrap_or("").to_ascii_lowercase();
            let charset = parts
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("charset"))
                .map(|(_, v)| v.trim().trim_matches('"').to_ascii_lowercase());
            match charset {
                Some(charset) if rules.compare_charset => format!("{media}; charset={charset}"),
                _ => media,
            }
        }
        "vary" => {
            let tokens: BTreeSet<String> = values
                .iter()
                .flat_map(|v| v.split(','))
                .map(|t| t.trim().to_ascii_lowercase())
                .filter(|t| !t.is_empty())
                .collect();
            tokens.into_iter().collect::<Vec<_>>().join(", ")
        }
        // Cookie values (sessions, CSRF tokens) differ on every response.
        "set-cookie" if !forced => {
            let cookies: BTreeSet<String> = values.iter().map(|v| cookie_shape(v)).collect();
            cookies.into_iter().collect::<Vec<_>>().join(", ")
        }
        _ => values.join(", "),
    })
}

/// A cookie without its value (sessions and CSRF tokens differ on every
/// response) but with its attributes, which say how it may be used: losing
/// `Secure` or `HttpOnly`, or deleting it with `Max-Age=0`, is a difference.
/// Expires is kept as present or not, since its date moves with the clock.
fn cookie_shape(set_cookie: &str) -> String {
    let mut parts = set_cookie.split(';').map(str::trim);
    let name = parts
        .next()
        .and_then(|p| p.split_once('='))
        .map_or("", |(n, _)| n.trim());
    let mut attributes: Vec<String> = parts
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, _)) if k.trim().eq_ignore_ascii_case("expires") => "expires".to_string(),
            Some((k, v)) => format!("{}={}", k.trim().to_ascii_lowercase(), v.trim()),
            None => p.to_ascii_lowercase(),
        })
        .collect();
    attributes.sort();
    std::iter::once(name.to_string())
        .chain(attributes)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::exchange::header_map as headers;

    #[test]
    fn natural_differences_are_not_reported() {
        let p = headers(&[
            ("date", "a"),
            ("server", "gunicorn"),
            ("content-type", "application/json"),
            ("vary", "Accept, Cookie"),
            ("set-cookie", "sid=1; Path=/"),
        ]);
        let c = headers(&[
            ("date", "b"),
            ("server", "go"),
            ("content-type", "application/json; charset=utf-8"),
            ("vary", "cookie,accept"),
            ("set-cookie", "sid=2; path=/"),
        ]);
        assert_eq!(compare(&p, &c, &Rules::default()), vec![]);
    }

    #[test]
    fn cookies_compare_by_name_and_attributes_not_value() {
        let p = headers(&[(
            "set-cookie",
            "sessionid=abc; HttpOnly; Secure; Path=/; Expires=Wed, 01 Jan 2025 00:00:00 GMT",
        )]);
        let same = headers(&[(
            "set-cookie",
            "sessionid=xyz; path=/; secure; httponly; expires=Thu, 02 Jan 2025 00:00:00 GMT",
        )]);
        assert_eq!(compare(&p, &same, &Rules::default()), vec![]);
        let deleted = headers(&[("set-cookie", "sessionid=; Max-Age=0")]);
        assert_eq!(compare(&p, &deleted, &Rules::default()).len(), 1);
        let insecure = headers(&[("set-cookie", "sessionid=xyz; HttpOnly; Path=/; Expires=x")]);
        assert_eq!(compare(&p, &insecure, &Rules::default()).len(), 1);
    }

    #[test]
    fn real_differences_are() {
        let p = headers(&[("cache-control", "max-age=60"), ("x-powered-by", "Django")]);
        let c = headers(&[("cache-control", "no-store")]);
        let diffs = compare(&p, &c, &Rules::default());
        assert_eq!(diffs.len(), 2);
        assert_eq!(diffs[0].name, "cache-control");
        assert_eq!(diffs[1].candidate, None);

        let rules = Rules {
            ignore_headers: vec!["x-powered-by".into()],
            compare_headers: vec!["server".into()],
            compare_charset: true,
            ..Rules::default()
        };
        let p = headers(&[
            ("x-powered-by", "Django"),
            ("server", "a"),
            ("content-type", "text/html; charset=UTF-8"),
        ]);
        let c = headers(&[
            ("server", "a"),
            ("content-type", "text/html; charset=latin-1"),
        ]);
        let diffs = compare(&p, &c, &rules);
        assert_eq!(diffs.len(), 1, "{diffs:?}");
        assert_eq!(
            diffs[0].candidate.as_deref(),
            Some("text/html; charset=latin-1")
        );
    }
}
