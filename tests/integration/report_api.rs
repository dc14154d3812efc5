//! The report API end to end, on SQLite and PostgreSQL: after seeded traffic
//! through the proxy, the API reports exactly the expected counts, groups and
//! patches; it requires its token; bad parameters get 400 naming them.

use std::time::Duration;

use serde_json::{json, Value};

use crate::persistence::{candidate, primary, settings, traffic};
use crate::support;

const TOKEN: &str = "t0ken-for-tests";

struct Api {
    base: String,
    client: reqwest::Client,
}

impl Api {
    async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn patch(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .patch(format!("{}{path}", self.base))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Polls the summary until the writer has flushed `n` outcomes (bounded).
    async fn summary_with(&self, n: i64) -> Value {
        for _ in 0..100 {
            let (status, summary) = self.get("/api/v1/summary?since=1h").await;
            // Exemplars follow the counts in a transaction of their own:
            // nothing left unwritten means both are in.
            if status == 200
                && summary["totals"]["compared"].as_i64() == Some(n)
                && summary["store"]["unwritten"] == 0
            {
                return summary;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "the summary never showed {n} comparisons: {:?}",
            self.get("/api/v1/summary?since=1h").await
        );
    }
}

// Long by design: one traffic run, then each endpoint of the API checked against it.
#[tokio::test]
async fn the_api_reports_what_the_proxy_saw() {
    let (primary, candidate) = (primary().await, candidate().await);
    for db in support::databases().await {
        let mut config = settings(&primary, &candidate, &db, "one");
        config.report_token = Some(TOKEN.parse().unwrap());
        let proxy = support::start_with_report(config).await;
        let api = Api {
            base: format!("http://{}", proxy.report.unwrap()),
            client: support::client(),
        };
        traffic(&proxy, 0..10).await;

        let summary = api.summary_with(10).await;
        let totals = &summary["totals"];
        assert_eq!(
            (totals["matched"].as_i64(), totals["mismatched"].as_i64()),
            (Some(5), Some(5)),
            "{}: {summary}",
            db.name
        );
        assert_eq!(totals["parity"], json!(0.5));
        assert_eq!(summary["lost_records"], json!(0));
        let users = &summary["endpoints"][0];
        assert_eq!(users["endpoint"], "GET /users/{id}");
        assert!(
            users["latency_ms"]["candidate"]["p99"].as_f64().unwrap() > 0.0,
            "{users}"
        );
        assert_eq!(users["candidate_error_rate"], json!(0.0));

        let (_, endpoints) = api.get("/api/v1/endpoints").await;
        assert_eq!(endpoints[0]["endpoint"], "GET /users/{id}");

        let (status, groups) = api
            .get("/api/v1/groups?endpoint=GET%20/users/%7Bid%7D")
            .await;
        assert_eq!(status, 200);
        assert_eq!(groups.as_array().unwrap().len(), 1, "{}: {groups}", db.name);
        assert_eq!(groups[0]["count"], json!(5));
        assert_eq!(groups[0]["paths"], json!(["/total"]));
        assert_eq!(
            (&groups[0]["headers"], &groups[0]["statuses"]),
            (&json!([]), &json!(null))
        );
        let fingerprint = groups[0]["fingerprint"].as_str().unwrap().to_string();

        let (status, group) = api
            .patch(
                &format!("/api/v1/groups/{fingerprint}"),
                json!({"status": "bug", "note": "rounding"}),
            )
            .await;
        assert_eq!(
            (status, &group["status"], &group["note"]),
            (200, &json!("bug"), &json!("rounding"))
        );
        let (status, error) = api
            .patch(
                &format!("/api/v1/groups/{fingerprint}"),
                json!({"status": "wontfix"}),
            )
            .await;
        assert_eq!(
            (status, &error["error"]["parameter"]),
            (400, &json!("status"))
        );
        let (status, _) = api
            .patch("/api/v1/groups/nope", json!({"status": "bug"}))
            .await;
        assert_eq!(status, 404);
        let (_, bugs) = api.get("/api/v1/groups?status=bug").await;
        assert_eq!(bugs.as_array().unwrap().len(), 1);

        // Keyset pages of two, newest first, five in all.
        let mut ids = Vec::new();
        let mut next = String::new();
        loop {
            let (status, page) = api.get(&format!("/api/v1/mismatches?limit=2{next}")).await;
            assert_eq!(status, 200, "{page}");
            ids.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|m| m["id"].as_i64().unwrap()),
            );
            match page["next_cursor"].as_str() {
                Some(cursor) => next = format!("&cursor={cursor}"),
                None => break,
            }
        }
        assert_eq!(
            ids.len(),
            5,
            "{}: {ids:?}; store: {}; in the database: {}",
            db.name,
            api.get("/api/v1/summary?since=1h").await.1["store"],
            shadowdiff::store::Store::mismatches(
                &shadowdiff::store::SqlStore::connect(&db.url).await.unwrap(),
                shadowdiff::store::MismatchFilter::default(),
                None,
                100
            )
            .await
            .unwrap()
            .len()
        );
        assert!(ids.windows(2).all(|w| w[0] > w[1]));

        let (status, detail) = api.get(&format!("/api/v1/mismatches/{}", ids[0])).await;
        assert_eq!(status, 200);
        assert_eq!(
            detail["verdict"]["patch"],
            json!([{"op": "replace", "path": "/total", "value": 3}])
        );
        let auth = detail["request"]["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0] == "authorization")
            .unwrap();
        assert!(auth[1].as_str().unwrap().starts_with("redacted:"), "{auth}");
        assert_eq!(detail["primary"]["body"]["encoding"], "utf-8");
        // Each side's latency, as measured by the proxy (the request has none).
        for side in ["primary", "candidate"] {
            let ms = detail[side]["latency_ms"].as_f64();
            assert!(
                ms.is_some_and(|ms| ms > 0.0 && ms < 10_000.0),
                "{side}: {detail}"
            );
        }
        assert!(detail["request"].get("latency_ms").is_none(), "{detail}");

        let (status, curl) = api
            .get(&format!("/api/v1/mismatches/{}/curl", ids[0]))
            .await;
        assert_eq!(status, 200);
        let command = curl["candidate"].as_str().unwrap();
        assert!(
            command.starts_with("curl -X 'GET' 'http://") && command.contains("/users/"),
            "{command}"
        );

        proxy.stop().await;
    }
}

/// A proxy whose report API wants [`TOKEN`], on a SQLite store, with the
/// backends it needs kept alive.
struct Guarded {
    proxy: support::RunningProxy,
    _backends: (support::Backend, support::Backend),
    _db: support::TestDatabase,
}

impl Guarded {
    async fn start() -> Guarded {
        let (primary, candidate) = (primary().await, candidate().await);
        let db = support::sqlite_database();
        let mut config = settings(&primary, &candidate, &db, "one");
        config.report_token = Some(TOKEN.parse().unwrap());
        let proxy = support::start_with_report(config).await;
        Guarded {
            proxy,
            _backends: (primary, candidate),
            _db: db,
        }
    }

    fn base(&self) -> String {
        format!("http://{}", self.proxy.report.unwrap())
    }
}

#[tokio::test]
async fn the_api_requires_its_token_and_names_bad_parameters() {
    let guarded = Guarded::start().await;
    let (base, client) = (guarded.base(), support::client());
    // The backends and the database live to the end of the test.
    let Guarded {
        proxy,
        _backends: _kept,
        _db: _kept_db,
    } = guarded;

    let health = client.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200, "health needs no token");
    for auth in [None, Some("Bearer wrong"), Some("t0ken-for-tests")] {
        let mut request = client.get(format!("{base}/api/v1/summary"));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{auth:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "unauthorized");
    }

    let api = Api { base, client };
    for (path, parameter) in [
        ("/api/v1/summary?since=yesterday", "since"),
        ("/api/v1/summary?since=2h&until=3h", "since"),
        ("/api/v1/mismatches?limit=0", "limit"),
        ("/api/v1/mismatches?cursor=x", "cursor"),
        ("/api/v1/groups?status=closed", "status"),
        ("/api/v1/summary?sinse=1h", "sinse"),
        ("/api/v1/mismatches/abc", "id"),
        ("/api/v1/summary?since=9223372036854776s", "since"),
    ] {
        let (status, body) = api.get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert_eq!(body["error"]["parameter"], parameter, "{path}: {body}");
        assert!(!body.to_string().contains("SELECT"), "{path}: {body}");
    }
    let (status, body) = api.get("/api/v1/groups/abc").await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    let (status, body) = api.get("/api/v1/rejudge").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (405, &json!("method_not_allowed"))
    );
    let (status, body) = api.get("/api/v1/mismatches/999999").await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    let (status, doc) = api.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    proxy.stop().await;
}

#[tokio::test]
async fn odd_input_gets_400_naming_it_on_both_databases() {
    let (primary, candidate) = (primary().await, candidate().await);
    for db in support::databases().await {
        let mut config = settings(&primary, &candidate, &db, "one");
        config.report_token = Some(TOKEN.parse().unwrap());
        let proxy = support::start_with_report(config).await;
        let api = Api {
            base: format!("http://{}", proxy.report.unwrap()),
            client: support::client(),
        };
        // PostgreSQL refuses NUL in text: these reached it and failed as 503.
        for (path, parameter) in [
            ("/api/v1/summary?endpoint=a%00b", "endpoint"),
            ("/api/v1/summary?run=%00", "run"),
            ("/api/v1/endpoints?run=x%00", "run"),
            ("/api/v1/groups?endpoint=%00", "endpoint"),
            ("/api/v1/mismatches?fingerprint=%00", "fingerprint"),
            ("/api/v1/gate?run=r%00", "run"),
            ("/api/v1/gate?endpoint=GET%20/a%00", "endpoint"),
            // Not UTF-8 once decoded: a JSON error, not axum's plain text.
            ("/api/v1/mismatches/%FF", "id"),
            ("/api/v1/mismatches/%C3%28/curl", "id"),
        ] {
            let (status, body) = api.get(path).await;
            assert_eq!(status, 400, "{}: {path}: {body}", db.name);
            assert_eq!(body["error"]["code"], "bad_parameter", "{path}: {body}");
            assert_eq!(body["error"]["parameter"], parameter, "{path}: {body}");
        }
        for (path, body, parameter) in [
            (
                "/api/v1/groups/nope",
                json!({"status": "bug", "note": "a\u{0}b"}),
                "note",
            ),
            (
                "/api/v1/groups/a%00b",
                json!({"status": "bug"}),
                "fingerprint",
            ),
            (
                "/api/v1/groups/%FF",
                json!({"status": "bug"}),
                "fingerprint",
            ),
        ] {
            let (status, error) = api.patch(path, body).await;
            assert_eq!(status, 400, "{}: {path}: {error}", db.name);
            assert_eq!(error["error"]["parameter"], parameter, "{path}: {error}");
        }
        // A body over the API's limit is 413, not a malformed one.
        let huge = json!({"status": "bug", "note": "x".repeat(3 << 20)});
        let (status, error) = api.patch("/api/v1/groups/nope", huge).await;
        assert_eq!(
            (status, &error["error"]["code"]),
            (413, &json!("payload_too_large")),
            "{}",
            db.name
        );
        proxy.stop().await;
    }
}

#[tokio::test]
async fn the_bearer_scheme_is_accepted_in_any_case() {
    let guarded = Guarded::start().await;
    let (base, client) = (guarded.base(), support::client());
    // The backends and the database live to the end of the test.
    let Guarded {
        proxy,
        _backends: _kept,
        _db: _kept_db,
    } = guarded;
    let upper = TOKEN.to_ascii_uppercase();
    for (auth, status) in [
        (format!("Bearer {TOKEN}"), 200),
        (format!("bearer {TOKEN}"), 200),
        (format!("BEARER {TOKEN}"), 200),
        (format!("bEaReR {TOKEN}"), 200),
        // The token itself is exact.
        (format!("Bearer {upper}"), 401),
        (format!("Basic {TOKEN}"), 401),
        (format!("Bearer{TOKEN}"), 401),
    ] {
        let response = client
            .get(format!("{base}/api/v1/summary"))
            .header("authorization", &auth)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{auth}");
    }
    proxy.stop().await;
}

/// The tables a database holds (sqlx's own record of migrations included).
async fn tables(db: &support::TestDatabase) -> i64 {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url.to_string()).await.unwrap();
    let sql = match db.name {
        "sqlite" => "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table'",
        _ => {
            "SELECT CAST(COUNT(*) AS BIGINT) AS n FROM information_schema.tables \
             WHERE table_schema = current_schema()"
        }
    };
    let n = sqlx::Row::try_get(&sqlx::query(sql).fetch_one(&pool).await.unwrap(), "n").unwrap();
    pool.close().await;
    n
}

/// The report API only reads (and writes triage): it never creates a
/// database or its tables, which is the writer's job. Until the schema is
/// there it answers 503, and it opens the store once it is.
#[tokio::test]
async fn the_api_never_creates_or_migrates_the_store() {
    for db in support::databases().await {
        let name = db.name;
        let api = crate::gate::report_api(&db.url).await;
        let summary = || async {
            let response = support::client()
                .get(format!("http://{api}/api/v1/summary?since=1h"))
                .bearer_auth("gate-token")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        };
        if let Some(path) = db.url.sqlite_path() {
            let (status, body) = summary().await;
            assert_eq!(
                (status, &body["error"]["code"]),
                (503, &json!("store_unavailable")),
                "{body}"
            );
            assert!(!path.exists(), "the API created {}", path.display());
        }
        // A database with no tables yet (the writer has not migrated it).
        shadowdiff::store::SqlStore::connect(&db.url)
            .await
            .unwrap()
            .checkpoint_and_close()
            .await;
        let (status, body) = summary().await;
        assert_eq!(status, 503, "{name}: {body}");
        assert_eq!(body["error"]["code"], "store_unavailable", "{name}");
        assert_eq!(tables(&db).await, 0, "{name}: the API created tables");

        let store = shadowdiff::store::SqlStore::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        store.checkpoint_and_close().await;
        let (status, body) = summary().await;
        assert_eq!(
            status, 200,
            "{name}: once migrated, the API reads it: {body}"
        );
    }
}
