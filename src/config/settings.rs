//! The settings table: every serve setting declared once, with its file key
//! (which also names its `SHADOWDIFF_<KEY>` variable and its flag), the type
//! it is read as, its flag's placeholder, its default, its help text, and
//! where it lands in [`Settings`]. `declare.rs` turns the table into
//! `Settings`, `Layer` and `ServeFlags`; a test holds README.md's settings
//! table to it.
//!
//! A new setting of a type already here is one entry below (and its README
//! row). Entries read
//! `key: LayerType, "VALUE_NAME", DEFAULT => field: SettingsType, via conversion;`
//! with DEFAULT one of `default("text")`, `computed(function, "words")`,
//! `none` or `serving("text")` (see `declare.rs`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroUsize};
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::backends::{BackendName, BackendSpec, CandidateChoice};
use super::declare::declare_settings;
use super::rewrite::Rewrite;
use super::{
    BackendUrl, DelayMillis, Fallback, GateWatch, HostHeader, HumanDuration, NonZeroMillis,
    ReportToken, RoleHeader, WebhookUrl, Writes,
};
use crate::compare::CompareConfig;
use crate::endpoint::RoutePattern;
use crate::redact::RedactConfig;
use crate::sampling::{SampleRate, StickyKey, Weight};
use crate::store::DatabaseUrl;

declare_settings! {
    required {
        /// Base URL of the old backend, whose responses clients receive.
        primary: BackendUrl, "URL";
        /// Base URL of the new backend, which gets the shadow copies.
        candidate: BackendUrl, "URL";
    }
    scalar {
        /// Address to accept client (or mirror) traffic on.
        listen: SocketAddr, "ADDR", default(Settings::DEFAULT_LISTEN)
            => listen: SocketAddr;
        /// inline: proxy in front of the primary; mirror: target of a traffic
        /// mirror, answers 202; collector: takes request/response pairs the
        /// primary already answered (`POST /collect`) and calls only the
        /// candidate.
        mode: Mode, "MODE", default("inline") => mode: Mode;
        /// Fraction of requests to shadow, 0.0 to 1.0.
        sample_rate: SampleRate, "F", default("1.0") => sample_rate: SampleRate;
        /// Sample by a stable hash of this key instead of at random:
        /// header:NAME, cookie:NAME or query:NAME.
        sticky_key: StickyKey, "KEY", none => sticky_key: Option<StickyKey>, via Some;
        /// Bodies larger than this pass through uncompared.
        max_body_bytes: NonZeroUsize, "BYTES", default("10485760")
            => max_body_bytes: usize, via NonZeroUsize::get;
        /// Memory for all body copies held for comparison; beyond it samples
        /// are skipped.
        max_buffered_bytes: NonZeroUsize, "BYTES", default("268435456")
            => max_buffered_bytes: usize, via NonZeroUsize::get;
        /// Give up on the candidate after this long.
        candidate_timeout_ms: NonZeroMillis, "MS", default("5000")
            => candidate_timeout: Duration, via NonZeroMillis::duration;
        /// Shadow calls at once, each holding a candidate connection.
        max_in_flight: NonZeroUsize, "N", default("4096") => max_in_flight: NonZeroUsize;
        /// Shadow work waiting for a slot; beyond it samples are dropped and
        /// counted.
        queue: NonZeroUsize, "N", default("10000") => queue: NonZeroUsize;
        /// On SIGTERM/SIGINT, wait this long for running comparisons.
        drain_timeout_ms: u64, "MS", default("10000")
            => drain_timeout: Duration, via Duration::from_millis;
        // `Settings::new`, which tests use, keeps them in memory only.
        /// A second instance of the primary: sampled requests also go there,
        /// to learn which differences the old code has with itself (noise).
        secondary: BackendUrl, "URL", none => secondary: Option<BackendUrl>, via Some;
        /// Paired samples an endpoint needs before any of its paths can be
        /// noise.
        noise_min_samples: NonZeroUsize, "N", default("20") => noise_min_samples: NonZeroUsize;
        /// Where outcomes and mismatches are stored: sqlite://FILE or
        /// postgres://….
        database_url: DatabaseUrl, "URL", serving("sqlite://shadowdiff.db")
            => database_url: Option<DatabaseUrl>, via Some;
        /// This instance's name in the store.
        instance: String, "NAME", computed(default_instance, "the host name")
            => instance: String;
        /// Stored data older than this is pruned: 12h, 14d, 4w.
        retention: HumanDuration, "DURATION", default("14d")
            => retention: Duration, via Duration::from;
        /// Mismatch exemplars waiting for the database; beyond, they are lost
        /// and counted.
        store_queue: NonZeroUsize, "N", default("10000") => store_queue: NonZeroUsize;
        /// Exemplar bytes stored per hour (and waiting in memory) at most;
        /// beyond, exemplars are lost and counted.
        store_exemplar_bytes_per_hour: NonZeroUsize, "BYTES", default("67108864")
            => store_exemplar_bytes_per_hour: NonZeroUsize;
        /// Bytes of each body (request, primary, candidate) a stored
        /// mismatch keeps; beyond, it is cut and marked truncated.
        store_body_bytes: NonZeroUsize, "BYTES", default("262144")
            => store_body_bytes: NonZeroUsize;
        /// Address of the report API.
        report_listen: SocketAddr, "ADDR", default(Settings::DEFAULT_REPORT_LISTEN)
            => report_listen: SocketAddr;
        /// Every this often, one info line per endpoint with what its samples
        /// did since the last one (counts, parity, mean latencies).
        log_summary_every_ms: NonZeroMillis, "MS", default("60000")
            => log_summary_every: Duration, via NonZeroMillis::duration;
        /// Address of a listener serving only `/metrics` (and `/healthz`),
        /// without the report token: for a Prometheus that should not hold
        /// it. Unset, `/metrics` is on the report API's listener.
        metrics_listen: SocketAddr, "ADDR", none
            => metrics_listen: Option<SocketAddr>, via Some;
        /// POST each notification (a new mismatch group, a change of the
        /// watched gate's verdict) here as JSON; retried with backoff, each
        /// failure counted, never on a client's path.
        notify_webhook_url: WebhookUrl, "URL", none
            => notify_webhook_url: Option<WebhookUrl>, via Some;
        /// The same notifications as a Slack-compatible message
        /// (`{"text": …}`), for a Slack or Mattermost incoming webhook.
        notify_slack_url: WebhookUrl, "URL", none
            => notify_slack_url: Option<WebhookUrl>, via Some;
        /// A gate to watch, as `/api/v1/gate` query parameters
        /// (`min_parity=99.9&max_latency_ratio=p99=1.05&since=1h`): each
        /// change of its verdict is notified. Needs a notification URL.
        notify_gate: GateWatch, "QUERY", none
            => notify_gate: Option<GateWatch>, via Some;
        /// How often the watched gate is decided.
        notify_gate_every_ms: NonZeroMillis, "MS", default("60000")
            => notify_gate_every: Duration, via NonZeroMillis::duration;
        /// Token the report API requires as `Authorization: Bearer`; without
        /// one the API is open (an empty one is refused).
        report_token: ReportToken, "TOKEN", none
            => report_token: Option<ReportToken>, via Some;
        /// Distinct automatic endpoint names kept before the rest count as
        /// `other`.
        max_endpoints: NonZeroUsize, "N", default("500") => max_endpoints: NonZeroUsize;
        /// Append sampled requests, redacted, to this file as JSON Lines that
        /// `replay --input` reads.
        record: PathBuf, "FILE", none => record: Option<PathBuf>, via non_empty_path;
        /// Answer 504 when the primary has not sent its response head within
        /// this; unset waits.
        primary_timeout_ms: NonZeroMillis, "MS", none
            => primary_timeout: Option<Duration>, via some_duration;
        /// Host header for the primary: client (the client's own), backend
        /// (the URL's authority) or a fixed name.
        primary_host: HostHeader, "HOST", default("client") => primary_host: HostHeader;
        /// Host header for the candidate: client, backend or a fixed name.
        candidate_host: HostHeader, "HOST", default("client") => candidate_host: HostHeader;
        /// The header every shadow call carries so a backend can tell it
        /// apart (value `shadow`); `off` sends none.
        role_header: RoleHeader, "NAME", default("x-shadowdiff-role") => role_header: RoleHeader;
        /// The share of clients (percent, 0 to 100) the candidate serves,
        /// for requests whose route sets none: sticky by `sticky_key`, nested
        /// (a client served at 5% is served at 25%); per request without a key.
        weight: Weight, "PERCENT", default("0") => weight: Weight;
        /// Where unsafe methods go at a weight above 0: cohort (with the
        /// client's other requests) or primary.
        writes: Writes, "WHO", default("cohort") => writes: Writes;
        /// For a safe request the candidate serves and that gets no response
        /// head (no connection, a reset, no answer within the candidate's
        /// timeout): primary answers it instead, or off.
        fallback: Fallback, "WHAT", default("off") => fallback: Fallback;
        /// While this file exists, every serving weight is 0 on this
        /// instance (a kill switch for operators without API access).
        kill_file: PathBuf, "FILE", none => kill_file: Option<PathBuf>, via non_empty_path;
        /// How often the stored serving weights are applied and plans
        /// decided; every instance on one database applies a change within it
        /// (and the store writer's 500 ms for the counts a gate reads).
        rollout_sync_ms: NonZeroMillis, "MS", default("1000")
            => rollout_sync_every: Duration, via NonZeroMillis::duration;
        /// Threads for shadow work (candidate calls, comparisons), apart from
        /// the client path's.
        shadow_threads: NonZeroUsize, "N",
            computed(default_shadow_threads, "half the cores, at least 1")
            => shadow_threads: NonZeroUsize;
        /// Candidate failures in a row (errors, timeouts, heads or bodies over
        /// the limits) after which shadowing pauses, probing once a cooldown
        /// (1 s doubling to 30 s); 0 never pauses.
        breaker_failures: u32, "N", default("5")
            => breaker_failures: Option<NonZeroU32>, via NonZeroU32::new;
        /// On a mismatch of a safe request (GET, HEAD, OPTIONS), call both
        /// backends again after `recheck_delay_ms`: a difference gone by then
        /// came from data changing between the two calls and ends as
        /// `skipped/transient`. For routes that set no `recheck` of their own.
        recheck: bool, "BOOL", default("false") => recheck: bool;
        /// How long a mismatch waits before its recheck, 0 to 60000.
        recheck_delay_ms: DelayMillis, "MS", default("1000")
            => recheck_delay: Duration, via DelayMillis::duration;
    }
    groups {
        /// How client connections are bounded in time and number.
        connections: ConnectionLimits {
            /// A client must send a whole request head within this, from
            /// connecting or from a request's first byte.
            header_read_timeout_ms: NonZeroMillis, "MS", default("10000")
                => header_read_timeout, via NonZeroMillis::duration;
            /// Close a kept-alive client connection idle this long.
            idle_timeout_ms: NonZeroMillis, "MS", default("60000")
                => idle_timeout, via NonZeroMillis::duration;
            /// Client connections open at once (lowered to fit the open-file
            /// limit); at the cap the oldest idle one is closed.
            max_connections: NonZeroUsize, "N", default("10000") => max_connections;
        }
    }
    file_only {
        /// Settings per route (`[[route]]`); the first route that fits a
        /// request wins.
        routes: Vec<Route>, "route";
        /// Named backends (`[backend.NAME]`), which routes refer to.
        backends: BTreeMap<BackendName, BackendSpec>, "backend";
        /// The global comparison rules (`[compare]`).
        compare: CompareConfig, "compare";
        /// What is masked before storage (`[redact]`).
        redact: RedactConfig, "redact";
    }
}

impl Settings {
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";
    pub const DEFAULT_REPORT_LISTEN: &'static str = "127.0.0.1:9090";

    /// The index of the first route whose pattern fits the request.
    pub fn route_for(&self, method: &http::Method, path: &str) -> Option<usize> {
        self.routes
            .iter()
            .position(|r| r.pattern.matches(method, path))
    }
}

/// How shadowdiff sits in the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// In front of the primary: clients get the primary's response through shadowdiff.
    Inline,
    /// The target of a traffic mirror: answers 202 and calls both backends itself.
    Mirror,
    /// Takes requests with the responses the primary already gave
    /// (`POST /collect`, JSON Lines) and calls only the candidate.
    Collector,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Inline => "inline",
            Mode::Mirror => "mirror",
            Mode::Collector => "collector",
        })
    }
}

/// One `[[route]]`: settings for the requests its pattern matches.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// `METHOD /path/{param}`; the first route that fits a request wins.
    #[serde(rename = "match")]
    pub pattern: RoutePattern,
    /// Overrides the global sample rate for these requests.
    #[serde(default)]
    pub sample_rate: Option<SampleRate>,
    /// Allows methods other than GET, HEAD and OPTIONS to reach the candidate.
    #[serde(default)]
    pub mirror_unsafe: bool,
    /// Calls both backends again after a mismatch of a safe request
    /// (`recheck_delay_ms` later); overrides the global `recheck`.
    #[serde(default)]
    pub recheck: Option<bool>,
    /// Comparison rules added to the global `[compare]` ones for these requests.
    #[serde(default)]
    pub compare: Option<CompareConfig>,
    /// A `[backend.NAME]` these requests go to instead of `primary`.
    #[serde(default)]
    pub primary: Option<BackendName>,
    /// A `[backend.NAME]` these requests are shadowed to instead of
    /// `candidate`, or `false`: proxied, never shadowed.
    #[serde(default)]
    pub candidate: Option<CandidateChoice>,
    /// How the candidate's request differs from the client's, laid over
    /// its backend's own rewrite.
    #[serde(default)]
    pub rewrite: Option<Rewrite>,
    /// The share of these requests' clients the candidate serves (percent).
    #[serde(default)]
    pub weight: Option<Weight>,
    /// Where these requests' unsafe methods go at a weight above 0.
    #[serde(default)]
    pub writes: Option<Writes>,
    /// The steps these requests' weight moves through (`[route.plan]`).
    #[serde(default)]
    pub plan: Option<super::Plan>,
}

/// Limits on client connections, so slow or idle clients cannot hold them
/// all. Its defaults are the table's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// From a connection's start, or the first byte of a later request, to
    /// the end of the request head.
    pub header_read_timeout: Duration,
    /// A kept-alive connection with no request under way is closed after this.
    pub idle_timeout: Duration,
    /// Client connections open at once; at the cap the oldest one waiting for
    /// a request is closed to make room.
    pub max_connections: NonZeroUsize,
}

/// Half the cores, at least one: the other half stays with the client path.
fn default_shadow_threads() -> NonZeroUsize {
    let cores = std::thread::available_parallelism().map_or(2, NonZeroUsize::get);
    NonZeroUsize::new(cores / 2).unwrap_or(NonZeroUsize::MIN)
}

/// The instance name when none is given: the host name, else a random one.
fn default_instance() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("shadowdiff-{:08x}", rand::random::<u32>()))
}

/// A limit that is off unless set.
fn some_duration(ms: NonZeroMillis) -> Option<Duration> {
    Some(ms.duration())
}

/// An empty `record` path (a variable set to nothing) records nothing.
fn non_empty_path(path: PathBuf) -> Option<PathBuf> {
    Some(path).filter(|p| !p.as_os_str().is_empty())
}

impl Settings {
    /// The comparison rules for requests no route matches, and per route
    /// (global ones included), in route order, compiled once.
    pub fn route_rules(
        &self,
    ) -> (
        std::sync::Arc<crate::compare::Rules>,
        Vec<std::sync::Arc<crate::compare::Rules>>,
    ) {
        use crate::compare::Rules;
        use std::sync::Arc;
        let routes = self
            .routes
            .iter()
            .map(|route| match &route.compare {
                Some(own) => Arc::new(Rules::from(&self.compare.with(own))),
                None => Arc::new(Rules::from(&self.compare)),
            })
            .collect();
        (Arc::new(Rules::from(&self.compare)), routes)
    }

    /// The store writer as `serve` runs it, its rows under `run` (empty for
    /// live traffic), pruned after `retention`.
    pub fn writer_config(&self, run: &str) -> crate::writer::WriterConfig {
        crate::writer::WriterConfig {
            instance: self.instance.clone(),
            run: run.to_string(),
            max_pending: self.store_queue.get(),
            flush_every: Duration::from_millis(500),
            retention: Some(self.retention),
            max_body_bytes: self.max_body_bytes,
            exemplar_bytes_per_hour: self.store_exemplar_bytes_per_hour.get(),
            stored_body_bytes: self.store_body_bytes.get(),
            on_new_group: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_default_parses_and_is_the_one_used() {
        let s = Settings::new("http://a".parse().unwrap(), "http://b".parse().unwrap());
        assert_eq!(s.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(s.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(s.max_buffered_bytes, 256 * 1024 * 1024);
        assert_eq!(s.candidate_timeout, Duration::from_millis(5_000));
        assert_eq!(s.drain_timeout, Duration::from_millis(10_000));
        assert_eq!(s.retention, Duration::from_secs(14 * 24 * 3_600));
        assert_eq!(s.store_exemplar_bytes_per_hour.get(), 64 * 1024 * 1024);
        assert_eq!(s.breaker_failures.map(NonZeroU32::get), Some(5));
        assert_eq!(s.connections.idle_timeout, Duration::from_secs(60));
        assert_eq!(s.connections.max_connections.get(), 10_000);
        assert!(s.database_url.is_none() && s.record.is_none());
        assert_eq!(s.primary_host, HostHeader::Client);
    }

    #[test]
    fn keys_flags_and_variables_are_one_name() {
        let declared: Vec<&str> = Layer::DECLARED.iter().map(|d| d.key).collect();
        assert_eq!(declared, Layer::KEYS);
        let max = Layer::DECLARED
            .iter()
            .find(|d| d.key == "max_body_bytes")
            .unwrap();
        assert_eq!(max.flag(), "--max-body-bytes");
        assert_eq!(max.env(), "SHADOWDIFF_MAX_BODY_BYTES");
        let text: Vec<&str> = Layer::DECLARED
            .iter()
            .filter(|d| d.text)
            .map(|d| d.key)
            .collect();
        assert_eq!(
            text,
            [
                "instance",
                "notify_webhook_url",
                "notify_slack_url",
                "notify_gate",
                "report_token",
                "record",
                "kill_file"
            ]
        );
    }
}
