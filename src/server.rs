//! The server: builds the proxy and the shadow stage from settings and runs
//! them on a bound listener until a shutdown future resolves.
//!
//! Tests and `main` start it the same way; shutdown stops accepting, lets
//! client requests finish, then drains shadow work up to `drain_timeout`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use futures_util::FutureExt;
use tokio::net::TcpListener;

use std::time::Duration;

use tokio::sync::oneshot;

use crate::budget::BodyBudget;
use crate::config::Settings;
use crate::outcome::{Recorder, Tally};
use crate::proxy::{self, Proxy};
use crate::redact::Redactor;
use crate::report::{self, ReportState};
use crate::shadow::{ShadowConfig, ShadowStage};
use crate::store::health::StoreHealth;
use crate::store::writer::{StoreWriter, WriterConfig};

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The HTTP client for the backends could not be built (TLS set-up).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// The record file could not be opened.
    #[error(transparent)]
    Record(#[from] crate::record::RecordError),
    /// Accepting or serving connections failed.
    #[error("serving failed: {0}")]
    Io(#[from] std::io::Error),
}

pub struct Server {
    proxy: Arc<Proxy>,
    stage: ShadowStage,
    recorder: Arc<Recorder>,
    settings: Settings,
    /// The store writer's task and its stop signal, when a database is configured.
    writer: Option<(oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
    /// The store writer's health, shown by the report API.
    health: Option<StoreHealth>,
    /// The record file's writing task; it ends when the shadow stage has.
    record: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Builds the server; must be called inside a Tokio runtime.
    pub fn new(settings: Settings) -> Result<Server, ServeError> {
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
        let (recorder, writer, health) = match &settings.database_url {
            None => (Arc::new(Recorder::default()), None, None),
            Some(url) => {
                let writer = StoreWriter::new(
                    WriterConfig {
                        instance: settings.instance.clone(),
                        run: String::new(),
                        max_pending: settings.store_queue.get(),
                        flush_every: Duration::from_millis(500),
                        retention: Some(settings.retention),
                        max_body_bytes: settings.max_body_bytes,
                        exemplar_bytes_per_hour: settings.store_exemplar_bytes_per_hour.get(),
                    },
                    redactor.clone(),
                );
                let (stop, stopped) = oneshot::channel();
                let task = tokio::spawn(writer.clone().connect_and_run(
                    url.clone(),
                    stopped,
                    settings.drain_timeout,
                ));
                let health = writer.health();
                (
                    Arc::new(Recorder::with_writer(writer)),
                    Some((stop, task)),
                    Some(health),
                )
            }
        };
        let budget = BodyBudget::new(settings.max_buffered_bytes);
        let (queue, stage) = ShadowStage::start(ShadowConfig {
            record,
            primary: settings.primary.clone(),
            candidate: settings.candidate.clone(),
            client: proxy::client(Some(settings.candidate_timeout))?,
            timeout: settings.candidate_timeout,
            max_body_bytes: settings.max_body_bytes,
            max_in_flight: settings.max_in_flight.get(),
            queue: settings.queue.get(),
            budget: budget.clone(),
        });
        let proxy = Arc::new(Proxy::new(
            settings.clone(),
            proxy::client(None)?,
            queue,
            recorder.clone(),
            budget,
        ));
        Ok(Server {
            proxy,
            stage,
            recorder,
            settings,
            health,
            writer,
            record: record_task,
        })
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
            .with_store_health(self.health.clone()),
        );
        let address = report.local_addr()?;
        tracing::info!(%address, "report API listening");
        let api =
            axum::serve(report, report::router(state)).with_graceful_shutdown(shutdown.clone());
        let api = tokio::spawn(async move { api.await });
        let tally = self.run(listener, shutdown).await;
        match api.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the report API failed"),
            Err(e) => tracing::error!(error = %e, "the report API task failed"),
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
        tracing::info!(
            %address,
            mode = %self.settings.mode,
            primary = %self.settings.primary,
            candidate = %self.settings.candidate,
            sample_rate = %self.settings.sample_rate,
            "shadowdiff listening"
        );
        // Small writes (chunk ends, short responses) must not wait for Nagle.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app =
            proxy::router(self.proxy.clone()).into_make_service_with_connect_info::<SocketAddr>();
        let shutdown = shutdown.shared();
        let grace = self.settings.drain_timeout;
        let served = axum::serve(listener, app).with_graceful_shutdown(shutdown.clone());
        // Streams that never end (event streams, long polls) must not hold
        // shutdown forever: past the grace period they are cut.
        let overdue = async {
            shutdown.await;
            tokio::time::sleep(grace).await;
        };
        let served = tokio::select! {
            served = served => served,
            () = overdue => {
                tracing::warn!(
                    grace_ms = grace.as_millis() as u64,
                    "client connections still open after the grace period; closing them"
                );
                Ok(())
            }
        };
        tracing::info!(
            deadline_ms = grace.as_millis() as u64,
            "client requests finished; draining shadow work"
        );
        // Drained even when serving failed, so every sample still gets its outcome.
        self.stage.drain(grace).await;
        if let Some(task) = self.record {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "the record file writer failed");
            }
        }
        if let Some((stop, task)) = self.writer {
            let _ = stop.send(());
            if let Err(e) = task.await {
                tracing::error!(error = %e, "the store writer failed");
            }
        }
        served?;
        let tally = self.recorder.tally();
        for (endpoint, counts) in &tally.by_endpoint {
            let counts: Vec<String> = counts.iter().map(|(k, n)| format!("{k}={n}")).collect();
            tracing::info!(%endpoint, outcomes = %counts.join(" "), "final tally");
        }
        Ok(tally)
    }
}
