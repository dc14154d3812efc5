//! Secrets in every form a client can send them (headers, cookies, query
//! pairs after `&` or `;` with odd-cased and encoded names or JSON values,
//! JSON labelled as anything, multipart, forms) go through the real binary,
//! logging at TRACE, to backends that always disagree: none of them may
//! appear in the database, the report API, the record file or the logs. And
//! no target reaches a backend as another path than the one recorded.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::Request;
use axum::Router;
use sqlx::Row;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{self, listening, TestDatabase};

/// Every secret value the test sends, or the backends answer with.
const SECRETS: &[&str] = &[
    "SECRET-auth",
    "SECRET-proxy-auth",
    "SECRET-cookie",
    "SECRET-api-key",
    "SECRET-q-amp",
    "SECRET-q-semi",
    "SECRET-q-encoded",
    "SECRET-q-case",
    "SECRET-q-repeat-1",
    "SECRET-q-repeat-2",
    "SECRET-q-bracket",
    "SECRET-q-json",
    "SECRET-json-text",
    "SECRET-json-octet",
    "SECRET-json-api",
    "SECRET-json-case",
    "SECRET-mp-field",
    "SECRET-mp-json",
    "SECRET-mp-encoded-name",
    "SECRET-form",
    "SECRET-form-semi",
    "SECRET-set-cookie",
    "SECRET-location",
];

/// A request of the test list: method, target, headers, body.
struct Case {
    method: &'static str,
    target: &'static str,
    headers: Vec<(&'static str, &'static str)>,
    body: &'static str,
}

const MULTIPART: &str = "--XyZ\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nada\r\n--XyZ\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nSECRET-mp-field\r\n--XyZ\r\nContent-Disposition: form-data; name=\"profile\"; filename=\"p.json\"\r\nContent-Type: application/json\r\n\r\n{\"name\":\"ada\",\"password\":\"SECRET-mp-json\"}\r\n--XyZ\r\nContent-Disposition: form-data; name*=UTF-8''pass%77ord\r\n\r\nSECRET-mp-encoded-name\r\n--XyZ--\r\n";

fn cases() -> Vec<Case> {
    let get = |target| Case {
        method: "GET",
        target,
        headers: Vec::new(),
        body: "",
    };
    let post = |target, content_type, body| Case {
        method: "POST",
        target,
        headers: vec![("content-type", content_type)],
        body,
    };
    vec![
        Case {
            method: "GET",
            target: "/headers",
            headers: vec![
                ("authorization", "Bearer SECRET-auth"),
                ("proxy-authorization", "Basic SECRET-proxy-auth"),
                ("cookie", "session=SECRET-cookie; theme=dark"),
                ("X-API-Key", "SECRET-api-key"),
            ],
            body: "",
        },
        get("/query/amp?page=1&token=SECRET-q-amp"),
        get("/query/semi?page=1;password=SECRET-q-semi"),
        get("/query/encoded?pass%77ord=SECRET-q-encoded&page=1"),
        get("/query/case?ToKeN=SECRET-q-case"),
        get("/query/repeat?token=SECRET-q-repeat-1&token=SECRET-q-repeat-2"),
        get("/query/bracket?auth[token]=SECRET-q-bracket"),
        get("/query/json?query=q&variables=%7B%22password%22%3A%22SECRET-q-json%22%7D"),
        post(
            "/json/text",
            "text/plain",
            r#"{"user":"ada","password":"SECRET-json-text"}"#,
        ),
        post(
            "/json/octet",
            "application/octet-stream",
            r#"{"user":{"password":"SECRET-json-octet"}}"#,
        ),
        post(
            "/json/api",
            "application/vnd.api+json",
            r#"{"data":{"attributes":{"password":"SECRET-json-api"}}}"#,
        ),
        post(
            "/json/case",
            "application/json",
            r#"{"PassWord":"SECRET-json-case"}"#,
        ),
        post("/multipart", "multipart/form-data; boundary=XyZ", MULTIPART),
        post(
            "/form",
            "application/x-www-form-urlencoded",
            "user=ada&password=SECRET-form",
        ),
        post(
            "/form/semi",
            "application/x-www-form-urlencoded",
            "user=ada;password=SECRET-form-semi",
        ),
    ]
}

/// What the backends received, to show the secrets did go through.
type Received = Arc<Mutex<Vec<String>>>;

/// A backend that echoes the request body with its type, sets a cookie and
/// points elsewhere with a token, answering with `status`: the two
/// backends differ in status only, so every request is a mismatch.
async fn echo(status: u16, received: Received) -> support::Backend {
    support::backend(Router::new().fallback(move |request: Request| {
        let received = received.clone();
        async move {
            let (parts, body) = request.into_parts();
            let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
            received.lock().unwrap().push(format!(
                "{} {:?} {}",
                parts.uri,
                parts.headers,
                String::from_utf8_lossy(&body)
            ));
            let content_type = parts
                .headers
                .get("content-type")
                .cloned()
                .unwrap_or(http::HeaderValue::from_static("application/json"));
            let mut response = http::Response::new(axum::body::Body::from(body));
            *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
            let headers = response.headers_mut();
            headers.insert("content-type", content_type);
            headers.insert(
                "set-cookie",
                http::HeaderValue::from_static("sid=SECRET-set-cookie; Path=/"),
            );
            headers.insert(
                "location",
                http::HeaderValue::from_static("/next?a=1;token=SECRET-location"),
            );
            response
        }
    }))
    .await
}

/// The report API's answer to `path`, as text.
pub(crate) async fn api(port: u16, path: &str) -> String {
    let response = support::client()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{path}");
    response.text().await.unwrap()
}

/// Every text and binary value of every table, one string per row.
async fn every_row(db: &TestDatabase) -> Vec<String> {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&db.url.to_string()).await.unwrap();
    let tables = match db.name {
        "sqlite" => "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' AND name NOT LIKE 'sqlite%'",
        _ => "SELECT table_name::text FROM information_schema.tables WHERE table_schema = 'public' AND table_name NOT LIKE '\\_%'",
    };
    let tables: Vec<String> = sqlx::query(tables)
        .fetch_all(&pool)
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<String, _>(0))
        .collect();
    assert!(tables.iter().any(|t| t == "mismatches"), "{tables:?}");
    let mut rows = Vec::new();
    for table in tables {
        for row in sqlx::query(&format!("SELECT * FROM {table}"))
            .fetch_all(&pool)
            .await
            .unwrap()
        {
            let mut text = format!("{table}:");
            for i in 0..row.len() {
                if let Ok(s) = row.try_get::<String, _>(i) {
                    text.push_str(&s);
                } else if let Ok(b) = row.try_get::<Vec<u8>, _>(i) {
                    text.push_str(&String::from_utf8_lossy(&b));
                }
                text.push('|');
            }
            rows.push(text);
        }
    }
    rows
}

fn assert_no_secret(place: &str, text: &str) {
    for secret in SECRETS {
        assert!(!text.contains(secret), "{secret} reached {place}:\n{text}");
    }
}

// Long by design: one run of the real binary, then every place a secret could land checked in turn.
#[tokio::test(flavor = "multi_thread")]
async fn no_secret_reaches_the_store_the_api_the_record_file_or_the_logs() {
    let received = Received::default();
    let primary = echo(200, received.clone()).await;
    let candidate = echo(201, received.clone()).await;
    for db in support::databases().await {
        received.lock().unwrap().clear();
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("requests.jsonl");
        let config = dir.path().join("shadowdiff.toml");
        std::fs::write(
            &config,
            format!(
                r#"
                primary = "{}"
                candidate = "{}"
                listen = "127.0.0.1:0"
                report_listen = "127.0.0.1:0"
                database_url = "{}"
                record = "{}"

                [redact]
                headers = ["x-api-key"]
                query = ["token", "password"]
                json = ["/**/password"]
                key = "test-key"

                [[route]]
                match = "POST /**"
                mirror_unsafe = true
                "#,
                primary.url(),
                candidate.url(),
                db.url,
                record.display(),
            ),
        )
        .unwrap();
        let stderr = dir.path().join("stderr.log");
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_shadowdiff"))
            .args(["serve", "--config", config.to_str().unwrap()])
            .env_clear()
            .env("SHADOWDIFF_LOG", "trace")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        let (listen, report) = listening(&stderr).await;

        let client = support::client();
        let cases = cases();
        for case in &cases {
            let mut request = client.request(
                case.method.parse().unwrap(),
                format!("http://127.0.0.1:{listen}{}", case.target),
            );
            for (name, value) in &case.headers {
                request = request.header(*name, *value);
            }
            let response = request.body(case.body).send().await.unwrap();
            assert_eq!(response.status(), 200, "{}", case.target);
        }

        // Every request is a mismatch, and each is kept as an exemplar.
        let n = cases.len();
        let mut stored = 0;
        for _ in 0..300 {
            let page: serde_json::Value =
                serde_json::from_str(&api(report, "/api/v1/mismatches?limit=100").await).unwrap();
            stored = page["items"].as_array().unwrap().len();
            if stored == n {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(stored, n, "{}: exemplars stored", db.name);

        let mut answers = vec![
            api(report, "/api/v1/summary").await,
            api(report, "/api/v1/endpoints").await,
            api(report, "/api/v1/groups").await,
        ];
        let list = api(report, "/api/v1/mismatches?limit=100").await;
        let page: serde_json::Value = serde_json::from_str(&list).unwrap();
        answers.push(list);
        for item in page["items"].as_array().unwrap() {
            let id = item["id"].as_i64().unwrap();
            answers.push(api(report, &format!("/api/v1/mismatches/{id}")).await);
            answers.push(api(report, &format!("/api/v1/mismatches/{id}/curl")).await);
        }
        let answers = answers.join("\n");

        let stopped = std::process::Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        assert!(stopped.success());
        let status = tokio::task::spawn_blocking(move || {
            let mut child = child;
            child.wait().unwrap()
        })
        .await
        .unwrap();
        let logs = std::fs::read_to_string(&stderr).unwrap();
        assert!(status.success(), "{}: {logs}", db.name);

        // The secrets did go through: the test would see a leak.
        let received = received.lock().unwrap().join("\n");
        for secret in SECRETS.iter().filter(|s| !s.contains("proxy-auth")) {
            let answered = ["SECRET-set-cookie", "SECRET-location"].contains(secret);
            assert!(
                answered || received.contains(secret),
                "{secret} was not sent"
            );
        }
        // And the places looked at hold what they should.
        assert!(
            logs.contains("shadow outcome") && logs.contains("TRACE"),
            "{logs}"
        );
        assert!(
            answers.contains("redacted:") && answers.contains("ada"),
            "{answers}"
        );
        let recorded = std::fs::read_to_string(&record).unwrap();
        assert_eq!(recorded.lines().count(), n, "{recorded}");
        let rows = every_row(&db).await;
        assert!(rows
            .iter()
            .any(|r| r.contains("redacted:") && r.contains("XyZ")));

        assert_no_secret(&format!("{} logs", db.name), &logs);
        assert_no_secret(&format!("{} API", db.name), &answers);
        assert_no_secret(&format!("{} record file", db.name), &recorded);
        for row in rows {
            assert_no_secret(&format!("the {} store", db.name), &row);
        }
    }
}

/// Sends a raw request line, so that no client library tidies the target,
/// and returns the status code.
async fn raw_status(addr: std::net::SocketAddr, method: &str, target: &str) -> u16 {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    socket.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8_lossy(&answer);
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{target}: no status in {answer:?}"))
}

#[tokio::test]
async fn a_target_that_would_reach_another_path_is_refused() {
    let (primary, primary_hits) = support::recording_backend().await;
    let (candidate, candidate_hits) = support::recording_backend().await;
    for mode in [
        shadowdiff::config::Mode::Inline,
        shadowdiff::config::Mode::Mirror,
    ] {
        let mut settings = support::settings(&primary, candidate.url());
        settings.mode = mode;
        let proxy = support::start(settings).await;
        for target in [
            "/public/..\\admin",
            "/public\\..\\admin",
            "/public/..%5cadmin",
            "/public/..%5Cadmin",
            "/public%5c..%5cadmin",
            "/public/%2e%2e%5cadmin",
            "/public/.%2e/admin",
            "/public/%2e./admin",
            "/public/..%2fadmin",
            "/public/..;/admin",
            "/public\\admin",
        ] {
            assert_eq!(
                raw_status(proxy.addr, "GET", target).await,
                400,
                "{mode:?} {target}"
            );
        }
        // A double-encoded dot is literal: it goes through as it is.
        let literal = "/public/%252e%252e/admin";
        let expected = if matches!(mode, shadowdiff::config::Mode::Inline) {
            200
        } else {
            202
        };
        assert_eq!(raw_status(proxy.addr, "GET", literal).await, expected);
        proxy.outcomes(1).await;
        proxy.stop().await;
    }
    let hits: Vec<String> = primary_hits
        .all()
        .into_iter()
        .chain(candidate_hits.all())
        .map(|h| h.target)
        .collect();
    // Inline: the primary and the candidate; mirror: both again.
    assert_eq!(hits.len(), 4, "{hits:?}");
    assert!(
        hits.iter().all(|t| t == "/public/%252e%252e/admin"),
        "{hits:?}"
    );
}
