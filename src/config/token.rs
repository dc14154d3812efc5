//! The report API's bearer token as a typed value. An empty token would
//! compare equal to an empty `Authorization` header and leave the API open
//! while the operator believes it closed, so one is refused where it is read.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

/// A bearer token with at least one non-whitespace character. Its `Debug`
/// form hides the value, so settings can be logged without it.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct ReportToken(String);

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the report token is empty or only whitespace, which would leave the report API open; give a real token, or leave the setting out to run without one")]
    Empty,
    /// HTTP drops whitespace around a header value, so no client could send
    /// such a token; a secret file's trailing newline is the usual cause.
    #[error("the report token starts or ends with whitespace (a trailing newline?), which no client can send in a header; remove it")]
    Padded,
}

impl ReportToken {
    /// The token as the client must send it after `Bearer `.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for ReportToken {
    type Err = TokenError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().is_empty() {
            return Err(TokenError::Empty);
        }
        if s.trim() != s {
            return Err(TokenError::Padded);
        }
        Ok(ReportToken(s.to_string()))
    }
}

impl TryFrom<String> for ReportToken {
    type Error = TokenError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Debug for ReportToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ReportToken(<hidden>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_blank_tokens_are_refused() {
        for bad in ["", " ", "\t\n"] {
            assert_eq!(
                bad.parse::<ReportToken>(),
                Err(TokenError::Empty),
                "{bad:?}"
            );
        }
        for padded in ["s3cret\n", " s3cret"] {
            assert_eq!(padded.parse::<ReportToken>(), Err(TokenError::Padded));
        }
        let token: ReportToken = "s3 cret".parse().unwrap();
        assert_eq!(token.as_str(), "s3 cret");
        assert!(!format!("{token:?}").contains("s3"));
    }
}
