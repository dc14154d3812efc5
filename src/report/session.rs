//! Signing in to the review UI without the token in any URL: the token is
//! posted once (`POST /ui/login`, JSON body), checked in constant time, and
//! exchanged for an HttpOnly, SameSite=Strict cookie that the API then
//! takes in place of `Authorization: Bearer`.
//!
//! The cookie holds no secret and no server state: an expiry and an
//! HMAC-SHA256 of it keyed by the token. Every instance with the same token
//! accepts it, a restart keeps it, and changing the token ends every
//! session. A cookie-signed request that changes something must also carry
//! `x-shadowdiff-ui: 1`, a header no other site's page can add without the
//! API's consent (there is no CORS), so a forged cross-site form does nothing.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::error::{bad, ApiError};
use super::ReportState;
use crate::config::ReportToken;
use crate::time::now_ms;

/// The cookie's name.
pub const COOKIE: &str = "shadowdiff_session";
/// The header a cookie-signed request that changes something carries.
pub const UI_HEADER: &str = "x-shadowdiff-ui";
/// How long a session lasts: a working day.
const LIFETIME_MS: i64 = 12 * 3_600_000;
/// How long a wrong token's answer waits.
const WRONG_TOKEN_DELAY: std::time::Duration = std::time::Duration::from_millis(250);
/// What the MAC covers besides the expiry, so that it signs nothing else.
const DOMAIN: &[u8] = b"shadowdiff ui session v1 ";

/// A session cookie's value for a session ending at `expires_ms`.
fn sign(token: &ReportToken, expires_ms: i64) -> String {
    let mut mac = keyed(token);
    mac.update(expires_ms.to_string().as_bytes());
    let tag: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("v1.{expires_ms}.{tag}")
}

fn keyed(token: &ReportToken) -> Hmac<Sha256> {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(token.as_str().as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(DOMAIN);
    mac
}

/// Whether a cookie value is a session this token signed that has not ended.
fn valid(token: &ReportToken, value: &str, now: i64) -> bool {
    let mut parts = value.splitn(3, '.');
    let (Some("v1"), Some(expires), Some(tag)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let Ok(expires_ms) = expires.parse::<i64>() else {
        return false;
    };
    let Some(tag) = hex(tag) else {
        return false;
    };
    let mut mac = keyed(token);
    mac.update(expires.as_bytes());
    // Compared in constant time by the MAC itself.
    mac.verify_slice(&tag).is_ok() && now < expires_ms
}

fn hex(text: &str) -> Option<Vec<u8>> {
    if text.len() != 64 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// The session cookie's value among a request's cookies.
fn cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value)
}

/// How a request proved it may use the API, if it did not send the token.
pub(super) enum Signed {
    /// A session cookie; `safe` when the method changes nothing or the
    /// request carries the UI's header.
    Session { safe: bool },
    /// Neither.
    No,
}

/// Whether a request carries a valid session cookie, and may use it.
pub(super) fn by_session(token: &ReportToken, method: &Method, headers: &HeaderMap) -> Signed {
    match cookie(headers) {
        Some(value) if valid(token, value, now_ms()) => Signed::Session {
            safe: matches!(*method, Method::GET | Method::HEAD)
                || headers.get(UI_HEADER).is_some_and(|v| v == "1"),
        },
        _ => Signed::No,
    }
}

/// `GET /ui/session`: whether the UI must ask for the token.
#[derive(Serialize)]
pub(super) struct SessionView {
    token_required: bool,
    signed_in: bool,
}

pub(super) async fn status(
    State(state): State<Arc<ReportState>>,
    headers: HeaderMap,
) -> Json<SessionView> {
    let signed_in = match &state.token {
        None => true,
        Some(token) => cookie(&headers).is_some_and(|v| valid(token, v, now_ms())),
    };
    Json(SessionView {
        token_required: state.token.is_some(),
        signed_in,
    })
}

/// The login form's body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Login {
    token: String,
}

/// `POST /ui/login`: the token for a session cookie; 401 for a wrong one.
pub(super) async fn login(
    State(state): State<Arc<ReportState>>,
    headers: HeaderMap,
    body: Result<Json<Login>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(login) = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        // The rejection's text could quote what was sent: not echoed.
        _ => bad("body", "expected {\"token\": \"…\"}"),
    })?;
    let Some(token) = &state.token else {
        // Nothing to sign in to: every request is let in.
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    if !super::input::token_matches(&login.token, token.as_str()) {
        // Each wrong guess costs its sender this long: a token cannot be
        // guessed at the speed of the network.
        tokio::time::sleep(WRONG_TOKEN_DELAY).await;
        return Err(ApiError::Unauthorized);
    }
    let value = sign(token, now_ms() + LIFETIME_MS);
    // Behind a TLS-terminating proxy the browser must send it over TLS only.
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"));
    let cookie = format!(
        "{COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LIFETIME_MS / 1000,
        if secure { "; Secure" } else { "" }
    );
    with_cookie(cookie)
}

/// `POST /ui/logout`: the cookie cleared.
pub(super) async fn logout() -> Result<Response, ApiError> {
    with_cookie(format!(
        "{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"
    ))
}

fn with_cookie(cookie: String) -> Result<Response, ApiError> {
    let value = HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, value);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(text: &str) -> ReportToken {
        text.parse().unwrap()
    }

    #[test]
    fn a_session_is_valid_for_its_token_until_it_ends() {
        let t = token("s3cret-token");
        let value = sign(&t, 2_000);
        assert!(valid(&t, &value, 1_999));
        assert!(!valid(&t, &value, 2_000), "ended");
        assert!(!valid(&token("other"), &value, 1_000), "another token");
        assert!(!value.contains("s3cret"));
    }

    #[test]
    fn forged_or_altered_cookies_are_refused() {
        let t = token("s3cret-token");
        let value = sign(&t, 2_000);
        let later = value.replacen("2000", "9999", 1);
        assert!(
            !valid(&t, &later, 1_000),
            "a longer expiry under the old MAC"
        );
        for bad in [
            "",
            "v1",
            "v1.2000",
            "v2.2000.00",
            "v1.x.00",
            &value[..value.len() - 1],
        ] {
            assert!(!valid(&t, bad, 1_000), "{bad:?}");
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            format!("a=b; {COOKIE}={value}").parse().unwrap(),
        );
        assert_eq!(cookie(&headers), Some(value.as_str()));
    }

    #[test]
    fn a_session_may_change_things_only_with_the_ui_header() {
        let t = token("s3cret-token");
        let mut headers = HeaderMap::new();
        let value = sign(&t, now_ms() + 60_000);
        headers.insert(header::COOKIE, format!("{COOKIE}={value}").parse().unwrap());
        assert!(matches!(
            by_session(&t, &Method::GET, &headers),
            Signed::Session { safe: true }
        ));
        assert!(matches!(
            by_session(&t, &Method::PATCH, &headers),
            Signed::Session { safe: false }
        ));
        headers.insert(UI_HEADER, HeaderValue::from_static("1"));
        assert!(matches!(
            by_session(&t, &Method::PATCH, &headers),
            Signed::Session { safe: true }
        ));
    }
}
