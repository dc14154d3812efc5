//! How the candidate may serve clients (a progressive cutover): whether
//! unsafe methods follow the cohort or stay on the primary, and whether a
//! safe request whose candidate fails is answered by the primary instead.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

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
}
