//! Stored counts read once into types: each stored key (`matched`,
//! `candidate_error/timeout`, `primary_5xx`, …) becomes a [`CountKey`] as
//! it is read, and the gate, the summary and the
//! metrics ask [`Counts`] for sums by meaning, never by string prefix.
//!
//! A key this release does not know (written by a newer one) is kept as
//! `Unknown` and shown, never an error: counts are data.

use std::collections::BTreeMap;

use super::Side;
use crate::outcome::{CandidateErrorKind, OutcomeKey, SkipReason};

/// What a stored count counts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CountKey {
    /// How sampled requests ended.
    Outcome(OutcomeKey),
    /// Compared responses with a 5xx status from one side.
    ServerErrors(Side),
    /// Compared pairs whose bytes were counted (`ByteEqual`, `ResponseBytes`):
    /// their denominator, since releases before them counted pairs without.
    MeasuredPairs,
    /// Compared pairs whose decoded bodies were identical bytes.
    ByteEqual,
    /// Response body bytes of compared pairs from one side, as received.
    ResponseBytes(Side),
    /// Samples the candidate served (a cutover's weight chose it), whatever
    /// their outcome: the rest were served by the primary.
    ServedByCandidate,
    /// Mismatches in one group, by fingerprint, as an instance of an earlier
    /// release counts them beside the outcomes (`group/<fingerprint>`)
    /// during a rolling upgrade; this release counts groups in their own
    /// table. Never an outcome.
    Group(String),
    /// A key written by another release.
    Unknown(String),
}

impl CountKey {
    /// The key a stored name stands for.
    pub fn parse(name: &str) -> CountKey {
        if let Some(key) = OutcomeKey::parse(name) {
            return CountKey::Outcome(key);
        }
        match name {
            "primary_5xx" => CountKey::ServerErrors(Side::Primary),
            "candidate_5xx" => CountKey::ServerErrors(Side::Candidate),
            "byte_equal" => CountKey::ByteEqual,
            "measured_pairs" => CountKey::MeasuredPairs,
            "served_by_candidate" => CountKey::ServedByCandidate,
            "primary_bytes" => CountKey::ResponseBytes(Side::Primary),
            "candidate_bytes" => CountKey::ResponseBytes(Side::Candidate),
            _ => match name.strip_prefix("group/") {
                Some(fingerprint) => CountKey::Group(fingerprint.to_string()),
                None => CountKey::Unknown(name.to_string()),
            },
        }
    }

    /// As stored and served.
    pub fn name(&self) -> String {
        match self {
            CountKey::Outcome(key) => key.to_string(),
            CountKey::ServerErrors(side) => format!("{}_5xx", side.as_str()),
            CountKey::ByteEqual => "byte_equal".to_string(),
            CountKey::MeasuredPairs => "measured_pairs".to_string(),
            CountKey::ServedByCandidate => "served_by_candidate".to_string(),
            CountKey::ResponseBytes(side) => format!("{}_bytes", side.as_str()),
            CountKey::Group(fingerprint) => format!("group/{fingerprint}"),
            CountKey::Unknown(name) => name.clone(),
        }
    }
}

/// One scope's counts (an endpoint, or a total), by key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Counts(BTreeMap<CountKey, i64>);

impl Counts {
    /// Counts from the store's rows, each key parsed once.
    pub fn from_stored<K: AsRef<str>>(rows: impl IntoIterator<Item = (K, i64)>) -> Counts {
        let mut counts = Counts::default();
        for (name, n) in rows {
            counts.add(CountKey::parse(name.as_ref()), n);
        }
        counts
    }

    pub fn add(&mut self, key: CountKey, n: i64) {
        *self.0.entry(key).or_insert(0) += n;
    }

    /// Adds every count of `other` (an endpoint's, into a total).
    pub fn merge(&mut self, other: &Counts) {
        for (key, n) in &other.0 {
            self.add(key.clone(), *n);
        }
    }

    pub fn get(&self, key: &CountKey) -> i64 {
        self.0.get(key).copied().unwrap_or(0)
    }

    fn outcome(&self, key: OutcomeKey) -> i64 {
        self.get(&CountKey::Outcome(key))
    }

    fn sum(&self, of: impl Fn(&OutcomeKey) -> bool) -> i64 {
        self.0
            .iter()
            .filter_map(|(k, n)| match k {
                CountKey::Outcome(key) if of(key) => Some(n),
                _ => None,
            })
            .sum()
    }

    /// Samples the candidate served.
    pub fn served_by_candidate(&self) -> i64 {
        self.get(&CountKey::ServedByCandidate)
    }

    pub fn matched(&self) -> i64 {
        self.outcome(OutcomeKey::Matched)
    }

    pub fn mismatched(&self) -> i64 {
        self.outcome(OutcomeKey::Mismatched)
    }

    pub fn candidate_errors(&self) -> i64 {
        self.sum(|k| matches!(k, OutcomeKey::CandidateError(_)))
    }

    pub fn skipped(&self) -> i64 {
        self.sum(|k| matches!(k, OutcomeKey::Skipped(_)))
    }

    pub fn dropped(&self) -> i64 {
        self.sum(|k| matches!(k, OutcomeKey::Dropped(_)))
    }

    /// Compared responses with a 5xx status from `side`.
    pub fn server_errors(&self, side: Side) -> i64 {
        self.get(&CountKey::ServerErrors(side))
    }

    /// Compared pairs whose decoded bodies were identical bytes.
    pub fn byte_equal(&self) -> i64 {
        self.get(&CountKey::ByteEqual)
    }

    /// Compared pairs whose bytes were counted: what byte parity and bytes
    /// per request are measured over.
    pub fn measured_pairs(&self) -> i64 {
        self.get(&CountKey::MeasuredPairs)
    }

    /// Response body bytes of compared pairs from `side`.
    pub fn response_bytes(&self, side: Side) -> i64 {
        self.get(&CountKey::ResponseBytes(side))
    }

    /// Samples the primary failed (an error or a timeout): nothing to compare.
    pub fn primary_failures(&self) -> i64 {
        self.outcome(OutcomeKey::Skipped(SkipReason::PrimaryError))
            + self.outcome(OutcomeKey::Skipped(SkipReason::PrimaryTimeout))
    }

    /// One candidate failure kind.
    pub fn candidate_error(&self, kind: CandidateErrorKind) -> i64 {
        self.outcome(OutcomeKey::CandidateError(kind))
    }

    /// The outcome counts by name, as the report API serves them: keys
    /// another release wrote included, server errors, byte counts and groups left out
    /// (they are not outcomes).
    pub fn outcome_names(&self) -> BTreeMap<String, i64> {
        self.0
            .iter()
            .filter(|(k, _)| matches!(k, CountKey::Outcome(_) | CountKey::Unknown(_)))
            .map(|(k, n)| (k.name(), *n))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::DropReason;

    #[test]
    fn every_stored_name_reads_back_as_itself() {
        let names = [
            "matched",
            "mismatched",
            "candidate_error/timeout",
            "candidate_error/protocol",
            "skipped/candidate_unhealthy",
            "skipped/primary_timeout",
            "dropped/queue_full",
            "primary_5xx",
            "candidate_5xx",
            "byte_equal",
            "measured_pairs",
            "served_by_candidate",
            "primary_bytes",
            "candidate_bytes",
            "group/0123456789abcdef",
            "something_newer/else",
        ];
        for name in names {
            assert_eq!(CountKey::parse(name).name(), name);
        }
        assert_eq!(
            CountKey::parse("dropped/shutdown"),
            CountKey::Outcome(OutcomeKey::Dropped(DropReason::Shutdown))
        );
        assert_eq!(
            CountKey::parse("skipped/no_such_reason"),
            CountKey::Unknown("skipped/no_such_reason".into())
        );
    }

    #[test]
    fn sums_go_by_meaning() {
        let counts = Counts::from_stored([
            ("matched", 5),
            ("mismatched", 2),
            ("candidate_error/timeout", 3),
            ("candidate_error/reset", 1),
            ("skipped/primary_error", 4),
            ("skipped/primary_timeout", 1),
            ("dropped/queue_full", 7),
            ("candidate_5xx", 9),
            ("group/abc", 2),
            ("newer/key", 6),
        ]);
        assert_eq!(counts.candidate_errors(), 4);
        assert_eq!(counts.skipped(), 5);
        assert_eq!(counts.primary_failures(), 5);
        assert_eq!(counts.dropped(), 7);
        assert_eq!(counts.server_errors(Side::Candidate), 9);
        assert_eq!(counts.server_errors(Side::Primary), 0);
        let names = counts.outcome_names();
        assert!(!names.contains_key("candidate_5xx") && !names.contains_key("group/abc"));
        assert_eq!(names["newer/key"], 6);
        let mut total = counts.clone();
        total.merge(&counts);
        assert_eq!(total.matched(), 10);
    }
}
