//! The engine's own cases, beside the golden fixtures: limits, patches cut
//! short and grouping, which need bodies too large or too many to write as files.

use super::*;

fn json(body: Vec<u8>) -> RecordedResponse {
    let json = http::HeaderValue::from_static("application/json");
    RecordedResponse::ok_with_body(Some(json), Bytes::from(body))
}

#[test]
fn fifty_megabyte_bodies_get_a_verdict_with_a_reason() {
    let big = |fill: u8| {
        let mut body = vec![b'['];
        body.resize(50 * 1024 * 1024, fill);
        json(body)
    };
    let (p, c) = (big(b'1'), big(b'2'));
    let verdict = compare_responses("GET /big", &p, &c, &Rules::default(), 10 * 1024 * 1024);
    assert!(!verdict.matched);
    assert!(
        verdict.reasons[0].contains("exceed max_body_bytes"),
        "{:?}",
        verdict.reasons
    );
    let same = compare_responses(
        "GET /big",
        &p,
        &p.clone(),
        &Rules::default(),
        10 * 1024 * 1024,
    );
    assert!(same.matched && same.byte_equal);
}

#[test]
fn one_missing_element_is_one_group_wherever_it_was() {
    let list = r#"{"items":[{"id":1,"s":"paid","t":5},{"id":2,"s":"paid","t":7},{"id":3,"s":"open","t":7},{"id":4,"s":"open","t":9}]}"#;
    let without = |drop: usize| {
        let mut v: Value = serde_json::from_str(list).unwrap();
        v["items"].as_array_mut().unwrap().remove(drop);
        json(v.to_string().into_bytes())
    };
    let primary = json(list.as_bytes().to_vec());
    let prints: BTreeSet<String> = (0..4)
        .map(|i| {
            compare_responses("GET /l", &primary, &without(i), &Rules::default(), 1 << 20)
                .fingerprint
                .unwrap()
        })
        .collect();
    assert_eq!(prints.len(), 1, "{prints:?}");
    // A changed field, with no element missing, is another group.
    let changed = json(list.replace("\"t\":9", "\"t\":10").into_bytes());
    let other = compare_responses("GET /l", &primary, &changed, &Rules::default(), 1 << 20)
        .fingerprint
        .unwrap();
    assert!(!prints.contains(&other));
}

#[test]
fn bodies_of_too_many_tiny_values_are_compared_by_bytes() {
    // 2,000 values: more than 16 KiB / 16 = 1,024 allow, fewer than 64 KiB / 16.
    let body = |d: &str| json(format!("[{}{d}]", format!("{d},").repeat(1_999)).into_bytes());
    let verdict = compare_responses(
        "GET /",
        &body("0"),
        &body("1"),
        &Rules::default(),
        16 * 1024,
    );
    assert!(!verdict.matched);
    assert!(verdict.patch.is_none());
    assert!(
        verdict.reasons[0].contains("holds 2001 values"),
        "{:?}",
        verdict.reasons
    );
    // The same bodies diff structurally under a limit that allows them.
    let verdict = compare_responses(
        "GET /",
        &body("0"),
        &body("1"),
        &Rules::default(),
        64 * 1024,
    );
    assert!(verdict.patch.is_some(), "{:?}", verdict.reasons);
}

#[test]
fn huge_patches_are_cut_and_say_so() {
    let a: Vec<u32> = (0..5_000).collect();
    let b: Vec<u32> = (1..5_001).collect();
    let (p, c) = (
        json(serde_json::to_vec(&a).unwrap()),
        json(serde_json::to_vec(&b).unwrap()),
    );
    let verdict = compare_responses("GET /l", &p, &c, &Rules::default(), 1 << 20);
    assert_eq!(verdict.patch.unwrap().0.len(), MAX_PATCH_OPERATIONS);
}

#[test]
fn paths_generalise_indices_and_keys() {
    assert_eq!(generalise_path("/items/3/price"), "/items/*/price");
    assert_eq!(generalise_path("/items/id=42/price"), "/items/*/price");
    assert_eq!(generalise_path("/items/-"), "/items/*");
    assert_eq!(generalise_path(""), "");
    assert_eq!(generalise_path("/v2/name"), "/v2/name");
}

#[test]
fn json_lines_of_scalars_count_every_line_against_the_cap() {
    let lines = |d: &str| {
        let mut r = json(format!("{d}\n").repeat(3_000).into_bytes());
        r.headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/x-ndjson"),
        );
        r
    };
    // 3,000 values, over 16 KiB / 16 = 1,024: compared by bytes.
    let verdict = compare_responses(
        "GET /",
        &lines("0"),
        &lines("1"),
        &Rules::default(),
        16 * 1024,
    );
    assert!(verdict.patch.is_none(), "{:?}", verdict.reasons);
    assert!(
        verdict.reasons[0].contains("values"),
        "{:?}",
        verdict.reasons
    );
}
