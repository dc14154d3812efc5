//! Sticky sampling: the same key gets the same decision on every instance.

use std::collections::BTreeSet;

use shadowdiff::sampling::SampleRate;

use crate::support;

async fn keys_shadowed_by_one_instance(primary: &support::Backend, users: u32) -> BTreeSet<String> {
    let (candidate, hits) = support::recording_backend().await;
    let mut settings = support::settings(primary, candidate.url());
    settings.sample_rate = SampleRate::new(0.3).unwrap();
    settings.sticky_key = Some("header:x-user-id".parse().unwrap());
    let proxy = support::start(settings).await;
    let client = support::client();
    for user in 0..users {
        // Twice each: a user's second request must get the first one's decision.
        for _ in 0..2 {
            let response = client
                .get(proxy.url("/profile"))
                .header("x-user-id", format!("user-{user}"))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        }
    }
    proxy.stop().await;
    let hits = hits.all();
    let keys: BTreeSet<String> = hits
        .iter()
        .map(|h| h.headers["x-user-id"].to_str().unwrap().to_string())
        .collect();
    assert_eq!(hits.len(), keys.len() * 2, "a user was sampled only once");
    keys
}

#[tokio::test]
async fn two_instances_sample_the_same_users() {
    let (primary, _) = support::recording_backend().await;
    let first = keys_shadowed_by_one_instance(&primary, 200).await;
    let second = keys_shadowed_by_one_instance(&primary, 200).await;
    assert_eq!(first, second);
    assert!(
        (30..=90).contains(&first.len()),
        "{} of 200 users sampled at 30%",
        first.len()
    );
}

/// The sticky key is read from the headers the client sent, before the
/// proxy edits them: a key header named in `Connection` (hop-by-hop, so not
/// forwarded) still decides, and X-Forwarded-For is the client's own value,
/// not the one with the proxy's peer appended.
#[tokio::test]
async fn the_sticky_key_is_read_before_forwarding_edits_the_headers() {
    let (primary, _) = support::recording_backend().await;
    let (candidate, hits) = support::recording_backend().await;
    let mut settings = support::settings(&primary, candidate.url());
    settings.sample_rate = SampleRate::new(0.5).unwrap();
    settings.sticky_key = Some("header:x-user-id".parse().unwrap());
    let proxy = support::start(settings).await;
    let client = support::client();
    let users = 40;
    for user in 0..users {
        for _ in 0..3 {
            let response = client
                .get(proxy.url(&format!("/profile?u={user}")))
                .header("x-user-id", format!("user-{user}"))
                .header("connection", "x-user-id")
                .send()
                .await
                .unwrap();
            assert!(response.status().is_success());
        }
    }
    proxy.stop().await;
    // Forwarding drops the field; the query says whose request it was.
    let mut per_user = std::collections::BTreeMap::<String, usize>::new();
    for hit in hits.all() {
        *per_user.entry(hit.target).or_default() += 1;
    }
    assert!(
        per_user.values().all(|&n| n == 3),
        "a user's requests were decided apart: {per_user:?}"
    );
    assert!(
        (1..users).contains(&(per_user.len() as u32)),
        "{per_user:?}"
    );
}
