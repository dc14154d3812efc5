//! Durations as settings write them: whole milliseconds for the `_ms` keys,
//! and a number with a unit (`14d`) where people think in hours or days.

use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

/// A duration written as a number and a unit: `15m`, `2h`, `14d`, `30s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct HumanDuration(pub Duration);

impl FromStr for HumanDuration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::time::parse_duration(s).map(HumanDuration)
    }
}

impl TryFrom<String> for HumanDuration {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Duration {
        d.0
    }
}

/// A duration in whole milliseconds, at least 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct NonZeroMillis(u64);

impl TryFrom<u64> for NonZeroMillis {
    type Error = String;
    fn try_from(ms: u64) -> Result<Self, Self::Error> {
        if ms == 0 {
            Err("must be at least 1 (milliseconds)".to_string())
        } else {
            Ok(NonZeroMillis(ms))
        }
    }
}

impl FromStr for NonZeroMillis {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ms: u64 = s
            .trim()
            .parse()
            .map_err(|_| format!("expected whole milliseconds, got {s:?}"))?;
        ms.try_into()
    }
}

impl NonZeroMillis {
    pub fn duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

/// A wait in whole milliseconds, from 0 to a minute (`recheck_delay_ms`):
/// a longer one would hold a shadow slot, and the bodies it compares, for
/// nothing a minute later could still tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "u64")]
pub struct DelayMillis(u64);

impl DelayMillis {
    /// The longest wait accepted.
    pub const MAX: u64 = 60_000;

    pub fn duration(self) -> Duration {
        Duration::from_millis(self.0)
    }
}

impl TryFrom<u64> for DelayMillis {
    type Error = String;
    fn try_from(ms: u64) -> Result<Self, Self::Error> {
        match ms {
            0..=Self::MAX => Ok(DelayMillis(ms)),
            _ => Err(format!(
                "at most {} (a minute, in milliseconds); got {ms}: a longer wait holds a shadow slot and its bodies for nothing",
                Self::MAX
            )),
        }
    }
}

impl FromStr for DelayMillis {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let ms: u64 = s.trim().parse().map_err(|_| {
            format!(
                "expected whole milliseconds from 0 to {}, got {s:?}",
                Self::MAX
            )
        })?;
        ms.try_into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!("15m".parse::<HumanDuration>().unwrap().0.as_secs(), 900);
        assert_eq!(
            "14d".parse::<HumanDuration>().unwrap().0.as_secs(),
            14 * 86_400
        );
        for bad in ["", "15", "m", "0h", "2 hours", "-1d"] {
            assert!(bad.parse::<HumanDuration>().is_err(), "{bad}");
        }
    }

    #[test]
    fn delays_stay_within_a_minute() {
        assert_eq!(
            "0".parse::<DelayMillis>().unwrap().duration(),
            Duration::ZERO
        );
        assert_eq!(
            "60000".parse::<DelayMillis>().unwrap().duration(),
            Duration::from_secs(60)
        );
        let err = "60001".parse::<DelayMillis>().unwrap_err();
        assert!(err.contains("at most 60000"), "{err}");
        assert!("-1".parse::<DelayMillis>().is_err());
    }
}
