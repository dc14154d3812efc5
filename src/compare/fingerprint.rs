//! The mismatch fingerprint: what a difference is, without the data that
//! varies between requests (array indices, keyed members, which elements of
//! a resized array shifted), so that one bug seen on many requests is one
//! group.

use std::collections::BTreeSet;

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
