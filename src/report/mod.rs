//! The report API: what differs, on which endpoint, how often, since when,
//! as JSON under /api/v1 on its own listener. It reads the store and never
//! writes but for triage.
//!
//! One module per resource holds its handlers and the JSON it serves (its
//! part of the wire format); this one holds the shared state and the router,
//! so a new endpoint is its module, a line here and its entry in
//! `openapi.json`.
//!
//! With a token configured every /api route needs `Authorization: Bearer`
//! (the scheme in any case), the token compared in constant time, or the
//! review UI's session cookie (`session`); the UI's pages (`crate::ui`)
//! are served beside the API and hold no data. Errors are one JSON shape; 5xx say nothing
//! about their cause to the client and are logged once with the full chain.

mod error;
mod forgive;
mod gate;
mod groups;
mod input;
mod metrics;
mod mismatches;
mod noise;
mod openapi;
mod params;
pub mod rejudge;
mod rollout;
mod session;
mod summary;
mod trend;

use std::sync::Arc;

use axum::middleware;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::OnceCell;

use crate::config::{BackendUrl, ReportToken};
use crate::store::{DatabaseUrl, SqlStore};
use crate::writer::health::StoreHealth;

pub use error::ApiError;
pub use openapi::OPENAPI;

/// What the handlers share.
pub struct ReportState {
    database: Option<DatabaseUrl>,
    store: OnceCell<SqlStore>,
    token: Option<ReportToken>,
    primary: BackendUrl,
    candidate: BackendUrl,
    /// The health of this process's store writer, when it has one.
    health: Option<StoreHealth>,
    /// This process's client connections, when it serves a proxy.
    connections: Option<Arc<crate::connections::ConnectionStats>>,
    /// This process's live outcome counts, for /metrics.
    recorder: Option<Arc<crate::outcome::Recorder>>,
    /// This process's shadow stage, for /metrics.
    shadow: Option<Arc<crate::shadow::ShadowStats>>,
    /// This process's notification deliveries, for /metrics.
    notify: Option<Arc<crate::notify::NotifyStats>>,
    /// Each route's backends, to say what each endpoint is compared against.
    targets: Option<crate::config::Targets>,
    /// The serving weights and plans, for `/rollout`.
    cutover: Option<Arc<crate::rollout::Cutover>>,
    /// This process's noise learner, for `/noise`.
    noise: Option<Arc<crate::noise::Noise>>,
}

impl ReportState {
    pub fn new(
        database: Option<DatabaseUrl>,
        token: Option<ReportToken>,
        primary: BackendUrl,
        candidate: BackendUrl,
    ) -> Self {
        ReportState {
            database,
            store: OnceCell::new(),
            token,
            primary,
            candidate,
            health: None,
            connections: None,
            recorder: None,
            shadow: None,
            notify: None,
            targets: None,
            cutover: None,
            noise: None,
        }
    }

    /// Shows and commands this process's cutover on `/rollout`.
    pub fn with_cutover(mut self, cutover: Arc<crate::rollout::Cutover>) -> Self {
        self.cutover = Some(cutover);
        self
    }

    /// Serves what this process learned about noise on `/noise`.
    pub fn with_noise(mut self, noise: Arc<crate::noise::Noise>) -> Self {
        self.noise = Some(noise);
        self
    }

    /// Names each endpoint's backends in the summary.
    pub fn with_targets(mut self, targets: crate::config::Targets) -> Self {
        self.targets = Some(targets);
        self
    }

    /// Shows the health of the store writer running in this process.
    pub fn with_store_health(mut self, health: Option<StoreHealth>) -> Self {
        self.health = health;
        self
    }

    /// Serves this process's live outcome counts on /metrics.
    pub fn with_recorder(mut self, recorder: Arc<crate::outcome::Recorder>) -> Self {
        self.recorder = Some(recorder);
        self
    }

    /// Serves how busy this process's shadow stage is in /metrics.
    pub fn with_shadow_stats(mut self, stats: Arc<crate::shadow::ShadowStats>) -> Self {
        self.shadow = Some(stats);
        self
    }

    /// Serves this process's notification deliveries in /metrics.
    pub fn with_notify_stats(mut self, stats: Option<Arc<crate::notify::NotifyStats>>) -> Self {
        self.notify = stats;
        self
    }

    /// Serves the counts of this process's client connections in the summary.
    pub fn with_connection_stats(
        mut self,
        stats: Arc<crate::connections::ConnectionStats>,
    ) -> Self {
        self.connections = Some(stats);
        self
    }

    /// The store, opened on first use (and again after a failure).
    ///
    /// The API only reads (and writes triage): it never creates or migrates
    /// the database, which is the writer's job (or `shadowdiff migrate`'s).
    /// Beside a writer it waits for the writer's first open; a database not
    /// at this version's schema is a store failure until it is.
    async fn store(&self) -> Result<&SqlStore, ApiError> {
        let url = self.database.as_ref().ok_or(ApiError::NoDatabase)?;
        if let Some(health) = &self.health {
            health.first_open(FIRST_OPEN_WAIT).await;
        }
        self.store
            .get_or_try_init(|| SqlStore::open_existing(url))
            .await
            .map_err(ApiError::Store)
    }
}

/// How long a request waits for the writer's first open of the database.
const FIRST_OPEN_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// The report API's router.
/// `/metrics` and `/healthz` alone, without the token: for a listener of
/// their own (`metrics_listen`), bound where only Prometheus reaches.
pub fn metrics_router(state: Arc<ReportState>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics::metrics))
        .with_state(state)
}

pub fn router(state: Arc<ReportState>) -> Router {
    let api = Router::new()
        .route("/summary", get(summary::summary))
        .route("/endpoints", get(summary::endpoints))
        .route("/groups", get(groups::groups))
        .route(
            "/groups/{fingerprint}",
            get(groups::group).patch(groups::triage),
        )
        .route("/mismatches", get(mismatches::mismatches))
        .route("/mismatches/{id}", get(mismatches::mismatch))
        .route("/mismatches/{id}/curl", get(mismatches::curl))
        .route("/mismatches/{id}/forgive", get(forgive::forgive))
        .route("/trend", get(trend::trend))
        .route("/noise", get(noise::noise).delete(noise::reset))
        // POST too: Flagger's webhooks post; the body is not read.
        .route("/gate", get(gate::gate).post(gate::gate))
        .route("/rejudge", post(rejudge::rejudge))
        .route("/rollout", get(rollout::rollout).post(rollout::command))
        .route("/openapi.json", get(openapi::openapi))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(
            state.clone(),
            input::require_token,
        ));
    // Behind the token too: the endpoint names say what the service does.
    let metrics = Router::new()
        .route("/metrics", get(metrics::metrics))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            input::require_token,
        ));
    // The review UI's sign-in, beside its pages (which hold no data).
    let session = Router::new()
        .route("/ui/session", get(session::status))
        .route("/ui/login", post(session::login))
        .route("/ui/logout", post(session::logout));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .merge(metrics)
        .merge(session)
        .merge(crate::ui::router())
        .nest("/api/v1", api)
        .with_state(state)
}
