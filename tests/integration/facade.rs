//! One shadowdiff in front of a monolith, for a whole migration: each route
//! compared against the service that takes it over, a candidate that wants
//! its own bearer token (from an environment variable) and path prefix, a
//! route proxied and not shadowed; the real binary at TRACE, with the token
//! found nowhere it must not be. And configurations that cannot work are
//! refused at start, naming their key.

use std::time::Duration;

use axum::Router;
use serde_json::Value;

use crate::secrets::api;
use crate::support::{self, Hits};

const TOKEN: &str = "SECRET-orders-token-7f3a";

/// The new orders service: answers only its own token, and (to leave a
/// stored mismatch to look at) with one field more than the monolith.
async fn orders_service() -> (support::Backend, Hits) {
    support::answering_backend(|parts| {
        let authorized = parts.headers.get("authorization").map(|v| v.as_bytes())
            == Some(format!("Bearer {TOKEN}").as_bytes());
        match authorized {
            true => (http::StatusCode::OK, "{\"ok\":true,\"v\":2}"),
            false => (http::StatusCode::UNAUTHORIZED, "{\"error\":\"token\"}"),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_facade_compares_each_route_with_its_own_candidate() {
    let (monolith, monolith_hits) = support::recording_backend().await;
    let (orders, orders_hits) = orders_service().await;
    let (users, users_hits) = support::recording_backend().await;
    let (search, search_hits) = support::recording_backend().await;
    let dir = tempfile::tempdir().unwrap();
    let (db, record) = (
        dir.path().join("store.db"),
        dir.path().join("requests.jsonl"),
    );
    let config = format!(
        r#"
            listen = "127.0.0.1:0"
            report_listen = "127.0.0.1:0"
            primary = "{}"
            candidate = "{}"
            database_url = "sqlite://{}"
            record = "{}"

            [backend.orders]
            url = "{}"
            [backend.orders.rewrite]
            set_headers = {{ authorization = {{ env = "ORDERS_TOKEN", prefix = "Bearer " }} }}
            remove_headers = ["cookie"]
            path_prefix = {{ from = "/api/v1/orders", to = "/orders" }}

            [backend.users]
            url = "{}"

            [backend.search-py]
            url = "{}"

            [[route]]
            match = "GET /api/v1/orders/{{id}}"
            candidate = "orders"

            [[route]]
            match = "GET /api/users/{{id}}"
            candidate = "users"

            [[route]]
            match = "GET /search"
            primary = "search-py"
            candidate = false
            "#,
        monolith.url(),
        users.url(),
        db.display(),
        record.display(),
        orders.url(),
        users.url(),
        search.url(),
    );
    let envs = [("SHADOWDIFF_LOG", "trace"), ("ORDERS_TOKEN", TOKEN)];
    let (mut child, listen, report) =
        support::serve_config(dir.path(), "shadowdiff", &config, &envs).await;
    let stderr = dir.path().join("shadowdiff.log");

    let client = support::client();
    for target in [
        "/api/v1/orders/7?expand=items",
        "/api/users/3",
        "/search?q=shoes",
    ] {
        let response = client
            .get(format!("http://127.0.0.1:{listen}{target}"))
            .header("authorization", "Bearer client-token")
            .header("cookie", "session=abc")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "{target}");
        assert_eq!(response.text().await.unwrap(), "{\"ok\":true}", "{target}");
    }

    // The search route's own primary got its request; the monolith the
    // others, each as the client sent it.
    let searched = search_hits.wait_for(1).await;
    assert_eq!(searched.len(), 1);
    assert_eq!(searched[0].target, "/search?q=shoes");
    let seen = monolith_hits.wait_for(2).await;
    assert_eq!(seen.len(), 2);
    let seen = [seen, searched].concat();
    for hit in &seen {
        assert_eq!(
            hit.headers["authorization"], "Bearer client-token",
            "{}",
            hit.target
        );
        assert_eq!(hit.headers["cookie"], "session=abc", "{}", hit.target);
        assert_eq!(hit.headers["host"], format!("127.0.0.1:{listen}").as_str());
    }
    let targets: Vec<&str> = seen.iter().map(|h| h.target.as_str()).collect();
    assert!(
        targets.contains(&"/api/v1/orders/7?expand=items"),
        "{targets:?}"
    );

    // Each candidate got only its own route, the orders service rewritten.
    let orders_seen = orders_hits.wait_for(1).await;
    assert_eq!(orders_seen.len(), 1);
    assert_eq!(orders_seen[0].target, "/orders/7?expand=items");
    assert_eq!(
        orders_seen[0].headers["authorization"],
        format!("Bearer {TOKEN}").as_str()
    );
    assert!(!orders_seen[0].headers.contains_key("cookie"));
    assert_eq!(orders_seen[0].headers["x-shadowdiff-role"], "shadow");
    let users_seen = users_hits.wait_for(1).await;
    assert_eq!(users_seen.len(), 1);
    assert_eq!(users_seen[0].target, "/api/users/3");
    assert_eq!(
        users_seen[0].headers["authorization"],
        "Bearer client-token"
    );

    // The summary names each endpoint's backends; /search is not shadowed.
    let mut summary = Value::Null;
    for _ in 0..200 {
        summary = serde_json::from_str(&api(report, "/api/v1/summary?since=1h").await).unwrap();
        if summary["totals"]["compared"] == 2
            && summary["totals"]["skipped"] == 1
            && summary["store"]["unwritten"] == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let endpoint = |name: &str| {
        summary["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["endpoint"] == name)
            .unwrap_or_else(|| panic!("{name} not in {summary}"))
            .clone()
    };
    let orders_row = endpoint("GET /api/v1/orders/{id}");
    assert_eq!(
        orders_row["backends"]["candidate"], "orders",
        "{orders_row}"
    );
    assert_eq!(orders_row["mismatched"], 1, "{orders_row}");
    let users_row = endpoint("GET /api/users/{id}");
    assert_eq!(users_row["backends"]["candidate"], "users");
    assert_eq!(users_row["matched"], 1, "{users_row}");
    let search_row = endpoint("GET /search");
    assert_eq!(search_row["backends"]["candidate"], Value::Null);
    assert_eq!(search_row["backends"]["primary"], "search-py");
    assert_eq!(
        search_row["outcomes"]["skipped/no_candidate"], 1,
        "{search_row}"
    );

    // The stored mismatch shows the request the candidate got, the token
    // only as the variable's name.
    let list: Value =
        serde_json::from_str(&api(report, "/api/v1/mismatches?since=1h").await).unwrap();
    let id = list["items"][0]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{list}"));
    let detail_text = api(report, &format!("/api/v1/mismatches/{id}")).await;
    let detail: Value = serde_json::from_str(&detail_text).unwrap();
    assert_eq!(detail["candidate"]["status"], 200, "{detail}");
    let sent = &detail["candidate_request"];
    assert_eq!(sent["path"], "/orders/7", "{detail}");
    assert_eq!(sent["query"], "expand=items", "{detail}");
    let headers = sent["headers"].as_array().unwrap();
    assert!(headers.iter().all(|h| h[0] != "cookie"), "{sent}");
    assert!(headers.iter().any(|h| h[0] == "authorization"), "{sent}");
    assert_eq!(
        detail["request"]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|h| h[0] == "cookie")
            .count(),
        1
    );

    // The commands to send it again go to each backend as it was sent.
    let curl: Value =
        serde_json::from_str(&api(report, &format!("/api/v1/mismatches/{id}/curl")).await).unwrap();
    let to_orders = curl["candidate"].as_str().unwrap();
    assert!(
        to_orders.contains(&format!("'{}/orders/7?expand=items'", orders.url())),
        "{to_orders}"
    );
    assert!(
        to_orders.contains("[from $ORDERS_TOKEN]") || to_orders.contains("authorization: redacted"),
        "{to_orders}"
    );
    let to_monolith = curl["primary"].as_str().unwrap();
    assert!(
        to_monolith.contains(&format!(
            "'{}/api/v1/orders/7?expand=items'",
            monolith.url()
        )),
        "{to_monolith}"
    );

    // The token is nowhere: the API, the store, the record file, the logs.
    let mut seen_by_api = detail_text;
    for path in [
        "/api/v1/summary?since=1h",
        "/api/v1/mismatches?since=1h",
        "/api/v1/groups?since=1h",
        &format!("/api/v1/mismatches/{id}/curl"),
    ] {
        seen_by_api.push_str(&api(report, path).await);
    }
    assert!(!seen_by_api.contains(TOKEN), "the API shows the token");
    assert!(std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    assert!(child.wait().unwrap().success());
    let logs = std::fs::read_to_string(&stderr).unwrap();
    assert!(logs.contains("TRACE"), "not logging at TRACE");
    assert!(!logs.contains(TOKEN), "the logs show the token");
    let recorded = std::fs::read_to_string(&record).unwrap();
    assert_eq!(recorded.lines().count(), 2, "{recorded}");
    assert!(!recorded.contains(TOKEN), "the record file holds the token");
    support::assert_no_file_holds(dir.path(), "store.db", TOKEN);
}

/// `serve` with `config` (and a clean environment): its exit code and stderr.
async fn serve_refuses(config: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = format!(
        "primary = \"http://127.0.0.1:9\"\ncandidate = \"http://127.0.0.1:9\"\ndatabase_url = \"sqlite://{}\"\n{config}",
        dir.path().join("never.db").display()
    );
    std::fs::write(&path, text).unwrap();
    let out = support::binary(vec![
        "serve".into(),
        "--config".into(),
        path.display().to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--report-listen".into(),
        "127.0.0.1:0".into(),
    ])
    .await;
    assert!(
        !dir.path().join("never.db").exists(),
        "{config}: a database was made"
    );
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn configurations_that_cannot_work_are_refused_at_start() {
    let cases = [
        (
            "[[route]]\nmatch = \"GET /orders/{id}\"\ncandidate = \"ordres\"\n[backend.orders]\nurl = \"http://127.0.0.1:9\"\n",
            "route[0].candidate",
            "no backend is named \"ordres\"",
        ),
        (
            "[backend.orders]\nurl = \"http://127.0.0.1:9\"\n[backend.orders.rewrite]\nremove_headers = [\"Transfer-Encoding\"]\n",
            "backend.orders.rewrite.remove_headers[0]",
            "hop-by-hop",
        ),
        (
            "[backend.orders]\nurl = \"http://127.0.0.1:9\"\n[backend.orders.rewrite]\nset_headers = { authorization = { env = \"ORDERS_TOKEN\" } }\n",
            "backend.orders.rewrite.set_headers",
            "ORDERS_TOKEN is not set",
        ),
        ("role_header = \"connection\"", "role_header", "role header"),
        // A cutover that cannot work: a plan that falls, a weight past 100,
        // a plan on a route that is never shadowed.
        (
            "[[route]]\nmatch = \"GET /a\"\n[route.plan]\nsteps = [25, 5]\nhold = \"1m\"\ngate = \"min_parity=99\"\n",
            "route[0].plan",
            "must rise",
        ),
        ("weight = 101", "weight", "0 to 100"),
        (
            "[[route]]\nmatch = \"GET /a\"\ncandidate = false\n[route.plan]\nsteps = [5]\nhold = \"1m\"\ngate = \"min_parity=99\"\n",
            "route[0].plan",
            "no candidate",
        ),
    ];
    for (config, key, words) in cases {
        let (code, stderr) = serve_refuses(config).await;
        assert_eq!(code, Some(2), "{config}: {stderr}");
        assert!(stderr.contains(key), "{config}: no {key} in {stderr}");
        assert!(stderr.contains(words), "{config}: no {words:?} in {stderr}");
    }
}

/// A slow candidate at its own `max_in_flight` drops its route's samples
/// (`dropped/backend_busy`) and leaves the other route's candidate alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_backend_drops_only_its_own_samples() {
    use shadowdiff::outcome::{DropReason, OutcomeKey};
    let (monolith, _) = support::recording_backend().await;
    let (fast, fast_hits) = support::recording_backend().await;
    let slow = support::backend(Router::new().fallback(|| async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        ([("content-type", "application/json")], "{\"ok\":true}")
    }))
    .await;
    let text = format!(
        r#"
        primary = "{}"
        candidate = "{}"
        [backend.slow]
        url = "{}"
        max_in_flight = 1
        [[route]]
        match = "GET /slow/{{id}}"
        candidate = "slow"
        "#,
        monolith.url(),
        fast.url(),
        slow.url()
    );
    let settings = shadowdiff::config::Layer::from_toml(&text)
        .unwrap()
        .resolve()
        .unwrap();
    let proxy = support::start(settings).await;
    let client = support::client();
    let sent: Vec<_> = (0..6)
        .map(|i| client.get(proxy.url(&format!("/slow/{i}"))).send())
        .chain((0..6).map(|i| client.get(proxy.url(&format!("/fast/{i}"))).send()))
        .collect();
    for response in futures_util::future::join_all(sent).await {
        assert_eq!(response.unwrap().status(), 200);
    }
    let tally = proxy.outcomes(12).await;
    let busy = tally.count(OutcomeKey::Dropped(DropReason::BackendBusy));
    assert!((1..6).contains(&busy), "{tally:?}");
    assert_eq!(tally.count(OutcomeKey::Matched) + busy, 12, "{tally:?}");
    assert_eq!(fast_hits.wait_for(6).await.len(), 6);
    proxy.stop().await;
}

/// The role header has the configured name, or is not sent at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_role_header_is_named_or_off() {
    for (setting, expected) in [("x-mirror-copy", Some("x-mirror-copy")), ("off", None)] {
        let (primary, primary_hits) = support::recording_backend().await;
        let (candidate, candidate_hits) = support::recording_backend().await;
        let mut settings = support::settings(&primary, candidate.url());
        settings.role_header = setting.parse().unwrap();
        let proxy = support::start(settings).await;
        let response = support::client().get(proxy.url("/a")).send().await.unwrap();
        assert_eq!(response.status(), 200);
        proxy.outcomes(1).await;
        let sent = &candidate_hits.wait_for(1).await[0];
        for name in ["x-shadowdiff-role", "x-mirror-copy"] {
            let value = sent.headers.get(name).map(|v| v.to_str().unwrap());
            let wanted = (Some(name) == expected).then_some("shadow");
            assert_eq!(value, wanted, "{setting}: {name}");
        }
        // The client's own request never carries it.
        assert!(!primary_hits.all()[0].headers.contains_key("x-mirror-copy"));
        proxy.stop().await;
    }
}
