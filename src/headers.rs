//! Header rules shared by the client path (`proxy`) and the shadow stage
//! (`shadow`), below both: hop-by-hop fields (RFC 9110 §7.6.1) stay on their
//! own connection, X-Forwarded-* tell a backend who asked, each backend's
//! Host, the role header every shadow copy carries, and body sizes.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::config::HostHeader;

/// The role header every shadow copy carries, so a backend can tell it apart.
pub const ROLE_HEADER: &str = "x-shadowdiff-role";
/// Its value on shadow copies.
pub const ROLE_SHADOW: &str = "shadow";

const X_FORWARDED_FOR: &str = "x-forwarded-for";
const X_FORWARDED_PROTO: &str = "x-forwarded-proto";
const X_FORWARDED_HOST: &str = "x-forwarded-host";

/// Connection-specific fields that a proxy must not forward.
const HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether the request asks to switch protocols (WebSocket and the like).
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && connection_tokens(headers).any(|t| t.eq_ignore_ascii_case("upgrade"))
}

fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty())
}

/// Removes hop-by-hop fields, and those the Connection field names. With
/// `keep_upgrade`, Connection and Upgrade stay, as a protocol switch needs them.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    let named: Vec<HeaderName> = connection_tokens(headers)
        .filter(|t| !(keep_upgrade && t.eq_ignore_ascii_case("upgrade")))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        if keep_upgrade && (name == header::CONNECTION || name == header::UPGRADE) {
            continue;
        }
        headers.remove(name);
    }
}

/// The headers to send a backend for a client's request: the client's own
/// (Host included, as a direct call carries it), minus hop-by-hop fields,
/// plus X-Forwarded-For and -Proto. [`set_host`] then sets each backend's Host.
/// Edited in place: the client's map is not copied.
pub fn forward(mut headers: HeaderMap, client: Option<IpAddr>, upgrade: bool) -> HeaderMap {
    // Read before the hop-by-hop fields go: a Connection header may name it.
    let forwarded_for = client.and_then(|ip| {
        let prior: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        let appended = match prior.is_empty() {
            true => ip.to_string(),
            false => format!("{}, {ip}", prior.join(", ")),
        };
        HeaderValue::from_str(&appended).ok()
    });
    strip_hop_by_hop(&mut headers, upgrade);
    if let Some(value) = forwarded_for {
        headers.insert(X_FORWARDED_FOR, value);
    }
    // A load balancer in front may have set these already; its values are the truth.
    if !headers.contains_key(X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    }
    headers
}

/// A copy of `headers` that shares no memory with them. A parsed header
/// value is a slice of the connection's read buffer: a plain clone kept in
/// the shadow queue would keep that whole buffer (8 KB or more) alive for
/// each queued request, several times the bytes the budget counts.
pub fn detached(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let mut copy = HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        copy.set_sensitive(value.is_sensitive());
        out.append(name.clone(), copy);
    }
    out
}

/// Sets the Host a backend receives, from headers [`forward`] made. With
/// `Client` the client's Host stays (the request's authority where it has
/// one: HTTP/2, or an absolute-form target); otherwise the client's Host moves to
/// X-Forwarded-Host, unless a proxy in front set that already, and Host
/// becomes the fixed name, or is left out for the backend URL's authority.
pub fn set_host(headers: &mut HeaderMap, host: &HostHeader, authority: Option<&str>) {
    // A request's own authority (HTTP/2's `:authority`, an absolute-form
    // target) is its host, whatever a Host field says (RFC 9112 §3.2.2).
    if let Some(v) = authority.and_then(|a| HeaderValue::from_str(a).ok()) {
        headers.insert(header::HOST, v);
    }
    let replacement = match host {
        HostHeader::Client => return,
        HostHeader::Backend => None,
        HostHeader::Fixed(name) => Some(name.clone()),
    };
    if let Some(client) = headers.remove(header::HOST) {
        headers.entry(X_FORWARDED_HOST).or_insert(client);
    }
    if let Some(name) = replacement {
        headers.insert(header::HOST, name);
    }
}

/// About the bytes a header map holds, for the memory budget: a copy waiting
/// in the shadow queue may have as large a head as hyper admits (~400 KiB).
pub fn size(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 32)
        .sum()
}

/// The declared body length, if any and valid.
pub fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether a response to `method` with `status` has a body at all (RFC 9110
/// §6.4.1): HEAD responses, 1xx, 204 and 304 never do, whatever Content-Length says.
pub fn has_body(method: &http::Method, status: http::StatusCode) -> bool {
    method != http::Method::HEAD
        && !status.is_informational()
        && status != http::StatusCode::NO_CONTENT
        && status != http::StatusCode::NOT_MODIFIED
}

/// Whether a response is a server-sent event stream, which never ends by itself.
pub fn is_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("text/event-stream"))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::exchange::header_map as headers;

    #[test]
    fn hop_by_hop_and_connection_named_fields_go() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("x-secret-hop", "1"),
            ("content-type", "text/plain"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
    }

    #[test]
    fn upgrade_keeps_its_fields() {
        let mut h = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert!(h.contains_key("upgrade") && h.contains_key("connection"));
    }

    #[test]
    fn a_detached_copy_shares_no_memory_and_keeps_everything() {
        let buffer = bytes::Bytes::from_static(b"GET / HTTP/1.1 secret-token text/html");
        let mut original = HeaderMap::new();
        let mut token = HeaderValue::from_maybe_shared(buffer.slice(15..27)).unwrap();
        token.set_sensitive(true);
        original.append("authorization", token);
        original.append(
            "accept",
            HeaderValue::from_maybe_shared(buffer.slice(28..)).unwrap(),
        );
        original.append("accept", HeaderValue::from_static("*/*"));
        let copy = detached(&original);
        assert_eq!(copy, original);
        assert!(copy["authorization"].is_sensitive());
        for (name, value) in &copy {
            let within = buffer.as_ptr_range().contains(&value.as_bytes().as_ptr());
            assert!(!within, "{name} still points into the read buffer");
        }
    }

    #[test]
    fn forwarded_fields_are_set_and_appended() {
        let ip: IpAddr = "10.0.0.9".parse().unwrap();
        let out = forward(
            headers(&[
                ("host", "api.example"),
                ("x-forwarded-for", "1.2.3.4"),
                ("x-forwarded-for", "5.6.7.8"),
            ]),
            Some(ip),
            false,
        );
        assert_eq!(out["x-forwarded-for"], "1.2.3.4, 5.6.7.8, 10.0.0.9");
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["host"], "api.example");
        assert!(!out.contains_key("x-forwarded-host"));
    }

    #[test]
    fn host_is_the_clients_unless_configured_otherwise() {
        let client = headers(&[("host", "api.example")]);
        let mut h = client.clone();
        set_host(&mut h, &HostHeader::Client, None);
        assert_eq!(h["host"], "api.example");

        let mut h = client.clone();
        set_host(&mut h, &HostHeader::Backend, None);
        assert!(!h.contains_key("host"));
        assert_eq!(h["x-forwarded-host"], "api.example");

        let mut h = client.clone();
        set_host(&mut h, &"orders.internal:8443".parse().unwrap(), None);
        assert_eq!(h["host"], "orders.internal:8443");
        assert_eq!(h["x-forwarded-host"], "api.example");

        // HTTP/2 carries the authority in the request line, not in Host;
        // an absolute-form target's authority wins over a Host field.
        let mut h = HeaderMap::new();
        set_host(&mut h, &HostHeader::Client, Some("h2.example"));
        assert_eq!(h["host"], "h2.example");
        let mut h = client.clone();
        set_host(&mut h, &HostHeader::Client, Some("target.example"));
        assert_eq!(h["host"], "target.example");
    }

    #[test]
    fn event_streams_are_recognised() {
        assert!(is_event_stream(&headers(&[(
            "content-type",
            "text/event-stream; charset=utf-8"
        )])));
        assert!(!is_event_stream(&headers(&[(
            "content-type",
            "text/plain"
        )])));
    }
}
