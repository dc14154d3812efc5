//! What deploy/ ships, held to what shadowdiff exports: the Grafana
//! dashboard is valid JSON whose every panel queries metrics a live
//! /metrics serves; the alert rules, the Flagger and Argo templates name
//! only such metrics; and `promtool` checks the rules and runs their unit
//! tests (a candidate 10% slower fires the latency alerts, one 2% slower
//! does not) where `SHADOWDIFF_TEST_PROMTOOL` names it, as CI does.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use axum::routing::get;
use axum::Router;
use serde_json::Value;
use shadowdiff::sampling::SampleRate;

use crate::support;

/// The variable naming promtool; CI sets it, so there these tests run.
const PROMTOOL_ENV: &str = "SHADOWDIFF_TEST_PROMTOOL";

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

/// The metric names a live /metrics serves after one compared request,
/// histograms with their `_bucket`, `_sum` and `_count` series.
async fn exported() -> BTreeSet<String> {
    let routes = || Router::new().fallback(get(|| async { "{}" }));
    let primary = support::backend(routes()).await;
    let candidate = support::backend(routes()).await;
    let db = support::sqlite_database();
    let mut settings = support::settings(&primary, candidate.url());
    settings.sample_rate = SampleRate::ALL;
    settings.database_url = Some(db.url.clone());
    let proxy = support::start_with_report(settings).await;
    support::client().get(proxy.url("/a")).send().await.unwrap();
    proxy.recorder.wait_for(1).await;
    let text = proxy.metrics().await;
    proxy.stop().await;
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap());
            names.insert(name.to_string());
            if kind == "histogram" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

/// Every `shadowdiff_…` metric name in a text (recording rules, with a
/// colon, are not metrics shadowdiff exports).
fn named_metrics(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("shadowdiff_") {
        let before = rest[..at].chars().last();
        let name: String = rest[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[at + name.len()..];
        if before.is_some_and(|c| c == ':' || c.is_ascii_alphanumeric()) {
            continue;
        }
        out.push(name);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_query_in_deploy_names_exported_metrics() {
    let exported = exported().await;
    assert!(
        exported.contains("shadowdiff_backend_latency_seconds_bucket"),
        "{exported:?}"
    );

    let text = std::fs::read_to_string(deploy("grafana/shadowdiff.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("the dashboard is valid JSON");
    let panels = dashboard["panels"].as_array().unwrap();
    let mut queried = 0;
    for panel in panels.iter().filter(|p| p["type"] != "row") {
        let title = panel["title"].as_str().unwrap();
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names = named_metrics(expr);
            assert!(
                !names.is_empty(),
                "{title}: {expr} names no shadowdiff metric"
            );
            for name in names {
                assert!(
                    exported.contains(&name),
                    "{title}: {name} is not exported ({expr})"
                );
            }
            queried += 1;
        }
    }
    assert!(queried >= 20, "{queried} queries");
    // What the issue asks the dashboard to show.
    let titles: Vec<&str> = panels.iter().filter_map(|p| p["title"].as_str()).collect();
    for wanted in [
        "Parity",
        "Byte parity",
        "Latency percentiles",
        "Error rates",
        "Cost",
        "Store",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(wanted)),
            "no {wanted} panel: {titles:?}"
        );
    }

    for file in [
        "prometheus/alerts.yml",
        "prometheus/alerts_test.yml",
        "flagger/metric-templates.yml",
        "argo/analysis-template.yml",
    ] {
        let text = std::fs::read_to_string(deploy(file)).unwrap();
        let names = named_metrics(&text);
        assert!(!names.is_empty(), "{file}");
        for name in names {
            assert!(exported.contains(&name), "{file}: {name} is not exported");
        }
    }
}

#[test]
fn named_metrics_skip_recording_rules() {
    assert_eq!(
        named_metrics("shadowdiff:parity:ratio_rate5m > x and rate(shadowdiff_samples_total[5m])"),
        vec!["shadowdiff_samples_total".to_string()]
    );
}

fn promtool() -> Option<String> {
    match std::env::var(PROMTOOL_ENV) {
        Ok(path) => Some(path),
        Err(_) => {
            eprintln!("skipped: {PROMTOOL_ENV} is not set (CI sets it)");
            None
        }
    }
}

#[test]
fn promtool_checks_the_rules_and_passes_their_unit_tests() {
    let Some(promtool) = promtool() else {
        return;
    };
    for args in [
        ["check", "rules", "alerts.yml"],
        ["test", "rules", "alerts_test.yml"],
    ] {
        let out = std::process::Command::new(&promtool)
            .args(args)
            .current_dir(deploy("prometheus"))
            .output()
            .unwrap_or_else(|e| panic!("{PROMTOOL_ENV}={promtool}: {e}"));
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
