//! The mismatch fingerprint: what a difference is, without the data that
//! varies between requests (array indices, keyed members, which elements of
//! a resized array shifted), so that one bug seen on many requests is one
//! group.

use std::collections::BTreeSet;

use serde_json::Value;

use super::headers::HeaderDiff;
use super::{BodyComparison, StatusDiff};
use crate::sampling::stable_hash;

/// A JSON Pointer with array indices and keyed-array members generalised to
/// `*`, so one bug on many elements is one group.
pub fn generalise_path(pointer: &str) -> String {
    pointer
        .split('/')
        .map(|segment| {
            let index = !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_digit());
            if index || segment == "-" || segment.starts_with('#') || segment.contains('=') {
                "*"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// A JSON Pointer generalised no further than two bodies show: a segment
/// that indexes an array on either side becomes `*`; an object's member
/// stays itself, digits or not; past both bodies a segment stays as it is.
/// `None` when a member is named `*` or `**`, which a pattern cannot name
/// without widening it. Rule suggestions and learned noise use it, so that
/// neither is ever broader than what was seen.
pub fn observed_pattern(pointer: &str, sides: [Option<&Value>; 2]) -> Option<String> {
    let Some(rest) = pointer.strip_prefix('/') else {
        return Some(pointer.to_string());
    };
    let mut at = sides;
    let mut out = String::new();
    for segment in rest.split('/') {
        let in_array = at.iter().flatten().any(|v| v.is_array());
        if in_array {
            out.push_str("/*");
        } else {
            if segment == "*" || segment == "**" {
                return None;
            }
            out.push('/');
            out.push_str(segment);
        }
        let name = segment.replace("~1", "/").replace("~0", "~");
        at = at.map(|side| side.and_then(|v| child(v, &name)));
    }
    Some(out)
}

fn child<'v>(value: &'v Value, name: &str) -> Option<&'v Value> {
    match value {
        Value::Object(map) => map.get(name),
        Value::Array(items) => name.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    }
}

pub(super) fn fingerprint(
    endpoint: &str,
    status: Option<StatusDiff>,
    headers: &[HeaderDiff],
    body: &BodyComparison,
    undecoded: &[&str],
) -> String {
    let mut parts = BTreeSet::new();
    for side in undecoded {
        parts.insert(format!("undecodable {side}"));
    }
    if let Some(s) = status {
        parts.insert(format!("status {}>{}", s.primary, s.candidate));
    }
    for h in headers {
        parts.insert(format!("header {}", h.name));
    }
    if let Some(patch) = &body.patch {
        for op in &patch.0 {
            let name = match op {
                json_patch::PatchOperation::Add(_) => "add",
                json_patch::PatchOperation::Remove(_) => "remove",
                json_patch::PatchOperation::Replace(_) => "replace",
                json_patch::PatchOperation::Move(_) => "move",
                json_patch::PatchOperation::Copy(_) => "copy",
                json_patch::PatchOperation::Test(_) => "test",
            };
            let path = generalise_path(op.path().as_str());
            // Under a resized array, which elements shifted is data, not the bug.
            match body
                .resized
                .iter()
                .find(|r| path == **r || path.starts_with(&format!("{r}/")))
            {
                Some(array) => parts.insert(format!("resize {array}")),
                None => parts.insert(format!("{name} {path}")),
            };
        }
    }
    if let Some(summary) = &body.summary {
        parts.insert(summary.clone());
    }
    let mut text = endpoint.to_string();
    for part in parts {
        text.push('\n');
        text.push_str(&part);
    }
    format!("{:016x}", stable_hash(text.as_bytes()))
}
