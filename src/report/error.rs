//! The report API's one error shape: a stable code, a message and the
//! parameter at fault. 5xx say nothing about their cause to the client; the
//! full chain is logged once, here.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::summary::StoreStatus;
use crate::store::StoreError;

/// Why a request failed; the JSON body names the parameter where one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter or body field is invalid.
    #[error("{message}")]
    BadParameter { parameter: String, message: String },
    /// No such mismatch, group or route.
    #[error("{0}")]
    NotFound(String),
    /// The route exists, but not for this method.
    #[error("this route does not take that method")]
    MethodNotAllowed,
    /// A request body over the size the API reads.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// The token is missing or wrong.
    #[error("a valid `Authorization: Bearer <token>` header is required")]
    Unauthorized,
    /// The request is understood but not allowed here (a rollout command
    /// on an API without a token).
    #[error("{0}")]
    Forbidden(String),
    /// The request conflicts with the state (a plan at its last step).
    #[error("{0}")]
    Conflict(String),
    /// shadowdiff runs without a database.
    #[error("no database is configured")]
    NoDatabase,
    /// The store failed; the cause is logged, not sent.
    #[error("the store failed")]
    Store(#[source] StoreError),
    /// The store's writes fail or records were lost: its counts cannot be
    /// trusted for a decision. The message names the failure's class only.
    #[error("{0}")]
    StoreUnhealthy(String),
    /// A task of the API's own failed (panicked or was cancelled); the
    /// cause is logged, not sent.
    #[error("the request could not be completed")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.respond(None)
    }
}

impl ApiError {
    /// The error's response, with the store writer's health if given.
    pub(super) fn respond(self, store: Option<StoreStatus>) -> Response {
        let (status, code, parameter) = match &self {
            ApiError::BadParameter { parameter, .. } => (
                StatusCode::BAD_REQUEST,
                "bad_parameter",
                Some(parameter.clone()),
            ),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", None),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None)
            }
            ApiError::NoDatabase => (StatusCode::SERVICE_UNAVAILABLE, "no_database", None),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict", None),
            ApiError::StoreUnhealthy(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unhealthy", None)
            }
            ApiError::Internal(cause) => {
                tracing::error!(error = %cause, "report API request failed");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal", None)
            }
            ApiError::Store(e) => {
                let mut chain = e.to_string();
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    chain.push_str(": ");
                    chain.push_str(&s.to_string());
                    source = s.source();
                }
                tracing::error!(error = %chain, "report API request failed");
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", None)
            }
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                parameter,
            },
            store,
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

pub(super) fn bad(parameter: &str, message: impl Into<String>) -> ApiError {
    ApiError::BadParameter {
        parameter: parameter.to_string(),
        message: message.into(),
    }
}

#[derive(Serialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
    /// With a store failure on the summary: the health of this process's
    /// store writer, which does not need the database to be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreStatus>,
}

#[derive(Serialize)]
pub struct ErrorDetail {
    /// A stable machine-readable code: bad_parameter, not_found, unauthorized, …
    pub code: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameter: Option<String>,
}
