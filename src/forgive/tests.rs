//! Every suggestion is held to what it promises: its snippet parses as a
//! config (for the endpoint and globally), and under it the mismatch it was
//! made from compares equal, for each kind of difference.

use super::*;
use crate::config::Layer;
use crate::exchange::RecordedResponse;
use serde_json::json;

const ENDPOINT: &str = "GET /api/users/{id}";

fn response(body: &Value) -> RecordedResponse {
    let mut headers = http::HeaderMap::new();
    headers.insert("content-type", "application/json".parse().unwrap());
    RecordedResponse {
        status: http::StatusCode::OK,
        headers,
        body: body.to_string().into(),
        latency: std::time::Duration::ZERO,
    }
}

fn patch_paths(primary: &Value, candidate: &Value) -> Vec<String> {
    json_patch::diff(primary, candidate)
        .0
        .iter()
        .map(|op| match op {
            json_patch::PatchOperation::Add(o) => o.path.to_string(),
            json_patch::PatchOperation::Remove(o) => o.path.to_string(),
            json_patch::PatchOperation::Replace(o) => o.path.to_string(),
            other => panic!("diff made {other:?}"),
        })
        .collect()
}

/// Whether the two bodies compare equal under a config's rules.
fn equal_under(config: &str, primary: &Value, candidate: &Value) -> bool {
    let layer = Layer::from_toml(config).unwrap_or_else(|e| panic!("{config}\n{e:?}"));
    let rules = layer.rules_for(Some((&http::Method::GET, "/api/users/7")));
    crate::compare::compare_responses(
        ENDPOINT,
        &response(primary),
        &response(candidate),
        &rules,
        1 << 20,
    )
    .matched
}

/// Suggestions for a one-difference pair: their rules in order, each
/// checked to forgive the difference in both scopes.
fn rules_forgiving(primary: Value, candidate: Value) -> Vec<&'static str> {
    assert!(!equal_under("", &primary, &candidate), "no difference");
    let paths = patch_paths(&primary, &candidate);
    let suggestions = suggest(ENDPOINT, Some((&primary, &candidate)), &paths, &[]);
    for s in &suggestions {
        let endpoint = s.endpoint_toml.as_deref().unwrap();
        for snippet in [endpoint, &s.global_toml] {
            assert!(
                equal_under(snippet, &primary, &candidate),
                "{} does not forgive it:\n{snippet}",
                s.rule
            );
        }
    }
    suggestions.iter().map(|s| s.rule).collect()
}

#[test]
fn each_kind_of_difference_gets_its_narrowest_rule_first_and_ignore_last() {
    let user = |v: Value| json!({"id": 7, "name": "ada", "token": v});
    assert_eq!(
        rules_forgiving(
            user(json!("0b9c5a4e-3f7e-4f5e-9a51-6f0f4cf6c001")),
            user(json!("7d3c1e22-1b1a-4c1e-8f1e-0a0b0c0d0e0f"))
        ),
        ["mask", "ignore"]
    );
    assert_eq!(
        rules_forgiving(
            user(json!("2026-01-01T10:00:00Z")),
            user(json!("2026-01-01T10:00:01.5Z"))
        ),
        ["mask", "ignore"]
    );
    assert_eq!(
        rules_forgiving(user(json!(12.5)), user(json!("12.5"))),
        ["numeric_strings", "ignore"]
    );
    assert_eq!(
        rules_forgiving(user(json!(1)), user(json!(2))),
        ["mask", "ignore"]
    );
    assert_eq!(
        rules_forgiving(user(json!("a")), user(json!(["a"]))),
        ["scalar_as_array", "ignore"]
    );
    assert_eq!(
        rules_forgiving(json!({"id": 7}), json!({"id": 7, "extra": true})),
        ["candidate_may_add", "ignore"]
    );
    assert_eq!(
        rules_forgiving(json!({"id": 7, "nick": "a"}), json!({"id": 7})),
        ["candidate_may_omit", "ignore"]
    );
}

#[test]
fn array_indexes_generalise_and_sibling_keys_never_do() {
    let primary = json!({"items": [{"price": 1, "sku": "a"}, {"price": 2, "sku": "b"}]});
    let candidate = json!({"items": [{"price": 1, "sku": "a"}, {"price": 3, "sku": "b"}]});
    let paths = patch_paths(&primary, &candidate);
    let all = suggest(ENDPOINT, Some((&primary, &candidate)), &paths, &[]);
    assert!(all.iter().all(|s| s.path == "/items/1/price"));
    assert!(all.iter().all(|s| s.pattern == "/items/*/price"), "{all:?}");
    assert!(all.iter().all(|s| !s.global_toml.contains("**")));
}

#[test]
fn a_reordered_array_is_forgiven_as_unordered_first() {
    let primary = json!({"tags": ["a", "b", "c"]});
    let candidate = json!({"tags": ["c", "a", "b"]});
    let paths = patch_paths(&primary, &candidate);
    let all = suggest(ENDPOINT, Some((&primary, &candidate)), &paths, &[]);
    assert_eq!(all[0].rule, "unordered");
    assert_eq!(all[0].pattern, "/tags");
    assert!(equal_under(&all[0].global_toml, &primary, &candidate));
}

#[test]
fn header_differences_are_masked_by_kind_or_ignored() {
    let headers = [
        HeaderDifference {
            name: "X-Request-Id",
            primary: Some("0b9c5a4e-3f7e-4f5e-9a51-6f0f4cf6c001"),
            candidate: Some("7d3c1e22-1b1a-4c1e-8f1e-0a0b0c0d0e0f"),
        },
        HeaderDifference {
            name: "x-powered-by",
            primary: None,
            candidate: Some("go"),
        },
    ];
    let all = suggest(ENDPOINT, None, &[], &headers);
    let rules: Vec<_> = all.iter().map(|s| (s.path.as_str(), s.rule)).collect();
    assert_eq!(
        rules,
        [
            ("header:X-Request-Id", "header_mask"),
            ("header:X-Request-Id", "ignore_headers"),
            ("header:x-powered-by", "ignore_headers"),
        ]
    );
    for s in &all {
        Layer::from_toml(&s.global_toml).unwrap();
        Layer::from_toml(s.endpoint_toml.as_deref().unwrap()).unwrap();
    }
    assert!(all[0].global_toml.contains("\"x-request-id\" = \"uuid\""));
}

#[test]
fn keys_a_pattern_cannot_name_narrowly_get_no_suggestion_and_other_no_route() {
    let primary = json!({"*": 1});
    let candidate = json!({"*": 2});
    assert!(suggest(ENDPOINT, Some((&primary, &candidate)), &["/*".into()], &[]).is_empty());
    let primary = json!({"a": 1});
    let candidate = json!({"a": 2});
    let all = suggest("other", Some((&primary, &candidate)), &["/a".into()], &[]);
    assert!(all.iter().all(|s| s.endpoint_toml.is_none()));
}
