//! The store at the edges of a run: the write-ahead log at a clean shutdown
//! of the real binary, databases that cannot be made, the gate deciding on
//! whole counts while exemplars are lost, and a body that does not decode.

use super::*;

#[tokio::test]
async fn a_clean_shutdown_leaves_everything_in_the_database_file() {
    let (primary, candidate) = (primary().await, candidate().await);
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("shadowdiff.db");
    let proxy = support::ServeProcess::start(
        &[
            "--primary",
            &primary.url().to_string(),
            "--candidate",
            &candidate.url().to_string(),
            "--database-url",
            &format!("sqlite://{}", db.display()),
        ],
        None,
    )
    .await;
    let client = support::client();
    for id in 1..=10 {
        let r = client
            .get(proxy.url(&format!("/items/{id}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let (code, log) = tokio::task::spawn_blocking(move || proxy.terminate())
        .await
        .unwrap();
    assert_eq!(code, Some(0), "{log}");

    // The database file alone, without its -wal and -shm, holds it all.
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(&db, copy.path().join("copy.db")).unwrap();
    let url: DatabaseUrl = format!("sqlite://{}", copy.path().join("copy.db").display())
        .parse()
        .unwrap();
    let store = SqlStore::open_existing(&url).await.unwrap();
    assert_eq!(stored_comparisons(&store).await, 10);
    let exemplars = store
        .mismatches(MismatchFilter::default(), None, 100)
        .await
        .unwrap();
    assert_eq!(exemplars.len(), 5);
    store.checkpoint_and_close().await;
}

#[tokio::test]
async fn databases_that_cannot_be_made_are_refused_before_serving() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-folder").join("shadowdiff.db");
    // Port 0: it exits before binding anything.
    let serve = |database: String| {
        vec![
            "serve".to_string(),
            "--primary".into(),
            "http://127.0.0.1:9".into(),
            "--candidate".into(),
            "http://127.0.0.1:9".into(),
            "--listen".into(),
            "127.0.0.1:0".into(),
            "--report-listen".into(),
            "127.0.0.1:0".into(),
            "--database-url".into(),
            database,
        ]
    };
    // Exits by itself (it never serves), so the test ends without a signal.
    let out = binary(serve(format!("sqlite://{}", missing.display()))).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("no-such-folder") && stderr.contains("does not exist"),
        "{stderr}"
    );
    assert!(!missing.parent().unwrap().exists());

    for anonymous in ["sqlite://", "sqlite::memory:"] {
        let out = binary(serve(anonymous.into())).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{anonymous}: {stderr}");
        assert!(stderr.contains("names no file"), "{anonymous}: {stderr}");
    }

    // A replay with a bad input creates no database either.
    let db = dir.path().join("replay.db");
    let out = binary(vec![
        "replay".into(),
        "--primary".into(),
        "http://127.0.0.1:9".into(),
        "--candidate".into(),
        "http://127.0.0.1:9".into(),
        "--database-url".into(),
        format!("sqlite://{}", db.display()),
        "--input".into(),
        dir.path().join("missing.jsonl").display().to_string(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(!db.exists(), "replay created the database before failing");
}

#[tokio::test]
async fn gate_on_the_database_decides_on_whole_counts_despite_lost_exemplars() {
    for db in support::databases().await {
        let store = SqlStore::connect(&db.url).await.unwrap();
        store.migrate().await.unwrap();
        let minute = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            / 60_000
            - 5;
        let counters = vec![CounterDelta {
            minute,
            endpoint: "GET /a".into(),
            outcome: "matched".into(),
            count: 50_000,
        }];
        let batch = Batch {
            counters,
            ..Batch::default()
        };
        store.write("one", "", &batch).await.unwrap();
        let gate = || {
            binary(vec![
                "gate".into(),
                "--database-url".into(),
                db.url.to_string(),
                "--since".into(),
                "1h".into(),
            ])
        };
        let out = gate().await;
        assert_eq!(out.status.code(), Some(0), "{}: {out:?}", db.name);
        let lost = Batch {
            lost: vec![(minute, 3)],
            ..Batch::default()
        };
        store.write("one", "", &lost).await.unwrap();
        store.checkpoint_and_close().await;
        // Stored losses are exemplars left out by their bounds: the counts
        // are whole, so the gate still decides on them.
        let out = gate().await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{}: {stderr}", db.name);
    }
}

#[tokio::test]
async fn a_body_that_does_not_decode_is_stored_with_its_headers_and_decode_failure() {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder
        .write_all(br#"{"id": 1, "token": "x"}"#.repeat(50).as_slice())
        .unwrap();
    let gzip = encoder.finish().unwrap();
    let truncated = gzip[..gzip.len() / 2].to_vec();
    let primary = support::backend(Router::new().fallback(move || {
        let body = truncated.clone();
        async move {
            (
                [
                    ("content-type", "application/json"),
                    ("content-encoding", "gzip"),
                ],
                body,
            )
        }
    }))
    .await;
    let candidate =
        support::backend(Router::new().fallback(|| async { axum::Json(json!({"id": 1})) })).await;
    for db in support::databases().await {
        let mut config = support::settings(&primary, candidate.url());
        config.database_url = Some(db.url.clone());
        let proxy = support::start(config).await;
        get_ok(&proxy, "/thing").await;
        proxy.outcomes(1).await;
        proxy.stop().await;
        let store = SqlStore::connect(&db.url).await.unwrap();
        let stored = store
            .mismatches(MismatchFilter::default(), None, 10)
            .await
            .unwrap();
        assert_eq!(stored.len(), 1, "{}", db.name);
        let record = &stored[0].record;
        assert!(
            record
                .primary
                .headers
                .iter()
                .any(|(n, v)| n == "content-encoding" && v == "gzip"),
            "{}: {:?}",
            db.name,
            record.primary.headers
        );
        let reasons = record.verdict["reasons"].to_string();
        assert!(
            reasons.contains("primary: gzip decoding failed"),
            "{}: {reasons}",
            db.name
        );
        assert!(
            !reasons.contains("not valid JSON"),
            "{}: {reasons}",
            db.name
        );
        store.checkpoint_and_close().await;
    }
}
