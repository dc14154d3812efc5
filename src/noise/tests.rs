//! The learner's counts and decisions, per endpoint and path.

use super::*;

fn keys(list: &[&str]) -> Vec<String> {
    list.iter().map(|k| k.to_string()).collect()
}

fn secondary() -> Option<(BackendUrl, BackendUrl)> {
    let url = |port: u16| format!("http://127.0.0.1:{port}").parse().unwrap();
    Some((url(8), url(9)))
}

#[test]
fn only_requests_to_the_mirrored_primary_are_paired() {
    let noise = Noise::new(secondary(), 20);
    let url = |port: u16| {
        format!("http://127.0.0.1:{port}")
            .parse::<BackendUrl>()
            .unwrap()
    };
    assert_eq!(noise.secondary_for(&url(8)), Some(&url(9)));
    assert_eq!(
        noise.secondary_for(&url(7)),
        None,
        "a route with a primary of its own"
    );
}

/// `n` paired samples of `endpoint` on which the two primaries differ at
/// `noise` and the candidate at `raw`.
fn learn(noise: &Noise, endpoint: &str, n: usize, noisy: &[&str], raw: &[&str]) {
    for _ in 0..n {
        noise.observe(
            endpoint,
            &Observation {
                noise: Some(keys(noisy)),
                raw: keys(raw)
                    .into_iter()
                    .map(|k| (k, Volatility::default()))
                    .collect(),
            },
        );
    }
}

#[test]
fn noise_is_learned_per_endpoint_and_never_covers_a_real_bug() {
    let noise = Noise::new(secondary(), 20);
    let volatile = ["/request_id", "/now", "header:x-trace"];
    let mut raw = volatile.to_vec();
    raw.push("/total");
    learn(&noise, "GET /orders/{id}", 30, &volatile, &raw);
    learn(&noise, "GET /users/{id}", 30, &[], &["/request_id"]);
    let noisy: Vec<String> = noise
        .noisy_keys(
            "GET /orders/{id}",
            &keys(&["/now", "/request_id", "/total", "header:x-trace"]),
        )
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(noisy, keys(&["/now", "/request_id", "header:x-trace"]));
    assert!(
        noise
            .noisy_keys("GET /users/{id}", &keys(&["/request_id"]))
            .is_empty(),
        "noisy on one endpoint is not noise on another"
    );
}

#[test]
fn nothing_is_discounted_without_a_secondary_or_before_the_minimum() {
    let noise = Noise::new(secondary(), 20);
    learn(&noise, "GET /a", 19, &["/x"], &["/x"]);
    assert!(noise.noisy_keys("GET /a", &keys(&["/x"])).is_empty());
    learn(&noise, "GET /a", 1, &["/x"], &["/x"]);
    assert_eq!(noise.noisy_keys("GET /a", &keys(&["/x"])).len(), 1);
    let without = Noise::new(None, 20);
    learn(&without, "GET /a", 50, &["/x"], &["/x"]);
    assert!(without.noisy_keys("GET /a", &keys(&["/x"])).is_empty());
}

#[test]
fn the_whole_body_is_never_discounted() {
    let noise = Noise::new(secondary(), 5);
    learn(&noise, "GET /page", 10, &[""], &[""]);
    assert!(noise.noisy_keys("GET /page", &keys(&[""])).is_empty());
}

#[test]
fn stored_totals_and_local_counts_add_up() {
    let noise = Noise::new(secondary(), 20);
    learn(&noise, "GET /a", 3, &["/x"], &["/x"]);
    let stored = noise.local_snapshot();
    assert_eq!(stored["GET /a"].paired, 3);
    // Two more counted while the snapshot was being stored.
    learn(&noise, "GET /a", 2, &["/x"], &[]);
    noise.set_stored(stored.clone(), &stored);
    let counts = noise.counts("GET /a");
    assert_eq!((counts.compared, counts.paired), (5, 5));
    assert_eq!(
        counts.paths["/x"],
        PathCounts {
            noise: 5,
            raw_paired: 3,
            raw: 3,
            volatile: Volatility::default()
        }
    );
}

#[test]
fn a_key_with_a_nul_is_not_learned() {
    let noise = Noise::new(secondary(), 1);
    learn(&noise, "GET /a", 3, &["/a\0b"], &["/a\0b"]);
    assert!(noise.counts("GET /a").paths.is_empty());
    assert_eq!(noise.counts("GET /a").paired, 3);
}

#[test]
fn keys_a_sync_or_a_pattern_cannot_hold_are_not_learned() {
    let noise = Noise::new(secondary(), 1);
    let long = format!("/{}", "k".repeat(MAX_KEY_BYTES));
    learn(&noise, "GET /a", 3, &[&long, "/**/x"], &[&long, "/**/x"]);
    assert!(noise.counts("GET /a").paths.is_empty());
}
