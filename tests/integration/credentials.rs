//! `replay --credentials`: recorded requests carry their credentials as
//! hashes; the real ones come per user from a file (and one per endpoint
//! from the environment), reach the candidate, and never the store.

use serde_json::Value;

use crate::support::{self, Hits};

/// A service that answers each user only with that user's token, and its
/// admin endpoint only with the admin key.
async fn strict_service() -> (support::Backend, Hits) {
    support::answering_backend(|parts| {
        let header = |name: &str| {
            parts
                .headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string()
        };
        let allowed = if parts.uri.path().starts_with("/admin") {
            header("x-api-key") == "SECRET-admin-key"
        } else {
            header("authorization") == format!("Bearer SECRET-token-{}", header("x-user-id"))
        };
        match allowed {
            true => (http::StatusCode::OK, "{\"ok\":true}"),
            false => (http::StatusCode::UNAUTHORIZED, "{\"ok\":false}"),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_requests_are_replayed_with_real_credentials_that_are_never_stored() {
    let (primary, _) = support::recording_backend().await;
    let (candidate, candidate_hits) = strict_service().await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("requests.jsonl");
    let mut lines = String::new();
    for user in 1..=5 {
        lines.push_str(&format!(
            "{{\"path\": \"/orders/{user}\", \"headers\": {{\"x-user-id\": \"{user}\", \"authorization\": \"redacted:0123456789abcdef\"}}}}\n"
        ));
    }
    lines.push_str("{\"path\": \"/admin/stats\", \"headers\": {\"x-user-id\": \"1\"}}\n");
    // A user the token file does not know: sent as recorded, and counted.
    lines.push_str("{\"path\": \"/orders/9\", \"headers\": {\"x-user-id\": \"9\", \"authorization\": \"redacted:0123456789abcdef\"}}\n");
    std::fs::write(&input, lines).unwrap();
    let tokens: serde_json::Map<String, Value> = (1..=5)
        .map(|u| (u.to_string(), Value::String(format!("SECRET-token-{u}"))))
        .collect();
    std::fs::write(
        dir.path().join("tokens.json"),
        Value::Object(tokens).to_string(),
    )
    .unwrap();
    let credentials = dir.path().join("credentials.toml");
    std::fs::write(
        &credentials,
        r#"
        [[credential]]
        header = "x-api-key"
        endpoint = "/admin/**"
        value = { env = "ADMIN_KEY" }

        [[credential]]
        header = "authorization"
        by = "header:x-user-id"
        values = "tokens.json"
        prefix = "Bearer "
        "#,
    )
    .unwrap();
    let db = dir.path().join("replay.db");
    let out = tokio::task::spawn_blocking({
        let (input, credentials, db) = (input.clone(), credentials.clone(), db.clone());
        let (primary, candidate) = (primary.url().to_string(), candidate.url().to_string());
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_shadowdiff"))
                .args(["replay", "--input", input.to_str().unwrap()])
                .args(["--credentials", credentials.to_str().unwrap()])
                .args(["--primary", &primary, "--candidate", &candidate])
                .args(["--database-url", &format!("sqlite://{}", db.display())])
                .args(["--format", "json", "--min-parity", "50"])
                .env_clear()
                .env("ADMIN_KEY", "SECRET-admin-key")
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {stderr}"));
    // Six answered as the recording's users would have been; the unknown
    // user's request is refused by the candidate: a mismatch.
    assert_eq!(report["total"]["matched"], 6, "{report}\n{stderr}");
    assert_eq!(report["total"]["mismatched"], 1, "{report}");
    assert!(
        stderr.contains("1 requests had no value in --credentials"),
        "{stderr}"
    );
    let hits = candidate_hits.all();
    let five = hits.iter().find(|h| h.target == "/orders/5").unwrap();
    assert_eq!(five.headers["authorization"], "Bearer SECRET-token-5");
    assert!(!stderr.contains("SECRET-"), "{stderr}");
    support::assert_no_file_holds(dir.path(), "replay.db", "SECRET-");
}
