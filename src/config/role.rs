//! The role header: the field every shadow call carries (value `shadow`)
//! so that a backend can tell a copy from a client's request, or write
//! nothing for it. Its name is configurable, and `off` sends none.

use std::fmt;
use std::str::FromStr;

use http::HeaderName;
use serde::Deserialize;

/// The role header's name, or none (`off`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RoleHeader(Option<HeaderName>);

impl RoleHeader {
    /// Its value on every shadow call.
    pub const SHADOW: &'static str = "shadow";

    pub fn name(&self) -> Option<&HeaderName> {
        self.0.as_ref()
    }
}

impl FromStr for RoleHeader {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "off" {
            return Ok(RoleHeader(None));
        }
        let name = HeaderName::from_bytes(s.as_bytes())
            .map_err(|_| format!("expected a header name, or off for none; got {s:?}"))?;
        // A field a proxy must not forward, or one that says what the
        // request is, would change the request, not label it.
        let reserved = [
            "host",
            "content-length",
            "content-type",
            "authorization",
            "cookie",
        ];
        let taken = super::rewrite::HOP_BY_HOP.contains(&name.as_str())
            || reserved.contains(&name.as_str());
        match taken {
            true => Err(format!(
                "{name} carries the request itself, so it cannot be the role header"
            )),
            false => Ok(RoleHeader(Some(name))),
        }
    }
}

impl TryFrom<String> for RoleHeader {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for RoleHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(name) => f.write_str(name.as_str()),
            None => f.write_str("off"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_or_off() {
        assert_eq!(
            "X-Shadow".parse::<RoleHeader>().unwrap().name().unwrap(),
            "x-shadow"
        );
        assert!("off".parse::<RoleHeader>().unwrap().name().is_none());
        for bad in ["", "a b", "connection", "Host", "authorization"] {
            assert!(bad.parse::<RoleHeader>().is_err(), "{bad}");
        }
    }
}
