//! Configuration: the TOML file, `SHADOWDIFF_*` environment variables and
//! command-line flags, merged in that order (a flag beats the environment,
//! which beats the file) and parsed once into [`Settings`].
//!
//! Every value is checked here, so the rest of the program only ever sees
//! typed, valid settings. An error names where the value came from (file and
//! key, variable, or flag) and what would be accepted.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::compare::CompareConfig;
use crate::endpoint::RoutePattern;
use crate::redact::RedactConfig;
use crate::sampling::{SampleRate, StickyKey};
use crate::store::DatabaseUrl;

mod located;
mod token;
pub use token::{ReportToken, TokenError};

/// The prefix of every environment variable that sets a serve setting.
pub const ENV_PREFIX: &str = "SHADOWDIFF_";

/// Variables with the prefix that are not serve settings.
const ENV_NOT_SETTINGS: &[&str] = &[
    "SHADOWDIFF_CONFIG",
    "SHADOWDIFF_LOG",
    "SHADOWDIFF_LOG_FORMAT",
];

/// How shadowdiff sits in the traffic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// In front of the primary: clients get the primary's response through shadowdiff.
    Inline,
    /// The target of a traffic mirror: answers 202 and calls both backends itself.
    Mirror,
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Inline => "inline",
            Mode::Mirror => "mirror",
        })
    }
}

/// The base URL of a backend: http or https, a host, an optional path prefix.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct BackendUrl(String);

/// A backend URL that cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("backend URL must be http:// or https:// with a host and no query, such as http://127.0.0.1:8001; got {0:?}")]
pub struct BackendUrlError(pub String);

impl FromStr for BackendUrl {
    type Err = BackendUrlError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BackendUrlError(s.to_string());
        let url = reqwest::Url::parse(s).map_err(|_| bad())?;
        let ok = matches!(url.scheme(), "http" | "https")
            && url.host_str().is_some()
            && url.query().is_none()
            && url.fragment().is_none()
            && url.username().is_empty();
        if !ok {
            return Err(bad());
        }
        // Stored without a trailing slash so that base + "/path" is the target.
        Ok(BackendUrl(url.as_str().trim_end_matches('/').to_string()))
    }
}

impl TryFrom<String> for BackendUrl {
    type Error = BackendUrlError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for BackendUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl BackendUrl {
    /// The URL to send a request for `path_and_query` to. A path with dot
    /// segments is refused: URL parsing, or the backend, would resolve them,
    /// so the backend would get another path than the client asked for, one
    /// that may even leave the base URL's prefix. A segment is what lies
    /// between `/`, `\` or their encodings (`%2f`, `%5c`), and it is a dot
    /// segment if, with `%2e` read as `.` and a `;` parameter dropped (as
    /// Tomcat does), it is `.` or `..`. `%252e` is left alone: it is a
    /// literal `%2e` to a backend that decodes once, as it should.
    /// Whatever else URL parsing would rewrite (a `\` into `/`) is refused
    /// too, so the URL sent always has the path that was asked for; only
    /// percent-encoding of characters such as `"` or `{` may differ.
    pub fn join(&self, path_and_query: &str) -> Result<reqwest::Url, url_error::JoinError> {
        let refuse = || url_error::JoinError(path_and_query.to_string());
        let path = path_and_query.split('?').next().unwrap_or("");
        let lower = path
            .to_ascii_lowercase()
            .replace("%2f", "/")
            .replace("%5c", "/");
        let dot = |segment: &str| {
            let s = segment.split(';').next().unwrap_or("").replace("%2e", ".");
            s == "." || s == ".."
        };
        if lower.split(['/', '\\']).any(dot) {
            return Err(refuse());
        }
        let asked = format!("{}{}", self.0, path_and_query);
        let url = reqwest::Url::parse(&asked).map_err(|_| refuse())?;
        // Percent-encoding the parser adds is no change to the backend.
        let encoded = |s: &str| {
            let mut out = String::with_capacity(s.len());
            for c in s.chars() {
                match c {
                    '"' | '{' | '}' | '<' | '>' | '`' | '\'' | ' ' => {
                        out.push_str(&format!("%{:02X}", c as u32))
                    }
                    c if !c.is_ascii() => {
                        for b in c.to_string().bytes() {
                            out.push_str(&format!("%{b:02X}"));
                        }
                    }
                    c => out.push(c),
                }
            }
            out
        };
        if encoded(url.as_str()) != encoded(&asked) {
            return Err(refuse());
        }
        Ok(url)
    }
}

pub mod url_error {
    /// A request target that does not form a URL with the backend's base.
    #[derive(Debug, thiserror::Error)]
    #[error("request target {0:?} has dot segments or backslashes, or does not form a valid URL")]
    pub struct JoinError(pub String);
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
    /// Comparison rules added to the global `[compare]` ones for these requests.
    #[serde(default)]
    pub compare: Option<CompareConfig>,
}

/// Every serve setting, valid by construction.
#[derive(Clone, Debug)]
pub struct Settings {
    pub listen: SocketAddr,
    pub primary: BackendUrl,
    pub candidate: BackendUrl,
    pub mode: Mode,
    pub sample_rate: SampleRate,
    pub sticky_key: Option<StickyKey>,
    /// Bodies larger than this pass through uncompared (skipped, body_too_large).
    pub max_body_bytes: usize,
    /// All body copies held for comparison together stay within this.
    pub max_buffered_bytes: usize,
    pub candidate_timeout: Duration,
    /// Shadow comparisons running at once.
    pub max_in_flight: NonZeroUsize,
    /// Shadow work waiting for a free slot; beyond it samples are dropped.
    pub queue: NonZeroUsize,
    /// How long shutdown waits for running comparisons.
    pub drain_timeout: Duration,
    /// Distinct automatic endpoint names before the rest count as `other`.
    pub max_endpoints: NonZeroUsize,
    pub routes: Vec<Route>,
    /// The global comparison rules (`[compare]`).
    pub compare: CompareConfig,
    /// Where outcomes and mismatches are stored; `None` keeps them in memory only.
    pub database_url: Option<DatabaseUrl>,
    /// Names this instance in what it stores.
    pub instance: String,
    /// Stored rows older than this are pruned.
    pub retention: Duration,
    /// Mismatch exemplars waiting for the database at most.
    pub store_queue: NonZeroUsize,
    /// Exemplar bytes stored per hour at most (and waiting in memory at most).
    pub store_exemplar_bytes_per_hour: NonZeroUsize,
    /// Where the report API listens.
    pub report_listen: SocketAddr,
    /// Bearer token the report API requires; `None` leaves it open.
    pub report_token: Option<ReportToken>,
    pub redact: RedactConfig,
    /// Sampled requests are appended here, redacted, as JSON Lines for `replay`.
    pub record: Option<std::path::PathBuf>,
    /// How client connections are bounded in time and number.
    pub connections: ConnectionLimits,
    /// Past this, a primary that has not answered gets the client a 504; `None` waits.
    pub primary_timeout: Option<Duration>,
    /// The Host each backend receives.
    pub primary_host: HostHeader,
    pub candidate_host: HostHeader,
    /// Threads that run shadow work (candidate calls and comparisons), apart
    /// from the threads serving clients.
    pub shadow_threads: NonZeroUsize,
    /// Candidate failures in a row that pause shadowing (`None`: never).
    pub breaker_failures: Option<std::num::NonZeroU32>,
}

/// Limits on client connections, so slow or idle clients cannot hold them all.
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

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: NonZeroUsize::new(10_000).expect("non-zero"),
        }
    }
}

/// The Host header a backend receives.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum HostHeader {
    /// The client's own Host, as a direct call would carry it.
    Client,
    /// The backend URL's authority.
    Backend,
    /// A fixed name (`api.example.com` or `api.example.com:8443`).
    Fixed(http::HeaderValue),
}

impl FromStr for HostHeader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "client" => Ok(HostHeader::Client),
            "backend" => Ok(HostHeader::Backend),
            name => {
                let valid = !name.is_empty()
                    && name
                        .parse::<http::uri::Authority>()
                        .is_ok_and(|a| a.as_str() == name && !name.contains('@'));
                match valid {
                    true => Ok(HostHeader::Fixed(
                        http::HeaderValue::from_str(name).map_err(|e| e.to_string())?,
                    )),
                    false => Err(format!(
                        "expected \"client\", \"backend\" or a host name such as api.example.com:443; got {name:?}"
                    )),
                }
            }
        }
    }
}

impl TryFrom<String> for HostHeader {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl Settings {
    pub const DEFAULT_LISTEN: &'static str = "127.0.0.1:8080";
    pub const DEFAULT_REPORT_LISTEN: &'static str = "127.0.0.1:9090";

    /// Settings with every default, for the two backends.
    pub fn new(primary: BackendUrl, candidate: BackendUrl) -> Self {
        Settings {
            listen: Self::DEFAULT_LISTEN.parse().expect("valid default address"),
            primary,
            candidate,
            mode: Mode::Inline,
            sample_rate: SampleRate::ALL,
            sticky_key: None,
            max_body_bytes: 10 * 1024 * 1024,
            max_buffered_bytes: 256 * 1024 * 1024,
            candidate_timeout: Duration::from_millis(5_000),
            max_in_flight: NonZeroUsize::new(512).expect("non-zero"),
            queue: NonZeroUsize::new(10_000).expect("non-zero"),
            drain_timeout: Duration::from_millis(10_000),
            max_endpoints: NonZeroUsize::new(500).expect("non-zero"),
            routes: Vec::new(),
            compare: CompareConfig::default(),
            database_url: None,
            instance: default_instance(),
            retention: Duration::from_secs(14 * 24 * 3_600),
            store_queue: NonZeroUsize::new(10_000).expect("non-zero"),
            store_exemplar_bytes_per_hour: NonZeroUsize::new(64 * 1024 * 1024).expect("non-zero"),
            report_listen: Self::DEFAULT_REPORT_LISTEN
                .parse()
                .expect("valid default address"),
            report_token: None,
            redact: RedactConfig::default(),
            record: None,
            connections: ConnectionLimits::default(),
            primary_timeout: None,
            primary_host: HostHeader::Client,
            candidate_host: HostHeader::Client,
            shadow_threads: default_shadow_threads(),
            breaker_failures: std::num::NonZeroU32::new(DEFAULT_BREAKER_FAILURES),
        }
    }

    /// The index of the first route whose pattern fits the request.
    pub fn route_for(&self, method: &http::Method, path: &str) -> Option<usize> {
        self.routes
            .iter()
            .position(|r| r.pattern.matches(method, path))
    }
}

/// Serve settings as one source gives them: every key optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub listen: Option<SocketAddr>,
    pub primary: Option<BackendUrl>,
    pub candidate: Option<BackendUrl>,
    pub mode: Option<Mode>,
    pub sample_rate: Option<SampleRate>,
    pub sticky_key: Option<StickyKey>,
    pub max_body_bytes: Option<NonZeroUsize>,
    pub max_buffered_bytes: Option<NonZeroUsize>,
    pub candidate_timeout_ms: Option<NonZeroMillis>,
    pub max_in_flight: Option<NonZeroUsize>,
    pub queue: Option<NonZeroUsize>,
    pub drain_timeout_ms: Option<u64>,
    pub max_endpoints: Option<NonZeroUsize>,
    #[serde(rename = "route")]
    pub routes: Option<Vec<Route>>,
    pub compare: Option<CompareConfig>,
    pub database_url: Option<DatabaseUrl>,
    pub instance: Option<String>,
    pub retention: Option<HumanDuration>,
    pub store_queue: Option<NonZeroUsize>,
    pub store_exemplar_bytes_per_hour: Option<NonZeroUsize>,
    pub redact: Option<RedactConfig>,
    pub report_listen: Option<SocketAddr>,
    pub report_token: Option<ReportToken>,
    pub record: Option<std::path::PathBuf>,
    pub header_read_timeout_ms: Option<NonZeroMillis>,
    pub idle_timeout_ms: Option<NonZeroMillis>,
    pub max_connections: Option<NonZeroUsize>,
    pub primary_timeout_ms: Option<NonZeroMillis>,
    pub primary_host: Option<HostHeader>,
    pub candidate_host: Option<HostHeader>,
    pub shadow_threads: Option<NonZeroUsize>,
    pub breaker_failures: Option<u32>,
}

/// Candidate failures in a row that pause shadowing, unless set.
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;

/// Half the cores, at least one: the other half stays with the client path.
fn default_shadow_threads() -> NonZeroUsize {
    let cores = std::thread::available_parallelism().map_or(2, NonZeroUsize::get);
    NonZeroUsize::new(cores / 2).unwrap_or(NonZeroUsize::MIN)
}

/// An optionally signed run of digits (and `_`, as TOML allows).
fn looks_like_integer(value: &str) -> bool {
    let digits = value.trim().trim_start_matches(['+', '-']);
    digits.starts_with(|c: char| c.is_ascii_digit())
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_')
}

/// The instance name when none is given: the host name, else a random one.
fn default_instance() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("shadowdiff-{:08x}", rand::random::<u32>()))
}

/// A duration written as a number and a unit: `15m`, `2h`, `14d`, `30s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("expected a duration such as 30s, 15m, 2h or 14d; got {s:?}");
        let s = s.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        let (number, unit) = s.split_at(split);
        let n: u64 = number.parse().map_err(|_| bad())?;
        let seconds = match unit {
            "s" => 1,
            "m" => 60,
            "h" => 3_600,
            "d" => 86_400,
            "w" => 7 * 86_400,
            _ => return Err(bad()),
        };
        n.checked_mul(seconds)
            .filter(|&total| total > 0)
            .map(|total| HumanDuration(Duration::from_secs(total)))
            .ok_or_else(bad)
    }
}

impl TryFrom<String> for HumanDuration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

/// A duration in whole milliseconds, at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct NonZeroMillis(u64);

impl TryFrom<u64> for NonZeroMillis {
    type Error = String;
    fn try_from(ms: u64) -> Result<Self, Self::Error> {
        if ms == 0 {
            Err("must be at least 1 (milliseconds)".to_string())
        } else {
            Ok(NonZeroMillis(ms))
        }
    }
}

impl FromStr for NonZeroMillis {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ms: u64 = s
            .trim()
            .parse()
            .map_err(|_| format!("expected whole milliseconds, got {s:?}"))?;
        ms.try_into()
    }
}

impl NonZeroMillis {
    pub fn duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

/// Why configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A key in the config file is unknown, of the wrong type or out of range.
    #[error("config file {path}: key `{key}`: {message}")]
    File {
        path: PathBuf,
        key: String,
        message: String,
    },
    /// A `SHADOWDIFF_*` variable is unknown or its value is invalid.
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    /// A required setting was given nowhere.
    #[error("no {key} backend given: pass --{key} URL, set SHADOWDIFF_{env}, or put `{key} = \"http://…\"` in the config file")]
    Missing {
        key: &'static str,
        env: &'static str,
    },
    /// The proxy and the report API would need the same port.
    #[error("listen ({listen}) and report_listen ({report}) share a port: the proxy and the report API each need their own; change one (--listen/--report-listen, SHADOWDIFF_LISTEN/SHADOWDIFF_REPORT_LISTEN or the config file)")]
    SharedPort {
        listen: SocketAddr,
        report: SocketAddr,
    },
}

impl Layer {
    /// Reads and checks a TOML config file.
    pub fn from_file(path: &Path) -> Result<Layer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|(key, message)| ConfigError::File {
            path: path.to_path_buf(),
            key,
            message,
        })
    }

    /// Parses TOML text; the error is the dotted key path and the reason.
    pub fn from_toml(text: &str) -> Result<Layer, (String, String)> {
        let deserializer = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            // A number out of range fails in the parser, before any key is
            // known; the key is then read back from where the error points.
            let located = || {
                e.inner()
                    .span()
                    .and_then(|s| located::key_at(text, s.start))
            };
            let key = match e.path().to_string() {
                p if p == "." => located().unwrap_or_else(|| "(top level)".to_string()),
                p => p,
            };
            // toml's message carries the line, a caret under the value, and the reason.
            (key, e.into_inner().to_string().trim_end().to_string())
        })
    }

    /// Reads the `SHADOWDIFF_*` variables among `vars`. Variables with the
    /// prefix that are no setting (Kubernetes makes `SHADOWDIFF_PORT` and the
    /// like for a Service of that name) are returned, to be warned about, not
    /// refused.
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Layer, Vec<String>), ConfigError> {
        let mut table = toml::Table::new();
        let mut names = BTreeMap::new();
        let mut unknown = Vec::new();
        for (var, value) in vars {
            let Some(key) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if ENV_NOT_SETTINGS.contains(&var.as_str()) {
                continue;
            }
            let key = key.to_ascii_lowercase();
            if !Layer::KEYS.contains(&key.as_str()) {
                unknown.push(var);
                continue;
            }
            if looks_like_integer(&value) && value.trim().replace('_', "").parse::<i64>().is_err() {
                // Else it would be read as a string and refused as "invalid type".
                return Err(ConfigError::Env {
                    var,
                    message: format!(
                        "{value} is too large (or too small) a number for this setting"
                    ),
                });
            }
            // Numbers and booleans as TOML reads them, anything else as a string,
            // so that one deserializer checks the file and the environment alike.
            // Text settings stay text: a token or a name may be all digits.
            let parsed = format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .filter(|v| !v.is_str() && !v.is_table() && !v.is_array())
                .filter(|_| !Layer::TEXT_KEYS.contains(&key.as_str()))
                .unwrap_or_else(|| toml::Value::String(value.clone()));
            names.insert(key.clone(), var);
            table.insert(key, parsed);
        }
        let layer = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let var = names
                .get(&path)
                .cloned()
                .unwrap_or_else(|| format!("{ENV_PREFIX}{}", path.to_ascii_uppercase()));
            ConfigError::Env {
                var,
                message: e.into_inner().to_string(),
            }
        })?;
        Ok((layer, unknown))
    }

    /// Keys whose values are text even when they look like numbers.
    const TEXT_KEYS: &'static [&'static str] = &["instance", "report_token", "record"];

    /// Refuses a `listen` and a `report_listen` (defaults where unset) that
    /// would need the same port: equal addresses, or one port where either
    /// side listens on every address. Port 0 takes a free port, so never clashes.
    pub fn check_listeners(&self) -> Result<(), ConfigError> {
        let listen = self.listen.unwrap_or_else(|| {
            Settings::DEFAULT_LISTEN
                .parse()
                .expect("valid default address")
        });
        let report = self.report_listen.unwrap_or_else(|| {
            Settings::DEFAULT_REPORT_LISTEN
                .parse()
                .expect("valid default address")
        });
        let overlap = listen.ip() == report.ip()
            || listen.ip().is_unspecified()
            || report.ip().is_unspecified();
        if listen.port() != 0 && listen.port() == report.port() && overlap {
            return Err(ConfigError::SharedPort { listen, report });
        }
        Ok(())
    }

    /// The scalar keys a file or the environment may set.
    pub const KEYS: &'static [&'static str] = &[
        "listen",
        "primary",
        "candidate",
        "mode",
        "sample_rate",
        "sticky_key",
        "max_body_bytes",
        "max_buffered_bytes",
        "candidate_timeout_ms",
        "max_in_flight",
        "queue",
        "drain_timeout_ms",
        "max_endpoints",
        "database_url",
        "instance",
        "retention",
        "store_queue",
        "store_exemplar_bytes_per_hour",
        "report_listen",
        "report_token",
        "record",
        "header_read_timeout_ms",
        "idle_timeout_ms",
        "max_connections",
        "primary_timeout_ms",
        "primary_host",
        "candidate_host",
        "shadow_threads",
        "breaker_failures",
    ];

    /// This layer with every key that `over` sets replaced by `over`'s value.
    pub fn overlay(self, over: Layer) -> Layer {
        Layer {
            listen: over.listen.or(self.listen),
            primary: over.primary.or(self.primary),
            candidate: over.candidate.or(self.candidate),
            mode: over.mode.or(self.mode),
            sample_rate: over.sample_rate.or(self.sample_rate),
            sticky_key: over.sticky_key.or(self.sticky_key),
            max_body_bytes: over.max_body_bytes.or(self.max_body_bytes),
            max_buffered_bytes: over.max_buffered_bytes.or(self.max_buffered_bytes),
            candidate_timeout_ms: over.candidate_timeout_ms.or(self.candidate_timeout_ms),
            max_in_flight: over.max_in_flight.or(self.max_in_flight),
            queue: over.queue.or(self.queue),
            drain_timeout_ms: over.drain_timeout_ms.or(self.drain_timeout_ms),
            max_endpoints: over.max_endpoints.or(self.max_endpoints),
            routes: over.routes.or(self.routes),
            compare: over.compare.or(self.compare),
            database_url: over.database_url.or(self.database_url),
            instance: over.instance.or(self.instance),
            retention: over.retention.or(self.retention),
            store_queue: over.store_queue.or(self.store_queue),
            store_exemplar_bytes_per_hour: over
                .store_exemplar_bytes_per_hour
                .or(self.store_exemplar_bytes_per_hour),
            redact: over.redact.or(self.redact),
            report_listen: over.report_listen.or(self.report_listen),
            report_token: over.report_token.or(self.report_token),
            record: over.record.or(self.record),
            header_read_timeout_ms: over.header_read_timeout_ms.or(self.header_read_timeout_ms),
            idle_timeout_ms: over.idle_timeout_ms.or(self.idle_timeout_ms),
            max_connections: over.max_connections.or(self.max_connections),
            primary_timeout_ms: over.primary_timeout_ms.or(self.primary_timeout_ms),
            primary_host: over.primary_host.or(self.primary_host),
            candidate_host: over.candidate_host.or(self.candidate_host),
            shadow_threads: over.shadow_threads.or(self.shadow_threads),
            breaker_failures: over.breaker_failures.or(self.breaker_failures),
        }
    }

    /// Complete settings: defaults for what no layer set, an error for a missing backend.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        self.check_listeners()?;
        let primary = self.primary.ok_or(ConfigError::Missing {
            key: "primary",
            env: "PRIMARY",
        })?;
        let candidate = self.candidate.ok_or(ConfigError::Missing {
            key: "candidate",
            env: "CANDIDATE",
        })?;
        let mut s = Settings::new(primary, candidate);
        if let Some(v) = self.listen {
            s.listen = v;
        }
        if let Some(v) = self.mode {
            s.mode = v;
        }
        if let Some(v) = self.sample_rate {
            s.sample_rate = v;
        }
        s.sticky_key = self.sticky_key;
        if let Some(v) = self.max_body_bytes {
            s.max_body_bytes = v.get();
        }
        if let Some(v) = self.max_buffered_bytes {
            s.max_buffered_bytes = v.get();
        }
        if let Some(v) = self.candidate_timeout_ms {
            s.candidate_timeout = v.duration();
        }
        if let Some(v) = self.max_in_flight {
            s.max_in_flight = v;
        }
        if let Some(v) = self.queue {
            s.queue = v;
        }
        if let Some(v) = self.drain_timeout_ms {
            s.drain_timeout = Duration::from_millis(v);
        }
        if let Some(v) = self.max_endpoints {
            s.max_endpoints = v;
        }
        s.routes = self.routes.unwrap_or_default();
        s.compare = self.compare.unwrap_or_default();
        // SQLite next to the process by default: `serve` needs no set-up.
        s.database_url = Some(self.database_url.unwrap_or_else(|| {
            "sqlite://shadowdiff.db"
                .parse()
                .expect("a valid default URL")
        }));
        if let Some(instance) = self.instance {
            s.instance = instance;
        }
        if let Some(retention) = self.retention {
            s.retention = retention.0;
        }
        if let Some(queue) = self.store_queue {
            s.store_queue = queue;
        }
        if let Some(bytes) = self.store_exemplar_bytes_per_hour {
            s.store_exemplar_bytes_per_hour = bytes;
        }
        s.redact = self.redact.unwrap_or_default();
        if let Some(listen) = self.report_listen {
            s.report_listen = listen;
        }
        s.report_token = self.report_token;
        s.record = self.record.filter(|p| !p.as_os_str().is_empty());
        if let Some(v) = self.header_read_timeout_ms {
            s.connections.header_read_timeout = v.duration();
        }
        if let Some(v) = self.idle_timeout_ms {
            s.connections.idle_timeout = v.duration();
        }
        if let Some(v) = self.max_connections {
            s.connections.max_connections = v;
        }
        s.primary_timeout = self.primary_timeout_ms.map(NonZeroMillis::duration);
        if let Some(v) = self.primary_host {
            s.primary_host = v;
        }
        if let Some(v) = self.candidate_host {
            s.candidate_host = v;
        }
        if let Some(v) = self.shadow_threads {
            s.shadow_threads = v;
        }
        if let Some(v) = self.breaker_failures {
            s.breaker_failures = std::num::NonZeroU32::new(v);
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const FULL: &str = r#"
        listen = "127.0.0.1:8080"
        primary = "http://127.0.0.1:8001"
        candidate = "http://127.0.0.1:8002/"
        mode = "mirror"
        sample_rate = 1
        sticky_key = "header:x-user-id"
        max_body_bytes = 10485760
        candidate_timeout_ms = 5000
        max_in_flight = 512
        queue = 10000

        [[route]]
        match = "GET /api/users/{id}"
        sample_rate = 0.5

        [[route]]
        match = "POST /api/orders"
        mirror_unsafe = true
    "#;

    #[test]
    fn the_documented_file_parses() {
        let s = Layer::from_toml(FULL).unwrap().resolve().unwrap();
        assert_eq!(s.mode, Mode::Mirror);
        assert_eq!(s.candidate.to_string(), "http://127.0.0.1:8002");
        assert_eq!(s.routes.len(), 2);
        assert_eq!(s.routes[0].sample_rate.unwrap().get(), 0.5);
        assert!(s.routes[1].mirror_unsafe);
        assert_eq!(s.sticky_key.unwrap().to_string(), "header:x-user-id");
    }

    #[test]
    fn file_errors_name_the_key() {
        let cases = [
            ("sample_rate = 1.5", "sample_rate", "from 0.0 to 1.0"),
            (
                "sampel_rate = 0.5",
                "sampel_rate",
                "unknown field `sampel_rate`",
            ),
            ("mode = \"sideways\"", "mode", "unknown variant"),
            ("primary = \"ftp://x\"", "primary", "http://"),
            ("queue = 0", "queue", "nonzero"),
            (
                "[[route]]\nmatch = \"GET users\"",
                "route[0].match",
                "must start with /",
            ),
            (
                "[[route]]\nmatch = \"GET /a\"\nsample = 1",
                "route[0].sample",
                "unknown field `sample`",
            ),
            (
                "candidate_timeout_ms = 0",
                "candidate_timeout_ms",
                "at least 1",
            ),
            ("listen = \"nowhere\"", "listen", "socket address"),
            (
                "[compare]\nignore = [\"items\"]",
                "compare.ignore[0]",
                "JSON Pointer",
            ),
            (
                "[compare]\nmask = { \"/a\" = \"(\" }",
                "compare.mask./a",
                "regular expression",
            ),
            (
                "[compare]\nkeyed = { \"items\" = \"id\" }",
                "compare.keyed.items",
                "JSON Pointer",
            ),
            (
                "[compare]\npreset = \"ruby-go\"",
                "compare.preset",
                "python-go",
            ),
            (
                "[[route]]\nmatch = \"GET /a\"\n[route.compare]\nunordered = [\"x\"]",
                "route[0].compare.unordered[0]",
                "JSON Pointer",
            ),
        ];
        for (text, key, reason) in cases {
            let (k, msg) = Layer::from_toml(text).unwrap_err();
            assert_eq!(k, key, "{text}: {msg}");
            assert!(msg.contains(reason), "{text}: {msg}");
        }
    }

    #[test]
    fn env_is_read_and_checked() {
        let (layer, unknown) = Layer::from_env(env(&[
            ("SHADOWDIFF_SAMPLE_RATE", "0.25"),
            ("SHADOWDIFF_PRIMARY", "http://localhost:1"),
            ("SHADOWDIFF_LISTEN", "0.0.0.0:9000"),
            ("SHADOWDIFF_MODE", "mirror"),
            ("SHADOWDIFF_LOG", "debug"),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        assert_eq!(layer.sample_rate.unwrap().get(), 0.25);
        assert_eq!(layer.mode, Some(Mode::Mirror));
        assert_eq!(layer.listen.unwrap().port(), 9000);

        let err = Layer::from_env(env(&[("SHADOWDIFF_SAMPLE_RATE", "2")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("environment variable SHADOWDIFF_SAMPLE_RATE:"),
            "{err}"
        );
        assert!(unknown.is_empty());
        let (_, unknown) = Layer::from_env(env(&[
            ("SHADOWDIFF_SAMPLERATE", "0.1"),
            ("SHADOWDIFF_PORT", "tcp://10.0.0.1:80"),
        ]))
        .unwrap();
        assert_eq!(unknown, ["SHADOWDIFF_SAMPLERATE", "SHADOWDIFF_PORT"]);
    }

    #[test]
    fn later_layers_win() {
        let file = Layer::from_toml(
            "sample_rate = 0.1\nqueue = 5\nprimary = \"http://a\"\ncandidate = \"http://b\"",
        )
        .unwrap();
        let (env, _) = Layer::from_env(env(&[
            ("SHADOWDIFF_SAMPLE_RATE", "0.2"),
            ("SHADOWDIFF_QUEUE", "6"),
        ]))
        .unwrap();
        let flags = Layer {
            sample_rate: Some(SampleRate::new(0.3).unwrap()),
            ..Layer::default()
        };
        let s = file.overlay(env).overlay(flags).resolve().unwrap();
        assert_eq!(s.sample_rate.get(), 0.3);
        assert_eq!(s.queue.get(), 6);
    }

    #[test]
    fn missing_backend_says_how_to_give_it() {
        let err = Layer::default().resolve().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("--primary") && msg.contains("SHADOWDIFF_PRIMARY"),
            "{msg}"
        );
    }

    #[test]
    fn backend_urls_are_checked() {
        assert!("http://127.0.0.1:8001".parse::<BackendUrl>().is_ok());
        assert!("https://api.internal/base/".parse::<BackendUrl>().is_ok());
        for bad in ["127.0.0.1:8001", "ftp://x", "http://x/?q=1", "http://u:p@x"] {
            assert!(bad.parse::<BackendUrl>().is_err(), "{bad}");
        }
        let base: BackendUrl = "http://h:1/base/".parse().unwrap();
        assert_eq!(
            base.join("/a%20b?x=1&x=2").unwrap().as_str(),
            "http://h:1/base/a%20b?x=1&x=2"
        );
        for escaping in ["/x/../admin", "/x/%2e%2e/admin", "/x/.%2E/admin", "/./a"] {
            assert!(base.join(escaping).is_err(), "{escaping}");
        }
        assert!(base.join("/a/..b/c.d?x=..").is_ok());
    }

    #[test]
    fn no_target_reaches_a_backend_as_another_path() {
        let base: BackendUrl = "http://h:1/base".parse().unwrap();
        for refused in [
            "/public/..\\admin",
            "/public\\..\\admin",
            "/public/..%5cadmin",
            "/public/..%5Cadmin",
            "/public%5c..%5cadmin",
            "/public%2f..%2fadmin",
            "/public/%2e%2e/admin",
            "/public/.%2e/admin",
            "/public/%2e./admin",
            "/public/%2E/admin",
            "/public/..;x=1/admin",
            "/a\\b",
        ] {
            assert!(base.join(refused).is_err(), "{refused}");
        }
        // Literal to a backend that decodes once; forwarded as it is.
        for kept in [
            "/public/%252e%252e/admin",
            "/a/{\"b\"}",
            "/caf\u{e9}?q='x'",
            "/a;b=1?x=1;y=2",
        ] {
            let url = base.join(kept).unwrap();
            assert!(url.path().starts_with("/base/"), "{kept}: {url}");
        }
        assert_eq!(
            base.join("/public/%252e%252e/admin").unwrap().path(),
            "/base/public/%252e%252e/admin"
        );
    }

    #[test]
    fn numbers_out_of_range_name_their_key() {
        let (key, msg) =
            Layer::from_toml("queue = 1\nmax_body_bytes = 99999999999999999999").unwrap_err();
        assert_eq!(key, "max_body_bytes", "{msg}");
        assert!(msg.contains("too large"), "{msg}");
        let (key, _) =
            Layer::from_toml("[[route]]\nmatch = \"GET /a\"\nsample_rate = -99999999999999999999")
                .unwrap_err();
        assert_eq!(key, "route[0].sample_rate");
        for value in ["99999999999999999999", "-99999999999999999999"] {
            let err = Layer::from_env(env(&[("SHADOWDIFF_MAX_BODY_BYTES", value)])).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with("environment variable SHADOWDIFF_MAX_BODY_BYTES:")
                    && msg.contains("too large"),
                "{msg}"
            );
        }
        let (layer, _) = Layer::from_env(env(&[("SHADOWDIFF_QUEUE", "1_000")])).unwrap();
        assert_eq!(layer.queue.unwrap().get(), 1000);
    }

    #[test]
    fn an_empty_report_token_is_refused_where_it_was_given() {
        let (key, msg) = Layer::from_toml("report_token = \"\"").unwrap_err();
        assert_eq!(key, "report_token");
        assert!(msg.contains("empty"), "{msg}");
        for value in ["", "  "] {
            let err = Layer::from_env(env(&[("SHADOWDIFF_REPORT_TOKEN", value)])).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("environment variable SHADOWDIFF_REPORT_TOKEN:"),
                "{err}"
            );
        }
        // A token of digits is a token, not a number.
        let (layer, _) = Layer::from_env(env(&[("SHADOWDIFF_REPORT_TOKEN", "12345")])).unwrap();
        assert_eq!(layer.report_token.unwrap().as_str(), "12345");
    }

    #[test]
    fn the_proxy_and_the_report_api_need_their_own_ports() {
        let backends = "primary = \"http://a\"\ncandidate = \"http://b\"\n";
        for (listen, report) in [
            ("127.0.0.1:9000", "127.0.0.1:9000"),
            ("0.0.0.0:9000", "127.0.0.1:9000"),
            ("127.0.0.1:9000", "[::]:9000"),
            ("127.0.0.1:9090", ""),
        ] {
            let mut text = format!("{backends}listen = \"{listen}\"\n");
            if !report.is_empty() {
                text.push_str(&format!("report_listen = \"{report}\"\n"));
            }
            let err = Layer::from_toml(&text).unwrap().resolve().unwrap_err();
            assert!(
                matches!(err, ConfigError::SharedPort { .. }),
                "{text}: {err}"
            );
            assert!(err.to_string().contains("report_listen"), "{err}");
        }
        for (listen, report) in [
            ("127.0.0.1:9000", "127.0.0.2:9000"),
            ("127.0.0.1:0", "127.0.0.1:0"),
            ("0.0.0.0:9000", "0.0.0.0:9001"),
        ] {
            let text = format!("{backends}listen = \"{listen}\"\nreport_listen = \"{report}\"\n");
            assert!(Layer::from_toml(&text).unwrap().resolve().is_ok(), "{text}");
        }
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!("15m".parse::<HumanDuration>().unwrap().0.as_secs(), 900);
        assert_eq!(
            "14d".parse::<HumanDuration>().unwrap().0.as_secs(),
            14 * 86_400
        );
        for bad in ["", "15", "m", "0h", "2 hours", "-1d"] {
            assert!(bad.parse::<HumanDuration>().is_err(), "{bad}");
        }
    }
}
