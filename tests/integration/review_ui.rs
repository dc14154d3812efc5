//! The review UI as the browser meets it, over real HTTP: its pages and
//! their security headers, the sign-in that trades the token for a cookie
//! (never the token itself, never in a URL), what the cookie may and may
//! not do, triage history through the API, the curl commands as plain
//! text, and a 5 MB mismatch stored whole when `store_body_bytes` allows.

use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use shadowdiff::sampling::SampleRate;

use crate::support;

const TOKEN: &str = "ui-t0ken-for-tests";

/// A primary and a candidate whose `total` differs on every id.
async fn backends() -> (support::Backend, support::Backend) {
    let answer = |total: u32| {
        move |Path(id): Path<u32>| async move {
            (
                [("content-type", "application/json")],
                json!({"id": id, "total": total}).to_string(),
            )
        }
    };
    let primary = support::backend(Router::new().route("/users/{id}", get(answer(30)))).await;
    let candidate = support::backend(Router::new().route("/users/{id}", get(answer(3)))).await;
    (primary, candidate)
}

async fn proxy_with_token(
    db: &support::TestDatabase,
) -> (
    support::RunningProxy,
    String,
    support::Backend,
    support::Backend,
) {
    let (primary, candidate) = backends().await;
    let mut s = support::settings(&primary, candidate.url());
    s.database_url = Some(db.url.clone());
    s.sample_rate = SampleRate::ALL;
    s.report_token = Some(TOKEN.parse().unwrap());
    let proxy = support::start_with_report(s).await;
    let base = format!("http://{}", proxy.report.unwrap());
    (proxy, base, primary, candidate)
}

/// The cookie `Set-Cookie` sets, as a `Cookie` header's value.
fn cookie_of(response: &reqwest::Response) -> String {
    let set = response
        .headers()
        .get("set-cookie")
        .expect("a cookie")
        .to_str()
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set.contains(attribute), "{set}");
    }
    set.split(';').next().unwrap().to_string()
}

/// Waits until the API lists at least one mismatch; returns its id.
async fn first_mismatch(base: &str) -> i64 {
    for _ in 0..100 {
        let page: Value = support::json_of(
            support::client()
                .get(format!("{base}/api/v1/mismatches"))
                .bearer_auth(TOKEN),
        )
        .await;
        if let Some(id) = page["items"][0]["id"].as_i64() {
            return id;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no mismatch was stored");
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_are_served_from_the_binary_with_a_strict_policy() {
    let db = support::sqlite_database();
    let (proxy, base, _p, _c) = proxy_with_token(&db).await;
    let client = support::client();
    for page in [
        "/ui/",
        "/ui/groups",
        "/ui/groups/abc123",
        "/ui/mismatches/7",
    ] {
        let response = client.get(format!("{base}{page}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{page}");
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe"),
            "{csp}"
        );
        assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        let html = response.text().await.unwrap();
        assert!(html.contains("/ui/assets/app.js"), "{page}: {html}");
        assert!(!html.contains("<script>"), "no inline script");
    }
    let script = client
        .get(format!("{base}/ui/assets/app.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/javascript"));
    let missing = client
        .get(format!("{base}/ui/assets/nope.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let root = client.get(&base).send().await.unwrap();
    assert_eq!(
        (
            root.status().as_u16(),
            root.headers()["location"].to_str().unwrap()
        ),
        (303, "/ui/")
    );
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_token_buys_a_cookie_that_reads_and_changes_only_with_the_ui_header() {
    let db = support::sqlite_database();
    let (proxy, base, _p, _c) = proxy_with_token(&db).await;
    let client = support::client();
    reqwest::get(proxy.url("/users/1")).await.unwrap();
    let id = first_mismatch(&base).await;

    let session: Value = support::json_of(client.get(format!("{base}/ui/session"))).await;
    assert_eq!(session, json!({"token_required": true, "signed_in": false}));
    let anonymous = client
        .get(format!("{base}/api/v1/summary"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401, "no data without the token");

    let login = |token: &'static str| {
        client
            .post(format!("{base}/ui/login"))
            .json(&json!({ "token": token }))
            .send()
    };
    let wrong = login("not-the-token").await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert!(wrong.headers().get("set-cookie").is_none());
    let right = login(TOKEN).await.unwrap();
    assert_eq!(right.status(), 204);
    assert!(!right.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Secure"));
    let cookie = cookie_of(&right);
    // Behind a TLS-terminating proxy, the cookie is for TLS only.
    let behind_tls = client
        .post(format!("{base}/ui/login"))
        .header("x-forwarded-proto", "https")
        .json(&json!({ "token": TOKEN }))
        .send()
        .await
        .unwrap();
    assert!(behind_tls.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("; Secure"));
    assert!(
        !cookie.contains(TOKEN),
        "the cookie is not the token: {cookie}"
    );

    let with_cookie = |method: reqwest::Method, path: &str| {
        client
            .request(method, format!("{base}{path}"))
            .header("cookie", &cookie)
    };
    let read = with_cookie(reqwest::Method::GET, "/api/v1/summary")
        .send()
        .await
        .unwrap();
    assert_eq!(read.status(), 200);
    let session: Value = support::json_of(with_cookie(reqwest::Method::GET, "/ui/session")).await;
    assert_eq!(session["signed_in"], true);

    // A change needs the UI's header: a form another site posts has none.
    let detail: Value = support::json_of(with_cookie(
        reqwest::Method::GET,
        &format!("/api/v1/mismatches/{id}"),
    ))
    .await;
    let fingerprint = detail["fingerprint"].as_str().unwrap().to_string();
    let triage = json!({"status": "bug", "note": "total is off by 10x", "by": "dana"});
    let group = format!("/api/v1/groups/{fingerprint}");
    let forged = with_cookie(reqwest::Method::PATCH, &group)
        .json(&triage)
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);
    let made = with_cookie(reqwest::Method::PATCH, &group)
        .header("x-shadowdiff-ui", "1")
        .json(&triage)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), 200);
    let shown: Value = support::json_of(with_cookie(reqwest::Method::GET, &group)).await;
    assert_eq!(shown["status"], "bug");
    assert_eq!(shown["history"].as_array().unwrap().len(), 1, "{shown}");
    assert_eq!(shown["history"][0]["by"], "dana");
    assert_eq!(shown["history"][0]["note"], "total is off by 10x");

    // A forged or stale cookie is no session.
    let forged_cookie = format!("{}0", cookie);
    let refused = client
        .get(format!("{base}/api/v1/summary"))
        .header("cookie", forged_cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    let out = client
        .post(format!("{base}/ui/logout"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), 204);
    assert!(out.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .contains("Max-Age=0"));
    proxy.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn curl_commands_answer_as_text_and_differences_as_rules() {
    let db = support::sqlite_database();
    let (proxy, base, primary, candidate) = proxy_with_token(&db).await;
    reqwest::get(proxy.url("/users/4")).await.unwrap();
    let id = first_mismatch(&base).await;
    let client = support::client();
    let text = client
        .get(format!("{base}/api/v1/mismatches/{id}/curl"))
        .bearer_auth(TOKEN)
        .header("accept", "text/plain")
        .send()
        .await
        .unwrap();
    assert!(text.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = text.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[1], "# primary");
    assert!(
        lines[2].starts_with("curl -X 'GET' '") && lines[2].contains(&primary.url().to_string()),
        "{text}"
    );
    assert_eq!(lines[3], "# candidate");
    assert!(lines[4].contains(&candidate.url().to_string()), "{text}");

    let forgive: Value = support::json_of(
        client
            .get(format!("{base}/api/v1/mismatches/{id}/forgive"))
            .bearer_auth(TOKEN),
    )
    .await;
    assert_eq!(forgive["endpoint"], "GET /users/{id}");
    let rules: Vec<(&str, &str)> = forgive["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["path"].as_str().unwrap(), s["rule"].as_str().unwrap()))
        .collect();
    assert_eq!(
        rules,
        [("/total", "mask"), ("/total", "ignore")],
        "{forgive}"
    );
    // The narrowest rule clears the group when the stored exemplars are
    // judged again under it.
    let snippet = forgive["suggestions"][0]["endpoint_toml"].as_str().unwrap();
    let rejudged: Value = support::json_of(
        client
            .post(format!("{base}/api/v1/rejudge"))
            .bearer_auth(TOKEN)
            .json(&json!({ "config": snippet, "since": "1h" })),
    )
    .await;
    assert_eq!(
        rejudged["groups"][0]["fate"], "vanishes",
        "{snippet}\n{rejudged}"
    );
    proxy.stop().await;
}
