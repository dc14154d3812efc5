//! The comparison: turns an exchange into a verdict. Pure code, no I/O, and
//! never an error: whatever the bodies hold, the result is a verdict.
//!
//! This first version compares status and body bytes; header rules,
//! decoding and structural JSON diffs build on the same entry point.

use http::StatusCode;

use crate::exchange::Exchange;

/// What the comparison of one exchange found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    pub matched: bool,
    /// The two bodies are identical byte for byte.
    pub byte_equal: bool,
    /// `(primary, candidate)` when the statuses differ.
    pub status_diff: Option<(StatusCode, StatusCode)>,
}

pub fn compare(exchange: &Exchange) -> Verdict {
    let (p, c) = (&exchange.primary, &exchange.candidate);
    let byte_equal = p.body == c.body;
    let status_diff = (p.status != c.status).then_some((p.status, c.status));
    Verdict {
        matched: byte_equal && status_diff.is_none(),
        byte_equal,
        status_diff,
    }
}
