//! The verdict as stored with a mismatch and served by the report API: a
//! versioned wire format of its own, so the comparison engine's `Verdict`
//! can change without changing what the database holds or what clients
//! read. The writer converts a live verdict into a [`VerdictRecord`]; the
//! report API reads one back from the store's JSON with [`VerdictRecord::read`].
//!
//! Version 1 is the shape the verdict had before it carried a version: rows
//! written then have no `version` and read as version 1. A field missing
//! from a stored verdict reads as its empty value. A later version is a new
//! number here, read (and served) alongside the earlier ones.
//!
//! Version 2 adds one value, the body kind `json_lines`. A verdict is written
//! with the lowest version that can hold it, so a release that reads only
//! version 1 (during a rolling upgrade) reads every verdict but those, and
//! says why it cannot read those.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The newest version this build writes.
pub const VERDICT_VERSION: u32 = 2;

/// A stored verdict that cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum VerdictRecordError {
    /// Written by a later release than this one.
    #[error("verdict version {0} is newer than this release reads ({VERDICT_VERSION})")]
    UnknownVersion(u64),
    /// Not a verdict of the version it claims.
    #[error("malformed verdict: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// One comparison's verdict, as stored and served.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VerdictRecord {
    /// The format's version; absent (read as 1) on rows from before it had one.
    #[serde(default = "first_version")]
    pub version: u32,
    #[serde(default)]
    pub matched: bool,
    /// The decoded bodies are identical byte for byte.
    #[serde(default)]
    pub byte_equal: bool,
    /// How the bodies were compared (by the primary's media type).
    #[serde(default)]
    pub body_kind: BodyKindRecord,
    /// Present when the statuses differ.
    #[serde(default)]
    pub status: Option<StatusRecord>,
    #[serde(default)]
    pub headers: Vec<HeaderRecord>,
    /// RFC 6902 operations from the primary's normalised body to the
    /// candidate's (JSON and form bodies only).
    #[serde(default)]
    pub patch: Option<json_patch::Patch>,
    /// A unified diff of the normalised bodies.
    #[serde(default)]
    pub text_diff: Option<String>,
    /// JSON Pointers of the differing parts of the body ("" for the whole).
    #[serde(default)]
    pub paths: Vec<String>,
    /// The mismatch group; absent when matched.
    #[serde(default)]
    pub fingerprint: Option<String>,
    /// Why the comparison went as it did where that is not obvious.
    #[serde(default)]
    pub reasons: Vec<String>,
}

fn first_version() -> u32 {
    1
}

/// What the bodies held, by media type.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKindRecord {
    #[default]
    Empty,
    Json,
    JsonLines,
    Form,
    Text,
    Binary,
}

/// The two statuses, when they differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusRecord {
    pub primary: u16,
    pub candidate: u16,
}

/// One header that differs; `None` where a side lacks it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderRecord {
    pub name: String,
    pub primary: Option<String>,
    pub candidate: Option<String>,
}

impl VerdictRecord {
    /// Reads a stored verdict of any version this release knows.
    pub fn read(stored: &Value) -> Result<VerdictRecord, VerdictRecordError> {
        let version = match stored.get("version") {
            None => 1,
            Some(v) => v.as_u64().ok_or_else(|| {
                <serde_json::Error as serde::de::Error>::custom(format!(
                    "version {v} is not a whole number"
                ))
            })?,
        };
        match version {
            1 | 2 => Ok(VerdictRecord::deserialize(stored)?),
            newer => Err(VerdictRecordError::UnknownVersion(newer)),
        }
    }

    /// The lowest version that holds a verdict of this body kind.
    pub fn version_for(body_kind: BodyKindRecord) -> u32 {
        match body_kind {
            BodyKindRecord::JsonLines => 2,
            _ => 1,
        }
    }

    /// The record as the JSON the store keeps.
    pub fn to_stored(&self) -> Value {
        // Only maps with string keys and plain values: this cannot fail.
        serde_json::to_value(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A verdict as the release before versioning stored it.
    fn unversioned() -> Value {
        json!({
            "matched": false,
            "byte_equal": false,
            "body_kind": "json",
            "status": {"primary": 200, "candidate": 500},
            "headers": [{"name": "etag", "primary": "\"a\"", "candidate": null}],
            "patch": [{"op": "replace", "path": "/total", "value": 3}],
            "text_diff": null,
            "paths": ["/total"],
            "fingerprint": "3f2a",
            "reasons": []
        })
    }

    #[test]
    fn an_unversioned_verdict_reads_as_version_1_with_every_field() {
        let record = VerdictRecord::read(&unversioned()).unwrap();
        assert_eq!(record.version, 1);
        assert_eq!(record.body_kind, BodyKindRecord::Json);
        assert_eq!(
            record.status,
            Some(StatusRecord {
                primary: 200,
                candidate: 500
            })
        );
        // Served again, it is the stored JSON plus its version.
        let mut expected = unversioned();
        expected["version"] = json!(1);
        assert_eq!(record.to_stored(), expected);
    }

    #[test]
    fn a_partial_verdict_reads_with_empty_values() {
        let record = VerdictRecord::read(&json!({"paths": ["/a"]})).unwrap();
        assert_eq!(record.paths, ["/a"]);
        assert!(record.patch.is_none() && record.reasons.is_empty());
    }

    #[test]
    fn a_later_version_or_a_wrong_shape_is_refused() {
        let mut later = unversioned();
        later["version"] = json!(3);
        assert!(matches!(
            VerdictRecord::read(&later),
            Err(VerdictRecordError::UnknownVersion(3))
        ));
        for bad in [
            json!({"version": "1"}),
            json!({"paths": "/a"}),
            json!("verdict"),
        ] {
            assert!(
                matches!(
                    VerdictRecord::read(&bad),
                    Err(VerdictRecordError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn only_json_lines_verdicts_need_version_2() {
        let mut lines = unversioned();
        lines["version"] = json!(2);
        lines["body_kind"] = json!("json_lines");
        let read = VerdictRecord::read(&lines).unwrap();
        assert_eq!(read.body_kind, BodyKindRecord::JsonLines);
        assert_eq!(VerdictRecord::version_for(read.body_kind), 2);
        assert_eq!(VerdictRecord::version_for(BodyKindRecord::Json), 1);
        assert_eq!(VERDICT_VERSION, 2);
    }
}
