//! Rollout commands (`shadowdiff rollout …`, `POST /api/v1/rollout`): each
//! one change per route, written to the store with its reason, so that
//! every instance applies it within `rollout_sync_ms`, and applied here at
//! once. A change is conditional on the version it was decided from and is
//! decided again (up to a few times) when another instance got there first.

use super::Cutover;
use crate::sampling::Weight;
use crate::store::{RolloutChange, RolloutRow, SqlStore, StoreError};
use crate::time::now_ms;

/// What an operator asks.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// A route's weight, pausing its plan.
    Set {
        route: String,
        weight: Weight,
    },
    /// A route's next plan step, whatever its gate says.
    Advance {
        route: String,
    },
    Pause {
        route: String,
    },
    Resume {
        route: String,
    },
    /// A route back to 0, its plan paused.
    Rollback {
        route: String,
    },
    /// Every weight to 0, every plan paused.
    Kill,
}

/// Why a command was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("no route is named {0:?}; routes are named by their `match` (and `*` for the rest)")]
    UnknownRoute(String),
    #[error("{0}")]
    Refused(String),
    #[error("the store: {0}")]
    Store(#[from] StoreError),
    #[error("another instance kept changing the route; try again")]
    Contended,
}

impl Cutover {
    /// Applies a command; says what each changed route now is.
    pub async fn command(
        &self,
        store: &SqlStore,
        command: &Command,
        via: &str,
    ) -> Result<Vec<RolloutRow>, CommandError> {
        let routes: Vec<String> = match command {
            Command::Kill => self.rollout.keys().to_vec(),
            Command::Set { route, .. }
            | Command::Advance { route }
            | Command::Pause { route }
            | Command::Resume { route }
            | Command::Rollback { route } => {
                if self.rollout.slot_of(route).is_none() {
                    return Err(CommandError::UnknownRoute(route.clone()));
                }
                vec![route.clone()]
            }
        };
        let mut changed = Vec::new();
        for route in routes {
            changed.push(self.command_route(store, command, &route, via).await?);
        }
        Ok(changed)
    }

    async fn command_route(
        &self,
        store: &SqlStore,
        command: &Command,
        route: &str,
        via: &str,
    ) -> Result<RolloutRow, CommandError> {
        let slot = self.rollout.slot_of(route).flatten();
        let plan = slot
            .and_then(|i| self.plans.get(i))
            .and_then(Option::as_ref);
        let configured = self.rollout.configured(slot).percent();
        for _ in 0..5 {
            let rows = store.rollout_weights().await?;
            let row = rows.iter().find(|r| r.route == route);
            let (weight, step, version) =
                row.map_or((configured, -1, 0), |r| (r.weight, r.step, r.version));
            let (weight, step, reason, detail) = match command {
                Command::Set { weight: w, .. } => {
                    let step = plan
                        .and_then(|p| p.steps.iter().position(|s| s == w))
                        .map_or(-1, |i| i as i64);
                    (w.percent(), step, "command", format!("set via {via}"))
                }
                Command::Advance { .. } => {
                    let plan = plan.ok_or_else(|| {
                        CommandError::Refused(format!("route {route:?} has no plan to advance"))
                    })?;
                    let next = usize::try_from(step + 1)
                        .ok()
                        .and_then(|n| plan.steps.get(n));
                    let next = next.ok_or_else(|| {
                        CommandError::Refused(format!("route {route:?} is at its plan's last step"))
                    })?;
                    (
                        next.percent(),
                        step + 1,
                        "command",
                        format!("advanced via {via}"),
                    )
                }
                Command::Pause { .. } => (weight, step, "command", format!("paused via {via}")),
                Command::Resume { .. } => (weight, step, "command", format!("resumed via {via}")),
                Command::Rollback { .. } => (0.0, -1, "rollback", format!("rolled back via {via}")),
                Command::Kill => (0.0, -1, "kill", format!("killed via {via}")),
            };
            let change = RolloutChange {
                route,
                weight,
                step,
                paused: paused_after(command, plan.is_some()),
                expected_version: Some(version),
                configured,
                at_ms: now_ms(),
                reason,
                detail: &detail,
                instance: &self.instance,
            };
            if let Some(row) = store.change_rollout(&change).await? {
                tracing::warn!(route, weight, reason, detail = %detail, "serving weight changed");
                self.rollout
                    .set_weight(slot, Weight::new(weight).unwrap_or(Weight::ZERO));
                return Ok(row);
            }
        }
        Err(CommandError::Contended)
    }
}

/// Whether a route's plan is paused after a command.
fn paused_after(command: &Command, has_plan: bool) -> bool {
    match command {
        // A weight set by hand holds until the plan is resumed.
        Command::Set { .. } => has_plan,
        Command::Advance { .. } | Command::Resume { .. } => false,
        Command::Pause { .. } | Command::Rollback { .. } | Command::Kill => true,
    }
}
