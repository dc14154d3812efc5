//! The report API: what differs, on which endpoint, how often, since when,
//! as JSON under /api/v1 on its own listener. This module and its `types`
//! define the API's wire format; it reads the store and never writes but for
//! triage.
//!
//! With a token configured every /api route needs `Authorization: Bearer`
//! (the scheme in any case), the token compared in constant time. Errors are one JSON shape; 5xx say nothing
//! about their cause to the client and are logged once with the full chain.

mod input;
pub mod types;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, RawQuery, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use tokio::sync::OnceCell;

use crate::compare::instant::{format_millis, parse_millis};
use crate::config::{BackendUrl, HumanDuration, ReportToken};
use crate::gate;
use crate::store::bucket_upper_bound;
use crate::store::{
    DatabaseUrl, MismatchFilter, SqlStore, Store, StoreError, StoredMismatch, Window,
};
use crate::writer::health::StoreHealth;
use types::*;

/// The OpenAPI 3 description of this API.
pub const OPENAPI: &str = include_str!("openapi.json");

/// Triage statuses a group can have.
pub const STATUSES: [&str; 4] = ["open", "expected", "bug", "fixed"];

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
        }
    }

    /// Shows the health of the store writer running in this process.
    pub fn with_store_health(mut self, health: Option<StoreHealth>) -> Self {
        self.health = health;
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
    async fn store(&self) -> Result<&SqlStore, ApiError> {
        let url = self.database.as_ref().ok_or(ApiError::NoDatabase)?;
        // Migrating here too (it is idempotent) lets the API answer before
        // the writer's first connection has created the tables.
        self.store
            .get_or_try_init(|| async {
                let mut store = SqlStore::connect(url).await?;
                // Two first starts can race to migrate one SQLite file (the
                // writer's and this one); the loser sees the winner's tables
                // once the winner is done, which on a loaded machine can take
                // a few tries. Each try is on a fresh connection: a failed
                // migration can leave its lock held by the one it ran on.
                let mut tries = 0;
                loop {
                    match store.migrate().await {
                        Ok(()) => return Ok::<_, StoreError>(store),
                        Err(_) if tries < 30 => {
                            tries += 1;
                            store.checkpoint_and_close().await;
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            store = SqlStore::connect(url).await?;
                        }
                        // A database that takes no writes (read-only, full)
                        // can still be read, and the store's health shown.
                        // (On a fresh connection: a failed migration can
                        // leave its lock held by the connection it ran on.)
                        Err(e) => {
                            tracing::warn!(error = %e, "the report API could not migrate the store; reading it as it is");
                            store.checkpoint_and_close().await;
                            return SqlStore::connect(url).await;
                        }
                    }
                }
            })
            .await
            .map_err(ApiError::Store)
    }
}

/// The report API's router.
pub fn router(state: Arc<ReportState>) -> Router {
    let api = Router::new()
        .route("/summary", get(summary))
        .route("/endpoints", get(endpoints))
        .route("/groups", get(groups))
        .route("/groups/{fingerprint}", axum::routing::patch(triage))
        .route("/mismatches", get(mismatches))
        .route("/mismatches/{id}", get(mismatch))
        .route("/mismatches/{id}/curl", get(curl))
        // POST too: Flagger's webhooks post; the body is not read.
        .route("/gate", get(gate).post(gate))
        .route("/openapi.json", get(openapi))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .nest("/api/v1", api)
        .with_state(state)
}

/// Equal-length comparison that takes the same time wherever the bytes differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(
    State(state): State<Arc<ReportState>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &state.token {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(input::bearer_token)
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.as_str().as_bytes()) {
            return ApiError::Unauthorized.into_response();
        }
    }
    next.run(request).await
}

/// Why a request failed; the JSON body names the parameter where one is at fault.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A query parameter or body field is invalid.
    #[error("{message}")]
    BadParameter { parameter: String, message: String },
    /// No such mismatch, group or route.
    #[error("{0}")]
    NotFound(String),
    /// The route exists, but not for this method.
    #[error("this route does not take that method")]
    MethodNotAllowed,
    /// A request body over the size the API reads.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// The token is missing or wrong.
    #[error("a valid `Authorization: Bearer <token>` header is required")]
    Unauthorized,
    /// shadowdiff runs without a database.
    #[error("no database is configured")]
    NoDatabase,
    /// The store failed; the cause is logged, not sent.
    #[error("the store failed")]
    Store(#[source] StoreError),
    /// The store's writes fail or records were lost: its counts cannot be
    /// trusted for a decision. The message names the failure's class only.
    #[error("{0}")]
    StoreUnhealthy(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.respond(None)
    }
}

impl ApiError {
    /// The error's response, with the store writer's health if given.
    fn respond(self, store: Option<StoreStatus>) -> Response {
        let (status, code, parameter) = match &self {
            ApiError::BadParameter { parameter, .. } => (
                StatusCode::BAD_REQUEST,
                "bad_parameter",
                Some(parameter.clone()),
            ),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found", None),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized", None),
            ApiError::MethodNotAllowed => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", None)
            }
            ApiError::NoDatabase => (StatusCode::SERVICE_UNAVAILABLE, "no_database", None),
            ApiError::StoreUnhealthy(_) => {
                (StatusCode::SERVICE_UNAVAILABLE, "store_unhealthy", None)
            }
            ApiError::Store(e) => {
                let mut chain = e.to_string();
                let mut source = std::error::Error::source(e);
                while let Some(s) = source {
                    chain.push_str(": ");
                    chain.push_str(&s.to_string());
                    source = s.source();
                }
                tracing::error!(error = %chain, "report API request failed");
                (StatusCode::SERVICE_UNAVAILABLE, "store_unavailable", None)
            }
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                message: self.to_string(),
                parameter,
            },
            store,
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

fn bad(parameter: &str, message: impl Into<String>) -> ApiError {
    ApiError::BadParameter {
        parameter: parameter.to_string(),
        message: message.into(),
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// 0000-01-01T00:00:00Z, the earliest time RFC 3339 can write.
const YEAR_0_MS: i64 = -62_167_219_200_000;

/// Query parameters, checked against what a route accepts.
struct Params(HashMap<String, String>);

impl Params {
    fn new(
        raw: Result<Query<HashMap<String, String>>, QueryRejection>,
        allowed: &[&str],
    ) -> Result<Params, ApiError> {
        let Query(raw) = raw.map_err(|e| bad("query", e.body_text()))?;
        if let Some(unknown) = raw.keys().find(|k| !allowed.contains(&k.as_str())) {
            return Err(bad(
                unknown,
                format!(
                    "unknown parameter `{unknown}`; this route takes: {}",
                    allowed.join(", ")
                ),
            ));
        }
        for (name, value) in &raw {
            input::no_nul(name, value)?;
        }
        Ok(Params(raw))
    }

    fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// RFC 3339, or a duration meaning that long ago (`15m`, `2h`, `7d`).
    fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
        let Some(value) = self.text(name) else {
            return Ok(None);
        };
        if let Some(ms) = parse_millis(value) {
            return Ok(Some(ms));
        }
        match value.parse::<HumanDuration>() {
            // Before the year 0 a time has no RFC 3339 form to answer with.
            Ok(ago) => i64::try_from(ago.0.as_millis())
                .ok()
                .and_then(|ago| now_ms().checked_sub(ago))
                .filter(|&ms| ms >= YEAR_0_MS)
                .map(Some)
                .ok_or_else(|| bad(name, format!("`{name}` reaches before the year 0; got {value:?}"))),
            Err(_) => Err(bad(name, format!("`{name}` must be an RFC 3339 time (2026-01-01T00:00:00Z) or a duration (15m, 2h, 7d); got {value:?}"))),
        }
    }

    fn window(&self) -> Result<Window, ApiError> {
        self.window_or(24 * 3_600_000)
    }

    /// The window, `since` defaulting to `default_ms` before `until`.
    fn window_or(&self, default_ms: i64) -> Result<Window, ApiError> {
        let until = self.time("until")?.unwrap_or_else(|| now_ms() + 60_000);
        let since = self.time("since")?.unwrap_or(until - default_ms);
        if since >= until {
            return Err(bad("since", "`since` must be before `until`"));
        }
        Ok(Window {
            since_ms: since,
            until_ms: until,
        })
    }

    fn number(
        &self,
        name: &str,
        range: std::ops::RangeInclusive<i64>,
    ) -> Result<Option<i64>, ApiError> {
        let Some(value) = self.text(name) else {
            return Ok(None);
        };
        match value.parse::<i64>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(bad(
                name,
                format!(
                    "`{name}` must be a whole number from {} to {}; got {value:?}",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }
}

/// The gate's decision over stored outcomes: the same as `shadowdiff gate`.
/// `strict=true` answers 412 unless it passes, for callers that only read
/// the status (Flagger's webhooks).
async fn gate(
    State(state): State<Arc<ReportState>>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let pairs: Vec<(String, String)> =
        form_urlencoded::parse(query.as_deref().unwrap_or("").as_bytes())
            .into_owned()
            .collect();
    for (name, value) in &pairs {
        input::no_nul(name, value)?;
    }
    let mut allowed = vec!["since", "until", "run", "strict"];
    allowed.extend(gate::CRITERIA_PARAMETERS);
    let single: HashMap<String, String> = pairs
        .iter()
        .filter(|(k, _)| k != "endpoint")
        .cloned()
        .collect();
    if let Some((unknown, _)) = pairs.iter().find(|(k, _)| !allowed.contains(&k.as_str())) {
        return Err(bad(
            unknown,
            format!(
                "unknown parameter `{unknown}`; this route takes: {}",
                allowed.join(", ")
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    if let Some((twice, _)) = pairs
        .iter()
        .find(|(k, _)| k != "endpoint" && !seen.insert(k.as_str()))
    {
        return Err(bad(
            twice,
            format!("`{twice}` is given twice; only `endpoint` may repeat"),
        ));
    }
    let params = Params(single);
    let criteria =
        gate::Criteria::from_query(&pairs).map_err(|e| bad(&e.parameter, e.to_string()))?;
    let bound = |name: &'static str| -> Result<Option<gate::TimeBound>, ApiError> {
        params
            .text(name)
            .map(|v| {
                v.parse()
                    .map_err(|m: String| bad(name, format!("`{name}`: {m}")))
            })
            .transpose()
    };
    let (since, until) = (bound("since")?, bound("until")?);
    let window = gate::window(since.as_ref(), until.as_ref(), params.text("run"), now_ms())
        .map_err(|e| match e {
            gate::WindowError::TooEarly(name) => bad(name, e.to_string()),
            gate::WindowError::Empty => bad("since", e.to_string()),
        })?;
    let strict = match params.0.get("strict") {
        None => false,
        Some(v) => gate::parse_flag(v).map_err(|m| bad("strict", format!("`strict`: {m}")))?,
    };
    let run = params.text("run");
    // Live traffic's counts are only decided on while they are whole (this
    // process's writer first: it is known even when the store cannot be
    // read). A replay run's writer is the replay's own, which checks itself.
    let health = state.health.as_ref().map(StoreHealth::snapshot);
    if let (None, Some(problem)) = (run, gate::store_problem(window, health.as_ref())) {
        return Err(ApiError::StoreUnhealthy(problem));
    }
    let store = state.store().await?;
    let data = gate::gather(store, window, run.unwrap_or(""), &criteria)
        .await
        .map_err(ApiError::Store)?;
    let report = gate::decide(&criteria, window, run, &data);
    let status = if strict && !report.pass {
        StatusCode::PRECONDITION_FAILED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(report)).into_response())
}

fn tally(outcomes: &BTreeMap<String, i64>) -> Totals {
    let sum = |prefix: &str| gate::sum_prefix(outcomes, prefix);
    let matched = outcomes.get("matched").copied().unwrap_or(0);
    let mismatched = outcomes.get("mismatched").copied().unwrap_or(0);
    let candidate_errors = sum("candidate_error/");
    let judged = matched + mismatched + candidate_errors;
    Totals {
        compared: matched + mismatched,
        matched,
        mismatched,
        candidate_errors,
        skipped: sum("skipped/"),
        dropped: sum("dropped/"),
        parity: (judged > 0).then(|| matched as f64 / judged as f64),
        outcomes: outcomes
            .iter()
            // Error-rate and per-group counters are not outcomes.
            .filter(|(k, _)| !k.ends_with("_5xx") && !k.starts_with("group/"))
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    }
}

fn percentiles(histogram: &[(i64, i64)]) -> Option<Percentiles> {
    let total: i64 = histogram.iter().map(|(_, n)| n).sum();
    if total == 0 {
        return None;
    }
    let at = |q: f64| -> f64 {
        let rank = (q * total as f64).ceil().max(1.0) as i64;
        let mut seen = 0;
        for (bucket, n) in histogram {
            seen += n;
            if seen >= rank {
                // Microsecond precision, without binary-float noise.
                return (bucket_upper_bound(*bucket).as_secs_f64() * 1e6).round() / 1e3;
            }
        }
        0.0
    };
    Some(Percentiles {
        p50: at(0.50),
        p95: at(0.95),
        p99: at(0.99),
    })
}

/// The summary; when the store cannot be read, the 503 still carries the
/// store writer's health, which says why.
async fn summary(
    State(state): State<Arc<ReportState>>,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Response {
    match summary_of(&state, raw).await {
        Ok(summary) => Json(summary).into_response(),
        Err(e @ ApiError::Store(_)) => {
            let health = state
                .health
                .as_ref()
                .map(|h| StoreStatus::from(&h.snapshot()));
            e.respond(health)
        }
        Err(e) => e.into_response(),
    }
}

async fn summary_of(
    state: &ReportState,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Summary, ApiError> {
    let params = Params::new(raw, &["since", "until", "endpoint", "run"])?;
    let window = params.window()?;
    let run = params.text("run").unwrap_or("");
    let store = state.store().await?;
    let counts = store
        .counts(window, run, params.text("endpoint"))
        .await
        .map_err(ApiError::Store)?;
    let mut all = BTreeMap::new();
    let mut endpoints = Vec::new();
    for c in &counts {
        for (k, v) in &c.outcomes {
            *all.entry(k.clone()).or_insert(0) += v;
        }
        let totals = tally(&c.outcomes);
        let (primary_error_rate, candidate_error_rate) = gate::error_rates(&c.outcomes);
        endpoints.push(EndpointSummary {
            endpoint: c.endpoint.clone(),
            latency_ms: Latencies {
                primary: percentiles(
                    &store
                        .latency(window, run, &c.endpoint, "primary")
                        .await
                        .map_err(ApiError::Store)?,
                ),
                candidate: percentiles(
                    &store
                        .latency(window, run, &c.endpoint, "candidate")
                        .await
                        .map_err(ApiError::Store)?,
                ),
            },
            primary_error_rate,
            candidate_error_rate,
            totals,
        });
    }
    let lost_records = store.lost(window).await.map_err(ApiError::Store)?;
    Ok(Summary {
        window: WindowView {
            since: format_millis(window.since_ms),
            until: format_millis(window.until_ms),
        },
        totals: tally(&all),
        lost_records,
        endpoints,
        store: state
            .health
            .as_ref()
            .map(|h| StoreStatus::from(&h.snapshot())),
        connections: state
            .connections
            .as_ref()
            .map(|c| ConnectionCounts::from(c.snapshot())),
    })
}

async fn endpoints(
    State(state): State<Arc<ReportState>>,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Vec<EndpointTotals>>, ApiError> {
    let params = Params::new(raw, &["since", "until", "run"])?;
    let window = params.window()?;
    let counts = state
        .store()
        .await?
        .counts(window, params.text("run").unwrap_or(""), None)
        .await
        .map_err(ApiError::Store)?;
    Ok(Json(
        counts
            .iter()
            .map(|c| EndpointTotals {
                endpoint: c.endpoint.clone(),
                totals: tally(&c.outcomes),
            })
            .collect(),
    ))
}

async fn groups(
    State(state): State<Arc<ReportState>>,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Vec<GroupView>>, ApiError> {
    let params = Params::new(raw, &["status", "endpoint", "since"])?;
    let status = params.text("status");
    if let Some(s) = status {
        if !STATUSES.contains(&s) {
            return Err(bad(
                "status",
                format!("`status` must be one of {}; got {s:?}", STATUSES.join(", ")),
            ));
        }
    }
    let since = params.time("since")?;
    let groups = state
        .store()
        .await?
        .groups(params.text("endpoint"), status)
        .await
        .map_err(ApiError::Store)?;
    Ok(Json(
        groups
            .into_iter()
            .filter(|g| since.is_none_or(|s| g.last_seen >= s))
            .map(GroupView::from)
            .collect(),
    ))
}

async fn triage(
    State(state): State<Arc<ReportState>>,
    fingerprint: Result<Path<String>, PathRejection>,
    body: Result<Json<TriageRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<GroupView>, ApiError> {
    let fingerprint = input::path_text("fingerprint", fingerprint)?;
    let Json(request) = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge;
        }
        bad(
            "body",
            format!("expected {{\"status\": \"…\", \"note\": \"…\"}}: {e}"),
        )
    })?;
    if !STATUSES.contains(&request.status.as_str()) {
        return Err(bad(
            "status",
            format!(
                "`status` must be one of {}; got {:?}",
                STATUSES.join(", "),
                request.status
            ),
        ));
    }
    let note = request.note.unwrap_or_default();
    input::no_nul("note", &note)?;
    let store = state.store().await?;
    if !store
        .triage(&fingerprint, &request.status, &note)
        .await
        .map_err(ApiError::Store)?
    {
        return Err(ApiError::NotFound(format!(
            "no mismatch group {fingerprint:?}"
        )));
    }
    let group = store
        .groups(None, None)
        .await
        .map_err(ApiError::Store)?
        .into_iter()
        .find(|g| g.fingerprint == fingerprint)
        .ok_or_else(|| ApiError::NotFound(format!("no mismatch group {fingerprint:?}")))?;
    Ok(Json(GroupView::from(group)))
}

async fn mismatches(
    State(state): State<Arc<ReportState>>,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<MismatchPage>, ApiError> {
    let params = Params::new(
        raw,
        &["endpoint", "fingerprint", "since", "limit", "cursor", "run"],
    )?;
    let limit = params.number("limit", 1..=500)?.unwrap_or(50);
    let cursor = params.number("cursor", 1..=i64::MAX)?;
    let filter = MismatchFilter {
        run: Some(params.text("run").unwrap_or("")),
        endpoint: params.text("endpoint"),
        fingerprint: params.text("fingerprint"),
        since_ms: params.time("since")?,
    };
    let items = state
        .store()
        .await?
        .mismatches(filter, cursor, limit)
        .await
        .map_err(ApiError::Store)?;
    let next_cursor = (items.len() as i64 == limit)
        .then(|| items.last().map(|m| m.id.to_string()))
        .flatten();
    Ok(Json(MismatchPage {
        items: items.iter().map(MismatchSummary::from).collect(),
        next_cursor,
    }))
}

fn id_of(raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>().ok().filter(|id| *id > 0).ok_or_else(|| {
        bad(
            "id",
            format!("a mismatch id is a positive whole number; got {raw:?}"),
        )
    })
}

/// The stored mismatch a path's `{id}` names, or the error to answer with.
async fn stored_mismatch(state: &ReportState, raw_id: &str) -> Result<StoredMismatch, ApiError> {
    let id = id_of(raw_id)?;
    state
        .store()
        .await?
        .mismatch(id)
        .await
        .map_err(ApiError::Store)?
        .ok_or_else(|| ApiError::NotFound(format!("no mismatch {id}")))
}

async fn mismatch(
    State(state): State<Arc<ReportState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<MismatchDetail>, ApiError> {
    let m = stored_mismatch(&state, &input::path_text("id", id)?).await?;
    Ok(Json(MismatchDetail::from(&m)))
}

async fn curl(
    State(state): State<Arc<ReportState>>,
    id: Result<Path<String>, PathRejection>,
) -> Result<Json<CurlCommands>, ApiError> {
    let m = stored_mismatch(&state, &input::path_text("id", id)?).await?;
    Ok(Json(CurlCommands {
        primary: curl_command(&state.primary, &m.record),
        candidate: curl_command(&state.candidate, &m.record),
        note: "secrets are redacted: replace each redacted:… value before running",
    }))
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn curl_command(base: &BackendUrl, m: &crate::store::MismatchRecord) -> String {
    let target = if m.query.is_empty() {
        m.path.clone()
    } else {
        format!("{}?{}", m.path, m.query)
    };
    let mut parts = vec![
        "curl".to_string(),
        "-X".into(),
        // Quoted too: any token is a valid method name.
        shell_quote(&m.method),
        shell_quote(&format!("{base}{target}")),
    ];
    for (name, value) in &m.request.headers {
        if matches!(
            name.as_str(),
            "host"
                | "content-length"
                | "x-forwarded-for"
                | "x-forwarded-host"
                | "x-forwarded-proto"
        ) {
            continue;
        }
        parts.push("-H".into());
        parts.push(shell_quote(&format!("{name}: {value}")));
    }
    if !m.request.body.bytes.is_empty() {
        parts.push("--data-binary".into());
        parts.push(shell_quote(&String::from_utf8_lossy(&m.request.body.bytes)));
    }
    parts.join(" ")
}

async fn openapi() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_in_constant_time_and_exactly() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn parity_counts_candidate_errors_but_not_skips() {
        let outcomes: BTreeMap<String, i64> = [
            ("matched", 97),
            ("mismatched", 2),
            ("candidate_error/timeout", 1),
            ("skipped/unsafe_method", 50),
            ("candidate_5xx", 3),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let t = tally(&outcomes);
        assert_eq!(t.parity, Some(0.97));
        assert_eq!((t.compared, t.skipped, t.dropped), (99, 50, 0));
        assert!(!t.outcomes.contains_key("candidate_5xx"));
    }

    #[test]
    fn the_openapi_document_is_json() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        for path in [
            "/api/v1/summary",
            "/api/v1/groups/{fingerprint}",
            "/api/v1/mismatches/{id}/curl",
            "/healthz",
        ] {
            assert!(doc["paths"].get(path).is_some(), "{path} is not described");
        }
    }

    #[test]
    fn curl_commands_are_quoted_for_the_shell() {
        let quoted = shell_quote("it's");
        assert_eq!(quoted, r"'it'\''s'");
    }
}
