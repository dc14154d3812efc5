//! The command line: flags and subcommands, with the help text users read.
//!
//! This module only describes the interface; `main` runs it and chooses exit codes.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::config::value::whole_u64;
use crate::config::{BackendUrl, Layer, NonZeroMillis, ReportToken, ServeFlags};
use crate::gate::render::Format;
use crate::gate::{
    Confidence, Criteria, EndpointGlob, FailOn, LatencyLimits, Limit, MinParity, Percentile,
    TimeBound,
};
use crate::replay::input::InputFormat;
use crate::replay::{Concurrency, ExtraHeader, Rate, RunId};

/// Exit code for a run that ended as asked.
pub const EXIT_OK: u8 = 0;
/// Exit code for a failure while running (a port in use, a crash of the runtime).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for bad flags, environment or config file; nothing was started.
/// For `gate` and `replay`, any operational error: an unreachable API, a
/// refused token, an unreadable database or input file.
pub const EXIT_USAGE: u8 = 2;
/// Exit code of `gate` and `replay` when there is too little data to decide.
pub const EXIT_INCONCLUSIVE: u8 = 3;

const GATE_EXIT_CODES: &str =
    "Exit codes: 0 pass, 1 fail, 2 operational error (bad flags, unreachable API, \
    wrong token, unreadable database), 3 inconclusive (too few comparisons to decide).";

#[derive(Debug, Parser)]
#[command(
    name = "shadowdiff",
    version,
    about = "Shadow-traffic proxy: compares a new backend's answers with the old one's before each rollout step.",
    after_help = "Exit codes: 0 ok, 1 runtime failure, 2 bad flags, environment or config.\n\
                  Every serve setting can also be given in the config file and as a SHADOWDIFF_* variable;\n\
                  flags win over the environment, which wins over the file."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Log filter, such as `info`, `debug` or `shadowdiff=debug,info`.
    #[arg(
        long,
        global = true,
        env = "SHADOWDIFF_LOG",
        default_value = "info",
        value_name = "FILTER"
    )]
    pub log: String,

    /// Log line format.
    #[arg(
        long,
        global = true,
        env = "SHADOWDIFF_LOG_FORMAT",
        default_value = "text",
        value_name = "FORMAT"
    )]
    pub log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object a line, for log pipelines.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy: answer from the primary, shadow sampled requests to the candidate, compare.
    Serve(Box<ServeArgs>),
    /// Check a config file without starting anything: exit 0 if valid, 2 with the reason if not.
    CheckConfig(CheckConfigArgs),
    /// Apply the database migrations and exit (serve also applies them at start).
    Migrate(MigrateArgs),
    /// Decide a rollout step from stored outcomes: pass only when the parity's
    /// Wilson lower bound reaches --min-parity.
    #[command(after_help = GATE_EXIT_CODES)]
    Gate(Box<GateArgs>),
    /// Send recorded requests (JSON Lines, HAR, or stored mismatches) to both
    /// backends, compare and store them under a run id, then gate the run.
    #[command(after_help = GATE_EXIT_CODES)]
    Replay(Box<ReplayArgs>),
    /// Compare two saved responses (raw HTTP files, or a body file each) with
    /// the comparison engine and a config's rules, offline: print the verdict,
    /// the JSON Patch and the text diff.
    #[command(
        after_help = "Exit codes: 0 equal, 1 different, 2 bad input (a missing file, \
        an invalid config, a file that is not a response)."
    )]
    Diff(DiffArgs),
    /// Compare the stored mismatch exemplars again under a changed config,
    /// sending no request: per group, whether it would vanish, change or still
    /// differ, and what parity would have been.
    #[command(after_help = "Exit codes: 0 done, 2 bad input (an invalid config, \
        a store that is missing or of another version).")]
    Rejudge(RejudgeArgs),
    /// Show or move a running shadowdiff's cutover (through its report API):
    /// the serving weights, plans and history; set, advance, pause, resume,
    /// roll back, or kill every weight at once.
    #[command(
        after_help = "Exit codes: 0 done, 1 the API could not be reached or failed, \
        2 refused (an unknown route, a weight outside 0-100, no token, a plan at its last step)."
    )]
    Rollout(RolloutArgs),
    /// Read a running shadowdiff's report API in a terminal: the summary,
    /// the mismatch groups, or one mismatch with its bodies side by side.
    #[command(
        after_help = "Exit codes: 0 done, 1 the API could not be reached or failed, \
        2 refused (a wrong token, no such mismatch, a bad argument)."
    )]
    Show(crate::show::ShowArgs),
    /// What was learned about noise (differences the old code has with
    /// itself, from a secondary; volatile-looking values without one), per
    /// endpoint, with rates and samples; --suggest prints the config that
    /// forgives exactly those paths; --reset forgets an endpoint's.
    #[command(
        after_help = "Exit codes: 0 done, 1 the API could not be reached or failed, \
        2 refused (a wrong token, a bad argument)."
    )]
    Noise(crate::show::NoiseArgs),
}

#[derive(Debug, Args)]
pub struct RolloutArgs {
    #[command(subcommand)]
    pub action: RolloutAction,

    #[command(flatten)]
    pub api: crate::show::ReportApi,

    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum RolloutAction {
    /// Each route's weight, plan and state, what was served, the latest changes.
    Status,
    /// Set a route's weight (percent), pausing its plan.
    Set {
        /// The route's `match` (such as 'GET /api/orders/{id}'), or '*' for the rest.
        route: String,
        weight: crate::sampling::Weight,
    },
    /// Move a route to its plan's next step, whatever its gate says.
    Advance { route: String },
    /// Stop a route's plan where it is.
    Pause { route: String },
    /// Let a route's plan go on.
    Resume { route: String },
    /// Set a route back to 0 and pause its plan.
    Rollback { route: String },
    /// Set every weight to 0 at once and pause every plan.
    Kill,
}

impl RolloutAction {
    /// The command as the API takes it; none for the status.
    pub fn body(&self) -> Option<serde_json::Value> {
        use serde_json::json;
        Some(match self {
            RolloutAction::Status => return None,
            RolloutAction::Set { route, weight } => {
                json!({"command": "set", "route": route, "weight": weight.percent()})
            }
            RolloutAction::Advance { route } => json!({"command": "advance", "route": route}),
            RolloutAction::Pause { route } => json!({"command": "pause", "route": route}),
            RolloutAction::Resume { route } => json!({"command": "resume", "route": route}),
            RolloutAction::Rollback { route } => json!({"command": "rollback", "route": route}),
            RolloutAction::Kill => json!({"command": "kill"}),
        })
    }
}

#[derive(Debug, Args)]
pub struct RejudgeArgs {
    /// The changed TOML config: its `[compare]` and routes' rules are applied.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,

    /// The store to read (never created or migrated). [default: the config's database_url, else sqlite://shadowdiff.db]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<crate::store::DatabaseUrl>,

    /// Groups seen since: a duration back from now (15m, 1h, 7d) or an RFC 3339 time; also the window of the parity. [default: 7d]
    #[arg(long, value_name = "WHEN")]
    pub since: Option<TimeBound>,

    /// Output: `text` for people, `json` for tools.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub format: DiffFormat,
}

/// Exit code of `diff` when the responses differ.
pub const EXIT_DIFFERENT: u8 = 1;

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// TOML config file whose `[compare]` rules apply (and, with --request,
    /// those of the first `[[route]]` matching it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// The request both responses answer, as `METHOD /path`, to pick its route's rules.
    #[arg(long, value_name = "REQUEST")]
    pub request: Option<SavedRequest>,

    /// Read both files as bodies with this Content-Type. Without it, a file
    /// that starts with `HTTP/` is a raw response (status line, headers, a
    /// blank line, the body), and any other file a body whose type follows
    /// its extension (.json, .ndjson, .jsonl, .txt, .html, .xml).
    #[arg(long, value_name = "TYPE")]
    pub content_type: Option<http::HeaderValue>,

    /// Output: `text` for people, `json` for the verdict as the report API serves it.
    #[arg(long, value_name = "FORMAT", default_value = "text")]
    pub format: DiffFormat,

    /// The primary's response.
    #[arg(value_name = "PRIMARY")]
    pub primary: PathBuf,

    /// The candidate's response.
    #[arg(value_name = "CANDIDATE")]
    pub candidate: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    Text,
    Json,
}

/// `METHOD /path`, the request a saved pair of responses answers.
#[derive(Clone, Debug)]
pub struct SavedRequest {
    pub method: http::Method,
    pub path: String,
}

impl std::str::FromStr for SavedRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{s:?} is not `METHOD /path`, such as `GET /api/orders/7`");
        let (method, path) = s.trim().split_once(' ').ok_or_else(bad)?;
        let path = path.trim();
        if !path.starts_with('/') || path.contains(char::is_whitespace) {
            return Err(bad());
        }
        let method = http::Method::from_bytes(method.as_bytes()).map_err(|_| bad())?;
        Ok(SavedRequest {
            method,
            path: path.to_string(),
        })
    }
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// TOML config file, as for serve: rules, routes, redaction, database, limits.
    #[arg(long, env = "SHADOWDIFF_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Base URL of the old backend. [key: primary]
    #[arg(long, value_name = "URL")]
    pub primary: Option<BackendUrl>,

    /// Base URL of the new backend. [key: candidate]
    #[arg(long, value_name = "URL")]
    pub candidate: Option<BackendUrl>,

    /// Where results are stored (and --from-store reads). [default: sqlite://shadowdiff.db] [key: database_url]
    #[arg(long, value_name = "URL")]
    pub database_url: Option<crate::store::DatabaseUrl>,

    /// Give up on a backend after this long. [default: 5000] [key: candidate_timeout_ms]
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub candidate_timeout_ms: Option<NonZeroMillis>,

    /// The requests: JSON Lines (one request a line; what serve --record writes) or a HAR 1.2 export.
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "from_store",
        conflicts_with = "from_store"
    )]
    pub input: Option<PathBuf>,

    /// How to read --input.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "auto")]
    pub input_format: InputFormat,

    /// Re-send the requests of stored mismatches (of live traffic, or of --from-run), to see whether a fix landed.
    #[arg(long)]
    pub from_store: bool,

    /// With --from-store: only this mismatch group.
    #[arg(long, value_name = "FINGERPRINT", requires = "from_store")]
    pub fingerprint: Option<String>,

    /// With --fingerprint: triage the group `fixed` (named in its history) if every one of its requests now matches.
    #[arg(long, requires = "fingerprint")]
    pub mark_fixed: bool,

    /// With --from-store: the mismatches of this replay run instead of live traffic.
    #[arg(long, value_name = "ID", requires = "from_store")]
    pub from_run: Option<String>,

    /// The run's id in the store; a new one (an id already in the store is refused). [default: replay-<time>-<random>]
    #[arg(long, value_name = "ID")]
    pub run_id: Option<RunId>,

    /// Requests in flight at once, 1 to 4096.
    #[arg(
        long,
        value_name = "N",
        default_value = "16",
        allow_negative_numbers = true
    )]
    pub concurrency: Concurrency,

    /// At most this many requests per second. [default: as fast as --concurrency allows]
    #[arg(long, value_name = "R", allow_negative_numbers = true)]
    pub rate: Option<Rate>,

    /// Send at most this many requests.
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub limit: Option<usize>,

    /// Send a random sample of this many requests (reproducible with --seed).
    #[arg(long, value_name = "N", allow_negative_numbers = true, value_parser = whole_usize)]
    pub random: Option<usize>,

    /// Seed of --random; the seed used is printed. [default: random]
    #[arg(long, value_name = "S", requires = "random", allow_negative_numbers = true, value_parser = whole_u64)]
    pub seed: Option<u64>,

    /// Also send methods other than GET, HEAD and OPTIONS; otherwise they are skipped.
    #[arg(long)]
    pub allow_unsafe: bool,

    /// Real credentials for recorded requests (whose own are stored as hashes): a TOML file of [[credential]] entries, each setting one header per endpoint, or per user from a JSON file of values (see the README).
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,

    /// Compare with the primary's response each recording carries (a JSON Lines `response`, a HAR entry's response) instead of calling the primary; recordings without one are skipped as problems.
    #[arg(long, conflicts_with = "from_store")]
    pub recorded_primary: bool,

    /// Add or replace a header on every request, such as 'Authorization: Bearer …' (recorded ones are redacted); repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<ExtraHeader>,

    #[command(flatten)]
    pub criteria: GateCriteriaArgs,
}

/// Numeric flags take `-1` as their value (not as a flag), so that the
/// refusal names the flag and says what it accepts.
fn whole_usize(s: &str) -> Result<usize, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("expected a whole number, 0 or more; got {s:?}"))
}

impl ReplayArgs {
    /// The settings given as flags, as the top configuration layer.
    pub fn layer(&self) -> Layer {
        Layer {
            primary: self.primary.clone(),
            candidate: self.candidate.clone(),
            database_url: self.database_url.clone(),
            candidate_timeout_ms: self.candidate_timeout_ms,
            ..Layer::default()
        }
    }
}

#[derive(Debug, Args)]
pub struct GateArgs {
    /// Read a running shadowdiff's report API, such as http://127.0.0.1:9090.
    #[arg(long, value_name = "URL", conflicts_with = "database_url")]
    pub report_url: Option<String>,

    /// Bearer token of the report API (also from SHADOWDIFF_REPORT_TOKEN); an empty one is refused.
    #[arg(
        long,
        env = "SHADOWDIFF_REPORT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub report_token: Option<ReportToken>,

    /// Read the database directly: sqlite://FILE or postgres://….
    #[arg(long, value_name = "URL")]
    pub database_url: Option<crate::store::DatabaseUrl>,

    /// Start of the window: a duration back from now (15m, 1h, 7d) or an RFC 3339 time. [default: 1h before --until; with --run, the run's start]
    #[arg(long, value_name = "WHEN")]
    pub since: Option<TimeBound>,

    /// End of the window, as --since. [default: now]
    #[arg(long, value_name = "WHEN")]
    pub until: Option<TimeBound>,

    /// Gate a replay run (its id) instead of live traffic.
    #[arg(long, value_name = "ID")]
    pub run: Option<String>,

    #[command(flatten)]
    pub criteria: GateCriteriaArgs,
}

/// What a gate checks and how it prints; shared by `gate` and `replay`.
#[derive(Debug, Args)]
pub struct GateCriteriaArgs {
    /// Least parity to pass, in percent.
    #[arg(
        long,
        value_name = "PERCENT",
        default_value = "99.9",
        allow_negative_numbers = true
    )]
    pub min_parity: MinParity,

    /// Confidence of the Wilson interval around the observed parity.
    #[arg(
        long,
        value_name = "F",
        default_value = "0.95",
        allow_negative_numbers = true
    )]
    pub confidence: Confidence,

    /// Every endpoint must pass, not only the total.
    #[arg(long)]
    pub per_endpoint: bool,

    /// A scope with fewer comparisons cannot pass (it is inconclusive).
    #[arg(long, value_name = "N", default_value_t = 0, allow_negative_numbers = true, value_parser = whole_u64)]
    pub min_samples: u64,

    /// Leave mismatches in groups triaged as `expected` out of parity.
    #[arg(long)]
    pub exclude_expected: bool,

    /// Fail when the candidate's p99 latency exceeds the primary's times this (1.05); the same as --max-latency-ratio p99=RATIO.
    #[arg(
        long,
        value_name = "RATIO",
        allow_negative_numbers = true,
        conflicts_with = "max_latency_ratio"
    )]
    pub max_p99_ratio: Option<Limit>,

    /// Fail when a candidate percentile exceeds the primary's times its ratio: p50=1.05,p99=1.10 (any percentile, p99.9 too).
    #[arg(long, value_name = "PCT=RATIO,..")]
    pub max_latency_ratio: Option<LatencyLimits>,

    /// Least share, in percent, of compared pairs whose decoded bodies were identical bytes.
    #[arg(long, value_name = "PERCENT", allow_negative_numbers = true)]
    pub min_byte_parity: Option<MinParity>,

    /// Fail when the candidate's 5xx-and-error rate exceeds the primary's by more percentage points.
    #[arg(long, value_name = "POINTS", allow_negative_numbers = true)]
    pub max_error_rate_delta: Option<Limit>,

    /// Fail when groups of these severity classes (not triaged expected) had mismatches: status, structure, membership, value, headers, comma-separated.
    #[arg(long, value_name = "CLASSES")]
    pub fail_on: Option<FailOn>,

    /// Only endpoints matching this pattern ('GET /api/users/*'; * within a segment, ** across); repeatable.
    #[arg(long = "endpoint", value_name = "PATTERN")]
    pub endpoints: Vec<EndpointGlob>,

    /// How to print the report.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,

    /// Also write the report, in --format, to this file; the text table still goes to standard output.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

impl GateCriteriaArgs {
    pub fn criteria(&self) -> Criteria {
        Criteria {
            min_parity: self.min_parity,
            confidence: self.confidence,
            per_endpoint: self.per_endpoint,
            min_samples: self.min_samples,
            exclude_expected: self.exclude_expected,
            max_latency_ratio: match (&self.max_latency_ratio, self.max_p99_ratio) {
                (Some(limits), _) => limits.clone(),
                (None, Some(p99)) => {
                    let mut limits = LatencyLimits::default();
                    // An empty set takes any one limit.
                    let _ = limits.insert(Percentile::P99, p99);
                    limits
                }
                (None, None) => LatencyLimits::default(),
            },
            min_byte_parity: self.min_byte_parity,
            max_error_rate_delta: self.max_error_rate_delta,
            fail_on: self.fail_on.clone().unwrap_or_default(),
            endpoints: self.endpoints.clone(),
        }
    }
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// The database: sqlite://FILE or postgres://…. [default: sqlite://shadowdiff.db]
    #[arg(
        long,
        env = "SHADOWDIFF_DATABASE_URL",
        value_name = "URL",
        default_value = "sqlite://shadowdiff.db"
    )]
    pub database_url: crate::store::DatabaseUrl,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// The TOML file to check.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML config file; its settings are overridden by SHADOWDIFF_* variables and flags.
    #[arg(long, env = "SHADOWDIFF_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Every serve setting, declared once in `config`'s settings table.
    #[command(flatten)]
    pub settings: ServeFlags,
}

impl ServeArgs {
    /// The settings given as flags, as the top configuration layer.
    pub fn layer(&self) -> Layer {
        self.settings.clone().into_layer()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_flag_values_are_refused_by_name() {
        let err = Cli::try_parse_from(["shadowdiff", "serve", "--sample-rate", "2"]).unwrap_err();
        assert!(err.to_string().contains("--sample-rate"), "{err}");
        let err = Cli::try_parse_from(["shadowdiff", "serve", "--mode", "tap"]).unwrap_err();
        assert!(err.to_string().contains("--mode"), "{err}");
    }
}
