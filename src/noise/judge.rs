//! The noise step of one sample, after its comparison: the secondary's
//! response compared with the primary's under the same rules, both sets of
//! differences counted, and the differences on paths learned as noise
//! discounted by comparing again with those paths ignored. Pure but for
//! the learner's counts; runs on the shadow stage's comparison threads.

use std::sync::Arc;

use serde_json::Value;

use super::volatile::{kind_of, Kind, Volatility};
use super::{keys_of, Noise, Observation};
use crate::compare::rules::PathPattern;
use crate::compare::{compare_responses_with, decode, generalise_path, Detail, Rules, Verdict};
use crate::exchange::{Exchange, RecordedResponse};

/// A verdict after the noise step, and the rules it was reached under (the
/// stored exemplar is compared again under them, so it agrees).
pub struct Judged {
    pub verdict: Verdict,
    pub rules: Arc<Rules>,
    /// What was discounted and why, one sentence each.
    pub discounted: Vec<String>,
}

impl Noise {
    /// Counts one compared sample and discounts its learned noise.
    pub fn judge(
        &self,
        exchange: &Exchange,
        secondary: Option<&RecordedResponse>,
        (rules, limit): (&Arc<Rules>, usize),
        verdict: Verdict,
        now_ms: i64,
    ) -> Judged {
        let endpoint = exchange.endpoint.as_str();
        // A secondary that failed (an error page, a 503, another deploy)
        // differs everywhere: counted, it would teach every path as noise.
        let usable = |s: &&RecordedResponse| {
            s.status == exchange.primary.status && !s.status.is_server_error()
        };
        let noise = secondary.filter(usable).map(|s| {
            let limits = (limit, Detail::Grouping);
            keys_of(&compare_responses_with(
                endpoint,
                &exchange.primary,
                s,
                rules,
                limits,
            ))
        });
        let raw = self.raw_keys(exchange, &verdict, limit, now_ms);
        self.observe(endpoint, &Observation { noise, raw });
        let unchanged = |verdict| Judged {
            verdict,
            rules: Arc::clone(rules),
            discounted: Vec::new(),
        };
        if verdict.matched {
            return unchanged(verdict);
        }
        let noisy = self.noisy_keys(endpoint, &keys_of(&verdict));
        if noisy.is_empty() {
            return unchanged(verdict);
        }
        let (mut paths, mut headers) = (Vec::new(), Vec::new());
        for (key, _) in &noisy {
            match key.strip_prefix("header:") {
                Some(name) => headers.push(name.to_string()),
                None => paths.extend(key.parse::<PathPattern>().ok()),
            }
        }
        let discounted_rules = Arc::new(rules.with_ignored(&paths, &headers));
        let mut again = compare_responses_with(
            endpoint,
            &exchange.primary,
            &exchange.candidate,
            &discounted_rules,
            (limit, Detail::Grouping),
        );
        // A pattern hides every path it matches: one learned at a member
        // whose name looked like an index (`/stats/2024` as `/stats/*`)
        // would hide its siblings too. Every difference not learned as
        // noise must still be there, or nothing is discounted.
        let left = keys_of(&again);
        let hid_more = keys_of(&verdict)
            .into_iter()
            .filter(|k| !noisy.iter().any(|(n, _)| n == k))
            .any(|k| !left.contains(&k));
        if hid_more {
            return unchanged(verdict);
        }
        let discounted: Vec<String> = noisy.into_iter().map(|(_, why)| why).collect();
        again.reasons.extend(discounted.iter().cloned());
        Judged {
            verdict: again,
            rules: discounted_rules,
            discounted,
        }
    }

    /// The keys the primary and the candidate differ on, each with how
    /// volatile its two values looked (looked at only for JSON bodies that
    /// differ, and only without a secondary, where the detector needs it).
    fn raw_keys(
        &self,
        exchange: &Exchange,
        verdict: &Verdict,
        limit: usize,
        now_ms: i64,
    ) -> Vec<(String, Volatility)> {
        let keys = keys_of(verdict);
        // Parsing both bodies again is the detector's cost: paid only
        // without a secondary, on JSON that differs, and on bodies small
        // enough for a few milliseconds of parsing.
        let size = exchange.primary.body.len() + exchange.candidate.body.len();
        let values = match (&verdict.patch, self.secondary.is_none()) {
            (Some(_), true) if size <= DETECTOR_MAX_BYTES => {
                json_of(&exchange.primary, limit).zip(json_of(&exchange.candidate, limit))
            }
            _ => None,
        };
        let Some((p, c)) = values else {
            return keys
                .into_iter()
                .map(|k| (k, Volatility::default()))
                .collect();
        };
        let mut kinds: Vec<(String, Option<Kind>)> = Vec::new();
        for pointer in &verdict.paths {
            let key = generalise_path(pointer);
            let kind = match (p.pointer(pointer), c.pointer(pointer)) {
                (Some(a), Some(b)) => kind_of(a, b, now_ms)
                    .filter(|k| *k != Kind::Counter || self.counts_up(exchange, &key, a)),
                _ => None,
            };
            // One sample counts once per key: the first pointer decides.
            if !kinds.iter().any(|(k, _)| *k == key) {
                kinds.push((key, kind));
            }
        }
        keys.into_iter()
            .map(|key| {
                let kind = kinds.iter().find(|(k, _)| *k == key).and_then(|(_, k)| *k);
                (key, Volatility::of(kind))
            })
            .collect()
    }
}

/// Both bodies' bytes (as received) beyond which the detector does not
/// look at values.
const DETECTOR_MAX_BYTES: usize = 1024 * 1024;

/// A response's body as JSON, decoded as the comparison decodes it.
fn json_of(response: &RecordedResponse, limit: usize) -> Option<Value> {
    let bytes = decode::decode(&response.body, &response.headers, limit).ok()?;
    serde_json::from_slice(&bytes).ok()
}
