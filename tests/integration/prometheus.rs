//! A real Prometheus scrapes the real binary's `--metrics-listen` on
//! loopback, with deploy/prometheus/alerts.yml loaded: PromQL for parity and
//! for the candidate/primary p99 ratio (the Flagger and Argo templates'
//! queries, and the recording rules) returns what the traffic implies.
//! Runs where `SHADOWDIFF_TEST_PROMETHEUS` names the prometheus binary, as
//! CI sets it.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, free_address, ServeProcess};

const PROMETHEUS_ENV: &str = "SHADOWDIFF_TEST_PROMETHEUS";

/// A backend taking `base_ms` spread evenly over ±20% (so that latencies
/// fill several histogram buckets, as real ones do), answering
/// `{"id":N,"v":V}`; the candidate's `v` differs for every fourth id. On
/// threads of its own, so the latency is what the network carried.
fn backend(base_ms: f64, candidate: bool) -> support::Backend {
    let turn = Arc::new(AtomicU64::new(0));
    support::threaded_backend(move |target| {
        let id: u64 = target
            .rsplit('/')
            .next()
            .and_then(|id| id.parse().ok())
            .unwrap_or(0);
        let step = turn.fetch_add(1, Ordering::Relaxed) % 40;
        let delay = base_ms * (0.8 + 0.4 * (step as f64 + 0.5) / 40.0);
        std::thread::sleep(Duration::from_secs_f64(delay / 1e3));
        let v = if candidate && id.is_multiple_of(4) {
            2
        } else {
            1
        };
        format!("{{\"id\":{id},\"v\":{v}}}")
    })
}

struct Prometheus {
    child: Child,
    address: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    fn start(binary: &str, target: SocketAddr) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/prometheus/alerts.yml");
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: shadowdiff\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        );
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let address = free_address();
        let child = Command::new(binary)
            .arg(format!(
                "--config.file={}",
                dir.path().join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={address}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{PROMETHEUS_ENV}={binary}: {e}"));
        Prometheus {
            child,
            address,
            _dir: dir,
        }
    }

    /// The query's single value, if it has one yet.
    async fn value(&self, query: &str) -> Option<f64> {
        let response = support::client()
            .get(format!("http://{}/api/v1/query", self.address))
            .query(&[("query", query)])
            .send()
            .await
            .ok()?;
        let body: Value = response.json().await.ok()?;
        assert_ne!(body["status"], "error", "{query}: {body}");
        let result = body["data"]["result"].as_array()?;
        assert!(result.len() <= 1, "{query}: {body}");
        result.first()?["value"][1].as_str()?.parse().ok()
    }

    /// Waits (bounded) until `query` has a value satisfying `ready`.
    async fn wait_for(&self, query: &str, ready: impl Fn(f64) -> bool) -> f64 {
        for _ in 0..300 {
            if let Some(v) = self.value(query).await.filter(|v| ready(*v)) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{query} never became ready: {:?}", self.value(query).await);
    }
}

/// `n` requests for ids from `first`, sixteen at a time.
async fn traffic(proxy: &ServeProcess, first: u64, n: u64) {
    let base = proxy.url("/items/");
    let clients: Vec<_> = (0..16)
        .map(|lane| {
            let base = base.clone();
            tokio::spawn(async move {
                for id in (first + lane..first + n).step_by(16) {
                    let r = support::client()
                        .get(format!("{base}{id}"))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                }
            })
        })
        .collect();
    for c in clients {
        c.await.unwrap();
    }
}

/// The queries deploy/ ships, with their template variables filled in.
fn shipped_query(file: &str, name: &str) -> String {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy")
            .join(file),
    )
    .unwrap();
    let at = text
        .find(&format!("name: {name}\n"))
        .unwrap_or_else(|| panic!("{file}: no {name}"));
    let mut lines = text[at..]
        .lines()
        .skip_while(|l| !l.trim_end().ends_with("query: |"));
    let head = lines
        .next()
        .unwrap_or_else(|| panic!("{file}: {name} has no query"));
    let indent = head.len() - head.trim_start().len();
    // The block scalar: the lines indented deeper than its key.
    lines
        .take_while(|l| l.len() - l.trim_start().len() > indent)
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
        .replace("{{ variables.endpoint }}", ".*")
        .replace("{{args.endpoint}}", ".*")
        .replace("{{ interval }}", "1m")
        .replace("[5m]", "[1m]")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_reads_parity_and_the_latency_ratio_the_traffic_implies() {
    let Ok(binary) = std::env::var(PROMETHEUS_ENV) else {
        eprintln!("skipped: {PROMETHEUS_ENV} is not set (CI sets it)");
        return;
    };
    // A candidate 10% slower, differing on every fourth id.
    // Long enough that what a loaded machine adds to either side (a few
    // ms, while every other test runs) moves the ratio by little.
    let primary = backend(100.0, false);
    let candidate = backend(110.0, true);
    let metrics = free_address();
    let proxy = ServeProcess::shadowing(
        &primary.url().to_string(),
        &candidate.url().to_string(),
        &["--metrics-listen", &metrics.to_string()],
    )
    .await;
    let prometheus = Prometheus::start(&binary, metrics);
    prometheus
        .wait_for("up{job=\"shadowdiff\"}", |v| v == 1.0)
        .await;

    // Counters first seen at a scrape count from there: some traffic, a
    // scrape, then the traffic the queries measure, then a scrape.
    traffic(&proxy, 1, 40).await;
    prometheus
        .wait_for("sum(shadowdiff_comparisons_total)", |v| v >= 40.0)
        .await;
    // Enough that p99 is not the one or two slowest, which a machine
    // running every other test beside this one now and then delays.
    traffic(&proxy, 41, 480).await;
    prometheus
        .wait_for("sum(shadowdiff_comparisons_total)", |v| v >= 520.0)
        .await;
    tokio::time::sleep(Duration::from_millis(1_500)).await;

    // Every fourth id differs: parity 0.75, exactly, whatever the window.
    // The bodies differ too: byte parity is the same 0.75.
    for query in [
        shipped_query("flagger/metric-templates.yml", "shadowdiff-parity"),
        shipped_query("argo/analysis-template.yml", "parity"),
        shipped_query("flagger/metric-templates.yml", "shadowdiff-byte-parity"),
        shipped_query("argo/analysis-template.yml", "byte-parity"),
    ] {
        let parity = prometheus.value(&query).await.unwrap_or(f64::NAN);
        assert!((parity - 0.75).abs() < 1e-9, "{query}: {parity}");
    }
    let recorded = prometheus
        .wait_for("shadowdiff:parity:ratio_rate5m", |v| v.is_finite())
        .await;
    assert!((recorded - 0.75).abs() < 1e-9, "recording rule: {recorded}");

    // 110 ms against 100 ms, each spread ±20%: 1.10, to within the 4.4%
    // buckets' interpolation.
    for query in [
        shipped_query(
            "flagger/metric-templates.yml",
            "shadowdiff-latency-p99-ratio",
        ),
        shipped_query("argo/analysis-template.yml", "latency-p99-ratio"),
    ] {
        let ratio = prometheus.value(&query).await.unwrap_or(f64::NAN);
        assert!((1.05..1.15).contains(&ratio), "{query}: {ratio}");
    }
    let p50 = prometheus
        .value("histogram_quantile(0.5, sum by (le) (rate(shadowdiff_backend_latency_seconds_bucket{backend=\"candidate\"}[1m]))) / histogram_quantile(0.5, sum by (le) (rate(shadowdiff_backend_latency_seconds_bucket{backend=\"primary\"}[1m])))")
        .await
        .unwrap_or(f64::NAN);
    assert!((p50 - 1.10).abs() < 0.03, "p50 ratio {p50}");
    let (code, log) = proxy.terminate();
    assert_eq!(code, Some(0), "{log}");
}
