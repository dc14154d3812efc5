//! How each type of setting value is read from text: a flag, or a default
//! written in the settings table. One trait per value type, so a setting of
//! a known type needs no parser of its own, and its flag refuses a bad value
//! with the same words whichever setting it is.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::str::FromStr;

use clap::builder::{EnumValueParser, ValueParser};

use super::{
    BackendUrl, DelayMillis, Fallback, GateWatch, HostHeader, HumanDuration, Mode, NonZeroMillis,
    ReportToken, RoleHeader, WebhookUrl, Writes,
};
use crate::sampling::{SampleRate, StickyKey, Weight};
use crate::store::DatabaseUrl;

/// A type a serve setting can hold.
pub trait SettingValue: Sized + Clone + Send + Sync + 'static {
    /// Read as text from the environment even when it looks like a number:
    /// a token or a name may be all digits.
    const TEXT: bool = false;

    /// The value written as text, or what would be accepted.
    fn parse_text(text: &str) -> Result<Self, String>;

    /// How clap reads the flag. Numeric flags take `-1` as their value (not
    /// as a flag), so the refusal names the flag and says what it accepts.
    fn value_parser() -> ValueParser {
        ValueParser::new(Self::parse_text)
    }
}

/// A value from the settings table's defaults, which must parse.
pub fn parse_default<T: SettingValue>(key: &str, text: &str) -> T {
    T::parse_text(text)
        .unwrap_or_else(|e| panic!("the declared default of {key}, {text:?}, is invalid: {e}"))
}

/// A whole number of at least 1.
pub fn at_least_one(s: &str) -> Result<NonZeroUsize, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("expected a whole number of at least 1; got {s:?}"))
}

/// A whole number, 0 or more.
pub fn whole_u64(s: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("expected a whole number, 0 or more; got {s:?}"))
}

/// A whole number that fits 32 bits.
pub fn whole_u32(s: &str) -> Result<u32, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("expected a whole number from 0 to {}; got {s:?}", u32::MAX))
}

impl SettingValue for NonZeroUsize {
    fn parse_text(text: &str) -> Result<Self, String> {
        at_least_one(text)
    }
}

impl SettingValue for u64 {
    fn parse_text(text: &str) -> Result<Self, String> {
        whole_u64(text)
    }
}

impl SettingValue for u32 {
    fn parse_text(text: &str) -> Result<Self, String> {
        whole_u32(text)
    }
}

impl SettingValue for Mode {
    fn parse_text(text: &str) -> Result<Self, String> {
        <Mode as clap::ValueEnum>::from_str(text, false)
    }
    /// Lists the modes in `--help` and in the refusal.
    fn value_parser() -> ValueParser {
        EnumValueParser::<Mode>::new().into()
    }
}

impl SettingValue for String {
    const TEXT: bool = true;
    fn parse_text(text: &str) -> Result<Self, String> {
        Ok(text.to_string())
    }
    fn value_parser() -> ValueParser {
        ValueParser::string()
    }
}

impl SettingValue for PathBuf {
    const TEXT: bool = true;
    fn parse_text(text: &str) -> Result<Self, String> {
        Ok(PathBuf::from(text))
    }
    /// clap's own, which refuses an empty path on the command line.
    fn value_parser() -> ValueParser {
        ValueParser::path_buf()
    }
}

/// Types read with their `FromStr`, its error as the reason.
macro_rules! from_str_values {
    ($($ty:ty => $text:expr),* $(,)?) => {$(
        impl SettingValue for $ty {
            const TEXT: bool = $text;
            fn parse_text(text: &str) -> Result<Self, String> {
                <$ty as FromStr>::from_str(text).map_err(|e| e.to_string())
            }
        }
    )*};
}

from_str_values! {
    bool => false,
    SocketAddr => false,
    BackendUrl => false,
    SampleRate => false,
    StickyKey => false,
    NonZeroMillis => false,
    DelayMillis => false,
    DatabaseUrl => false,
    HumanDuration => false,
    HostHeader => false,
    RoleHeader => false,
    Weight => false,
    Writes => false,
    Fallback => false,
    ReportToken => true,
    WebhookUrl => true,
    GateWatch => true,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_say_what_they_accept() {
        let err = NonZeroUsize::parse_text("-1").unwrap_err();
        assert!(err.contains("at least 1"), "{err}");
        assert!(u64::parse_text("-1").unwrap_err().contains("0 or more"));
        assert_eq!(u32::parse_text(" 7 "), Ok(7));
        assert_eq!(Mode::parse_text("mirror"), Ok(Mode::Mirror));
        assert!(Mode::parse_text("tap").is_err());
    }
}
