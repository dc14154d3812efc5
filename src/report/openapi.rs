//! GET /api/v1/openapi.json: the OpenAPI 3 description of this API, kept
//! beside the code in `openapi.json`.

use axum::http::header;
use axum::response::IntoResponse;

/// The OpenAPI 3 description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

pub(super) async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_document_is_json() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        for path in [
            "/api/v1/summary",
            "/api/v1/groups/{fingerprint}",
            "/api/v1/mismatches/{id}/curl",
            "/healthz",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} is not described");
        }
    }
}
