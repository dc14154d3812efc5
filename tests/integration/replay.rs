//! `shadowdiff replay` end to end with the real binary against real
//! backends: JSON Lines and a real HAR export from fixtures/replay, re-sending
//! stored mismatches before and after a fix, and a record-then-replay round
//! trip that must reproduce the live verdicts.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;

use shadowdiff::gate::GateReport;
use shadowdiff::store::{SqlStore, Store, Window};

use crate::persistence;
use crate::support::{self, binary as shadowdiff};

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/replay")
        .join(name)
        .display()
        .to_string()
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// `shadowdiff replay` between two backends on a database, printing the gate
/// report as JSON, with `extra` flags.
fn replay(
    primary: &support::Backend,
    candidate: &support::Backend,
    db: &support::TestDatabase,
    extra: &[&str],
) -> Vec<String> {
    let mut a = args(&[
        "replay",
        "--primary",
        &primary.url().to_string(),
        "--candidate",
        &candidate.url().to_string(),
        "--database-url",
        &db.url.to_string(),
        "--format",
        "json",
    ]);
    a.extend(args(extra));
    a
}

fn report(out: &std::process::Output) -> GateReport {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not a gate report ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn all_time() -> Window {
    Window {
        since_ms: 0,
        until_ms: i64::MAX / 2,
    }
}

/// Outcome counts per endpoint of one run ("" for live traffic).
async fn counts(db: &support::TestDatabase, run: &str) -> BTreeMap<String, BTreeMap<String, i64>> {
    let store = SqlStore::connect(&db.url).await.unwrap();
    store
        .counts(all_time(), run, None)
        .await
        .unwrap()
        .into_iter()
        .map(|c| {
            let outcomes = c
                .outcomes
                .into_iter()
                .filter(|(k, _)| k == "matched" || k == "mismatched" || k.starts_with("skipped/"))
                .collect();
            (c.endpoint, outcomes)
        })
        .collect()
}

// Long by design: one replay, then what each backend received checked field by field.
#[tokio::test(flavor = "multi_thread")]
async fn json_lines_and_a_real_har_export_reach_both_backends_intact() {
    let db = support::sqlite_database();
    let mut seen = Vec::new();
    for (input, expected) in [("requests.jsonl", 9), ("mitmproxy.har", 8)] {
        let (primary, primary_hits) = support::recording_backend().await;
        let (candidate, candidate_hits) = support::recording_backend().await;
        let run = format!("run-{input}");
        let out = shadowdiff(replay(
            &primary,
            &candidate,
            &db,
            &[
                "--input",
                &fixture(input),
                "--run-id",
                &run,
                "--allow-unsafe",
            ],
        ))
        .await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        // Too few to pass, nothing wrong: inconclusive.
        assert_eq!(out.status.code(), Some(3), "{input}: {stderr}");
        let gate = report(&out);
        assert_eq!(gate.run.as_deref(), Some(run.as_str()));
        assert_eq!(
            (gate.total.matched, gate.total.mismatched),
            (expected, 0),
            "{input}"
        );
        if input.ends_with("jsonl") {
            assert!(stderr.contains("warning: line 9:"), "{stderr}");
        }
        let hits = candidate_hits.wait_for(expected as usize).await;
        assert_eq!(primary_hits.all().len(), expected as usize);
        let mut hits: Vec<(String, String, Vec<u8>)> = hits
            .into_iter()
            .map(|h| (h.method.to_string(), h.target, h.body.to_vec()))
            .collect();
        hits.sort();
        seen.push(hits);
        let stored = counts(&db, &run).await;
        assert_eq!(stored.values().map(|o| o["matched"]).sum::<i64>(), expected);
    }
    // The HAR holds the first eight requests of the JSON Lines file.
    let (jsonl, har) = (&seen[0], &seen[1]);
    let har_set: Vec<_> = har.iter().collect();
    for request in har_set {
        assert!(jsonl.contains(request), "{request:?} not in {jsonl:?}");
    }
    let binary = har.iter().find(|(m, _, _)| m == "PUT").unwrap();
    assert_eq!(
        binary.2,
        [
            0x00, 0x01, 0x02, 0x7f, 0x80, 0xfe, 0xff, 0x00, b'B', b'I', b'N', b'\n', b'\r', 0x1b,
            0xc3, b'('
        ]
    );
    assert!(har
        .iter()
        .any(|(_, t, _)| t == "/api/search?q=caf%C3%A9+latte&page=2"));

    // Unsafe methods are skipped unless allowed; a limit and a seeded sample choose.
    let (primary, _) = support::recording_backend().await;
    let (candidate, hits) = support::recording_backend().await;
    let input = fixture("requests.jsonl");
    let base = |extra: &[&str]| {
        let mut a = replay(&primary, &candidate, &db, &["--input", &input]);
        a.extend(args(extra));
        a
    };
    let out = shadowdiff(base(&[])).await;
    let gate = report(&out);
    assert_eq!((gate.total.matched, gate.total.skipped), (6, 3));
    assert!(hits.all().iter().all(|h| h.method == "GET"));
    let out = shadowdiff(base(&["--limit", "2"])).await;
    assert_eq!(
        report(&out).total.comparisons,
        2,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut picks = Vec::new();
    for seed in ["7", "7", "8"] {
        let before = hits.all().len();
        let out = shadowdiff(base(&["--random", "3", "--seed", seed])).await;
        assert_eq!(
            report(&out).total.comparisons + report(&out).total.skipped,
            3
        );
        let mut targets: Vec<String> = hits.all()[before..]
            .iter()
            .map(|h| h.target.clone())
            .collect();
        targets.sort();
        picks.push(targets);
    }
    assert_eq!(picks[0], picks[1], "the same seed picks the same requests");

    // A run id names one run: reusing it is refused.
    let out = shadowdiff(base(&["--run-id", "run-requests.jsonl"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a run"));
    // Nothing selected is an error, not a wait-and-see.
    let out = shadowdiff(base(&["--endpoint", "GET /nothing/**"])).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to replay"));

    // Bad flags and files are operational errors.
    for bad in [
        base(&["--rate", "0"]),
        base(&["--rate", "1e-20"]),
        base(&["--rate", "1e300"]),
        base(&["--concurrency", "0"]),
        base(&["--concurrency", "18446744073709551615"]),
        base(&["--run-id", ""]),
        base(&["--header", "no colon"]),
        base(&["--header", "Content-Length: 2"]),
        base(&["--header", "Host: elsewhere"]),
        args(&[
            "replay",
            "--input",
            "/nonexistent.jsonl",
            "--primary",
            "http://a",
            "--candidate",
            "http://b",
        ]),
    ] {
        let out = shadowdiff(bad.clone()).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{bad:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn stored_mismatches_are_sent_again_to_see_whether_a_fix_landed() {
    for db in support::databases().await {
        let primary = persistence::primary().await;
        let candidate = persistence::candidate().await;
        let proxy = support::start(persistence::settings(&primary, &candidate, &db, "live")).await;
        persistence::traffic(&proxy, 0..10).await;
        proxy.outcomes(10).await;
        proxy.stop().await;
        let store = SqlStore::connect(&db.url).await.unwrap();
        let groups = store.groups(None, None).await.unwrap();
        assert_eq!(groups.len(), 1, "{}", db.name);
        let fingerprint = groups[0].fingerprint.clone();

        let fixed = persistence::primary().await;
        for (run, candidate, mismatched, matched) in
            [("recheck-1", &candidate, 5, 0), ("recheck-2", &fixed, 0, 5)]
        {
            let out = shadowdiff(replay(
                &primary,
                candidate,
                &db,
                &[
                    "--run-id",
                    run,
                    "--from-store",
                    "--fingerprint",
                    &fingerprint,
                    "--mark-fixed",
                ],
            ))
            .await;
            let gate = report(&out);
            // The group is marked fixed only once all its requests match.
            let stderr = String::from_utf8_lossy(&out.stderr);
            let group = &store.groups(None, None).await.unwrap()[0];
            let told = match mismatched {
                0 => "marked fixed: all 5 requests of the group now match",
                _ => "not marked fixed: 5 requests still differ",
            };
            assert!(stderr.contains(told), "{}: {stderr}", db.name);
            let status = if mismatched > 0 { "open" } else { "fixed" };
            assert_eq!(group.status, status, "{}", db.name);
            assert_eq!(
                (gate.total.mismatched, gate.total.matched),
                (mismatched, matched),
                "{}: {}",
                db.name,
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(out.status.code(), Some(if mismatched > 0 { 1 } else { 3 }));
        }
        let history = store.triage_history(&fingerprint, 10).await.unwrap();
        assert_eq!(history.len(), 1, "{}", db.name);
        assert_eq!(history[0].reviewer, "shadowdiff replay");
        assert!(
            history[0].note.starts_with("replay run recheck-2: all 5"),
            "{history:?}"
        );
        // The replays did not touch the live counts.
        let live = counts(&db, "").await;
        assert_eq!(live["GET /users/{id}"]["mismatched"], 5);
        assert_eq!(live["GET /users/{id}"]["matched"], 5);
        let groups = store.groups(None, None).await.unwrap();
        assert_eq!((groups.len(), groups[0].count), (1, 5), "{}", db.name);

        // A run keeps its own exemplars (its own quota), so its failures
        // can be sent again too.
        let out = shadowdiff(replay(
            &primary,
            &candidate,
            &db,
            &["--from-store", "--from-run", "recheck-1"],
        ))
        .await;
        assert_eq!(
            report(&out).total.mismatched,
            5,
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recorded_traffic_replays_to_the_same_verdicts_without_secrets() {
    for db in support::databases().await {
        let primary = persistence::primary().await;
        let candidate = persistence::candidate().await;
        let dir = tempfile::tempdir().unwrap();
        let record = dir.path().join("recorded.jsonl");
        let mut settings = persistence::settings(&primary, &candidate, &db, "live");
        settings.record = Some(record.clone());
        let proxy = support::start(settings).await;
        persistence::traffic(&proxy, 0..20).await;
        persistence::login(&proxy).await;
        proxy.outcomes(21).await;
        proxy.stop().await;

        let text = std::fs::read_to_string(&record).unwrap();
        assert_eq!(text.lines().count(), 21, "{text}");
        for secret in persistence::SECRETS {
            assert!(
                !text.contains(secret),
                "{secret} reached the record file: {text}"
            );
        }

        // The same rules and redaction as the live run, from a config file.
        let mut config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        config
            .write_all(
                br#"
                [redact]
                json = ["/**/password"]
                key = "test-key"

                [[route]]
                match = "POST /login"
                mirror_unsafe = true
                "#,
            )
            .unwrap();
        let out = shadowdiff(replay(
            &primary,
            &candidate,
            &db,
            &[
                "--config",
                config.path().to_str().unwrap(),
                "--input",
                record.to_str().unwrap(),
                "--run-id",
                "round-trip",
                "--concurrency",
                "4",
            ],
        ))
        .await;
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            counts(&db, "round-trip").await,
            counts(&db, "").await,
            "{}",
            db.name
        );
        let live = counts(&db, "").await;
        assert_eq!(live["GET /users/{id}"]["mismatched"], 10);
        assert_eq!(live["POST /login"]["mismatched"], 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_replay_stores_what_it_sent_and_says_it_is_incomplete() {
    let db = support::sqlite_database();
    let (primary, _) = support::recording_backend().await;
    let (candidate, hits) = support::recording_backend().await;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("many.jsonl");
    let lines: String = (0..1_000)
        .map(|i| format!("{{\"path\": \"/items/{i}\"}}\n"))
        .collect();
    std::fs::write(&input, lines).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_shadowdiff"));
    command
        .args(replay(
            &primary,
            &candidate,
            &db,
            &[
                "--input",
                input.to_str().unwrap(),
                "--rate",
                "20",
                "--run-id",
                "cut",
            ],
        ))
        .env_clear()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = command.spawn().unwrap();
    // Interrupt once some requests have gone out.
    hits.wait_for(5).await;
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("interrupted after"), "{stderr}");
    // What was sent ended, was stored, and was gated.
    let gate = report(&out);
    let stored: i64 = counts(&db, "cut")
        .await
        .values()
        .map(|o| o["matched"])
        .sum();
    assert_eq!(stored, gate.total.matched);
    assert!((5..1_000).contains(&stored), "{stored}");
    assert_eq!(hits.all().len() as i64, stored);
}
