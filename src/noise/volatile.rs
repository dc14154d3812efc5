//! Values that look volatile: two differing values at one path that are
//! both UUIDs, both date-times near now, both random tokens, or both
//! integers (a counter). Without a secondary, a path whose differences are
//! nearly always of one such kind is proposed as a mask of that kind.

use serde_json::Value;

use crate::compare::rules::MaskKind;

/// How far from now a date-time may be to count as "the time of the request".
const NEAR_MS: i64 = 24 * 3_600_000;
/// The shortest text taken for a random token.
const TOKEN_CHARS: usize = 16;

/// Counts of differing value pairs by the kind both values shared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Volatility {
    pub uuid: u64,
    pub timestamp: u64,
    pub token: u64,
    pub counter: u64,
}

/// The kinds, as a mask names them (a token and a counter have no mask
/// kind of their own: see [`Kind::mask`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Uuid,
    Timestamp,
    Token,
    Counter,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Uuid, Kind::Timestamp, Kind::Token, Kind::Counter];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Uuid => "uuid",
            Kind::Timestamp => "timestamp",
            Kind::Token => "token",
            Kind::Counter => "counter",
        }
    }

    /// The `mask` value that forgives exactly this kind: a token as a
    /// regular expression of its alphabet and least length.
    pub fn mask(self) -> &'static str {
        match self {
            Kind::Uuid => "uuid",
            Kind::Timestamp => "timestamp",
            Kind::Token => "^[A-Za-z0-9_-]{16,}$",
            Kind::Counter => "number",
        }
    }
}

impl Volatility {
    pub fn add(&mut self, other: &Volatility) {
        self.uuid += other.uuid;
        self.timestamp += other.timestamp;
        self.token += other.token;
        self.counter += other.counter;
    }

    pub fn subtract(&mut self, other: &Volatility) {
        self.uuid = self.uuid.saturating_sub(other.uuid);
        self.timestamp = self.timestamp.saturating_sub(other.timestamp);
        self.token = self.token.saturating_sub(other.token);
        self.counter = self.counter.saturating_sub(other.counter);
    }

    pub fn of(kind: Option<Kind>) -> Volatility {
        let mut v = Volatility::default();
        match kind {
            Some(Kind::Uuid) => v.uuid = 1,
            Some(Kind::Timestamp) => v.timestamp = 1,
            Some(Kind::Token) => v.token = 1,
            Some(Kind::Counter) => v.counter = 1,
            None => {}
        }
        v
    }

    pub fn get(&self, kind: Kind) -> u64 {
        match kind {
            Kind::Uuid => self.uuid,
            Kind::Timestamp => self.timestamp,
            Kind::Token => self.token,
            Kind::Counter => self.counter,
        }
    }
}

/// The kind two differing values share, if they look volatile.
pub fn kind_of(a: &Value, b: &Value, now_ms: i64) -> Option<Kind> {
    match (a, b) {
        (Value::String(x), Value::String(y)) => {
            if MaskKind::Uuid.accepts_text(x) && MaskKind::Uuid.accepts_text(y) {
                Some(Kind::Uuid)
            } else if near(x, now_ms) && near(y, now_ms) {
                Some(Kind::Timestamp)
            } else if token(x) && token(y) {
                Some(Kind::Token)
            } else {
                None
            }
        }
        (Value::Number(x), Value::Number(y)) if x.is_i64() && y.is_i64() => Some(Kind::Counter),
        _ => None,
    }
}

fn near(text: &str, now_ms: i64) -> bool {
    crate::time::parse_millis(text).is_some_and(|at| (at - now_ms).abs() <= NEAR_MS)
}

/// Long, of a token's alphabet, with letters and digits mixed: what random
/// ids look like, and words rarely do.
fn token(text: &str) -> bool {
    text.chars().count() >= TOKEN_CHARS
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && text.bytes().any(|b| b.is_ascii_digit())
        && text.bytes().any(|b| b.is_ascii_alphabetic())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

    #[test]
    fn kinds_are_told_apart() {
        let kind = |a: Value, b: Value| kind_of(&a, &b, NOW);
        assert_eq!(
            kind(
                json!("0b9c5a4e-3f7e-4f5e-9a51-6f0f4cf6c001"),
                json!("7d3c1e22-1b1a-4c1e-8f1e-0a0b0c0d0e0f")
            ),
            Some(Kind::Uuid)
        );
        assert_eq!(
            kind(
                json!("2026-01-01T00:00:01Z"),
                json!("2026-01-01T00:00:02.5Z")
            ),
            Some(Kind::Timestamp)
        );
        assert_eq!(
            kind(json!("2019-01-01T00:00:01Z"), json!("2019-01-01T00:00:02Z")),
            None,
            "a date long ago is data, not the clock"
        );
        assert_eq!(
            kind(json!("tok_8f3k2j9s0d1l2k3j"), json!("tok_1a2b3c4d5e6f7g8h")),
            Some(Kind::Token)
        );
        assert_eq!(kind(json!("shipped"), json!("pending")), None);
        assert_eq!(kind(json!(41), json!(42)), Some(Kind::Counter));
        assert_eq!(kind(json!(4.5), json!(4.25)), None);
    }
}
