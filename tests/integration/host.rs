//! The Host each backend receives: the client's by default, so that what a
//! backend builds from it (redirects, absolute links, allowed-host checks)
//! is what a direct call would give; or the backend's own, or a fixed name.

use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use axum::Router;
use http::StatusCode;
use shadowdiff::config::HostHeader;
use shadowdiff::outcome::OutcomeKey;

use crate::support;

/// Redirects to an absolute URL built from Host, as Django's and Flask's
/// `url_for(_external=True)` and `build_absolute_uri` do.
async fn redirecting_backend() -> support::Backend {
    support::backend(Router::new().fallback(|request: Request| async move {
        let host = request
            .headers()
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("none")
            .to_string();
        let response: Response = (
            StatusCode::FOUND,
            [("location", format!("http://{host}/next"))],
        )
            .into_response();
        response
    }))
    .await
}

#[tokio::test]
async fn both_backends_see_the_clients_host() {
    let (primary, primary_hits) = support::recording_backend().await;
    let (candidate, candidate_hits) = support::recording_backend().await;
    let proxy = support::start(support::settings(&primary, candidate.url())).await;
    let response = support::client()
        .get(proxy.url("/who"))
        .header("host", "shop.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    proxy.outcomes(1).await;
    assert_eq!(
        primary_hits.wait_for(1).await[0].headers["host"],
        "shop.example.com"
    );
    let shadow = &candidate_hits.wait_for(1).await[0];
    assert_eq!(shadow.headers["host"], "shop.example.com");
    assert!(!shadow.headers.contains_key("x-forwarded-host"));
    proxy.stop().await;
}

#[tokio::test]
async fn a_redirect_built_from_host_is_the_same_as_a_direct_call() {
    let primary = redirecting_backend().await;
    let proxy = support::start(support::settings(&primary, primary.url())).await;
    let location = |url: String| async move {
        let response = support::client()
            .get(url)
            .header("host", "shop.example.com")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FOUND);
        response.headers()["location"].to_str().unwrap().to_string()
    };
    let direct = location(format!("http://{}/login", primary.addr)).await;
    let proxied = location(proxy.url("/login")).await;
    assert_eq!(direct, "http://shop.example.com/next");
    assert_eq!(proxied, direct);
    // The shadow copy of the redirect matched: the candidate saw the same Host.
    let tally = proxy.outcomes(1).await;
    assert_eq!(tally.count(OutcomeKey::Matched), 1, "{tally:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn each_backend_can_get_its_own_authority_or_a_fixed_name() {
    let (primary, primary_hits) = support::recording_backend().await;
    let (candidate, candidate_hits) = support::recording_backend().await;
    let mut settings = support::settings(&primary, candidate.url());
    settings.primary_host = "legacy.internal:8000".parse().unwrap();
    settings.candidate_host = HostHeader::Backend;
    let proxy = support::start(settings).await;
    support::client()
        .get(proxy.url("/who"))
        .header("host", "shop.example.com")
        .send()
        .await
        .unwrap();
    proxy.outcomes(1).await;
    let seen = &primary_hits.wait_for(1).await[0];
    assert_eq!(seen.headers["host"], "legacy.internal:8000");
    assert_eq!(seen.headers["x-forwarded-host"], "shop.example.com");
    let shadow = &candidate_hits.wait_for(1).await[0];
    assert_eq!(shadow.headers["host"], candidate.addr.to_string().as_str());
    assert_eq!(shadow.headers["x-forwarded-host"], "shop.example.com");
    proxy.stop().await;
}

#[test]
fn a_host_setting_is_a_keyword_or_a_valid_authority() {
    assert_eq!("client".parse::<HostHeader>(), Ok(HostHeader::Client));
    assert_eq!("backend".parse::<HostHeader>(), Ok(HostHeader::Backend));
    for bad in ["", "a b", "user@host", "http://x", "x/y", "h\0st"] {
        let err = bad.parse::<HostHeader>().unwrap_err();
        assert!(err.contains("client"), "{bad:?}: {err}");
    }
}
