//! `replay --from-store --fingerprint X --mark-fixed`: the last step of the
//! review loop. When every stored request of the group, sent again, now
//! matches (none mismatched, no candidate error, the run not interrupted),
//! the group is triaged `fixed`, with the run named in the note and in the
//! triage history; otherwise it is left as it was and the reason is told.

use crate::store::{Store, StoreError, TriageChange};
use crate::time::now_ms;

use super::ReplaySummary;

/// Who the triage history names for a group the replay marked.
pub const REVIEWER: &str = "shadowdiff replay";

/// What `--mark-fixed` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Marked {
    /// Triaged `fixed`.
    Fixed { compared: i64 },
    /// Left as it was: some requests still differ or fail.
    StillDiffers {
        mismatched: i64,
        candidate_errors: i64,
    },
    /// Left as it was: nothing was compared, or the run was cut short.
    NotProven,
    /// No such group in the store.
    NoGroup,
}

impl std::fmt::Display for Marked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Marked::Fixed { compared } => {
                write!(f, "marked fixed: all {compared} requests of the group now match")
            }
            Marked::StillDiffers {
                mismatched,
                candidate_errors,
            } => write!(
                f,
                "not marked fixed: {mismatched} requests still differ and {candidate_errors} failed on the candidate"
            ),
            Marked::NotProven => write!(
                f,
                "not marked fixed: the run compared nothing or was interrupted"
            ),
            Marked::NoGroup => write!(f, "not marked fixed: the store has no such group"),
        }
    }
}

/// Triages the group `fixed` if the run proves it, and says what it did.
pub async fn mark_fixed(
    store: &dyn Store,
    fingerprint: &str,
    summary: &ReplaySummary,
) -> Result<Marked, StoreError> {
    let t = &summary.gate.total;
    let compared = t.matched + t.mismatched + t.candidate_errors;
    if t.mismatched > 0 || t.candidate_errors > 0 {
        return Ok(Marked::StillDiffers {
            mismatched: t.mismatched,
            candidate_errors: t.candidate_errors,
        });
    }
    if compared == 0 || summary.sent < summary.selected {
        return Ok(Marked::NotProven);
    }
    let note = format!(
        "replay run {}: all {compared} stored requests of this group now match",
        summary.run_id
    );
    let change = TriageChange {
        fingerprint,
        status: "fixed",
        note: &note,
        reviewer: REVIEWER,
        at_ms: now_ms(),
    };
    Ok(match store.triage(&change).await? {
        true => Marked::Fixed { compared },
        false => Marked::NoGroup,
    })
}
