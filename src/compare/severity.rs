//! Severity classes: how bad a mismatch is, so that a reviewer reads the
//! worst groups first and a gate can fail on some classes only. Most severe
//! first: `status` (the statuses differ), `structure` (the body's kind, or
//! a value's JSON type, differs), `membership` (a member or an item is
//! missing or extra), `value` (a value differs within its type, or a body
//! that is not structured differs), `headers` (nothing but headers).
//!
//! A mismatch takes the most severe class of its differences. Pure: the
//! comparison hands in what it found; nothing here looks at bytes.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use json_patch::{Patch, PatchOperation};
use serde::Serialize;
use serde_json::Value;

use super::{generalise_path, BodyComparison};

/// A mismatch's class. Ordered most severe first, so the smallest of
/// several is the most severe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Status,
    Structure,
    Membership,
    Value,
    Headers,
}

impl Severity {
    /// Every class, most severe first.
    pub const ALL: [Severity; 5] = [
        Severity::Status,
        Severity::Structure,
        Severity::Membership,
        Severity::Value,
        Severity::Headers,
    ];

    /// The stable name the API, the gate and the store's readers use.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Status => "status",
            Severity::Structure => "structure",
            Severity::Membership => "membership",
            Severity::Value => "value",
            Severity::Headers => "headers",
        }
    }

    /// The number the store keeps: 1 (status) to 5 (headers), smaller is
    /// more severe; 0 is left for rows stored before classes.
    pub fn rank(self) -> i64 {
        match self {
            Severity::Status => 1,
            Severity::Structure => 2,
            Severity::Membership => 3,
            Severity::Value => 4,
            Severity::Headers => 5,
        }
    }

    /// The class a stored rank stands for; `None` for 0 (unknown) or a
    /// rank a later release might write.
    pub fn from_rank(rank: i64) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.rank() == rank)
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    /// A message naming the classes.
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Severity::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<&str> = Severity::ALL.iter().map(|c| c.as_str()).collect();
                format!("a severity is one of {}; got {s:?}", all.join(", "))
            })
    }
}

/// Parses a comma-separated list of classes (`status,structure`), each
/// once at most in the result, most severe first. Empty items are refused,
/// so a stray comma is not read as "no class".
pub fn parse_list(s: &str) -> Result<Vec<Severity>, String> {
    let mut classes = s
        .split(',')
        .map(str::parse)
        .collect::<Result<Vec<Severity>, String>>()?;
    classes.sort();
    classes.dedup();
    Ok(classes)
}

/// The class of a mismatch the comparison found: `statuses` (they differ),
/// the body's comparison, whether the body kinds differ where the bodies
/// were compared, and whether headers differ. `None` when nothing does.
pub(super) fn of(
    statuses: bool,
    body: &BodyComparison,
    kinds_differ: bool,
    headers: bool,
) -> Option<Severity> {
    if statuses {
        Some(Severity::Status)
    } else if !body.equal && kinds_differ {
        Some(Severity::Structure)
    } else if !body.equal {
        Some(body.severity)
    } else {
        headers.then_some(Severity::Headers)
    }
}

/// The most severe class of a patch between two normal forms, `p` the
/// primary's (where a replaced value's old type is read). Operations under
/// an array whose length changed (`resized`, generalised paths) are
/// membership: which of its elements shifted onto which is data, as the
/// fingerprint has it, not a change of type.
pub(super) fn of_patch(p: &Value, patch: &Patch, resized: &BTreeSet<String>) -> Severity {
    patch
        .0
        .iter()
        .map(|op| of_operation(p, op, resized))
        .min()
        .unwrap_or(Severity::Value)
}

fn of_operation(p: &Value, op: &PatchOperation, resized: &BTreeSet<String>) -> Severity {
    let path = op.path().as_str();
    let general = generalise_path(path);
    let under_resized = resized
        .iter()
        .any(|r| general == *r || general.starts_with(&format!("{r}/")));
    match op {
        PatchOperation::Add(_) | PatchOperation::Remove(_) => Severity::Membership,
        PatchOperation::Move(_) | PatchOperation::Copy(_) => Severity::Membership,
        PatchOperation::Replace(_) if under_resized => Severity::Membership,
        PatchOperation::Replace(r) => match p.pointer(path) {
            Some(old) if json_type(old) == json_type(&r.value) => Severity::Value,
            // A value whose type changed, or (never from a diff) one that
            // was not there to replace.
            _ => Severity::Structure,
        },
        PatchOperation::Test(_) => Severity::Value,
    }
}

/// A JSON value's type: `1` and `1.5` are both numbers.
fn json_type(v: &Value) -> u8 {
    match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        Value::Array(_) => 4,
        Value::Object(_) => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compare::{compare_responses, Rules};
    use crate::exchange::RecordedResponse;
    use bytes::Bytes;
    use http::{HeaderValue, StatusCode};

    fn response(status: u16, content_type: &'static str, body: &str) -> RecordedResponse {
        let mut r = RecordedResponse::ok_with_body(
            Some(HeaderValue::from_static(content_type)),
            Bytes::from(body.to_string()),
        );
        r.status = StatusCode::from_u16(status).unwrap();
        r
    }

    fn json(body: &str) -> RecordedResponse {
        response(200, "application/json", body)
    }

    fn class(p: &RecordedResponse, c: &RecordedResponse) -> Option<Severity> {
        compare_responses("GET /s", p, c, &Rules::default(), 1 << 20).severity
    }

    #[test]
    fn one_case_per_class() {
        let base = json(r#"{"id":1,"total":30,"items":[1,2]}"#);
        // Statuses differ: status, whatever else differs too.
        let failed = response(500, "application/json", r#"{"id":1,"total":"30"}"#);
        assert_eq!(class(&base, &failed), Some(Severity::Status));
        // A number became a string.
        let typed = json(r#"{"id":1,"total":"30","items":[1,2]}"#);
        assert_eq!(class(&base, &typed), Some(Severity::Structure));
        // A member is missing.
        let missing = json(r#"{"id":1,"items":[1,2]}"#);
        assert_eq!(class(&base, &missing), Some(Severity::Membership));
        // A value changed within its type.
        let changed = json(r#"{"id":1,"total":31,"items":[1,2]}"#);
        assert_eq!(class(&base, &changed), Some(Severity::Value));
        // Only a header.
        let mut labelled = base.clone();
        labelled
            .headers
            .insert("x-build", HeaderValue::from_static("2"));
        assert_eq!(class(&base, &labelled), Some(Severity::Headers));
        assert_eq!(class(&base, &base.clone()), None);
    }

    #[test]
    fn a_type_change_and_a_value_change_at_one_path_are_told_apart() {
        let base = json(r#"{"price":{"amount":10}}"#);
        let value = json(r#"{"price":{"amount":11}}"#);
        let number_to_string = json(r#"{"price":{"amount":"10"}}"#);
        let object_to_array = json(r#"{"price":[10]}"#);
        let to_null = json(r#"{"price":{"amount":null}}"#);
        let as_float = json(r#"{"price":{"amount":10.5}}"#);
        assert_eq!(class(&base, &value), Some(Severity::Value));
        assert_eq!(class(&base, &as_float), Some(Severity::Value));
        assert_eq!(class(&base, &number_to_string), Some(Severity::Structure));
        assert_eq!(class(&base, &object_to_array), Some(Severity::Structure));
        assert_eq!(class(&base, &to_null), Some(Severity::Structure));
        // The same path in both verdicts: one group, two classes.
        let paths = |c: &RecordedResponse| {
            compare_responses("GET /s", &base, c, &Rules::default(), 1 << 20).paths
        };
        assert_eq!(paths(&value), paths(&number_to_string));
    }

    #[test]
    fn bodies_of_another_kind_or_unparsed_are_structure() {
        let base = json(r#"{"id":1}"#);
        let html = response(200, "text/html", "<h1>oops</h1>");
        assert_eq!(class(&base, &html), Some(Severity::Structure));
        let broken = json(r#"{"id":"#);
        assert_eq!(class(&base, &broken), Some(Severity::Structure));
        let empty = response(200, "application/json", "");
        assert_eq!(class(&base, &empty), Some(Severity::Structure));
        // Text bodies of one kind differ by their text: a value.
        let (a, b) = (
            response(200, "text/plain", "hello\n"),
            response(200, "text/plain", "hullo\n"),
        );
        assert_eq!(class(&a, &b), Some(Severity::Value));
    }

    #[test]
    fn items_added_or_removed_are_membership_even_when_others_shift() {
        // Mixed types: the shifted elements change type, which is data.
        let base = json(r#"{"list":[1,"a",null,true]}"#);
        let shorter = json(r#"{"list":["a",null,true]}"#);
        assert_eq!(class(&base, &shorter), Some(Severity::Membership));
        let longer = json(r#"{"list":[1,"a",null,true,{}]}"#);
        assert_eq!(class(&base, &longer), Some(Severity::Membership));
        // A type change beside a missing member: the more severe wins.
        let both = json(r#"{"list":[1,"a",null,"true"]}"#);
        assert_eq!(class(&base, &both), Some(Severity::Structure));
    }

    #[test]
    fn names_ranks_and_lists_round_trip() {
        for (i, s) in Severity::ALL.into_iter().enumerate() {
            assert_eq!(s.as_str().parse::<Severity>(), Ok(s));
            assert_eq!(Severity::from_rank(s.rank()), Some(s));
            assert_eq!(s.rank(), i as i64 + 1);
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Severity::from_rank(0), None);
        assert!(Severity::Status < Severity::Headers);
        assert_eq!(
            parse_list("value,status,value"),
            Ok(vec![Severity::Status, Severity::Value])
        );
        assert!(parse_list("status,").is_err());
        assert!(parse_list("").is_err());
        assert!(parse_list("Status").is_err());
    }
}
