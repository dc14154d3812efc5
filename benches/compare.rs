//! Comparison speed against JSON parsing speed: for 1 KB, 100 KB and 5 MB
//! documents, the time to compare a pair (byte-identical; equal but written
//! differently; 1% of fields differing) next to the time serde_json takes to
//! parse both bodies. Run: `cargo bench --bench compare`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use http::HeaderValue;
use shadowdiff::compare::{
    compare_responses, compare_responses_with, CompareConfig, Detail, Rules,
};
use shadowdiff::exchange::RecordedResponse;

/// One record of a typical API list response, as a Python service writes it.
fn record(i: usize, differ: bool) -> String {
    let score = if differ {
        format!("{}.25", i + 1)
    } else {
        format!("{i}.5")
    };
    format!(
        r#"{{"id": {i}, "name": "user-{i}", "email": "user{i}@example.com", "score": {score}, "tags": ["alpha", "beta"], "active": {}, "created": "2024-01-{:02}T10:00:00+00:00", "address": {{"city": "Z\u00fcrich", "zip": "80{:02}"}}}}"#,
        i.is_multiple_of(2),
        i % 28 + 1,
        i % 100
    )
}

/// A document of about `size` bytes; with `differ`, 1 record in 10 has a
/// changed score: about 1% of fields, as each record has 10 (the second
/// record always differs, so the 1 KB document has a difference too).
fn document(size: usize, differ: bool) -> String {
    let mut records = Vec::new();
    let mut len = 0;
    let mut i = 0;
    while len < size {
        let r = record(i, differ && (i % 10 == 5 || i == 1));
        len += r.len() + 2;
        records.push(r);
        i += 1;
    }
    format!("{{\"count\": {i}, \"results\": [{}]}}", records.join(", "))
}

/// The same document as a Go service writes it: compact, UTF-8, Z times.
fn as_go_writes_it(doc: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(doc).unwrap();
    serde_json::to_string(&value)
        .unwrap()
        .replace("+00:00", "Z")
}

fn response(body: String) -> RecordedResponse {
    let json = HeaderValue::from_static("application/json");
    RecordedResponse::ok_with_body(Some(json), Bytes::from(body))
}

fn benches(c: &mut Criterion) {
    let rules = Rules::from(&toml::from_str::<CompareConfig>("preset = \"python-go\"").unwrap());
    for (label, size) in [("1KB", 1_000), ("100KB", 100_000), ("5MB", 5_000_000)] {
        let primary = document(size, false);
        let pairs = [
            (
                "identical",
                response(primary.clone()),
                response(primary.clone()),
            ),
            (
                "equal_rewritten",
                response(primary.clone()),
                response(as_go_writes_it(&primary)),
            ),
            (
                "differ_1pct",
                response(primary.clone()),
                response(as_go_writes_it(&document(size, true))),
            ),
        ];
        // A benchmark of the wrong verdict measures nothing.
        for (name, p, cand) in &pairs {
            let verdict = compare_responses("GET /bench", p, cand, &rules, 64 << 20);
            assert_eq!(verdict.matched, *name != "differ_1pct", "{name} {label}");
        }
        let mut group = c.benchmark_group(format!("compare_{label}"));
        if size > 1_000_000 {
            group.sample_size(10);
        }
        let bytes = (pairs[1].1.body.len() + pairs[1].2.body.len()) as u64;
        group.throughput(Throughput::Bytes(bytes));
        group.bench_function(BenchmarkId::new("parse_both", label), |b| {
            let (p, c) = (&pairs[1].1.body, &pairs[1].2.body);
            b.iter(|| {
                let a: serde_json::Value = serde_json::from_slice(p).unwrap();
                let b: serde_json::Value = serde_json::from_slice(c).unwrap();
                (a, b)
            })
        });
        for (name, p, cand) in &pairs {
            group.bench_function(BenchmarkId::new(*name, label), |b| {
                b.iter(|| compare_responses("GET /bench", p, cand, &rules, 64 << 20))
            });
        }
        // A mismatch as the live path compares it: without the line diff.
        let (p, cand) = (&pairs[2].1, &pairs[2].2);
        group.bench_function(BenchmarkId::new("differ_1pct_live", label), |b| {
            let limits = (64 << 20, Detail::Grouping);
            b.iter(|| compare_responses_with("GET /bench", p, cand, &rules, limits))
        });
        group.finish();
    }
}

criterion_group!(compare, benches);
criterion_main!(compare);
