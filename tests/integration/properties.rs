//! Property tests of the comparison engine (proptest). They prove, over
//! generated JSON documents and under both the default rules and a rich rule
//! set, that: a document always matches itself; normalisation is idempotent;
//! the serialisation of a document (whitespace, key order, escapes, number
//! spelling) never matters; a mismatch's patch turns the primary's normal form
//! into exactly the candidate's; the fingerprint groups one change by its
//! field path, whatever the array index or key order, and separates changes to
//! different fields; and canonical numbers keep their exact value.

use std::sync::LazyLock;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, StatusCode};
use proptest::prelude::*;
use serde_json::{Map, Value};
use shadowdiff::compare::json::{normal_forms, normalize};
use shadowdiff::compare::{compare_responses, CompareConfig, Rules, Verdict};
use shadowdiff::exchange::RecordedResponse;

mod spelling;

use spelling::{style, write, Style};

const ENDPOINT: &str = "GET /items";
const MAX_BODY: usize = 1024 * 1024;

static DEFAULT_RULES: LazyLock<Rules> = LazyLock::new(Rules::default);

/// Every kind of path rule at once, on keys the generators use often, with
/// both a kind mask and a regular-expression mask.
static RICH_RULES: LazyLock<Rules> = LazyLock::new(|| {
    let text = r#"
        preset = "python-go"
        ignore = ["/**/x"]
        unordered = ["/tags", "/**/set"]

        [mask]
        "/token" = "uuid"
        "/**/at" = '^\d{4}-\d{2}-\d{2}T'

        [keyed]
        "/items" = "id"
    "#;
    Rules::from(&toml::from_str::<CompareConfig>(text).unwrap())
});

fn rule_sets() -> [(&'static str, &'static Rules); 2] {
    [("default", &DEFAULT_RULES), ("rich", &RICH_RULES)]
}

fn config() -> ProptestConfig {
    ProptestConfig {
        // Nothing is written into the source tree. Each assertion message
        // carries its input, because the "minimal failing input" proptest
        // prints can be a passing value when a map's shrink cannot step back.
        failure_persistence: None,
        ..ProptestConfig::with_cases(256)
    }
}

// ---------------------------------------------------------------------------
// Generators

/// Numbers as text, since with `arbitrary_precision` the spelling is kept and
/// only normalisation may make `1.50`, `15e-1` and `1.5` equal.
fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => any::<i64>().prop_map(|n| n.to_string()),
        2 => "-?(0|[1-9][0-9]{0,3})\\.[0-9]{1,3}0{0,2}",
        2 => "-?(0|[1-9][0-9]{0,2})(\\.[0-9]{1,3})?[eE][+-]?[0-9]{1,3}",
        1 => "-?[1-9][0-9]{24}",
        1 => prop::sample::select(vec!["0", "-0", "0.0", "-0.000", "0e5", "1e400", "1e-400"])
            .prop_map(String::from),
    ]
}

/// Exponents at the edges of `i64`, where an exponent sum can overflow.
fn extreme_number_text() -> impl Strategy<Value = String> {
    let exponent = prop::sample::select(vec![
        "9223372036854775807",
        "9223372036854775806",
        "-9223372036854775808",
        "-9223372036854775807",
        "-9223372036854775806",
        "9223372036854775808",
        "-9223372036854775809",
    ]);
    prop_oneof![
        1 => number_text(),
        3 => ("-?(0|[1-9][0-9]{0,2})(\\.0{0,2}[1-9]{1,2})?", exponent)
            .prop_map(|(mantissa, e)| format!("{mantissa}e{e}")),
    ]
}

fn number(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{text:?} is not a JSON number: {e}"))
}

/// Date-times in the forms the python-go preset reads, including the years
/// whose offsets carry them out of four digits.
fn timestamp() -> impl Strategy<Value = String> {
    "(0000|9999|19[0-9]{2}|20[0-9]{2})-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[Tt ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\\.[0-9]{1,9})?)?(Z|z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)?"
}

fn uuid() -> impl Strategy<Value = String> {
    "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "\\PC{0,8}",
        1 => "[\"\\\\/\\x00-\\x1f\\x7f\u{80}-\u{9f}\u{2028}\u{2029}\u{feff}a]{0,4}",
        1 => timestamp(),
        1 => uuid(),
        1 => number_text(),
        1 => prop::sample::select(vec![
            "NaN", "Infinity", "-Infinity", "null", "😀", "e\u{301}", "\u{10ffff}", "~1/~0",
        ])
        .prop_map(String::from),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "id", "v", "x", "at", "token", "items", "tags", "set", "a", "b", "", "-", "0", "~", "a/b",
        ])
        .prop_map(String::from),
        2 => "\\PC{0,6}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        3 => number_text().prop_map(|t| number(&t)),
        3 => text().prop_map(Value::String),
    ]
}

fn non_null_scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        number_text().prop_map(|t| number(&t)),
        text().prop_map(Value::String),
    ]
}

fn value(depth: u32) -> BoxedStrategy<Value> {
    leaf()
        .prop_recursive(depth, 48, 5, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..=5).prop_map(Value::Array),
                prop::collection::btree_map(key(), inner, 0..=5)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
        .boxed()
}

/// An element of `/items`; ids come from a small pool so that they repeat,
/// are missing, or are numbers spelled in two ways.
fn item() -> impl Strategy<Value = Value> {
    let id = prop_oneof![
        "[a-c]".prop_map(Value::String),
        prop::sample::select(vec!["1", "1.0", "2", "10e-1"]).prop_map(number),
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
    ];
    (
        prop::option::of(id),
        prop::collection::btree_map(key(), value(1), 0..=3),
    )
        .prop_map(|(id, fields)| {
            let mut map: Map<String, Value> = fields.into_iter().collect();
            if let Some(id) = id {
                map.insert("id".into(), id);
            }
            Value::Object(map)
        })
}

/// Documents shaped to meet the rich rules (`/items`, `/tags`, `/token`,
/// `/at`), which random keys and values would seldom do.
fn shaped() -> impl Strategy<Value = Value> {
    (
        prop::collection::btree_map(key(), value(2), 0..=3),
        prop::option::of(prop::collection::vec(item(), 0..=5)),
        prop::option::of(prop::collection::vec(leaf(), 0..=5)),
        prop::option::of(prop_oneof![uuid(), text()]),
        prop::option::of(prop_oneof![timestamp(), text()]),
    )
        .prop_map(|(fields, items, tags, token, at)| {
            let mut map: Map<String, Value> = fields.into_iter().collect();
            if let Some(items) = items {
                map.insert("items".into(), Value::Array(items));
            }
            if let Some(tags) = tags {
                map.insert("tags".into(), Value::Array(tags));
            }
            if let Some(token) = token {
                map.insert("token".into(), Value::String(token));
            }
            if let Some(at) = at {
                map.insert("at".into(), Value::String(at));
            }
            Value::Object(map)
        })
}

fn document() -> impl Strategy<Value = Value> {
    prop_oneof![1 => value(4), 2 => shaped()]
}

/// JSON Pointers of every node, root first.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                let escaped = k.replace('~', "~0").replace('/', "~1");
                pointers(child, format!("{at}/{escaped}"), out);
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                pointers(child, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

fn replace_node(doc: &Value, choice: prop::sample::Index, new: Value) -> Value {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    let mut out = doc.clone();
    *out.pointer_mut(&all[choice.index(all.len())]).unwrap() = new;
    out
}

/// Adds `"x"` (ignored by the rich rules) to one of the objects, if any.
fn add_ignored(doc: &Value, choice: prop::sample::Index, noise: Value) -> Value {
    let mut all = Vec::new();
    pointers(doc, String::new(), &mut all);
    all.retain(|p| doc.pointer(p).is_some_and(Value::is_object));
    let mut out = doc.clone();
    if !all.is_empty() {
        let target = out.pointer_mut(&all[choice.index(all.len())]).unwrap();
        target.as_object_mut().unwrap().insert("x".into(), noise);
    }
    out
}

/// Pairs of documents: unrelated, one edit apart (often an edit that the
/// rules forgive, so that both outcomes are exercised), or identical.
fn document_pair() -> impl Strategy<Value = (Value, Value)> {
    prop_oneof![
        2 => (document(), document()),
        2 => (document(), any::<prop::sample::Index>(), value(2))
            .prop_map(|(p, at, new)| {
                let c = replace_node(&p, at, new);
                (p, c)
            }),
        1 => (document(), any::<prop::sample::Index>(), value(1))
            .prop_map(|(p, at, noise)| {
                let c = add_ignored(&p, at, noise);
                (p, c)
            }),
        1 => document().prop_map(|p| (p.clone(), p)),
    ]
}

// ---------------------------------------------------------------------------
// Helpers

fn json_response(body: impl Into<Bytes>) -> RecordedResponse {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    RecordedResponse {
        status: StatusCode::OK,
        headers,
        body: body.into(),
        latency: Duration::ZERO,
    }
}

fn compare(primary: &str, candidate: &str, rules: &Rules) -> Verdict {
    compare_responses(
        ENDPOINT,
        &json_response(primary.to_string()),
        &json_response(candidate.to_string()),
        rules,
        MAX_BODY,
    )
}

fn compact(v: &Value) -> String {
    serde_json::to_string(v).unwrap()
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// A document with each number replaced by its exact value, for checking
/// the test's own writer without trusting the engine's normalisation.
fn exact(v: Value) -> Value {
    match v {
        Value::Number(n) => Value::String(format!("number {:?}", exact_value(n.as_str()))),
        Value::Array(items) => Value::Array(items.into_iter().map(exact).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, exact(v))).collect()),
        other => other,
    }
}

/// A number's exact value as (negative, significant digits, power of ten of
/// the last digit), computed independently of the engine and without any
/// overflow (exponents here fit an i128 with room to spare).
fn exact_value(text: &str) -> (bool, String, i128) {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exp) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], unsigned[at + 1..].parse::<i128>().unwrap()),
        None => (unsigned, 0),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = format!("{int}{frac}");
    let significant = digits.trim_start_matches('0');
    let trimmed = significant.trim_end_matches('0');
    if trimmed.is_empty() {
        return (false, String::new(), 0);
    }
    let trailing = (significant.len() - trimmed.len()) as i128;
    (
        negative,
        trimmed.to_string(),
        exp - frac.len() as i128 + trailing,
    )
}

fn assert_clean_match(v: &Verdict, primary: &str, candidate: &str) -> Result<(), TestCaseError> {
    let clean = v.matched
        && v.patch.is_none()
        && v.paths.is_empty()
        && v.fingerprint.is_none()
        && v.reasons.is_empty();
    prop_assert!(
        clean,
        "primary {primary}\ncandidate {candidate}\nverdict {v:#?}"
    );
    Ok(())
}

/// `doc` with `/items/<index>/<field>` set to `new`.
fn with_field(doc: &Value, index: usize, field: &str, new: &Value) -> Value {
    let mut out = doc.clone();
    out["items"][index]
        .as_object_mut()
        .unwrap()
        .insert(field.into(), new.clone());
    out
}

/// A document whose `/items` holds at least two objects that each have `v`,
/// none `w`; two distinct indices into it; and a scalar to write into `v`.
fn fingerprint_case(
    old_v: BoxedStrategy<Value>,
) -> impl Strategy<Value = (Value, usize, usize, Value, u64)> {
    let element = (prop::option::of(item()), old_v).prop_map(|(base, v)| {
        let mut map = match base {
            Some(Value::Object(map)) => map,
            _ => Map::new(),
        };
        map.remove("w");
        map.insert("v".into(), v);
        Value::Object(map)
    });
    (
        prop::collection::btree_map(key(), value(1), 0..=2),
        prop::collection::vec(element, 2..=5),
        any::<prop::sample::Index>(),
        any::<prop::sample::Index>(),
        non_null_scalar(),
        any::<u64>(),
    )
        .prop_map(|(rest, elements, a, b, new, seed)| {
            let n = elements.len();
            let i = a.index(n);
            let j = (i + 1 + b.index(n - 1)) % n;
            let mut map: Map<String, Value> = rest.into_iter().collect();
            map.insert("items".into(), Value::Array(elements));
            (Value::Object(map), i, j, new, seed)
        })
}

fn check_fingerprints(
    doc: &Value,
    i: usize,
    j: usize,
    new: &Value,
    seed: u64,
    rules: &Rules,
) -> Result<(), TestCaseError> {
    // A new value equal (once normalised) to the old one is no change at all.
    for k in [i, j] {
        let old = doc["items"][k]["v"].clone();
        let (before, after) = normal_forms(old, new.clone(), rules);
        prop_assume!(before != after);
    }
    let primary = compact(doc);
    let case = format!("{primary}, elements {i} and {j}, new value {new}");
    let at_i = with_field(doc, i, "v", new);
    let at_j = with_field(doc, j, "v", new);
    let vi = compare(&primary, &compact(&at_i), rules);
    let vj = compare(&primary, &compact(&at_j), rules);
    prop_assert!(!vi.matched && !vj.matched, "{case}\n{vi:#?}\n{vj:#?}");
    prop_assert_eq!(
        &vi.fingerprint,
        &vj.fingerprint,
        "{}: paths {:?} vs {:?}",
        case,
        vi.paths,
        vj.paths
    );

    let reordered = Style {
        pretty: false,
        shuffle_keys: true,
        escape_non_ascii: false,
        escape_ascii: false,
        respell_numbers: false,
        seed,
    };
    let shuffled = compare(&write(doc, &reordered), &write(&at_i, &reordered), rules);
    prop_assert_eq!(
        &shuffled.fingerprint,
        &vi.fingerprint,
        "{} (seed {})",
        case,
        seed
    );

    // The same edit on another field must not fall into the same group.
    let other = compare(&primary, &compact(&with_field(doc, i, "w", new)), rules);
    prop_assert!(!other.matched, "{case}\n{other:#?}");
    prop_assert_ne!(
        &other.fingerprint,
        &vi.fingerprint,
        "{}: paths {:?} vs {:?}",
        case,
        other.paths,
        vi.paths
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Properties

proptest! {
    #![proptest_config(config())]

    /// Identical bytes take the fast path; the same bytes plus whitespace
    /// force the structural path, which must agree.
    #[test]
    fn a_document_matches_itself(doc in document()) {
        let body = compact(&doc);
        let padded = format!(" {body}\n");
        for (name, rules) in rule_sets() {
            let same = compare(&body, &body, rules);
            prop_assert!(same.byte_equal, "{name} rules, {body}");
            assert_clean_match(&same, &body, &body)?;
            let spaced = compare(&body, &padded, rules);
            prop_assert!(!spaced.byte_equal, "{name} rules, {body}");
            assert_clean_match(&spaced, &body, &padded)?;
        }
    }

    /// The engine compares normal forms of each side alone; a form that moves
    /// again when normalised again would make the verdict depend on how many
    /// times a value had been through the rules.
    #[test]
    fn normalisation_is_idempotent(doc in document()) {
        for (name, rules) in rule_sets() {
            let once = normalize(doc.clone(), rules);
            let twice = normalize(once.clone(), rules);
            prop_assert_eq!(&twice, &once, "{} rules, input {}", name, compact(&doc));
        }
    }

    #[test]
    fn serialisation_never_matters(doc in document(), a in style(), b in style()) {
        let (primary, candidate) = (write(&doc, &a), write(&doc, &b));
        prop_assert_eq!(
            exact(parse(&primary)),
            exact(parse(&candidate)),
            "the writer changed the document"
        );
        for (name, rules) in rule_sets() {
            let v = compare(&primary, &candidate, rules);
            prop_assert_eq!(v.byte_equal, primary == candidate, "{} rules", name);
            assert_clean_match(&v, &primary, &candidate)?;
        }
    }

    #[test]
    fn the_patch_explains_the_whole_difference((p, c) in document_pair()) {
        let (primary, candidate) = (compact(&p), compact(&c));
        for (name, rules) in rule_sets() {
            let v = compare(&primary, &candidate, rules);
            let (np, nc) = normal_forms(p.clone(), c.clone(), rules);
            let case = format!("{name} rules\nprimary {primary}\ncandidate {candidate}");
            prop_assert!(v.reasons.is_empty(), "{case}\n{v:#?}");
            if v.matched {
                prop_assert!(v.patch.is_none() && v.fingerprint.is_none(), "{case}\n{v:#?}");
                prop_assert_eq!(&np, &nc, "matched different normal forms; {}", case);
            } else {
                let patch = v.patch.as_ref();
                prop_assert!(patch.is_some() && v.fingerprint.is_some(), "{case}\n{v:#?}");
                let patch = patch.unwrap();
                let paths: Vec<String> = patch.0.iter().map(|op| op.path().to_string()).collect();
                prop_assert_eq!(&v.paths, &paths, "{}", case);
                let mut doc = np.clone();
                let applied = json_patch::patch(&mut doc, patch);
                prop_assert!(applied.is_ok(), "{case}\n{applied:?} for {patch:?}");
                prop_assert_eq!(&doc, &nc, "{}\npatch {:?}", case, patch);
            }
        }
    }

    #[test]
    fn fingerprints_group_by_field_path(
        (doc, i, j, new, seed) in fingerprint_case(value(2))
    ) {
        check_fingerprints(&doc, i, j, &new, seed, &DEFAULT_RULES)?;
    }

    /// Under the rich rules `/items` is keyed by id, so the grouping goes
    /// through `id=…` and `#n` segments instead of indices. Old values are
    /// never null or empty there: the preset drops those, turning the
    /// replacement into an addition, which is rightly another group.
    #[test]
    fn fingerprints_group_by_field_path_in_keyed_arrays(
        (doc, i, j, new, seed) in fingerprint_case(non_null_scalar().boxed())
    ) {
        check_fingerprints(&doc, i, j, &new, seed, &RICH_RULES)?;
    }

    /// Canonical numbers keep their exact value and are fixed points, even
    /// where the exponent arithmetic is at the edge of i64.
    #[test]
    fn canonical_numbers_keep_their_value(text in extreme_number_text()) {
        let input = number(&text);
        let once = normalize(input.clone(), &DEFAULT_RULES);
        let out = once.as_number().map(|n| n.as_str().to_string());
        prop_assert!(out.is_some(), "{text} became {once}");
        prop_assert_eq!(exact_value(&out.unwrap()), exact_value(&text), "{} became {}", text, once);
        prop_assert_eq!(normalize(once.clone(), &DEFAULT_RULES), once, "{}", text);
    }
}
