//! The review UI's pages: an HTML shell and its scripts and styles, built
//! into the binary (no CDN, nothing to install, works offline) and served
//! on the report listener under `/ui/`. The pages read everything through
//! the report API (`/api/v1`), with the session `report::session` signs;
//! this module only serves files, so it knows no store and no token.
//!
//! Every path under `/ui/` that is not an asset answers with the shell, so a
//! group or a mismatch has its own address (`/ui/groups/<fingerprint>`,
//! `/ui/mismatches/<id>`) that can be shared and reloaded. A strict
//! Content-Security-Policy allows only these files: no inline script, no
//! other origin, so a stored body rendered by mistake as markup still runs
//! nothing.

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;

/// The shell every page starts from.
const INDEX: &str = include_str!("assets/index.html");

/// The files under `/ui/assets/`, by name.
const ASSETS: [(&str, &str, &str); 10] = [
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("assets/app.css"),
    ),
    ("app.js", JS, include_str!("assets/app.js")),
    ("api.js", JS, include_str!("assets/api.js")),
    ("overview.js", JS, include_str!("assets/overview.js")),
    ("groups.js", JS, include_str!("assets/groups.js")),
    ("group.js", JS, include_str!("assets/group.js")),
    ("mismatch.js", JS, include_str!("assets/mismatch.js")),
    ("tree.js", JS, include_str!("assets/tree.js")),
    ("forgive.js", JS, include_str!("assets/forgive.js")),
    ("index.html", HTML, INDEX),
];

const JS: &str = "text/javascript; charset=utf-8";
const HTML: &str = "text/html; charset=utf-8";

/// Only this origin's own files; nothing inline, no frames.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; \
     base-uri 'none'";

/// The pages' routes: `/` and `/ui` lead to `/ui/`, assets by name, the
/// shell for every other path under `/ui/`.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { page(HTML, INDEX) }))
        .route("/ui/assets/{name}", get(asset))
        .route("/ui/{*page}", get(|| async { page(HTML, INDEX) }))
}

async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(file, _, _)| *file == name) {
        Some((_, content_type, body)) => page(content_type, body),
        None => (StatusCode::NOT_FOUND, "no such asset\n").into_response(),
    }
}

/// A file with the headers every UI response carries.
fn page(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CONTENT_TYPE, content_type),
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "no-referrer"),
        // A new release's files are fetched again: they are small.
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_the_shell_loads_is_served() {
        for (name, _, body) in ASSETS {
            assert!(!body.is_empty(), "{name} is empty");
        }
        for reference in INDEX.split("/ui/assets/").skip(1) {
            let name = reference.split('"').next().unwrap_or_default();
            assert!(
                ASSETS.iter().any(|(file, _, _)| *file == name),
                "index.html loads {name}, which is not served"
            );
        }
    }
}
