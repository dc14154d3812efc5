//! How the candidate may serve clients (a progressive cutover): whether
//! unsafe methods follow the cohort or stay on the primary, and whether a
//! safe request whose candidate fails is answered by the primary instead.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use super::{GateWatch, HumanDuration};
use crate::sampling::Weight;

/// A route's cutover plan (`[route.plan]`): the weights to step through,
/// the least time at each, and the gate each step must pass over it. A step
/// that passes advances (automatically, or on `rollout advance` with
/// `advance = "command"`); one that fails rolls the route back to 0.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "PlanText")]
pub struct Plan {
    pub steps: Vec<Weight>,
    pub hold: std::time::Duration,
    pub gate: GateWatch,
    pub advance: Advance,
}

/// Whether a step that passed its gate over its hold moves on by itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Advance {
    Auto,
    Command,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanText {
    steps: Vec<Weight>,
    hold: HumanDuration,
    gate: GateWatch,
    #[serde(default = "auto")]
    advance: Advance,
}

fn auto() -> Advance {
    Advance::Auto
}

impl TryFrom<PlanText> for Plan {
    type Error = String;
    fn try_from(p: PlanText) -> Result<Self, Self::Error> {
        if p.steps.is_empty() || p.steps[0].percent() <= 0.0 {
            return Err("`steps` are weights above 0, such as [1, 5, 25, 100]".into());
        }
        if p.steps.windows(2).any(|w| w[1].percent() <= w[0].percent()) {
            return Err("`steps` must rise: each weight above the one before".into());
        }
        if p.gate
            .text
            .split('&')
            .any(|part| part.starts_with("since="))
        {
            return Err(
                "a step's gate is decided over the step's own time: leave `since` out of `gate`"
                    .into(),
            );
        }
        Ok(Plan {
            steps: p.steps,
            hold: p.hold.into(),
            gate: p.gate,
            advance: p.advance,
        })
    }
}

/// Where unsafe methods (POST, PUT, PATCH, DELETE…) go at a weight above 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Writes {
    /// With the client's cohort: one client's requests go to one backend.
    Cohort,
    /// Always to the primary, until a step sets `cohort`.
    Primary,
}

/// What a safe request gets when the candidate serving it fails to
/// connect or times out.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Fallback {
    /// The failure, as the candidate gave it (502 or 504).
    Off,
    /// The primary's answer, the request sent again to it (counted).
    Primary,
}

macro_rules! words {
    ($ty:ident { $($variant:ident => $word:literal),* }) => {
        impl FromStr for $ty {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($word => Ok($ty::$variant),)*
                    other => Err(format!(
                        "expected {}; got {other:?}",
                        [$(concat!("\"", $word, "\"")),*].join(" or ")
                    )),
                }
            }
        }
        impl TryFrom<String> for $ty {
            type Error = String;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                s.parse()
            }
        }
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $($ty::$variant => $word,)* })
            }
        }
    };
}

words!(Writes { Cohort => "cohort", Primary => "primary" });
words!(Fallback { Off => "off", Primary => "primary" });
words!(Advance { Auto => "auto", Command => "command" });

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_read_back() {
        assert_eq!("primary".parse::<Writes>(), Ok(Writes::Primary));
        assert_eq!("off".parse::<Fallback>(), Ok(Fallback::Off));
        let err = "sometimes".parse::<Fallback>().unwrap_err();
        assert!(err.contains("\"off\" or \"primary\""), "{err}");
    }

    #[test]
    fn plans_rise_and_gate_over_their_own_steps() {
        let plan = |text: &str| toml::from_str::<Plan>(text).map_err(|e| e.to_string());
        let ok =
            plan("steps = [1, 5, 25, 100]\nhold = \"10m\"\ngate = \"min_parity=99.9\"").unwrap();
        assert_eq!(ok.steps.len(), 4);
        assert_eq!(ok.hold, std::time::Duration::from_secs(600));
        assert_eq!(ok.advance, Advance::Auto);
        for (bad, words) in [
            (
                "steps = []\nhold = \"1m\"\ngate = \"min_parity=99\"",
                "above 0",
            ),
            (
                "steps = [5, 1]\nhold = \"1m\"\ngate = \"min_parity=99\"",
                "rise",
            ),
            (
                "steps = [5, 101]\nhold = \"1m\"\ngate = \"min_parity=99\"",
                "0 to 100",
            ),
            (
                "steps = [5]\nhold = \"1m\"\ngate = \"min_parity=99&since=1h\"",
                "since",
            ),
            (
                "steps = [5]\nhold = \"soon\"\ngate = \"min_parity=99\"",
                "hold",
            ),
            (
                "steps = [5]\nhold = \"1m\"\ngate = \"min_parity=99\"\nadvance = \"never\"",
                "auto",
            ),
        ] {
            let err = plan(bad).unwrap_err();
            assert!(err.contains(words), "{bad}: {err}");
        }
    }
}
