//! The server: builds the proxy and the shadow stage from settings and runs
//! them on a bound listener until a shutdown future resolves.
//!
//! Tests and `main` start it the same way; shutdown stops accepting, lets
//! client requests finish, then drains shadow work up to `drain_timeout`.

use std::future::Future;
use std::sync::Arc;

use futures_util::FutureExt;
use tokio::net::TcpListener;

use tokio_util::sync::CancellationToken;

use crate::budget::BodyBudget;
use crate::config::Settings;
use crate::connections::{self, ConnectionStats};
use crate::notify::{Event, NewGroup, Notifications};
use crate::outcome::{Recorder, Tally};
use crate::proxy::{self, Proxy};
use crate::redact::Redactor;
use crate::report::{self, ReportState};
use crate::shadow::{ShadowConfig, ShadowStage};
use crate::store::GroupDelta;
use crate::writer::health::StoreHealth;
use crate::writer::{GroupHook, StoreWriter};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The record file could not be opened.
    #[error(transparent)]
    Record(#[from] crate::record::RecordError),
    /// Accepting or serving connections failed.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
    /// The settings name backends that do not resolve.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

pub struct Server {
    proxy: Arc<Proxy>,
    /// The serving weights and plans, shown and commanded through the report API.
    cutover: Arc<crate::rollout::Cutover>,
    /// Each route's backends, also named in the report API's summary.
    targets: crate::config::Targets,
    /// Runs shadow work (candidate calls, comparisons, store writes) on
    /// threads of its own at a lower priority, so it cannot take the client
    /// path's CPU.
    shadow_runtime: ShadowRuntime,
    connections: Arc<ConnectionStats>,
    stage: ShadowStage,
    recorder: Arc<Recorder>,
    settings: Settings,
    /// The store writer's task and its stop signal, when a database is configured.
    writer: WriterTask,
    /// The store writer's health, shown by the report API.
    health: Option<StoreHealth>,
    /// The record file's writing task; it ends when the shadow stage has.
    record: Option<tokio::task::JoinHandle<()>>,
    /// Notification delivery and the gate watcher, when configured.
    notifications: Notifications,
    /// Stops the periodic tasks: the per-endpoint summary lines, the
    /// rollout's weights and plans, the learned noise's sync.
    summaries: CancellationToken,
    /// What the old code differs in with itself, learned and discounted.
    noise: Arc<crate::noise::Noise>,
}

/// How often learned noise is added to the store and read back.
const NOISE_SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

impl Server {
    /// Builds the server; must be called inside a Tokio runtime.
    pub fn new(mut settings: Settings) -> Result<Server, ServeError> {
        fit_caps_to_open_files(&mut settings);
        let targets = crate::config::Targets::new(&settings)?;
        let shadow_runtime = shadow_runtime(settings.shadow_threads.get())?;
        // Everything spawned while building the shadow side runs on its runtime.
        let entered = shadow_runtime.enter();
        // One key for the store and the record file, so their hashes agree.
        let redactor = Redactor::new(&settings.redact);
        // The record file first: a start that fails creates no database.
        let (record, record_task) = match &settings.record {
            None => (None, None),
            Some(path) => {
                let (log, task) = crate::record::RequestLog::open(
                    path,
                    redactor.clone(),
                    settings.max_body_bytes,
                )?;
                tracing::info!(file = %path.display(), "recording sampled requests");
                (Some(log), Some(task))
            }
        };
        let mut notifications = Notifications::start(&settings);
        let (recorder, writer, health) = start_writer(&settings, &redactor, &notifications);
        notifications.watch(&settings, health.clone());
        let summaries = CancellationToken::new();
        tokio::spawn(crate::outcome::periodic::log_summaries(
            recorder.clone(),
            settings.log_summary_every,
            summaries.clone(),
        ));
        let rollout = Arc::new(crate::rollout::Rollout::new(&settings));
        let cutover = Arc::new(crate::rollout::Cutover {
            rollout: rollout.clone(),
            plans: settings.routes.iter().map(|r| r.plan.clone()).collect(),
            kill_file: settings.kill_file.clone(),
            instance: settings.instance.clone(),
            every: settings.rollout_sync_every,
            recorder: Some(recorder.clone()),
        });
        // Without a database the weights are the settings' (and the kill file's).
        let url = settings.database_url.clone();
        tokio::spawn(cutover.clone().run(url, summaries.clone()));
        let paired = settings
            .secondary
            .clone()
            .map(|s| (settings.primary.clone(), s));
        let noise = Arc::new(crate::noise::Noise::new(
            paired,
            settings.noise_min_samples.get() as u64,
        ));
        if let Some(url) = settings.database_url.clone() {
            let instance = settings.instance.clone();
            let every = NOISE_SYNC_EVERY;
            let task =
                crate::noise::sync_task(noise.clone(), url, instance, every, summaries.clone());
            tokio::spawn(task);
        }
        let budget = BodyBudget::new(settings.max_buffered_bytes);
        let breaker = settings
            .breaker_failures
            .map(|n| Arc::new(crate::breaker::Breaker::new(n)));
        let client = crate::upstream::shadow_client(targets.longest_candidate_timeout());
        let (queue, stage) = ShadowStage::start(
            ShadowConfig {
                record,
                breaker: breaker.clone(),
                noise: Some(noise.clone()),
                ..ShadowConfig::from_settings(&settings, client, &budget)
            }
            .with_backend_limits(&targets),
        );
        drop(entered);
        let proxy = Arc::new(Proxy::new(
            settings.clone(),
            proxy::Routing {
                targets: targets.clone(),
                rollout: rollout.clone(),
            },
            crate::upstream::primary_client(),
            queue,
            recorder.clone(),
            budget,
            breaker,
        ));
        Ok(Server {
            proxy,
            cutover,
            targets,
            shadow_runtime,
            connections: Arc::default(),
            stage,
            recorder,
            settings,
            health,
            writer,
            record: record_task,
            notifications,
            summaries,
            noise,
        })
    }

    /// What happened to client connections so far.
    pub fn connection_stats(&self) -> Arc<ConnectionStats> {
        self.connections.clone()
    }

    /// The outcomes recorded so far, shared with the running server.
    pub fn recorder(&self) -> Arc<Recorder> {
        self.recorder.clone()
    }

    /// Serves the proxy and the report API until `shutdown` resolves.
    pub async fn run_with_report(
        self,
        listener: TcpListener,
        report: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Tally, ServeError> {
        self.run_with_listeners(listener, report, None, shutdown)
            .await
    }

    /// Serves the proxy, the report API and, on a listener of its own,
    /// `/metrics`, until `shutdown` resolves.
    pub async fn run_with_listeners(
        self,
        listener: TcpListener,
        report: TcpListener,
        metrics: Option<TcpListener>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Tally, ServeError> {
        let shutdown = shutdown.shared();
        if self.settings.report_token.is_none() {
            tracing::warn!(
                "no report token is set: the report API is open to anyone who can reach it"
            );
        }
        let state = Arc::new(
            ReportState::new(
                self.settings.database_url.clone(),
                self.settings.report_token.clone(),
                self.settings.primary.clone(),
                self.settings.candidate.clone(),
            )
            .with_store_health(self.health.clone())
            .with_connection_stats(self.connections.clone())
            .with_shadow_stats(self.stage.stats())
            .with_notify_stats(self.notifications.stats())
            .with_recorder(self.recorder.clone())
            .with_targets(self.targets.clone())
            .with_cutover(self.cutover.clone())
            .with_noise(self.noise.clone()),
        );
        let address = report.local_addr()?;
        tracing::info!(%address, "report API listening");
        let mut apis = vec![(
            "report API",
            tokio::spawn({
                let api = axum::serve(report, report::router(state.clone()))
                    .with_graceful_shutdown(shutdown.clone());
                async move { api.await }
            }),
        )];
        if let Some(metrics) = metrics {
            let address = metrics.local_addr()?;
            tracing::info!(%address, "metrics listening");
            apis.push((
                "metrics listener",
                tokio::spawn({
                    let api = axum::serve(metrics, report::metrics_router(state))
                        .with_graceful_shutdown(shutdown.clone());
                    async move { api.await }
                }),
            ));
        }
        let tally = self.run(listener, shutdown).await;
        for (what, task) in apis {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!(error = %e, "the {what} failed"),
                Err(e) => tracing::error!(error = %e, "the {what} task failed"),
            }
        }
        tally
    }

    /// Serves until `shutdown` resolves, then drains; returns the final tally.
    pub async fn run(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<Tally, ServeError> {
        let address = listener.local_addr()?;
        if let Some(url) = &self.settings.database_url {
            self.cutover.apply_stored(url).await;
        }
        tracing::info!(
            %address,
            mode = %self.settings.mode,
            primary = %self.settings.primary,
            candidate = %self.settings.candidate,
            sample_rate = %self.settings.sample_rate,
            "shadowdiff listening"
        );
        let grace = self.settings.drain_timeout;
        // Streams that never end (event streams, long polls) must not hold
        // shutdown forever: past the grace period they are cut.
        connections::serve(
            listener,
            proxy::router(self.proxy.clone()),
            self.settings.connections,
            self.connections.clone(),
            shutdown,
            grace,
        )
        .await;
        tracing::info!(
            deadline_ms = grace.as_millis() as u64,
            "client requests finished; draining shadow work"
        );
        // Drained even when serving failed, so every sample still gets its outcome.
        self.stage.drain(grace).await;
        self.summaries.cancel();
        if let Some(task) = self.record {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "the record file writer failed");
            }
        }
        if let Some((stop, task)) = self.writer {
            stop.cancel();
            if let Err(e) = task.await {
                tracing::error!(error = %e, "the store writer failed");
            }
        }
        // After the writer, whose last write may announce new groups.
        self.notifications.finish().await;
        drop(self.shadow_runtime);
        let c = &self.connections;
        let n = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        tracing::info!(
            accepted = n(&c.accepted),
            accept_errors = n(&c.accept_errors),
            header_timeouts = n(&c.header_timeouts),
            idle_closed = n(&c.idle_closed),
            evicted = n(&c.evicted),
            "client connections"
        );
        let tally = self.recorder.tally();
        for (endpoint, counts) in &tally.by_endpoint {
            let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{k}={n}")).collect();
            tracing::info!(%endpoint, outcomes = %counts.join(" "), "final tally");
        }
        Ok(tally)
    }
}

/// The shadow side's runtime. Dropped inside another runtime (as a server is,
/// at its end or when building it fails), a runtime must not wait for its
/// threads: those still in a comparison are left to finish alone.
struct ShadowRuntime(Option<tokio::runtime::Runtime>);

impl ShadowRuntime {
    fn enter(&self) -> tokio::runtime::EnterGuard<'_> {
        self.0.as_ref().expect("present until dropped").enter()
    }
}

impl Drop for ShadowRuntime {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// The runtime for shadow work: its own worker threads and a small blocking
/// pool for comparisons, all at a lower scheduling priority than the threads
/// that serve clients, so a flood of shadow work slows only itself.
/// Fits client connections and shadow calls in flight to the open-file
/// limit together: a shadow call holds a descriptor to the candidate, and in
/// mirror mode one more to the primary.
fn fit_caps_to_open_files(settings: &mut Settings) {
    let per_shadow_call = match settings.mode {
        crate::config::Mode::Inline | crate::config::Mode::Collector => 1,
        crate::config::Mode::Mirror => 2,
    };
    let fitted = connections::fit_to_open_files(
        &settings.connections,
        settings.max_in_flight,
        per_shadow_call,
    );
    settings.connections.max_connections = fitted.max_connections;
    settings.max_in_flight = fitted.max_in_flight;
}

fn shadow_runtime(threads: usize) -> std::io::Result<ShadowRuntime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        // Comparisons run here; a few more threads for name lookups and the like.
        .max_blocking_threads(threads + 2)
        .thread_name("shadowdiff-shadow")
        .on_thread_start(lower_priority)
        .enable_all()
        .build()
        .map(|runtime| ShadowRuntime(Some(runtime)))
}

/// Lowers the calling thread's priority (Linux sets it per thread).
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority with `who` 0 changes only the calling thread.
    #[allow(unsafe_code, reason = "no safe wrapper for thread priority in std")]
    unsafe {
        let _ = libc::setpriority(libc::PRIO_PROCESS, 0, 19);
    }
}

/// The recorder, and with a database the store writer's task (with its stop
/// signal) and health; spawned on the current runtime (the shadow side's).
fn start_writer(
    settings: &Settings,
    redactor: &Redactor,
    notifications: &Notifications,
) -> (Arc<Recorder>, WriterTask, Option<StoreHealth>) {
    match &settings.database_url {
        None => (Arc::new(Recorder::default()), None, None),
        Some(url) => {
            let mut config = settings.writer_config("");
            config.on_new_group = notifications.notifier().map(|notifier| {
                GroupHook(Arc::new(move |g: &GroupDelta| {
                    notifier.send(Event::NewGroup(NewGroup::from(g)));
                }))
            });
            let writer = StoreWriter::new(config, redactor.clone());
            let stop = CancellationToken::new();
            let task = tokio::spawn(writer.clone().connect_and_run(
                url.clone(),
                stop.clone(),
                settings.drain_timeout,
            ));
            let health = writer.health();
            (
                Arc::new(Recorder::with_writer(writer)),
                Some((stop, task)),
                Some(health),
            )
        }
    }
}

/// The store writer's task and its stop signal.
type WriterTask = Option<(CancellationToken, tokio::task::JoinHandle<()>)>;
