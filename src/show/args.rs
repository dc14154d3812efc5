//! The command line of `show` and `noise`: the views, their options, and
//! where the report API is (`ReportApi`, which `rollout` shares).

use clap::{Args, Subcommand, ValueEnum};

use crate::config::ReportToken;
use crate::gate::TimeBound;

/// `shadowdiff show …`: the view, and the options every view shares.
#[derive(Debug, Args)]
pub struct ShowArgs {
    #[command(subcommand)]
    pub view: View,

    #[command(flatten)]
    pub common: Common,
}

/// `shadowdiff noise`: what was learned about noise, per endpoint (the
/// same as `shadowdiff show noise`).
#[derive(Debug, Args)]
pub struct NoiseArgs {
    #[command(flatten)]
    pub noise: NoiseView,

    #[command(flatten)]
    pub common: Common,
}

/// What `noise` shows or does.
#[derive(Debug, Args)]
pub struct NoiseView {
    /// Only this endpoint (such as 'GET /api/orders/{id}').
    #[arg(long, value_name = "ENDPOINT")]
    pub endpoint: Option<String>,
    /// Print only the config snippets that forgive what was learned.
    #[arg(long)]
    pub suggest: bool,
    /// Forget what was learned about this endpoint, on every instance.
    #[arg(long, value_name = "ENDPOINT", conflicts_with_all = ["endpoint", "suggest"])]
    pub reset: Option<String>,
}

/// Where a running shadowdiff's report API is, and its token: shared by
/// `show`, `noise` and `rollout`.
#[derive(Debug, Args)]
pub struct ReportApi {
    /// The report API of a running shadowdiff.
    #[arg(
        long,
        env = "SHADOWDIFF_REPORT_URL",
        value_name = "URL",
        default_value = "http://127.0.0.1:9090",
        global = true
    )]
    pub report_url: String,

    /// Bearer token of the report API (also from SHADOWDIFF_REPORT_TOKEN); rollout commands need one.
    #[arg(
        long,
        env = "SHADOWDIFF_REPORT_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN",
        global = true
    )]
    pub report_token: Option<ReportToken>,
}

/// The options of every view: where the API is, and how to print.
#[derive(Debug, Args)]
pub struct Common {
    #[command(flatten)]
    pub api: ReportApi,

    /// Colour: `auto` colours only a terminal, and not when NO_COLOR is set.
    #[arg(
        long,
        value_enum,
        value_name = "WHEN",
        default_value = "auto",
        global = true
    )]
    pub color: ColorWhen,

    /// Width to fit the tables to, in characters. [default: COLUMNS, else the terminal's, else 120]
    #[arg(long, value_name = "N", global = true, value_parser = clap::value_parser!(u16).range(40..))]
    pub width: Option<u16>,

    /// Print the API's JSON as it came instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum View {
    /// Totals and one row per endpoint: parity, its lower bound, errors, latency, byte parity.
    Summary {
        /// Start of the window: a duration back from now (15m, 2h, 7d) or an RFC 3339 time. [default: 24h]
        #[arg(long, value_name = "WHEN")]
        since: Option<TimeBound>,
    },
    /// Mismatch groups, most frequent first: what differs, how often, since when.
    Groups {
        /// Only this endpoint, as the summary names it ('GET /api/users/{id}').
        #[arg(long, value_name = "ENDPOINT")]
        endpoint: Option<String>,
        /// Only groups triaged so.
        #[arg(long, value_enum, value_name = "STATUS")]
        status: Option<Triage>,
        /// Only groups seen since: a duration back from now (15m, 2h, 7d) or an RFC 3339 time.
        #[arg(long, value_name = "WHEN")]
        since: Option<TimeBound>,
    },
    /// One stored mismatch: the request, both responses side by side, the
    /// differing paths and the curl commands that send it again.
    Mismatch {
        /// The mismatch's id (the ID column of `show groups`).
        #[arg(value_name = "ID", value_parser = clap::value_parser!(u64).range(1..=i64::MAX as u64))]
        id: u64,
    },
    /// What was learned about noise per endpoint (as `shadowdiff noise`).
    Noise(NoiseView),
}

/// A group's triage status, as the API's `status` parameter takes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Triage {
    Open,
    Expected,
    Bug,
    Fixed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}
