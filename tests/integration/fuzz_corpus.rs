//! Replays the fuzz corpus of the decode-and-compare target as a normal test,
//! so every input the fuzzer found interesting (and every hand-written seed)
//! keeps being checked by `cargo test`, without nightly or cargo-fuzz.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use shadowdiff::compare::compare_responses;
use shadowdiff::compare::fuzz_input::{check_verdict_invariants, responses_from_bytes};

#[test]
fn the_decode_compare_corpus_keeps_its_invariants() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode_compare");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    // Sorted so a failure report lists the same files in the same order every run.
    files.sort();
    assert!(
        files.len() >= 10,
        "{} holds only {} files; the corpus went missing?",
        dir.display(),
        files.len()
    );

    // Every file is run even after one fails, so one report names them all.
    let mut failures = Vec::new();
    for path in &files {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            let (primary, candidate, rules) = responses_from_bytes(&data);
            let verdict = compare_responses("GET /fuzz", &primary, &candidate, &rules, 1 << 20);
            check_verdict_invariants(&primary, &candidate, &verdict)
        }));
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(broken)) => failures.push(format!("{name}: {broken}")),
            Err(_) => failures.push(format!("{name}: the comparison panicked")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} corpus files fail:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n")
    );
}
