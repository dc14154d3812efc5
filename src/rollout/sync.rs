//! Keeping the weights shared and moving plans: a task (on the shadow
//! runtime, never on a client's path) that every `every` reads the stored
//! weights and applies them, forces every weight to 0 while the kill file
//! exists, and decides each route's plan from the store: a step whose gate
//! passed over its hold advances, a serving step whose gate fails rolls
//! back to 0 (and pauses the plan). Every instance runs it; a change is
//! conditional on the version it was decided from, so it happens once.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::live::{self, Judged, Recent};
use super::Rollout;
use crate::config::{Advance, Plan};
use crate::gate::{self, EndpointGlob, GateVerdict};
use crate::sampling::Weight;
use crate::store::{DatabaseUrl, RolloutChange, RolloutRow, SqlStore, Window};
use crate::time::now_ms;

/// A change a plan decides: weight, step, paused, reason, detail.
type Change = (f64, i64, bool, &'static str, String);

/// Back to 0, the plan paused, saying why.
fn rollback(at: f64, why: &str) -> Change {
    (
        0.0,
        -1,
        true,
        "rollback",
        format!("the gate failed at {at}%: {why}"),
    )
}

/// The name of the weight of requests no route matches.
pub const ROUTE_DEFAULT: &str = "*";

/// A cutover as this instance runs it: the live weights, each route's
/// plan, the kill file, this instance's name; its task keeps them shared
/// (`run`), and commands change them (`command`).
pub struct Cutover {
    pub rollout: Arc<Rollout>,
    /// Each route's plan, in route order.
    pub plans: Vec<Option<Plan>>,
    /// Its presence sets every weight to 0 here.
    pub kill_file: Option<PathBuf>,
    pub instance: String,
    pub every: Duration,
    /// This instance's live tally, for the fast rollback (`live`).
    pub recorder: Option<Arc<crate::outcome::Recorder>>,
}

impl Cutover {
    /// Runs until `stop`; a store that cannot be read is tried again next
    /// time, the weights meanwhile left as they were (the kill file still
    /// applies).
    pub async fn run(self: Arc<Self>, url: Option<DatabaseUrl>, stop: CancellationToken) {
        let started = now_ms();
        let mut store: Option<SqlStore> = None;
        let mut killed = false;
        let mut recent = Recent::default();
        let mut tick = tokio::time::interval(self.every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let kill = self.killed_by_file();
            if kill != killed {
                killed = kill;
                match kill {
                    true => {
                        tracing::warn!(file = ?self.kill_file, "kill file present: every weight is 0 here")
                    }
                    false => {
                        tracing::warn!(file = ?self.kill_file, "kill file gone: the stored weights apply again")
                    }
                }
            }
            if let (None, Some(url)) = (&store, &url) {
                store = SqlStore::open_existing(url).await.ok();
            }
            let rows = match &store {
                Some(s) => match s.rollout_weights().await {
                    Ok(rows) => Some(rows),
                    Err(e) => {
                        tracing::warn!(error = %e, "rollout weights could not be read; kept as they were");
                        None
                    }
                },
                None => None,
            };
            if let Some(rows) = &rows {
                self.apply(rows, killed);
                if !killed {
                    if let Some(store) = &store {
                        self.advance_plans(store, rows, started, &mut recent).await;
                    }
                }
            } else if killed || url.is_none() {
                self.apply(&[], killed);
            }
        }
    }

    /// A step's gate over its own time, from the store: a pass held long
    /// enough advances (with `advance = "auto"`), a fail at a serving step
    /// rolls back, anything else waits.
    async fn judge_step(
        &self,
        store: &SqlStore,
        (key, plan, criteria): (&str, &Plan, crate::gate::Criteria),
        (step, since, now): (i64, i64, i64),
        at: f64,
    ) -> Option<Change> {
        let window = Window {
            since_ms: since,
            until_ms: now + 60_000,
        };
        let data = match gate::gather(store, window, "", &criteria).await {
            Ok(data) => data,
            Err(e) => {
                tracing::warn!(error = %e, route = %key, "a plan's gate could not be read");
                return None;
            }
        };
        let report = gate::decide(&criteria, window, None, &data);
        let held = now - since >= plan.hold.as_millis() as i64;
        let next = usize::try_from(step + 1)
            .ok()
            .and_then(|n| plan.steps.get(n));
        match (report.verdict, step >= 0) {
            (GateVerdict::Fail, true) => Some(rollback(at, &report.reason)),
            (GateVerdict::Pass, _) if held && plan.advance == Advance::Auto => next.map(|w| {
                let why = format!(
                    "the gate passed over {} s: {}",
                    plan.hold.as_secs(),
                    report.reason
                );
                (w.percent(), step + 1, false, "plan", why)
            }),
            _ => None,
        }
    }

    /// Before serving: the stored weights, so that a restart keeps the
    /// cutover where it was (and one client's requests on one backend);
    /// the configured ones where the store cannot say within 2 s (a new
    /// database, one not migrated yet, one down), until the task reads it.
    pub async fn apply_stored(&self, url: &DatabaseUrl) {
        let read = async {
            let store = SqlStore::open_existing(url).await.ok()?;
            store.rollout_weights().await.ok()
        };
        match tokio::time::timeout(Duration::from_secs(2), read).await {
            Ok(Some(rows)) => self.apply(&rows, self.killed_by_file()),
            _ => {
                tracing::info!("no stored serving weights yet: the configured ones apply");
                self.apply(&[], self.killed_by_file());
            }
        }
    }

    /// Whether the kill file exists now.
    pub fn killed_by_file(&self) -> bool {
        self.kill_file.as_ref().is_some_and(|f| f.exists())
    }

    /// Every weight from its stored row (the configured one without), or 0.
    fn apply(&self, rows: &[RolloutRow], killed: bool) {
        for (i, key) in self.rollout.keys().iter().enumerate() {
            let route = i.checked_sub(1);
            let weight = match (killed, rows.iter().find(|r| &r.route == key)) {
                (true, _) => Weight::ZERO,
                (false, Some(row)) => Weight::new(row.weight).unwrap_or(Weight::ZERO),
                (false, None) => self.rollout.configured(route),
            };
            if weight != self.rollout.weight(route) {
                tracing::info!(route = %key, weight = weight.percent(), "serving weight applied");
                self.rollout.set_weight(route, weight);
            }
        }
    }

    /// Each route with a plan, not paused: its gate over the current step.
    async fn advance_plans(
        &self,
        store: &SqlStore,
        rows: &[RolloutRow],
        started: i64,
        recent: &mut Recent,
    ) {
        let tally = self.recorder.as_ref().map(|r| r.tally());
        for (i, plan) in self.plans.iter().enumerate() {
            let Some(plan) = plan else { continue };
            let key = &self.rollout.keys()[i + 1];
            let row = rows.iter().find(|r| &r.route == key);
            if row.is_some_and(|r| r.paused) {
                continue;
            }
            let configured = self.rollout.configured(Some(i)).percent();
            let (step, since, version) =
                row.map_or((-1, started, 0), |r| (r.step, r.since_ms, r.version));
            let now = now_ms();
            let mut criteria = plan.gate.criteria.clone();
            criteria.endpoints = vec![match key.parse::<EndpointGlob>() {
                Ok(glob) => glob,
                Err(_) => continue,
            }];
            let at = row.map_or(configured, |r| r.weight);
            // A serving step: this instance's last seconds first, which
            // show a bug long before the stored minutes do.
            let live = match (&tally, step >= 0) {
                (Some(tally), true) => {
                    let span = live::window(plan);
                    let counts = Judged::of(tally, &criteria.endpoints[0]);
                    let last = recent.observe(i, std::time::Instant::now(), counts, span);
                    tracing::debug!(route = %key, ?counts, ?last, "a serving step's last seconds");
                    live::failing(last, plan, span)
                }
                _ => {
                    recent.reset(i);
                    None
                }
            };
            let change = match live {
                Some(why) => Some(rollback(at, &why)),
                None => {
                    self.judge_step(store, (key, plan, criteria), (step, since, now), at)
                        .await
                }
            };
            let Some((weight, step, paused, reason, detail)) = change else {
                continue;
            };
            let applied = store
                .change_rollout(&RolloutChange {
                    route: key,
                    weight,
                    step,
                    paused,
                    expected_version: Some(version),
                    configured,
                    at_ms: now,
                    reason,
                    detail: &detail,
                    instance: &self.instance,
                })
                .await;
            match applied {
                Ok(Some(_)) => {
                    tracing::warn!(route = %key, weight, reason, detail = %detail, "serving weight changed");
                    self.rollout
                        .set_weight(Some(i), Weight::new(weight).unwrap_or(Weight::ZERO));
                }
                // Another instance decided it first.
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(error = %e, route = %key, "a plan's change could not be stored")
                }
            }
        }
    }
}
