//! Query parameters, checked against what a route accepts: unknown names,
//! NUL characters, times (RFC 3339 or a duration back from now), windows
//! and bounded numbers are refused as a 400 naming the parameter.

use std::collections::HashMap;

use axum::extract::rejection::QueryRejection;
use axum::extract::Query;

use super::error::{bad, ApiError};
use super::input;
use crate::config::HumanDuration;
use crate::store::Window;
use crate::time::{now_ms, parse_millis};

/// 0000-01-01T00:00:00Z, the earliest time RFC 3339 can write.
const YEAR_0_MS: i64 = -62_167_219_200_000;

/// Query parameters, checked against what a route accepts.
pub(super) struct Params(pub(super) HashMap<String, String>);

impl Params {
    pub(super) fn new(
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

    pub(super) fn text(&self, name: &str) -> Option<&str> {
        self.0
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// RFC 3339, or a duration meaning that long ago (`15m`, `2h`, `7d`).
    pub(super) fn time(&self, name: &str) -> Result<Option<i64>, ApiError> {
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

    pub(super) fn window(&self) -> Result<Window, ApiError> {
        self.window_or(24 * 3_600_000)
    }

    /// The window, `since` defaulting to `default_ms` before `until`.
    pub(super) fn window_or(&self, default_ms: i64) -> Result<Window, ApiError> {
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

    pub(super) fn number(
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
