//! The `shadowdiff` binary: parses the command line, sets up logging, runs a
//! subcommand from the library and turns its result into an exit code.

use std::process::ExitCode;

use clap::Parser;
use shadowdiff::cli::{
    self, Cli, Command, DiffArgs, DiffFormat, GateArgs, GateCriteriaArgs, LogFormat, RejudgeArgs,
    ReplayArgs,
};
use shadowdiff::config::{ConfigError, Layer};
use shadowdiff::gate::Source;
use shadowdiff::store::DatabaseUrl;
use shadowdiff::{Server, Settings};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A replay's outcomes are summed up at the end, not logged one by one.
    // PostgreSQL's notices (such as "already exists, skipping" on migrating)
    // are not news.
    let filter = match (&cli.command, cli.log.as_str()) {
        (Command::Replay(_), "info") => "info,shadowdiff::outcome=warn,sqlx::postgres::notice=warn",
        (_, "info") => "info,sqlx::postgres::notice=warn",
        (_, filter) => filter,
    };
    init_logging(filter, cli.log_format);
    match cli.command {
        Command::CheckConfig(args) => check_config(&args.file),
        Command::Migrate(args) => match migrate(&args.database_url) {
            Ok(()) => ExitCode::from(cli::EXIT_OK),
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::from(cli::EXIT_FAILURE)
            }
        },
        Command::Gate(args) => gate(&args),
        Command::Replay(args) => replay(&args),
        Command::Rollout(args) => rollout(&args),
        Command::Show(args) => shown(shadowdiff::show::run(&args)),
        Command::Noise(args) => shown(shadowdiff::show::noise(&args)),
        Command::Rejudge(args) => match rejudge(&args) {
            Ok(()) => ExitCode::from(cli::EXIT_OK),
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::from(cli::EXIT_USAGE)
            }
        },
        Command::Diff(args) => match diff(&args) {
            Ok(code) => code,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::from(cli::EXIT_USAGE)
            }
        },
        Command::Serve(args) => match load(args.config.as_deref(), args.layer()) {
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::from(cli::EXIT_USAGE)
            }
            // A database that cannot be made is refused before serving.
            Ok(settings) if database_problem(&settings).is_some() => {
                eprintln!("error: {}", database_problem(&settings).unwrap_or_default());
                ExitCode::from(cli::EXIT_USAGE)
            }
            Ok(settings) => match serve(settings) {
                Ok(()) => ExitCode::from(cli::EXIT_OK),
                Err(error) => {
                    eprintln!("error: {error:#}");
                    ExitCode::from(cli::EXIT_FAILURE)
                }
            },
        },
    }
}

/// The exit code of a view of the report API: 2 when it refused, 1 when it failed.
fn shown(result: Result<(), shadowdiff::show::ShowError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::from(cli::EXIT_OK),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(match error.is_refusal() {
                true => cli::EXIT_USAGE,
                false => cli::EXIT_FAILURE,
            })
        }
    }
}

fn init_logging(filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("warning: log filter {filter:?} is invalid ({e}); using \"info\"");
        tracing_subscriber::EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// File, then environment, then flags.
fn load(config: Option<&std::path::Path>, flags: Layer) -> Result<Settings, ConfigError> {
    let file = match config {
        Some(path) => Layer::from_file(path)?,
        None => Layer::default(),
    };
    let (env, unknown) = Layer::from_env(std::env::vars())?;
    for var in unknown {
        tracing::warn!(
            variable = %var,
            known = %Layer::KEYS.join(", "),
            "ignoring an environment variable that is not a shadowdiff setting"
        );
    }
    file.overlay(env).overlay(flags).resolve()
}

fn check_config(path: &std::path::Path) -> ExitCode {
    match Layer::from_file(path).and_then(|layer| layer.check_listeners().map(|()| layer)) {
        Err(error @ ConfigError::SharedPort { .. }) => {
            eprintln!("error: config file {}: {error}", path.display());
            ExitCode::from(cli::EXIT_USAGE)
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(cli::EXIT_USAGE)
        }
        Ok(layer) => {
            let routes = layer.routes.as_ref().map_or(0, Vec::len);
            let missing: Vec<&str> = [
                ("primary", layer.primary.is_none()),
                ("candidate", layer.candidate.is_none()),
            ]
            .into_iter()
            .filter_map(|(k, missing)| missing.then_some(k))
            .collect();
            println!("{}: ok ({routes} routes)", path.display());
            if !missing.is_empty() {
                println!(
                    "note: {} not set in the file; give them as flags or SHADOWDIFF_* variables",
                    missing.join(" and ")
                );
            }
            ExitCode::from(cli::EXIT_OK)
        }
    }
}

/// `shadowdiff diff`: two saved responses compared under a config's rules.
fn diff(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    let layer = match &args.config {
        Some(path) => Layer::from_file(path)?,
        None => Layer::default(),
    };
    let request = args.request.as_ref().map(|r| (&r.method, r.path.as_str()));
    let rules = layer.rules_for(request);
    let read = |path: &std::path::Path| -> anyhow::Result<shadowdiff::exchange::RecordedResponse> {
        let saved =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let by_extension = || {
            let extension = path.extension()?.to_str()?;
            let media = shadowdiff::compare::decode::media_type_for_extension(extension)?;
            Some(http::HeaderValue::from_static(media))
        };
        let content_type = match (&args.content_type, saved.starts_with(b"HTTP/")) {
            (Some(given), _) => Some(given.clone()),
            (None, true) => None,
            (None, false) => by_extension(),
        };
        shadowdiff::exchange::saved_response(&saved, content_type)
            .with_context(|| format!("{} is not a saved response", path.display()))
    };
    let (primary, candidate) = (read(&args.primary)?, read(&args.candidate)?);
    let endpoint = args
        .request
        .as_ref()
        .map_or_else(String::new, |r| format!("{} {}", r.method, r.path));
    // Files at hand, not live traffic: a larger bound than serve's default,
    // still one that keeps a decompression bomb or a huge file in check.
    let limit = 64 * 1024 * 1024;
    let verdict =
        shadowdiff::compare::compare_responses(&endpoint, &primary, &candidate, &rules, limit);
    let matched = verdict.matched;
    match args.format {
        DiffFormat::Text => print!("{}", shadowdiff::compare::explain::explain(&verdict)),
        DiffFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&shadowdiff::writer::exemplar::record_of(verdict))?
        ),
    }
    Ok(ExitCode::from(match matched {
        true => cli::EXIT_OK,
        false => cli::EXIT_DIFFERENT,
    }))
}

/// `shadowdiff rejudge`: stored exemplars compared again under a new config.
fn rejudge(args: &RejudgeArgs) -> anyhow::Result<()> {
    let layer = Layer::from_file(&args.config)?;
    let url = match (&args.database_url, &layer.database_url) {
        (Some(url), _) | (None, Some(url)) => url.clone(),
        (None, None) => "sqlite://shadowdiff.db".parse()?,
    };
    let now = shadowdiff::time::now_ms();
    let since = match &args.since {
        Some(bound) => bound
            .resolve(now)
            .ok_or_else(|| anyhow::anyhow!("--since {} reaches too far back", bound.as_str()))?,
        None => now - 7 * 24 * 3_600_000,
    };
    let window = shadowdiff::store::Window {
        since_ms: since,
        until_ms: now,
    };
    let rules_for = |method: &http::Method, path: &str| layer.rules_for(Some((method, path)));
    let runtime = tokio::runtime::Runtime::new()?;
    let rejudged = runtime.block_on(async {
        let store = shadowdiff::store::SqlStore::open_existing(&url).await?;
        let limit = shadowdiff::report::rejudge::max_body_bytes(&layer);
        let rejudged = shadowdiff::rejudge::rejudge(&store, window, &rules_for, limit).await;
        anyhow::Ok(rejudged?)
    })?;
    match args.format {
        DiffFormat::Text => print!("{}", shadowdiff::rejudge::render(&rejudged)),
        DiffFormat::Json => {
            let view = shadowdiff::report::rejudge::RejudgeView::from(&rejudged);
            println!("{}", serde_json::to_string_pretty(&view)?);
        }
    }
    Ok(())
}

/// Why the configured database cannot be used, found without creating it.
fn database_problem(settings: &Settings) -> Option<String> {
    settings.database_url.as_ref()?.check_location().err()
}

fn serve(settings: Settings) -> anyhow::Result<()> {
    shadowdiff::connections::raise_open_file_limit();
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let shutdown = shutdown_signal()
            .map_err(|e| anyhow::anyhow!("cannot install the signal handlers: {e}"))?;
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
        let report = tokio::net::TcpListener::bind(settings.report_listen)
            .await
            .map_err(|e| {
                anyhow::anyhow!(
                    "cannot listen on {} for the report API: {e}",
                    settings.report_listen
                )
            })?;
        let metrics = match settings.metrics_listen {
            None => None,
            Some(address) => {
                Some(tokio::net::TcpListener::bind(address).await.map_err(|e| {
                    anyhow::anyhow!("cannot listen on {address} for the metrics: {e}")
                })?)
            }
        };
        let server = Server::new(settings)?;
        server
            .run_with_listeners(listener, report, metrics, shutdown)
            .await?;
        Ok(())
    })
}

fn migrate(url: &shadowdiff::store::DatabaseUrl) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let store = shadowdiff::store::SqlStore::connect(url).await?;
        store.migrate().await?;
        println!("{url}: migrations applied");
        Ok(())
    })
}

fn replay(args: &ReplayArgs) -> ExitCode {
    let settings = match load(args.config.as_deref(), args.layer()) {
        Ok(s) => s,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(cli::EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(cli::EXIT_USAGE);
        }
    };
    match runtime.block_on(run_replay(args, &settings)) {
        Ok((summary, problems)) => replay_verdict(args, &summary, problems),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}

/// Reads and selects the requests, then runs them; returns the summary and
/// how many input problems were skipped.
async fn run_replay(
    args: &ReplayArgs,
    settings: &Settings,
) -> anyhow::Result<(shadowdiff::replay::ReplaySummary, usize)> {
    use shadowdiff::replay::{self, ReplayOptions, Selection};
    let url = settings
        .database_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no database configured"))?;
    if let Some(problem) = database_problem(settings) {
        anyhow::bail!(problem);
    }
    let (requests, problems, opened) = replay_input(args, &url).await?;
    for problem in &problems {
        eprintln!("warning: {problem}; skipped");
    }
    let seed = args.seed.unwrap_or_else(rand::random);
    if args.random.is_some() {
        eprintln!("random sample seed: {seed} (--seed {seed} repeats it)");
    }
    let read = requests.len();
    // Read before anything is sent or stored: a bad file changes nothing.
    let credentials = args
        .credentials
        .as_deref()
        .map(shadowdiff::replay::credentials::Credentials::read)
        .transpose()?
        .map(std::sync::Arc::new);
    let selection = Selection {
        endpoints: args.criteria.endpoints.clone(),
        random: args.random,
        seed,
        limit: args.limit,
    };
    let selected = replay::select(settings, requests, &selection);
    if selected.is_empty() {
        anyhow::bail!(
            "nothing to replay: {read} requests read, none selected (check the input, --endpoint and --limit)"
        );
    }
    let store = match opened {
        Some(store) => store,
        None => open_migrated(&url).await?,
    };
    let run_id = args.run_id.clone().unwrap_or_else(replay::new_run_id);
    if replay::run_exists(&store, &run_id).await? {
        anyhow::bail!(
            "the store already holds a run {run_id}; give a new --run-id (results of two runs would add up)"
        );
    }
    eprintln!(
        "replay run {run_id}: {} of {read} requests, {} at a time, to {} and {}",
        selected.len(),
        args.concurrency,
        settings.primary,
        settings.candidate
    );
    // Drawn on stderr when it is a terminal, hidden otherwise.
    let bar = replay::progress::progress_bar(selected.len() as u64);
    let options = ReplayOptions {
        run_id,
        concurrency: args.concurrency,
        rate: args.rate,
        allow_unsafe: args.allow_unsafe,
        headers: args.headers.clone(),
        recorded_primary: args.recorded_primary,
        credentials,
    };
    let store = std::sync::Arc::new(store);
    let summary = replay::run(
        settings,
        store.clone(),
        selected,
        &options,
        &args.criteria.criteria(),
        {
            let bar = bar.clone();
            move |p| replay::progress::show_progress(&bar, &p)
        },
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    )
    .await;
    // The summary printed next says what the bar said.
    bar.finish_and_clear();
    let summary = summary?;
    if let (true, Some(fingerprint)) = (args.mark_fixed, &args.fingerprint) {
        let marked = replay::fixed::mark_fixed(store.as_ref(), fingerprint, &summary).await?;
        eprintln!("group {fingerprint}: {marked}");
    }
    Ok((summary, problems.len()))
}

type ReplayInput = (
    Vec<shadowdiff::replay::input::ReplayRequest>,
    Vec<shadowdiff::replay::input::Problem>,
    Option<shadowdiff::store::SqlStore>,
);

/// The requests to replay, from `--input` or the store, with the problems
/// met reading them, and the store if it had to be opened for them. A file
/// is read before the database is opened (and created), so a bad input
/// leaves nothing behind.
async fn replay_input(args: &ReplayArgs, url: &DatabaseUrl) -> anyhow::Result<ReplayInput> {
    if let Some(path) = &args.input {
        let (requests, problems) = shadowdiff::replay::input::read_file(path, args.input_format)?;
        let (requests, problems) = match args.recorded_primary {
            true => shadowdiff::replay::input::with_responses(requests, problems),
            false => (requests, problems),
        };
        return Ok((requests, problems, None));
    }
    let store = open_migrated(url).await?;
    let (requests, problems) = shadowdiff::replay::from_store(
        &store,
        args.from_run.as_deref().unwrap_or(""),
        args.fingerprint.as_deref(),
    )
    .await?;
    Ok((requests, problems, Some(store)))
}

async fn open_migrated(url: &DatabaseUrl) -> anyhow::Result<shadowdiff::store::SqlStore> {
    let store = shadowdiff::store::SqlStore::connect(url)
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    store
        .migrate()
        .await
        .map_err(|e| anyhow::anyhow!("{url}: {e}"))?;
    Ok(store)
}

/// Says what the run did and where its mismatches are, prints the gate,
/// and picks the exit code: the gate's, or usage for an interrupted run.
fn replay_verdict(
    args: &ReplayArgs,
    summary: &shadowdiff::replay::ReplaySummary,
    problems: usize,
) -> ExitCode {
    let t = &summary.gate.total;
    eprintln!(
        "replay run {}: {} requests: {} matched, {} mismatched, {} candidate errors, {} skipped or dropped; {} input problems",
        summary.run_id,
        summary.sent,
        t.matched,
        t.mismatched,
        t.candidate_errors,
        t.skipped + t.dropped,
        problems
    );
    eprintln!(
        "its mismatches: GET /api/v1/mismatches?run={} (report API), or replay --from-store --from-run {}",
        summary.run_id, summary.run_id
    );
    if summary.uncredentialed > 0 {
        eprintln!(
            "warning: {} requests had no value in --credentials for their key; they were sent with their recorded (hashed) credential",
            summary.uncredentialed
        );
    }
    let code = print_gate(&summary.gate, &args.criteria);
    if summary.sent < summary.selected {
        eprintln!(
            "error: interrupted after {} of {} requests: the run is incomplete",
            summary.sent, summary.selected
        );
        return ExitCode::from(cli::EXIT_USAGE);
    }
    code
}

/// `shadowdiff rollout …`: one call to the report API, its answer printed.
fn rollout(args: &cli::RolloutArgs) -> ExitCode {
    use shadowdiff::rollout::remote;
    let token = args.api.report_token.as_ref().map(|t| t.as_str());
    let call = remote::call(&args.api.report_url, token, args.action.body());
    match tokio::runtime::Runtime::new().map(|r| r.block_on(call)) {
        Ok(Ok(view)) if args.json => println!("{view}"),
        Ok(Ok(view)) => print!("{}", remote::render(&view)),
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            let refused = remote::is_refusal(&e);
            return ExitCode::from(if refused {
                cli::EXIT_USAGE
            } else {
                cli::EXIT_FAILURE
            });
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(cli::EXIT_FAILURE);
        }
    }
    ExitCode::from(cli::EXIT_OK)
}

fn gate(args: &GateArgs) -> ExitCode {
    let source = match (&args.report_url, &args.database_url) {
        (Some(url), _) => Source::Api {
            url,
            token: args.report_token.as_ref().map(|t| t.as_str()),
        },
        (None, Some(db)) => Source::Database(db),
        (None, None) => {
            eprintln!("error: give --report-url (a running shadowdiff's report API) or --database-url (its database)");
            return ExitCode::from(cli::EXIT_USAGE);
        }
    };
    let decided = tokio::runtime::Runtime::new()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| {
            Ok(runtime.block_on(shadowdiff::gate::evaluate(
                source,
                &args.criteria.criteria(),
                args.since.as_ref(),
                args.until.as_ref(),
                args.run.as_deref(),
            ))?)
        });
    match decided {
        Ok(report) => print_gate(&report, &args.criteria),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(cli::EXIT_USAGE)
        }
    }
}

/// Prints (and writes) a gate report; its verdict is the exit code.
fn print_gate(report: &shadowdiff::gate::GateReport, args: &GateCriteriaArgs) -> ExitCode {
    use shadowdiff::gate::render::{render, Format};
    use shadowdiff::gate::GateVerdict;
    use std::io::Write;
    let shown = match &args.output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, render(report, args.format)) {
                eprintln!("error: cannot write the report to {}: {e}", path.display());
                return ExitCode::from(cli::EXIT_USAGE);
            }
            render(report, Format::Text)
        }
        None => render(report, args.format),
    };
    // A reader that went away (`| head`) does not change the verdict.
    let _ = std::io::stdout().lock().write_all(shown.as_bytes());
    ExitCode::from(match report.verdict {
        GateVerdict::Pass => cli::EXIT_OK,
        GateVerdict::Fail => cli::EXIT_FAILURE,
        GateVerdict::Inconclusive => cli::EXIT_INCONCLUSIVE,
    })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
/// Installs the SIGTERM and SIGINT handlers at once, so that a signal sent
/// as soon as the port accepts is already a graceful shutdown, not a kill;
/// the returned future resolves when one arrives.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutdown signal received: no new connections");
        })
    }
    #[cfg(not(unix))]
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutdown signal received: no new connections");
    })
}
