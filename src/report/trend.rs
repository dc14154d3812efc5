//! GET /api/v1/trend: outcome counts over time, a point per step, for the
//! review UI's trend and anyone charting parity without Prometheus.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::Json;
use serde::Serialize;

use super::error::ApiError;
use super::params::Params;
use super::ReportState;
use crate::gate::Counts;
use crate::store::{Store, TrendRow};
use crate::time::format_millis;

/// At most this many points unless `step` asks for more.
const POINTS: i64 = 120;

pub(super) async fn trend(
    State(state): State<Arc<ReportState>>,
    raw: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> Result<Json<Trend>, ApiError> {
    let params = Params::new(raw, &["since", "until", "endpoint", "run", "step"])?;
    let window = params.window()?;
    let minutes = window.end_minute() - window.first_minute();
    let step = match params.number("step", 1..=44_640)? {
        Some(step) => step,
        None => (minutes + POINTS - 1) / POINTS,
    }
    .max(1);
    let rows = state
        .store()
        .await?
        .trend(
            window,
            params.text("run").unwrap_or(""),
            params.text("endpoint"),
            step,
        )
        .await
        .map_err(ApiError::Store)?;
    Ok(Json(Trend {
        step_minutes: step,
        points: points(&rows),
    }))
}

/// One point per step with counts, oldest first.
fn points(rows: &[TrendRow]) -> Vec<TrendPoint> {
    let mut points = Vec::new();
    let mut i = 0;
    while i < rows.len() {
        let minute = rows[i].minute;
        let end = rows[i..]
            .iter()
            .position(|r| r.minute != minute)
            .map_or(rows.len(), |n| i + n);
        let counts =
            Counts::from_stored(rows[i..end].iter().map(|r| (r.outcome.as_str(), r.count)));
        let (matched, mismatched) = (counts.matched(), counts.mismatched());
        // As the summary counts it: a candidate error is a failed comparison.
        let compared = matched + mismatched + counts.candidate_errors();
        points.push(TrendPoint {
            at: format_millis(minute * 60_000),
            matched,
            mismatched,
            candidate_errors: counts.candidate_errors(),
            skipped: counts.skipped(),
            dropped: counts.dropped(),
            parity: (compared > 0).then(|| matched as f64 / compared as f64),
        });
        i = end;
    }
    points
}

/// Outcome counts over time.
#[derive(Serialize)]
pub struct Trend {
    /// Minutes per point.
    pub step_minutes: i64,
    /// Steps with any count, oldest first.
    pub points: Vec<TrendPoint>,
}

#[derive(Serialize)]
pub struct TrendPoint {
    /// The start of the step.
    pub at: String,
    pub matched: i64,
    pub mismatched: i64,
    pub candidate_errors: i64,
    pub skipped: i64,
    pub dropped: i64,
    /// matched / (matched + mismatched + candidate_errors), as the
    /// summary's; null without a comparison.
    pub parity: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_one_step_make_one_point() {
        let row = |minute, outcome: &str, count| TrendRow {
            minute,
            outcome: outcome.into(),
            count,
        };
        let got = points(&[
            row(10, "matched", 3),
            row(10, "mismatched", 1),
            row(10, "candidate_error/timeout", 2),
            row(15, "dropped/queue_full", 4),
        ]);
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].matched, got[0].mismatched, got[0].candidate_errors),
            (3, 1, 2)
        );
        assert_eq!(got[0].parity, Some(0.5));
        assert_eq!(got[0].at, format_millis(600_000));
        assert_eq!((got[1].dropped, got[1].parity), (4, None));
    }
}
