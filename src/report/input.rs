//! Checks on what a report API request carries before any of it reaches the
//! store: the `Authorization` header, path segments and text values.
//!
//! PostgreSQL refuses a NUL character in text, so a NUL in a parameter or a
//! note would otherwise fail in the store as a 503; it is refused here as a
//! 400 naming the parameter, on both databases alike. A path segment that is
//! not UTF-8 gets the API's JSON error instead of axum's plain-text one.

use std::sync::Arc;
use subtle::ConstantTimeEq;

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::error::{bad, ApiError};
use super::session::{self, Signed};
use super::ReportState;

/// The token of an `Authorization: Bearer <token>` value. The scheme is
/// matched without regard to case (RFC 9110 §11.1); the token is returned
/// as sent, for an exact comparison.
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim_start_matches(' '))
}

/// Whether the token sent is the one configured, compared in constant time
/// (a length mismatch is told at once: the length is no secret worth hiding).
pub(super) fn token_matches(given: &str, expected: &str) -> bool {
    given.as_bytes().ct_eq(expected.as_bytes()).into()
}

pub(super) async fn require_token(
    State(state): State<Arc<ReportState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(bearer_token);
        let allowed = match given {
            Some(given) => token_matches(given, token.as_str()),
            // The review UI's session, in place of the header.
            None => match session::by_session(token, request.method(), request.headers()) {
                Signed::Session { safe: true } => true,
                Signed::Session { safe: false } => {
                    return ApiError::Forbidden(format!(
                        "a change made with a session cookie needs the `{}: 1` header",
                        session::UI_HEADER
                    ))
                    .into_response()
                }
                Signed::No => false,
            },
        };
        if !allowed {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

/// Refuses a text value with a NUL character, naming its parameter.
pub fn no_nul(parameter: &str, value: &str) -> Result<(), ApiError> {
    if value.contains('\0') {
        return Err(bad(
            parameter,
            format!("`{parameter}` must not contain a NUL character"),
        ));
    }
    Ok(())
}

/// The one path segment a route captures, as text without NUL.
pub fn path_text(
    parameter: &str,
    path: Result<Path<String>, PathRejection>,
) -> Result<String, ApiError> {
    let Path(value) = path.map_err(|e| {
        bad(
            parameter,
            format!("`{parameter}` must be UTF-8 text: {}", e.body_text()),
        )
    })?;
    no_nul(parameter, &value)?;
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_in_constant_time_and_exactly() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abc", "abd"));
        assert!(!token_matches("abc", "abcd"));
        assert!(!token_matches("", "abc"));
    }

    #[test]
    fn the_scheme_is_matched_in_any_case_and_the_token_exactly() {
        for value in ["Bearer abc", "bearer abc", "BEARER abc", "bEaReR  abc"] {
            assert_eq!(bearer_token(value), Some("abc"), "{value}");
        }
        assert_eq!(bearer_token("Bearer ABC"), Some("ABC"));
        for value in ["Basic abc", "Bearerabc", "abc", "Bearer"] {
            assert_eq!(bearer_token(value), None, "{value}");
        }
    }

    #[test]
    fn nul_is_refused_by_name() {
        assert!(no_nul("note", "fine").is_ok());
        match no_nul("note", "a\0b") {
            Err(ApiError::BadParameter { parameter, .. }) => assert_eq!(parameter, "note"),
            other => panic!("{other:?}"),
        }
    }
}
