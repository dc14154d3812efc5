//! Golden cases for the comparison engine: each folder under fixtures/compare
//! is one case. Adding a case adds files, not code (see fixtures/README.md).
//!
//! `SHADOWDIFF_BLESS=1 cargo test golden` writes expected.json for every case
//! from the current engine; review the diff before committing it. A case
//! that differs is printed as both verdicts, pretty, and the diff between.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::Value;
use shadowdiff::compare::decode::{decode, BodyKind};
use shadowdiff::compare::json::{normal_forms, parse};
use shadowdiff::compare::{
    compare_responses, compare_responses_with, CompareConfig, Detail, Rules,
};
use shadowdiff::exchange::RecordedResponse;

const MAX_BODY: usize = 10 * 1024 * 1024;

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/compare");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    cases
}

/// Reads `status line, headers, blank line, body` (one final newline of the
/// file is not part of the body). `x-fixture-encode: gzip|deflate|br|zstd|
/// gzip-truncated` compresses the body and sets Content-Encoding.
pub fn read_response(path: &Path) -> RecordedResponse {
    let raw = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let split = raw
        .windows(2)
        .position(|w| w == b"\n\n")
        .unwrap_or_else(|| panic!("{}: no blank line after the headers", path.display()));
    let head = std::str::from_utf8(&raw[..split]).unwrap();
    let mut body = raw[split + 2..].to_vec();
    if body.last() == Some(&b'\n') {
        body.pop();
    }
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "{}: first line must be like `HTTP/1.1 200 OK`",
                path.display()
            )
        });
    let mut headers = HeaderMap::new();
    let mut encode = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("{}: bad header {line:?}", path.display()));
        let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
        if name == "x-fixture-encode" {
            encode = Some(value.to_string());
            continue;
        }
        headers.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    if let Some(encoding) = encode {
        body = compress(&encoding, &body);
        let label = encoding.trim_end_matches("-truncated").to_string();
        headers.insert("content-encoding", HeaderValue::from_str(&label).unwrap());
    }
    RecordedResponse {
        status: StatusCode::from_u16(status).unwrap(),
        headers,
        body: Bytes::from(body),
        latency: Duration::ZERO,
    }
}

fn compress(encoding: &str, body: &[u8]) -> Vec<u8> {
    match encoding {
        "gzip" | "gzip-truncated" => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(body).unwrap();
            let mut out = e.finish().unwrap();
            if encoding == "gzip-truncated" {
                out.truncate(out.len() / 2);
            }
            out
        }
        "deflate" => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            e.write_all(body).unwrap();
            e.finish().unwrap()
        }
        "br" => {
            let mut out = Vec::new();
            brotli::CompressorWriter::new(&mut out, 4096, 5, 22)
                .write_all(body)
                .unwrap();
            out
        }
        "zstd" => zstd::encode_all(body, 3).unwrap(),
        other => panic!("unknown x-fixture-encode {other:?}"),
    }
}

fn rules_of(case: &Path) -> Rules {
    let path = case.join("rules.toml");
    let config: CompareConfig = match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
        Err(_) => CompareConfig::default(),
    };
    Rules::from(&config)
}

#[test]
fn golden_cases() {
    let bless = std::env::var_os("SHADOWDIFF_BLESS").is_some();
    let cases = cases();
    assert!(
        cases.len() >= 25,
        "expected the golden cases under fixtures/compare"
    );
    let mut failures = Vec::new();
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let primary = read_response(&case.join("primary.http"));
        let candidate = read_response(&case.join("candidate.http"));
        let rules = rules_of(case);
        let verdict = compare_responses("GET /golden", &primary, &candidate, &rules, MAX_BODY);
        let actual = serde_json::to_value(&verdict).unwrap();
        let expected_path = case.join("expected.json");
        if bless {
            let text = serde_json::to_string_pretty(&actual).unwrap() + "\n";
            std::fs::write(&expected_path, text).unwrap();
            continue;
        }
        let expected: Value = match std::fs::read_to_string(&expected_path) {
            Ok(text) => serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display())),
            Err(_) => {
                failures.push(format!(
                    "{name}: no expected.json (run with SHADOWDIFF_BLESS=1 and review)"
                ));
                continue;
            }
        };
        if actual != expected {
            failures.push(format!("{name}: {}", json_diff(&expected, &actual)));
        }
        // The live comparison leaves out only the line diff: it must count
        // and group every case exactly as the full one.
        let live = shadowdiff::compare::Verdict {
            text_diff: verdict.text_diff.clone(),
            ..grouping_verdict(&primary, &candidate, &rules)
        };
        if serde_json::to_value(&live).unwrap() != actual {
            failures.push(format!(
                "{name}: the live (grouping) verdict differs beyond its line diff"
            ));
        }
        // Whatever the rules, the patch must turn one normal form into the other.
        if let Some(patch) = &verdict.patch {
            let sides = (&primary, &candidate);
            if let Err(why) = check_patch(patch, verdict.body_kind, sides, &rules) {
                failures.push(format!("{name}: {why}"));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden case(s) differ:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The verdict the live path computes, which must carry no line diff.
fn grouping_verdict(
    primary: &RecordedResponse,
    candidate: &RecordedResponse,
    rules: &Rules,
) -> shadowdiff::compare::Verdict {
    let limits = (MAX_BODY, Detail::Grouping);
    let verdict = compare_responses_with("GET /golden", primary, candidate, rules, limits);
    assert!(
        verdict.text_diff.is_none(),
        "the live verdict built a line diff"
    );
    verdict
}

/// Checks that a verdict's patch turns the primary's normal form into the
/// candidate's: each body decoded and read as the verdict's body kind says,
/// then both normalised under the case's rules, as the engine does.
fn check_patch(
    patch: &json_patch::Patch,
    kind: BodyKind,
    (primary, candidate): (&RecordedResponse, &RecordedResponse),
    rules: &Rules,
) -> Result<(), String> {
    if patch.0.is_empty() {
        return Err("an empty patch on a mismatch".into());
    }
    let (p, c) = (structured(kind, primary)?, structured(kind, candidate)?);
    let (p, c) = normal_forms(p, c, rules);
    let mut patched = p;
    json_patch::patch(&mut patched, patch)
        .map_err(|e| format!("the patch does not apply to the primary's normal form: {e}"))?;
    match patched == c {
        true => Ok(()),
        false => Err(format!(
            "the patch does not turn the primary's normal form into the candidate's \
             (expected: the candidate's; actual: the primary's, patched); {}",
            json_diff(&c, &patched)
        )),
    }
}

/// A body as the value the engine compares: JSON parsed, JSON Lines as an
/// array of the lines' values, a form as an object of each name's values in
/// order.
fn structured(kind: BodyKind, response: &RecordedResponse) -> Result<Value, String> {
    let body = decode(&response.body, &response.headers, MAX_BODY)?;
    match kind {
        BodyKind::Json => parse(&body).map(|parsed| parsed.value),
        BodyKind::Form => {
            let mut form = serde_json::Map::new();
            for (name, value) in form_urlencoded::parse(&body) {
                let values = form
                    .entry(name.into_owned())
                    .or_insert(Value::Array(vec![]));
                values
                    .as_array_mut()
                    .unwrap()
                    .push(value.into_owned().into());
            }
            Ok(Value::Object(form))
        }
        BodyKind::JsonLines => {
            let lines = body.split(|&b| b == b'\n').map(<[u8]>::trim_ascii);
            lines
                .filter(|line| !line.is_empty())
                .map(|line| parse(line).map(|parsed| parsed.value))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        other => Err(format!("a patch on a {other:?} body")),
    }
}

/// Both values pretty-printed, and a line diff from the first to the second.
fn json_diff(expected: &Value, actual: &Value) -> String {
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap() + "\n";
    let (expected, actual) = (pretty(expected), pretty(actual));
    let diff = similar::TextDiff::from_lines(&expected, &actual)
        .unified_diff()
        .header("expected", "actual")
        .to_string();
    format!("\nexpected:\n{expected}actual:\n{actual}diff:\n{diff}")
}

/// Every key of `[compare]`, as serde knows them: the error for an unknown
/// key lists the expected ones.
fn compare_keys() -> Vec<String> {
    let error = toml::from_str::<CompareConfig>("no_such_key = 1")
        .unwrap_err()
        .to_string();
    let listed = error
        .split("expected one of ")
        .nth(1)
        .unwrap_or_else(|| panic!("no key list in {error:?}"));
    listed
        .split(',')
        .map(|k| {
            k.trim()
                .trim_matches(|c: char| c == '`' || c.is_whitespace())
                .to_string()
        })
        .filter(|k| !k.is_empty())
        .collect()
}

/// No key is accepted and then silently ignored: each has a golden case
/// that sets it (so its effect on a verdict is pinned) and a row in the
/// README's rules.
#[test]
fn every_compare_key_has_a_golden_case_and_a_readme_row() {
    let keys = compare_keys();
    assert!(
        keys.len() >= 20 && keys.contains(&"header_mask".to_string()),
        "{keys:?}"
    );
    let rules: Vec<String> = cases()
        .iter()
        .filter_map(|case| std::fs::read_to_string(case.join("rules.toml")).ok())
        .collect();
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    for key in &keys {
        let set = |text: &String| {
            text.lines()
                .any(|line| line.split('=').next().is_some_and(|k| k.trim() == key))
        };
        assert!(rules.iter().any(set), "no golden case sets `{key}`");
        assert!(
            readme.contains(&format!("`{key}`")),
            "README.md does not describe `{key}`"
        );
    }
}
