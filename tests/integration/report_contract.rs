//! The report API held to its OpenAPI document: every documented route is
//! asked for real, of a running proxy whose store holds real traffic, and
//! each JSON answer is checked against the schema the document gives for
//! its status. The document is OpenAPI 3.0: its `nullable` is read as JSON
//! Schema's null type, and its objects are closed, so a field the API
//! serves but the document does not name fails too. Also here: verdicts
//! stored before they carried a version are still served, as version 1.

use std::time::Duration;

use axum::extract::Path;
use axum::routing::get;
use axum::Router;
use serde_json::{json, Map, Value};
use shadowdiff::report::OPENAPI;
use shadowdiff::sampling::SampleRate;
use shadowdiff::store::{Batch, MismatchDetails, MismatchRecord, SqlStore, Store, StoredMismatch};

use crate::support;

const TOKEN: &str = "contract-t0ken";

/// A primary and a candidate that differ on even ids: in the body, a
/// header, and on id 4 the status too, so every part of a verdict is shown.
async fn backends() -> (support::Backend, support::Backend) {
    let answer = |candidate: bool| {
        move |Path(id): Path<u32>| async move {
            let differs = candidate && id % 2 == 0;
            let status = if differs && id == 4 { 409 } else { 200 };
            let build = if differs { "2" } else { "1" };
            (
                http::StatusCode::from_u16(status).unwrap(),
                [("content-type", "application/json"), ("x-build", build)],
                json!({"id": id, "total": if differs { 3 } else { 30 }}).to_string(),
            )
        }
    };
    let primary = support::backend(Router::new().route("/users/{id}", get(answer(false)))).await;
    let candidate = support::backend(Router::new().route("/users/{id}", get(answer(true)))).await;
    (primary, candidate)
}

fn settings(
    primary: &support::Backend,
    candidate: &support::Backend,
    db: &support::TestDatabase,
) -> shadowdiff::Settings {
    let mut s = support::settings(primary, candidate.url());
    s.database_url = Some(db.url.clone());
    s.sample_rate = SampleRate::ALL;
    s.report_token = Some(TOKEN.parse().unwrap());
    s
}

/// One request to the API: its status and its body, as JSON when it is.
async fn ask(method: &str, url: &str, token: Option<&str>, body: Option<Value>) -> (u16, Value) {
    let mut request = support::client().request(method.parse().unwrap(), url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The OpenAPI document's schemas as JSON Schema (2020-12).
struct Contract {
    doc: Value,
    /// `components`, converted, for `#/components/schemas/…` to resolve.
    components: Value,
}

impl Contract {
    fn new() -> Contract {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let mut components = doc["components"].clone();
        let in_all_of = referenced_from_all_of(&components["schemas"]);
        for (name, schema) in components["schemas"].as_object_mut().unwrap() {
            let closed = !in_all_of.contains(&format!("#/components/schemas/{name}"));
            convert(schema, closed);
        }
        Contract { doc, components }
    }

    /// What is wrong with `body` as the answer `status` of `method route`.
    fn problems(&self, method: &str, route: &str, status: u16, body: &Value) -> Vec<String> {
        let answer =
            &self.doc["paths"][route][method.to_ascii_lowercase()]["responses"][status.to_string()];
        let Some(schema) = answer["content"]["application/json"]["schema"].as_object() else {
            return vec![format!(
                "{method} {route}: the document gives no JSON answer {status}"
            )];
        };
        let mut schema = Value::Object(schema.clone());
        convert(&mut schema, true);
        let root = json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "components": self.components,
            "allOf": [schema],
        });
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(&root)
            .unwrap_or_else(|e| {
                panic!("{method} {route} {status}: the schema does not build: {e}")
            });
        validator
            .iter_errors(body)
            .map(|e| format!("{method} {route} {status}: at {}: {e}", e.instance_path()))
            .collect()
    }
}

/// The components some `allOf` names: they describe part of an object, so
/// they cannot be closed themselves (the object holding the `allOf` is).
fn referenced_from_all_of(schemas: &Value) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![schemas];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                for part in map
                    .get("allOf")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    found.extend(part["$ref"].as_str().map(str::to_string));
                }
                stack.extend(map.values());
            }
            Value::Array(items) => stack.extend(items),
            _ => {}
        }
    }
    found
}

/// An OpenAPI 3.0 schema as JSON Schema: `nullable` becomes a null type,
/// and objects (but the parts of an `allOf`) admit only the fields named.
fn convert(schema: &mut Value, closed: bool) {
    let Value::Object(map) = schema else { return };
    let parts_of_all_of = map.contains_key("allOf");
    for (key, value) in map.iter_mut() {
        match key.as_str() {
            "properties" => {
                for property in value
                    .as_object_mut()
                    .into_iter()
                    .flat_map(|p| p.values_mut())
                {
                    convert(property, true);
                }
            }
            "allOf" | "anyOf" | "oneOf" => {
                for part in value.as_array_mut().into_iter().flatten() {
                    convert(part, key != "allOf");
                }
            }
            "items" | "additionalProperties" => convert(value, true),
            _ => {}
        }
    }
    if closed && (map.contains_key("properties") || parts_of_all_of) {
        map.entry("unevaluatedProperties").or_insert(json!(false));
    }
    if map.remove("nullable") == Some(Value::Bool(true)) {
        nullable(map);
    }
}

fn nullable(map: &mut Map<String, Value>) {
    match map.get_mut("type") {
        Some(Value::String(t)) => {
            let t = t.clone();
            map.insert("type".into(), json!([t, "null"]));
            if let Some(Value::Array(values)) = map.get_mut("enum") {
                values.push(Value::Null);
            }
        }
        _ => {
            let inner = Value::Object(std::mem::take(map));
            map.insert("anyOf".into(), json!([inner, {"type": "null"}]));
        }
    }
}

/// Waits (bounded) until the store holds `n` comparisons and every
/// exemplar is written.
async fn wait_for_comparisons(base: &str, n: i64) {
    for _ in 0..100 {
        let (status, summary) = ask(
            "GET",
            &format!("{base}/api/v1/summary?since=1h"),
            Some(TOKEN),
            None,
        )
        .await;
        if status == 200
            && summary["totals"]["compared"].as_i64() == Some(n)
            && summary["store"]["unwritten"] == 0
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the store never held {n} comparisons");
}

/// One request of the contract test and the status it must get.
struct Case {
    method: &'static str,
    /// The route as the document names it.
    route: &'static str,
    target: String,
    body: Option<Value>,
    token: Option<&'static str>,
    status: u16,
}

fn case(method: &'static str, route: &'static str, target: &str, status: u16) -> Case {
    Case {
        method,
        route,
        target: target.to_string(),
        body: None,
        token: Some(TOKEN),
        status,
    }
}

/// Every documented route and method answering 200, and the errors a
/// client meets, in the one error shape.
fn cases(id: i64, fingerprint: &str) -> Vec<Case> {
    let (group, one, curl) = (
        format!("/api/v1/groups/{fingerprint}"),
        format!("/api/v1/mismatches/{id}"),
        format!("/api/v1/mismatches/{id}/curl"),
    );
    let triage = json!({"status": "bug", "note": "rounding", "by": "dana"});
    let (forgive, trend) = ("/api/v1/mismatches/{id}/forgive", "/api/v1/trend");
    let with_body = |mut c: Case, body: Value| {
        c.body = Some(body);
        c
    };
    let (groups_route, gate) = ("/api/v1/groups/{fingerprint}", "/api/v1/gate");
    let (rejudge, rollout) = ("/api/v1/rejudge", "/api/v1/rollout");
    vec![
        case("GET", "/api/v1/summary", "/api/v1/summary?since=1h", 200),
        case("GET", "/api/v1/endpoints", "/api/v1/endpoints", 200),
        case("GET", "/api/v1/groups", "/api/v1/groups", 200),
        with_body(case("PATCH", groups_route, &group, 200), triage.clone()),
        case("GET", "/api/v1/groups", "/api/v1/groups?status=bug", 200),
        case(
            "GET",
            "/api/v1/groups",
            "/api/v1/groups?severity=status,value",
            200,
        ),
        case(
            "GET",
            "/api/v1/groups",
            "/api/v1/groups?severity=worst",
            400,
        ),
        case("GET", groups_route, &group, 200),
        case("GET", groups_route, "/api/v1/groups/nope", 404),
        case(
            "GET",
            forgive,
            &format!("/api/v1/mismatches/{id}/forgive"),
            200,
        ),
        case("GET", forgive, "/api/v1/mismatches/999999/forgive", 404),
        case("GET", trend, "/api/v1/trend?since=1h", 200),
        case("GET", "/api/v1/noise", "/api/v1/noise", 200),
        case(
            "DELETE",
            "/api/v1/noise",
            "/api/v1/noise?endpoint=GET%20/nowhere",
            200,
        ),
        case("DELETE", "/api/v1/noise", "/api/v1/noise", 400),
        case("GET", trend, "/api/v1/trend?since=1h&step=0", 400),
        case(
            "GET",
            "/api/v1/mismatches",
            "/api/v1/mismatches?limit=2",
            200,
        ),
        case("GET", "/api/v1/mismatches/{id}", &one, 200),
        case("GET", "/api/v1/mismatches/{id}/curl", &curl, 200),
        case("GET", "/api/v1/openapi.json", "/api/v1/openapi.json", 200),
        case("GET", gate, "/api/v1/gate?since=1h", 200),
        case("POST", gate, "/api/v1/gate?since=1h", 200),
        case(
            "GET",
            gate,
            "/api/v1/gate?since=1h&fail_on=status,value",
            200,
        ),
        case("POST", gate, "/api/v1/gate?since=1h&fail_on=headers", 200),
        case("GET", gate, "/api/v1/gate?fail_on=", 400),
        Case {
            token: None,
            ..case("GET", "/api/v1/summary", "/api/v1/summary", 401)
        },
        case(
            "GET",
            "/api/v1/summary",
            "/api/v1/summary?since=yesterday",
            400,
        ),
        case(
            "GET",
            "/api/v1/mismatches/{id}",
            "/api/v1/mismatches/999999",
            404,
        ),
        case(
            "GET",
            "/api/v1/mismatches/{id}/curl",
            "/api/v1/mismatches/x/curl",
            400,
        ),
        with_body(
            case("PATCH", groups_route, "/api/v1/groups/nope", 404),
            triage,
        ),
        with_body(
            case("PATCH", groups_route, &group, 400),
            json!({"status": "wontfix"}),
        ),
        case("GET", gate, "/api/v1/gate?strict=maybe", 400),
        case("GET", gate, "/api/v1/gate?since=1h&strict=true", 412),
        with_body(
            case("POST", rejudge, rejudge, 200),
            json!({"config": "[compare]\nignore = [\"/name\"]\n", "since": "1h"}),
        ),
        with_body(
            case("POST", rejudge, rejudge, 400),
            json!({"config": "[compare]\nignore = \"name\"\n"}),
        ),
        case("GET", rollout, rollout, 200),
        with_body(
            case("POST", rollout, rollout, 200),
            json!({"command": "set", "route": "*", "weight": 0}),
        ),
        with_body(
            case("POST", rollout, rollout, 400),
            json!({"command": "set", "route": "*", "weight": 101}),
        ),
        with_body(
            case("POST", rollout, rollout, 404),
            json!({"command": "pause", "route": "GET /nowhere"}),
        ),
        with_body(
            case("POST", rollout, rollout, 409),
            json!({"command": "advance", "route": "*"}),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread")]
async fn every_route_answers_as_its_openapi_document_says() {
    let (primary, candidate) = backends().await;
    let db = support::sqlite_database();
    let proxy = support::start_with_report(settings(&primary, &candidate, &db)).await;
    let base = format!("http://{}", proxy.report.unwrap());
    for id in 1..=6 {
        let response = support::client()
            .get(proxy.url(&format!("/users/{id}?page=1")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "the primary answers the client");
    }
    wait_for_comparisons(&base, 6).await;
    let contract = Contract::new();
    let api = |path: &str| format!("{base}{path}");
    let (_, page) = ask("GET", &api("/api/v1/mismatches"), Some(TOKEN), None).await;
    let id = page["items"][0]["id"].as_i64().expect("a stored mismatch");
    let (_, groups) = ask("GET", &api("/api/v1/groups"), Some(TOKEN), None).await;
    let fingerprint = groups[0]["fingerprint"].as_str().expect("a group");

    let mut problems = Vec::new();
    let mut asked = Vec::new();
    for c in cases(id, fingerprint) {
        let (status, answer) = ask(c.method, &api(&c.target), c.token, c.body).await;
        if status != c.status {
            let (method, target, want) = (c.method, &c.target, c.status);
            problems.push(format!("{method} {target}: {status}, not {want}: {answer}"));
            continue;
        }
        problems.extend(contract.problems(c.method, c.route, status, &answer));
        asked.push(format!("{} {}", c.method, c.route));
    }
    // No route of the document left out (but /healthz, which is text).
    for (route, operations) in contract.doc["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            let operation = format!("{} {route}", method.to_ascii_uppercase());
            let is_method = ["get", "post", "patch", "put", "delete"].contains(&method.as_str());
            if is_method && route != "/healthz" && !asked.contains(&operation) {
                problems.push(format!("{operation}: documented but not asked"));
            }
        }
    }
    let (status, health) = ask("GET", &api("/healthz"), None, None).await;
    assert_eq!((status, health), (200, json!("ok\n")));
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    proxy.stop().await;
}

/// A mismatch as the release before versioned verdicts stored it.
fn unversioned_mismatch(at_ms: i64) -> MismatchRecord {
    let message = support::json_message;
    MismatchRecord {
        at_ms,
        endpoint: "GET /users/{id}".into(),
        fingerprint: "5e1f0c2a9b3d7e41".into(),
        method: "GET".into(),
        path: "/users/2".into(),
        query: "page=1".into(),
        request: message(0, ""),
        primary: message(200, "{\"total\":30}"),
        candidate: message(500, "{\"total\":3}"),
        // compare::Verdict serialised as it was, with no version.
        verdict: json!({
            "matched": false,
            "byte_equal": false,
            "body_kind": "json",
            "status": {"primary": 200, "candidate": 500},
            "headers": [{"name": "x-build", "primary": "1", "candidate": null}],
            "patch": [{"op": "replace", "path": "/total", "value": 3}],
            "text_diff": null,
            "paths": ["/total"],
            "fingerprint": "5e1f0c2a9b3d7e41",
            "reasons": ["bodies compared as JSON"]
        }),
        // Stored before latencies were kept.
        details: MismatchDetails::default(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn verdicts_stored_without_a_version_are_served_as_version_1() {
    let (primary, candidate) = backends().await;
    for db in support::databases().await {
        let old = unversioned_mismatch(shadowdiff::time::now_ms());
        let store = SqlStore::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let batch = Batch {
            mismatches: vec![old.clone()],
            ..Batch::default()
        };
        store.write("previous", "", &batch).await.unwrap();
        let stored: Vec<StoredMismatch> = store
            .mismatches(Default::default(), None, 10)
            .await
            .unwrap();
        assert_eq!(
            stored[0].record.verdict, old.verdict,
            "{}: stored as is",
            db.name
        );
        store.checkpoint_and_close().await;

        let proxy = support::start_with_report(settings(&primary, &candidate, &db)).await;
        let base = format!("http://{}", proxy.report.unwrap());
        let (status, detail) = ask(
            "GET",
            &format!("{base}/api/v1/mismatches/{}", stored[0].id),
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(status, 200, "{}: {detail}", db.name);
        let mut expected = old.verdict.clone();
        expected["version"] = json!(1);
        assert_eq!(detail["verdict"], expected, "{}", db.name);
        assert!(
            detail["primary"].get("latency_ms").is_none(),
            "{}: a row stored without latencies serves none: {detail}",
            db.name
        );
        let problems = Contract::new().problems("GET", "/api/v1/mismatches/{id}", 200, &detail);
        assert!(problems.is_empty(), "{}: {problems:?}", db.name);

        let (status, page) = ask(
            "GET",
            &format!("{base}/api/v1/mismatches"),
            Some(TOKEN),
            None,
        )
        .await;
        assert_eq!(status, 200, "{}: {page}", db.name);
        assert_eq!(page["items"][0]["paths"], json!(["/total"]), "{}", db.name);
        proxy.stop().await;
    }
}

/// A change that takes an answer off the document.
type Breaks = fn(&mut Value);

/// The check itself: an answer off the document in any of the ways that
/// matter is caught, so a passing contract test means something.
#[test]
fn the_contract_check_catches_answers_off_the_document() {
    let contract = Contract::new();
    let good = json!({
        "id": 7, "at": "2024-05-01T12:00:00.000Z", "instance": "one",
        "endpoint": "GET /users/{id}", "fingerprint": "5e1f", "method": "GET",
        "path": "/users/2", "primary_status": 200, "candidate_status": 500,
        "paths": ["/total"], "query": "",
        "request": {"headers": [], "body": {"encoding": "utf-8", "data": "", "truncated": false}},
        "primary": {"status": 200, "headers": [["a", "b"]], "body": {"encoding": "utf-8", "data": "{}", "truncated": false}},
        "candidate": {"status": 500, "headers": [], "body": {"encoding": "base64", "data": "AA==", "truncated": true}},
        "verdict": unversioned_mismatch(0).verdict,
    });
    let route = "/api/v1/mismatches/{id}";
    let mut versioned = good.clone();
    versioned["verdict"]["version"] = json!(1);
    assert_eq!(
        contract.problems("GET", route, 200, &versioned),
        Vec::<String>::new()
    );
    // The verdict served without its version.
    assert!(!contract.problems("GET", route, 200, &good).is_empty());
    let broken: [(&str, Breaks); 5] = [
        ("an undocumented field", |v| {
            v["verdict"]["engine"] = json!(1)
        }),
        ("an undocumented top field", |v| v["extra"] = json!(1)),
        ("a wrong type", |v| v["primary_status"] = json!("200")),
        ("a null where none is allowed", |v| {
            v["verdict"]["paths"] = Value::Null
        }),
        ("a bad date-time", |v| v["at"] = json!("yesterday")),
    ];
    for (what, break_it) in broken {
        let mut answer = versioned.clone();
        break_it(&mut answer);
        assert!(
            !contract.problems("GET", route, 200, &answer).is_empty(),
            "{what} passed"
        );
    }
    assert!(!contract.problems("GET", route, 418, &good).is_empty());
}
