//! The window a gate reads: bounds as given (an RFC 3339 time or a duration
//! back from now), resolved the same way for the CLI, the report API and a
//! replay, so every path decides over the same minutes.

use std::str::FromStr;

use crate::store::Window;

/// The window when `since` is not given: the last hour.
pub const DEFAULT_WINDOW_MS: i64 = 3_600_000;

/// A window bound as given: an RFC 3339 time or a duration meaning that
/// long ago (`15m`, `2h`, `7d`). Kept as written, to pass on to a report API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeBound(String);

impl FromStr for TimeBound {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if crate::time::parse_millis(s).is_some() || crate::time::parse_duration(s).is_ok() {
            Ok(TimeBound(s.to_string()))
        } else {
            Err(format!(
                "expected an RFC 3339 time (2026-01-01T00:00:00Z) or a duration (15m, 2h, 7d); got {s:?}"
            ))
        }
    }
}

impl TimeBound {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Unix milliseconds, durations counted back from `now_ms`; `None` for a
    /// duration reaching before any time that can be stored.
    pub fn resolve(&self, now_ms: i64) -> Option<i64> {
        if let Some(ms) = crate::time::parse_millis(&self.0) {
            return Some(ms);
        }
        let ago = crate::time::parse_duration(&self.0).ok()?;
        let ago = i64::try_from(ago.as_millis()).ok()?;
        // Stored minutes are small positive numbers; far earlier is an input error.
        now_ms.checked_sub(ago).filter(|ms| *ms > -(1 << 50))
    }
}

/// A window that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WindowError {
    /// A duration reaching before any time that can be stored.
    #[error("`{0}` reaches before any time that can be stored")]
    TooEarly(&'static str),
    /// `since` is not before `until`.
    #[error("`since` must be before `until`")]
    Empty,
}

/// The window a gate reads, the same for the API and the CLI: `until`
/// defaults to now (into the current minute), `since` to an hour before
/// `until`, or, for a replay run, to the run's beginning.
pub fn window(
    since: Option<&TimeBound>,
    until: Option<&TimeBound>,
    run: Option<&str>,
    now_ms: i64,
) -> Result<Window, WindowError> {
    let until_ms = match until {
        Some(u) => u.resolve(now_ms).ok_or(WindowError::TooEarly("until"))?,
        None => now_ms + 60_000,
    };
    let since_ms = match (since, run) {
        (Some(s), _) => s.resolve(now_ms).ok_or(WindowError::TooEarly("since"))?,
        (None, Some(_)) => 0,
        (None, None) => until_ms - DEFAULT_WINDOW_MS,
    };
    if since_ms >= until_ms {
        return Err(WindowError::Empty);
    }
    Ok(Window { since_ms, until_ms })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_the_same_for_every_caller() {
        let now = 10 * 3_600_000;
        let t = |s: &str| s.parse::<TimeBound>().unwrap();
        let w = window(None, None, None, now).unwrap();
        assert_eq!(
            (w.since_ms, w.until_ms),
            (now + 60_000 - 3_600_000, now + 60_000)
        );
        let w = window(None, Some(&t("2h")), None, now).unwrap();
        assert_eq!(
            (w.since_ms, w.until_ms),
            (now - 3 * 3_600_000, now - 2 * 3_600_000)
        );
        assert_eq!(window(None, None, Some("r"), now).unwrap().since_ms, 0);
        assert_eq!(
            window(Some(&t("1h")), Some(&t("2h")), None, now),
            Err(WindowError::Empty)
        );
        assert_eq!(
            window(Some(&t("10000000000000w")), None, None, now),
            Err(WindowError::TooEarly("since"))
        );
    }
}
