//! `shadowdiff diff` through the real binary: saved responses compared
//! offline under a config's rules, with exit codes 0 (equal), 1 (different)
//! and 2 (bad input, with a message naming it).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_shadowdiff");

fn shadowdiff(args: &[&str]) -> Output {
    Command::new(BIN).args(args).env_clear().output().unwrap()
}

fn fixture(case: &str, side: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/compare")
        .join(case)
        .join(format!("{side}.http"))
}

fn file(suffix: &str, text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(suffix).tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    file
}

fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn saved_responses_are_compared_under_the_configs_rules() {
    let (p, c) = (
        fixture("scalar-as-array", "primary"),
        fixture("scalar-as-array", "candidate"),
    );
    // Without rules, "shoes" against ["shoes"] is a difference, with its patch.
    let out = shadowdiff(&["diff", path(&p), path(&c)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.starts_with("different (json)"), "{stdout}");
    assert!(
        stdout.contains("body differs at: /args/page, /args/q"),
        "{stdout}"
    );
    assert!(
        stdout.contains("JSON Patch (primary to candidate)"),
        "{stdout}"
    );
    assert!(stdout.contains("\"op\": \"replace\""), "{stdout}");
    // The rule forgives exactly that.
    let config = file(".toml", "[compare]\nscalar_as_array = [\"/args/*\"]\n");
    let out = shadowdiff(&["diff", "--config", path(config.path()), path(&p), path(&c)]);
    let (stdout, stderr) = text(&out);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.starts_with("equal under the rules"), "{stdout}");
}

#[test]
fn a_routes_rules_apply_to_the_request_named() {
    let (p, c) = (
        fixture("scalar-as-array", "primary"),
        fixture("scalar-as-array", "candidate"),
    );
    let config = file(
        ".toml",
        "[[route]]\nmatch = \"GET /search\"\n[route.compare]\nscalar_as_array = [\"/args/*\"]\n",
    );
    let run = |request: &str| {
        let args = [
            "diff",
            "--config",
            path(config.path()),
            "--request",
            request,
        ];
        shadowdiff(&[&args[..], &[path(&p), path(&c)]].concat())
            .status
            .code()
    };
    assert_eq!(run("GET /search"), Some(0));
    assert_eq!(run("GET /other"), Some(1));
    let out = shadowdiff(&["diff", "--request", "search", path(&p), path(&c)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out).1.contains("METHOD /path"), "{}", text(&out).1);
}

#[test]
fn body_files_take_their_type_from_the_extension_or_the_flag() {
    let primary = file(".json", "{\"price\": 1.0, \"tags\": []}");
    let candidate = file(".json", "{\"tags\":[],\"price\":1}");
    let out = shadowdiff(&["diff", path(primary.path()), path(candidate.path())]);
    assert_eq!(out.status.code(), Some(0), "{:?}", text(&out));
    // As text, the same bytes differ, and the JSON output says so in the
    // report API's verdict format.
    let out = shadowdiff(&[
        "diff",
        "--content-type",
        "text/plain",
        "--format",
        "json",
        path(primary.path()),
        path(candidate.path()),
    ]);
    assert_eq!(out.status.code(), Some(1), "{:?}", text(&out));
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(verdict["version"], 1, "{verdict}");
    assert_eq!(verdict["matched"], false);
    assert_eq!(verdict["body_kind"], "text");
    assert!(
        verdict["text_diff"]
            .as_str()
            .unwrap()
            .contains("+{\"tags\""),
        "{verdict}"
    );
}

#[test]
fn bad_input_exits_2_with_a_clear_message() {
    let good = fixture("scalar-as-array", "primary");
    let missing = Path::new("/nonexistent/primary.http");
    let out = shadowdiff(&["diff", path(missing), path(&good)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out)
            .1
            .contains("cannot read /nonexistent/primary.http"),
        "{:?}",
        text(&out)
    );

    // A config refused names the key at fault, whatever is wrong with it.
    for (config, named) in [
        (
            "[compare]\nscalar_as_array = \"/args\"\n",
            "scalar_as_array",
        ),
        (
            "[compare]\nforgive_everything = true\n",
            "forgive_everything",
        ),
        (
            "[compare]\nheader_mask = { \"bad name\" = \"any\" }\n",
            "bad name",
        ),
        (
            "[compare]\nmedia_types_equal = [[\"text/html\"]]\n",
            "media_types_equal",
        ),
        // A rule another rule of its table makes idle is refused too.
        (
            "[[route]]\nmatch = \"GET /a\"\n[route.compare]\nbody = \"ignore\"\nmask = { \"/id\" = \"uuid\" }\n",
            "route[0].compare",
        ),
        (
            "[compare]\nignore = [\"/a\"]\nunordered = [\"/a\"]\n",
            "\"/a\" is in ignore and in unordered",
        ),
    ] {
        let config = file(".toml", config);
        let out = shadowdiff(&[
            "diff",
            "--config",
            path(config.path()),
            path(&good),
            path(&good),
        ]);
        assert_eq!(out.status.code(), Some(2), "{named}");
        assert!(text(&out).1.contains(named), "{named}: {:?}", text(&out));
    }

    let broken = file(
        ".http",
        "HTTP/1.1 two hundred\nContent-Type: text/plain\n\nhi\n",
    );
    let out = shadowdiff(&["diff", path(broken.path()), path(&good)]);
    assert_eq!(out.status.code(), Some(2));
    let (_, stderr) = text(&out);
    assert!(
        stderr.contains("is not a saved response") && stderr.contains("status line"),
        "{stderr}"
    );
}
