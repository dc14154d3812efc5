//! `GET /api/v1/rollout`, the cutover as this instance sees it (each
//! route's live, stored and configured weight, its plan, the kill file,
//! what was served, the latest history), and `POST /api/v1/rollout`, the
//! commands (`set`, `advance`, `pause`, `resume`, `rollback`, `kill`),
//! which need the report token: an API without one takes none.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::error::{bad, ApiError};
use super::ReportState;
use crate::rollout::{Command, CommandError, Cutover};
use crate::sampling::Weight;
use crate::store::{RolloutEvent, RolloutRow};
use crate::time::format_millis;

/// History entries shown.
const HISTORY: i64 = 50;

/// The cutover: wire format, version 1.
#[derive(Serialize)]
pub struct RolloutView {
    pub version: u32,
    /// The kill file exists on this instance: every weight is 0 here.
    pub killed_by_file: bool,
    pub routes: Vec<RouteView>,
    /// Requests this instance sent to each side since it started, and the
    /// safe requests the primary answered after the candidate failed.
    pub served: Served,
    /// The latest changes, newest first (empty without a database).
    pub history: Vec<EventView>,
}

#[derive(Serialize)]
pub struct RouteView {
    /// The route's `match`, or `*` for requests no route matches.
    pub route: String,
    /// The weight this instance applies now.
    pub weight: f64,
    /// The weight the settings give.
    pub configured: f64,
    /// The shared state, where a command or plan set one.
    pub stored: Option<StoredView>,
    pub plan: Option<PlanView>,
}

#[derive(Serialize)]
pub struct StoredView {
    pub weight: f64,
    /// The step of the plan, or null off it.
    pub step: Option<i64>,
    pub paused: bool,
    pub since: String,
    pub version: i64,
}

#[derive(Serialize)]
pub struct PlanView {
    pub steps: Vec<f64>,
    pub hold_seconds: u64,
    pub gate: String,
    pub advance: String,
}

#[derive(Serialize)]
pub struct Served {
    pub primary: u64,
    pub candidate: u64,
    pub fallbacks: u64,
}

#[derive(Serialize)]
pub struct EventView {
    pub at: String,
    pub route: String,
    pub from: f64,
    pub to: f64,
    /// `command`, `plan`, `rollback` or `kill`.
    pub reason: String,
    pub detail: String,
    pub instance: String,
}

impl From<&RolloutEvent> for EventView {
    fn from(e: &RolloutEvent) -> Self {
        EventView {
            at: format_millis(e.at_ms),
            route: e.route.clone(),
            from: e.from_weight,
            to: e.to_weight,
            reason: e.reason.clone(),
            detail: e.detail.clone(),
            instance: e.instance.clone(),
        }
    }
}

/// A command as posted.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    pub command: String,
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub weight: Option<f64>,
}

fn cutover(state: &ReportState) -> Result<&Arc<Cutover>, ApiError> {
    state
        .cutover
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("this API serves no proxy, so no rollout".into()))
}

pub(super) async fn rollout(
    State(state): State<Arc<ReportState>>,
) -> Result<Json<RolloutView>, ApiError> {
    let cutover = cutover(&state)?;
    let (rows, history) = match state.database.is_some() {
        true => {
            let store = state.store().await?;
            let rows = store.rollout_weights().await.map_err(ApiError::Store)?;
            let history = store
                .rollout_history(HISTORY)
                .await
                .map_err(ApiError::Store)?;
            (rows, history)
        }
        false => (Vec::new(), Vec::new()),
    };
    Ok(Json(view(cutover, &rows, &history)))
}

fn view(cutover: &Cutover, rows: &[RolloutRow], history: &[RolloutEvent]) -> RolloutView {
    let rollout = &cutover.rollout;
    let routes = rollout
        .keys()
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let slot = i.checked_sub(1);
            RouteView {
                route: key.clone(),
                weight: rollout.weight(slot).percent(),
                configured: rollout.configured(slot).percent(),
                stored: rows.iter().find(|r| &r.route == key).map(|r| StoredView {
                    weight: r.weight,
                    step: (r.step >= 0).then_some(r.step),
                    paused: r.paused,
                    since: format_millis(r.since_ms),
                    version: r.version,
                }),
                plan: slot
                    .and_then(|s| cutover.plans.get(s))
                    .and_then(Option::as_ref)
                    .map(|p| PlanView {
                        steps: p.steps.iter().map(|w| w.percent()).collect(),
                        hold_seconds: p.hold.as_secs(),
                        gate: p.gate.text.clone(),
                        advance: p.advance.to_string(),
                    }),
            }
        })
        .collect();
    let (primary, candidate, fallbacks) = rollout.served();
    RolloutView {
        version: 1,
        killed_by_file: cutover.killed_by_file(),
        routes,
        served: Served {
            primary,
            candidate,
            fallbacks,
        },
        history: history.iter().map(EventView::from).collect(),
    }
}

pub(super) async fn command(
    State(state): State<Arc<ReportState>>,
    body: Result<Json<CommandRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<RolloutView>), ApiError> {
    if state.token.is_none() {
        return Err(ApiError::Forbidden(
            "rollout commands need the report API's token: set report_token".into(),
        ));
    }
    let cutover = cutover(&state)?;
    let Json(request) = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::PayloadTooLarge;
        }
        bad(
            "body",
            format!("expected {{\"command\": \"set\", \"route\": \"GET /…\", \"weight\": 5}}: {e}"),
        )
    })?;
    let command = parse(request)?;
    let store = state.store().await?;
    cutover
        .command(store, &command, "the API")
        .await
        .map_err(|e| match e {
            CommandError::UnknownRoute(_) => ApiError::NotFound(e.to_string()),
            CommandError::Refused(_) | CommandError::Contended => ApiError::Conflict(e.to_string()),
            CommandError::Store(e) => ApiError::Store(e),
        })?;
    let rows = store.rollout_weights().await.map_err(ApiError::Store)?;
    let history = store
        .rollout_history(HISTORY)
        .await
        .map_err(ApiError::Store)?;
    Ok((StatusCode::OK, Json(view(cutover, &rows, &history))))
}

/// A posted command, checked: its route given where it needs one, its
/// weight from 0 to 100 where it has one, nothing it would ignore.
fn parse(r: CommandRequest) -> Result<Command, ApiError> {
    let route = |r: &CommandRequest| {
        r.route
            .clone()
            .ok_or_else(|| bad("route", format!("`{}` needs a `route`", r.command)))
    };
    let no_weight = |r: &CommandRequest| match r.weight {
        Some(_) => Err(bad("weight", format!("`{}` takes no `weight`", r.command))),
        None => Ok(()),
    };
    Ok(match r.command.as_str() {
        "set" => {
            let weight = r
                .weight
                .ok_or_else(|| bad("weight", "`set` needs a `weight`, 0 to 100"))?;
            let weight = Weight::new(weight).map_err(|e| bad("weight", e))?;
            Command::Set {
                route: route(&r)?,
                weight,
            }
        }
        "advance" | "pause" | "resume" | "rollback" => {
            no_weight(&r)?;
            let route = route(&r)?;
            match r.command.as_str() {
                "advance" => Command::Advance { route },
                "pause" => Command::Pause { route },
                "resume" => Command::Resume { route },
                _ => Command::Rollback { route },
            }
        }
        "kill" => {
            no_weight(&r)?;
            if r.route.is_some() {
                return Err(bad(
                    "route",
                    "`kill` sets every route to 0: it takes no `route`",
                ));
            }
            Command::Kill
        }
        other => {
            return Err(bad(
                "command",
                format!(
                    "{other:?} is not a command: set, advance, pause, resume, rollback or kill"
                ),
            ))
        }
    })
}
