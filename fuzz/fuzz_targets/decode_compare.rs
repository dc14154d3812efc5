//! Fuzz target: arbitrary bytes become two responses (any content-encoding,
//! often a broken stream) and a rule set, and the comparison must neither
//! panic nor return a verdict that contradicts itself. The input layout and
//! the invariants live in `shadowdiff::compare::fuzz_input`, shared with the
//! test that replays this target's corpus in every `cargo test`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use shadowdiff::compare::compare_responses;
use shadowdiff::compare::fuzz_input::{check_verdict_invariants, responses_from_bytes};

fuzz_target!(|data: &[u8]| {
    let (primary, candidate, rules) = responses_from_bytes(data);
    let verdict = compare_responses("GET /fuzz", &primary, &candidate, &rules, 1 << 20);
    if let Err(broken) = check_verdict_invariants(&primary, &candidate, &verdict) {
        panic!("verdict invariant broken: {broken}");
    }
});
