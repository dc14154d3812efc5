//! `shadowdiff show` as a person at a terminal runs it: the real binary
//! reading the report API of a real `serve` in front of two real backends
//! with known differences (an item whose name differs, a status the
//! candidate no longer finds, a health check both answer alike). The
//! tables must show the API's numbers in aligned columns, colour only when
//! asked, the side-by-side diff must put the two differing values on one
//! line, and every refusal or failure must be one clear line and the
//! documented exit code.

use std::time::Duration;

use serde_json::Value;

use crate::support;

const TOKEN: &str = "t0k3n";

fn primary_answer(parts: &http::request::Parts) -> (http::StatusCode, &'static str) {
    match parts.uri.path() {
        "/items/7" => (http::StatusCode::OK, r#"{"id":7,"name":"item","price":3}"#),
        _ => (http::StatusCode::OK, r#"{"ok":true}"#),
    }
}

fn candidate_answer(parts: &http::request::Parts) -> (http::StatusCode, &'static str) {
    match parts.uri.path() {
        // Keys in another order too: only the name differs once sorted.
        "/items/7" => (http::StatusCode::OK, r#"{"price":3,"name":"?","id":7}"#),
        "/status" => (http::StatusCode::NOT_FOUND, r#"{"ok":true}"#),
        _ => (http::StatusCode::OK, r#"{"ok":true}"#),
    }
}

/// `shadowdiff show ARGS` against the report API on `report` (with the
/// token unless `token` is none): exit code, stdout, stderr.
async fn show(report: u16, token: Option<&str>, args: &[&str]) -> (Option<i32>, String, String) {
    support::api_command("show", (report, token), args).await
}

/// GET `/api/v1/{path}` with the token, as JSON.
async fn api(report: u16, path: &str) -> Value {
    let url = format!("http://127.0.0.1:{report}/api/v1/{path}");
    support::json_of(support::client().get(url).bearer_auth(TOKEN)).await
}

/// Where each title starts and ends on the title line, in chars.
fn edges(title_line: &str, titles: &[&str]) -> Vec<(usize, usize)> {
    titles
        .iter()
        .map(|t| {
            let at = title_line
                .find(t)
                .unwrap_or_else(|| panic!("{t} in {title_line}"));
            let start = title_line[..at].chars().count();
            (start, start + t.chars().count())
        })
        .collect()
}

/// The row's cell of a left-aligned column starts where its title does:
/// a non-space there, a space (or the line's start) before it.
fn starts_at(row: &str, start: usize) -> bool {
    let chars: Vec<char> = row.chars().collect();
    chars.get(start).is_some_and(|c| *c != ' ') && (start == 0 || chars[start - 1] == ' ')
}

/// The row's cell of a right-aligned column ends where its title does.
fn ends_at(row: &str, end: usize) -> bool {
    let chars: Vec<char> = row.chars().collect();
    chars.get(end - 1).is_some_and(|c| *c != ' ') && chars.get(end).is_none_or(|c| *c == ' ')
}

/// The line of `text` that starts (after spaces) with `first`.
fn row<'a>(text: &'a str, first: &str) -> &'a str {
    text.lines()
        .find(|l| l.trim_start().starts_with(first))
        .unwrap_or_else(|| panic!("no row starting with {first:?} in\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_renders_the_report_api_for_a_terminal() {
    let (primary, _) = support::answering_backend(primary_answer).await;
    let (candidate, _) = support::answering_backend(candidate_answer).await;
    let dir = tempfile::tempdir().unwrap();
    let config = format!(
        r#"
            listen = "127.0.0.1:0"
            report_listen = "127.0.0.1:0"
            primary = "{}"
            candidate = "{}"
            database_url = "sqlite://{}"
            sample_rate = 1
            report_token = "{TOKEN}"

            [[route]]
            match = "GET /items/{{id}}"
            "#,
        primary.url(),
        candidate.url(),
        dir.path().join("store.db").display(),
    );
    let (mut serve, listen, report) = support::serve_config(dir.path(), "show", &config, &[]).await;
    let client = support::client();
    for (target, times) in [("/items/7", 4), ("/health", 6), ("/status", 2)] {
        for _ in 0..times {
            let url = format!("http://127.0.0.1:{listen}{target}");
            let response = client.get(url).send().await.unwrap();
            assert_eq!(
                response.status(),
                200,
                "the client gets the primary's answer"
            );
        }
    }
    // The writer stores counts and exemplars every 500 ms.
    let mut stored = false;
    for _ in 0..200 {
        let summary = api(report, "summary").await;
        let mismatches = api(report, "mismatches").await;
        let items = mismatches["items"].as_array().map_or(0, Vec::len);
        if summary["totals"]["compared"] == 12 && items == 6 {
            stored = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        stored,
        "the 12 comparisons and 6 mismatches were not stored"
    );

    summary_rows_carry_the_api_numbers(report).await;
    groups_name_what_differs_and_a_mismatch_id(report).await;
    colour_only_when_asked(report).await;
    a_mismatch_side_by_side(report).await;
    refusals_and_failures_are_one_line_and_an_exit_code(report).await;

    // The proxy's port by mistake: the primary answers, not the report
    // API; what it said is rendered, with a hint, and nothing panics.
    let (code, out, err) = show(listen, Some(TOKEN), &["summary"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("is --report-url the report API's address?"),
        "{out}"
    );
    let (code, out, err) = show(listen, Some(TOKEN), &["mismatch", "1"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("\nmismatch - ") && out.starts_with("note: "),
        "{out}"
    );

    let _ = serve.kill();
    let _ = serve.wait();
}

async fn summary_rows_carry_the_api_numbers(report: u16) {
    let (code, out, err) = show(report, Some(TOKEN), &["summary", "--since", "1h"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(!out.contains('\x1b'), "piped output has no colour: {out:?}");
    assert!(
        out.contains("compared  12: 6 matched, 6 mismatched"),
        "{out}"
    );
    let titles = [
        "ENDPOINT",
        "COMPARED",
        "PARITY",
        "LOWER 95%",
        "MISMATCHED",
        "CAND ERR",
        "DROPPED",
        "P50 ms P/C",
        "P99 ms P/C",
        "BYTE PARITY",
    ];
    let title_line = row(&out, "ENDPOINT");
    let at = edges(title_line, &titles);
    let api = api(report, "summary?since=1h").await;
    let endpoints = api["endpoints"].as_array().unwrap();
    assert_eq!(endpoints.len(), 3, "{api}");
    for e in endpoints {
        let name = e["endpoint"].as_str().unwrap();
        let line = row(&out, name);
        assert!(starts_at(line, at[0].0), "{line:?}\n{out}");
        for (title, (_, end)) in titles.iter().zip(&at).skip(1) {
            assert!(
                ends_at(line, *end),
                "{title} of {line:?} is not aligned\n{out}"
            );
        }
        let cells: Vec<&str> = line[name.len()..]
            .split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        assert_eq!(cells[0], e["compared"].to_string(), "{line}");
        let parity = e["parity"].as_f64().unwrap();
        assert_eq!(cells[1], format!("{:.2}%", parity * 100.0), "{line}");
        assert_eq!(cells[3], e["mismatched"].to_string(), "{line}");
        assert_eq!(cells[4], e["candidate_errors"].to_string(), "{line}");
        assert_eq!(cells[5], e["dropped"].to_string(), "{line}");
    }
    assert!(row(&out, "GET /items/{id}").contains("0.00%"), "{out}");
    assert!(row(&out, "GET /health").contains("100.00%"), "{out}");
}

async fn groups_name_what_differs_and_a_mismatch_id(report: u16) {
    let (code, out, err) = show(report, Some(TOKEN), &["groups"]).await;
    assert_eq!(code, Some(0), "{err}");
    let titles = [
        "GROUP",
        "ENDPOINT",
        "SEVERITY",
        "STATUS",
        "FIRST SEEN",
        "LAST SEEN",
        "DIFFERS",
    ];
    let at = edges(row(&out, "ID"), &titles);
    let count_end = edges(row(&out, "ID"), &["COUNT"])[0].1;
    let groups = api(report, "groups").await;
    let mismatches = api(report, "mismatches").await;
    assert_eq!(groups.as_array().unwrap().len(), 2, "{groups}");
    for g in groups.as_array().unwrap() {
        let fingerprint = g["fingerprint"].as_str().unwrap();
        let newest = mismatches["items"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["fingerprint"] == fingerprint)
            .unwrap();
        let line = row(&out, &format!("{} ", newest["id"]));
        assert!(line.contains(&fingerprint[..8]), "{line}");
        for (title, (start, _)) in titles.iter().zip(&at) {
            assert!(
                starts_at(line, *start),
                "{title} of {line:?} is not aligned\n{out}"
            );
        }
        assert!(ends_at(line, count_end), "{line:?}\n{out}");
        // The count, then the group's class (the API lists the worst first).
        let class = g["severity"].as_str().unwrap();
        assert!(
            line.contains(&format!(" {}  {class} ", g["count"])),
            "{line}"
        );
        assert!(line.contains(" open "), "{line}");
        assert!(line.contains(g["endpoint"].as_str().unwrap()), "{line}");
    }
    let items = out.lines().find(|l| l.contains("GET /items/{id}")).unwrap();
    assert!(items.contains("/name"), "{items}");
    let status = out.lines().find(|l| l.contains("GET /status")).unwrap();
    assert!(status.contains("status 200 → 404"), "{status}");

    // Filters reach the API; a narrow terminal cuts, never wraps, rows.
    let (_, only, _) = show(
        report,
        Some(TOKEN),
        &["groups", "--endpoint", "GET /status"],
    )
    .await;
    assert!(
        !only.contains("GET /items") && only.contains("GET /status"),
        "{only}"
    );
    let (_, none, _) = show(report, Some(TOKEN), &["groups", "--status", "bug"]).await;
    assert_eq!(none, "no mismatch groups\n");
    let (_, narrow, _) = show(report, Some(TOKEN), &["groups", "--width", "60"]).await;
    assert!(narrow.lines().all(|l| l.chars().count() <= 60), "{narrow}");
    // --json is the API's answer as it came.
    let (code, json, _) = show(report, Some(TOKEN), &["groups", "--json"]).await;
    assert_eq!(code, Some(0));
    assert_eq!(serde_json::from_str::<Value>(&json).unwrap(), groups);
}

async fn colour_only_when_asked(report: u16) {
    let (_, always, _) = show(report, Some(TOKEN), &["summary", "--color", "always"]).await;
    assert!(always.contains("\x1b[1mENDPOINT\x1b[0m"), "{always:?}");
    assert!(always.contains("\x1b[31m"), "mismatches in red: {always:?}");
    let (_, never, _) = show(report, Some(TOKEN), &["groups", "--color", "never"]).await;
    assert!(!never.contains('\x1b'), "{never:?}");
    let (_, piped, _) = show(report, Some(TOKEN), &["groups"]).await;
    assert!(!piped.contains('\x1b'), "{piped:?}");
    assert_eq!(piped, never);
}

async fn a_mismatch_side_by_side(report: u16) {
    let mismatches = api(report, "mismatches").await;
    let item = mismatches["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == "/items/7")
        .unwrap();
    let id = item["id"].to_string();
    let (code, out, err) = show(report, Some(TOKEN), &["mismatch", &id, "--width", "100"]).await;
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with(&format!("mismatch {id}  at ")), "{out}");
    assert!(out.contains("\nGET /items/7\n"), "the request line: {out}");
    assert!(
        row(&out, "status").contains("200") && !row(&out, "status").starts_with('!'),
        "{out}"
    );
    assert!(row(&out, "latency").contains(" ms"), "{out}");
    // The differing values on one line, marked, in two columns.
    let name = out
        .lines()
        .find(|l| l.contains("\"name\": \"item\""))
        .unwrap();
    assert!(name.contains("\"name\": \"?\""), "{out}");
    assert_eq!(name.chars().nth(49), Some('|'), "{out}");
    let id_line = out.lines().find(|l| l.contains("\"id\": 7")).unwrap();
    assert_eq!(
        id_line.matches("\"id\": 7").count(),
        2,
        "sorted keys align: {out}"
    );
    assert!(out.contains("differing paths\n  /name\n"), "{out}");
    assert_eq!(out.matches("curl -X 'GET'").count(), 2, "{out}");
    assert!(
        out.lines()
            .all(|l| l.starts_with("    curl") || l.chars().count() <= 100),
        "{out}"
    );

    let (_, coloured, _) = show(report, Some(TOKEN), &["mismatch", &id, "--color", "always"]).await;
    assert!(
        coloured.contains("\x1b[31m  \"name\": \"item\""),
        "{coloured:?}"
    );
    assert!(
        coloured.contains("\x1b[32m  \"name\": \"?\""),
        "{coloured:?}"
    );

    let status = mismatches["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["path"] == "/status")
        .unwrap();
    let (_, out, _) = show(
        report,
        Some(TOKEN),
        &["mismatch", &status["id"].to_string()],
    )
    .await;
    let line = row(&out, "! ");
    assert!(
        line.contains("status") && line.contains("200") && line.contains("404"),
        "{out}"
    );
}

async fn refusals_and_failures_are_one_line_and_an_exit_code(report: u16) {
    let one_line = |err: &str| err.trim_end().lines().count() == 1 && !err.contains("panicked");

    let (code, out, err) = show(report, Some("wrong"), &["summary"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(out.is_empty() && one_line(&err), "{err}");
    assert!(err.contains("refused the token (401)"), "{err}");
    let (code, _, err) = show(report, None, &["groups"]).await;
    assert_eq!(code, Some(2), "no token: {err}");

    let (code, _, err) = show(report, Some(TOKEN), &["mismatch", "987654"]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(
        one_line(&err) && err.contains("no mismatch 987654"),
        "{err}"
    );

    let (code, _, err) = show(report, Some(TOKEN), &["mismatch", "seven"]).await;
    assert_eq!(code, Some(2), "a bad argument: {err}");

    let free = support::free_address().port();
    let (code, _, err) = show(free, Some(TOKEN), &["summary"]).await;
    assert_eq!(code, Some(1), "{err}");
    assert!(
        one_line(&err) && err.contains("cannot reach the report API"),
        "{err}"
    );

    // A URL that cannot be the report API's is the caller's to fix.
    let args = ["show", "summary", "--report-url", "ftp://127.0.0.1/"];
    let out = support::binary(args.map(String::from).to_vec()).await;
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        one_line(&err) && err.contains("not an http:// or https:// URL"),
        "{err}"
    );
}
