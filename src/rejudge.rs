//! Re-judging what is stored under changed rules, without sending a request:
//! each mismatch group's stored exemplars are compared again under the new
//! rules for their endpoint, and the group is said to vanish (every exemplar
//! now matches), to change (some match, or they group differently) or to
//! still differ; with the live counts, what parity would have been. This
//! turns tuning rules from rounds of live traffic into minutes.
//!
//! Exemplars are stored redacted and capped, so a re-judged verdict is as
//! good as what was kept: an exemplar whose body was cut at the cap is
//! counted apart, since the cut alone may make it differ.

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};

use std::collections::HashMap;

use crate::compare::{compare_responses_with, Detail, Rules};
use crate::exchange::RecordedResponse;
use crate::gate::Counts;
use crate::store::{
    Group, MismatchFilter, Store, StoreError, StoredMessage, StoredMismatch, Window,
};

/// Exemplars read per group: what the store keeps per group and hour.
const EXEMPLARS_PER_GROUP: i64 = 20;

/// Groups re-judged at most, the most frequent first: a bound on the work
/// one request to the report API can ask for.
pub const MAX_GROUPS: usize = 1_000;

/// What the new rules do to one group.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Every exemplar matches under the new rules.
    Vanishes,
    /// Some exemplars match, or they would form another group.
    Changes,
    /// Every exemplar still differs, in the same way.
    StillDiffers,
    /// No exemplar is stored to judge it by.
    Unknown,
}

/// One group, re-judged.
#[derive(Clone, Debug)]
pub struct GroupRejudged {
    pub fingerprint: String,
    pub endpoint: String,
    /// Mismatches the group counted over the window.
    pub count: i64,
    pub fate: Fate,
    /// Its stored exemplars: how many match now, group elsewhere, or still
    /// differ as before; and how many had a body cut at the store's cap.
    pub exemplars: usize,
    pub now_match: usize,
    pub regrouped: usize,
    pub unchanged: usize,
    pub truncated: usize,
}

/// Every group re-judged, and parity before and after.
#[derive(Clone, Debug)]
pub struct Rejudged {
    pub groups: Vec<GroupRejudged>,
    /// Live comparisons over the window (candidate errors included, as the
    /// summary counts parity), and those that matched.
    pub compared: i64,
    pub matched: i64,
    /// `matched / compared`, as counted.
    pub parity: Option<f64>,
    /// The same with each group's mismatches over the window that now
    /// match (in the share its exemplars do) counted as matched: an
    /// estimate from the exemplars.
    pub parity_after: Option<f64>,
}

/// What re-judging needs from the store, read first so that the comparing
/// (CPU only) can run apart from the reading (I/O only).
pub struct Gathered {
    groups: Vec<(Group, Vec<StoredMismatch>, i64)>,
    counts: Counts,
}

/// Reads the live groups with mismatches over `window` (the
/// [`MAX_GROUPS`] most frequent), their exemplars and their counts.
pub async fn gather(store: &dyn Store, window: Window) -> Result<Gathered, StoreError> {
    let in_window: HashMap<String, i64> =
        store.group_counts(window, "").await?.into_iter().collect();
    let mut groups = Vec::new();
    let seen = store.groups(None, None).await?.into_iter();
    for group in seen
        .filter(|g| in_window.contains_key(&g.fingerprint))
        .take(MAX_GROUPS)
    {
        let filter = MismatchFilter {
            run: Some(""),
            endpoint: None,
            fingerprint: Some(&group.fingerprint),
            since_ms: None,
        };
        let exemplars = store.mismatches(filter, None, EXEMPLARS_PER_GROUP).await?;
        let count = in_window.get(&group.fingerprint).copied().unwrap_or(0);
        groups.push((group, exemplars, count));
    }
    let mut counts = Counts::default();
    for endpoint in store.counts(window, "", None).await? {
        counts.merge(&Counts::from_stored(endpoint.outcomes));
    }
    Ok(Gathered { groups, counts })
}

/// Compares every gathered exemplar again under the rules `rules_for` gives
/// its request (method, path), bodies up to `max_body_bytes` as live.
pub fn judge(
    gathered: &Gathered,
    rules_for: &dyn Fn(&Method, &str) -> Rules,
    max_body_bytes: usize,
) -> Rejudged {
    let mut groups = Vec::new();
    for (group, exemplars, count) in &gathered.groups {
        let mut judged = GroupRejudged {
            fingerprint: group.fingerprint.clone(),
            endpoint: group.endpoint.clone(),
            count: *count,
            fate: Fate::Unknown,
            exemplars: exemplars.len(),
            now_match: 0,
            regrouped: 0,
            unchanged: 0,
            truncated: 0,
        };
        for exemplar in exemplars {
            judge_one(exemplar, rules_for, max_body_bytes, &mut judged);
        }
        judged.fate = fate(&judged);
        groups.push(judged);
    }
    // Parity as the summary and the gate count it: candidate errors are
    // comparisons that did not match.
    let counts = &gathered.counts;
    let matched = counts.matched();
    let compared = matched + counts.mismatched() + counts.candidate_errors();
    let recovered: f64 = groups
        .iter()
        .filter(|g| g.exemplars > 0)
        .map(|g| g.count as f64 * g.now_match as f64 / g.exemplars as f64)
        .sum();
    let share = |matched: f64| (compared > 0).then(|| (matched / compared as f64).min(1.0));
    Rejudged {
        groups,
        compared,
        matched,
        parity: share(matched as f64),
        parity_after: share(matched as f64 + recovered),
    }
}

/// [`gather`] and [`judge`] in one, for the command line.
pub async fn rejudge(
    store: &dyn Store,
    window: Window,
    rules_for: &dyn Fn(&Method, &str) -> Rules,
    max_body_bytes: usize,
) -> Result<Rejudged, StoreError> {
    let gathered = gather(store, window).await?;
    Ok(judge(&gathered, rules_for, max_body_bytes))
}

/// The report as aligned text: one line a group, then parity.
pub fn render(r: &Rejudged) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<14} {:>8} {:>9}  {:<16} endpoint",
        "fate", "count", "exemplars", "group"
    );
    for g in &r.groups {
        let fate = match g.fate {
            Fate::Vanishes => "would vanish",
            Fate::Changes => "would change",
            Fate::StillDiffers => "still differs",
            Fate::Unknown => "no exemplar",
        };
        let short: String = g.fingerprint.chars().take(16).collect();
        let _ = write!(
            out,
            "{fate:<14} {:>8} {:>9}  {short:<16} {}",
            g.count, g.exemplars, g.endpoint
        );
        if g.fate == Fate::Changes {
            let _ = write!(
                out,
                " ({} now match, {} regrouped)",
                g.now_match, g.regrouped
            );
        }
        if g.truncated > 0 {
            let _ = write!(out, " ({} with a body cut at the store's cap)", g.truncated);
        }
        out.push('\n');
    }
    let percent = |p: Option<f64>| p.map_or("n/a".to_string(), |p| format!("{:.2}%", p * 100.0));
    let _ = writeln!(
        out,
        "parity: {} of {} compared matched ({}); under the new rules about {}",
        r.matched,
        r.compared,
        percent(r.parity),
        percent(r.parity_after)
    );
    out
}

fn judge_one(
    exemplar: &StoredMismatch,
    rules_for: &dyn Fn(&Method, &str) -> Rules,
    max_body_bytes: usize,
    judged: &mut GroupRejudged,
) {
    let record = &exemplar.record;
    if record.primary.body.truncated || record.candidate.body.truncated {
        judged.truncated += 1;
    }
    let method = Method::from_bytes(record.method.as_bytes()).unwrap_or(Method::GET);
    let rules = rules_for(&method, &record.path);
    let (primary, candidate) = (response(&record.primary), response(&record.candidate));
    // What counting and grouping need, without the line diff.
    let limits = (max_body_bytes, Detail::Grouping);
    let verdict = compare_responses_with(&record.endpoint, &primary, &candidate, &rules, limits);
    // The exemplar's own verdict, compared redacted under the rules of the
    // day, is what the same comparison gives now if the rules changed nothing.
    let before = record.verdict.get("fingerprint").and_then(|f| f.as_str());
    let before = before.unwrap_or(&record.fingerprint);
    match verdict.fingerprint {
        None => judged.now_match += 1,
        Some(print) if print == before || print == record.fingerprint => judged.unchanged += 1,
        Some(_) => judged.regrouped += 1,
    }
}

fn fate(g: &GroupRejudged) -> Fate {
    match (g.exemplars, g.now_match, g.unchanged) {
        (0, _, _) => Fate::Unknown,
        (n, matched, _) if matched == n => Fate::Vanishes,
        (n, _, unchanged) if unchanged == n => Fate::StillDiffers,
        _ => Fate::Changes,
    }
}

/// A stored response as the comparison takes it: its body is stored
/// decoded, so its Content-Encoding no longer applies.
fn response(stored: &StoredMessage) -> RecordedResponse {
    let mut headers = HeaderMap::new();
    for (name, value) in &stored.headers {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.append(name, value);
        }
    }
    headers.remove(http::header::CONTENT_ENCODING);
    RecordedResponse {
        status: StatusCode::from_u16(stored.status).unwrap_or(StatusCode::OK),
        headers,
        body: bytes::Bytes::copy_from_slice(&stored.body.bytes),
        latency: std::time::Duration::ZERO,
    }
}
