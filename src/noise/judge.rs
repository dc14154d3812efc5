//! The noise step of one sample, after its comparison: the secondary's
//! response compared with the primary's under the same rules, both sets of
//! differences counted, and the differences on paths learned as noise
//! discounted by comparing again with those paths ignored. Pure but for
//! the learner's counts; runs on the shadow stage's comparison threads.

use std::sync::Arc;

use serde_json::Value;

use super::keys::keys;
use super::volatile::{kind_of, Kind, Volatility};
use super::{Noise, Observation};
use crate::compare::rules::PathPattern;
use crate::compare::{
    compare_responses_with, decode, observed_pattern as pattern, Detail, Rules, Verdict,
};
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
        let secondary = secondary
            .filter(|s| s.status == exchange.primary.status && !s.status.is_server_error());
        let limits = (limit, Detail::Grouping);
        let against_secondary = secondary
            .map(|s| compare_responses_with(endpoint, &exchange.primary, s, rules, limits));
        let bodies = Bodies::parse(
            exchange,
            secondary,
            limit,
            [Some(&verdict), against_secondary.as_ref()],
        );
        let noise = against_secondary
            .as_ref()
            .map(|v| keys(v, [bodies.primary.as_ref(), bodies.secondary.as_ref()]));
        let raw = self.raw_keys(exchange, &verdict, &bodies, now_ms);
        self.observe(endpoint, &Observation { noise, raw });
        let unchanged = |verdict| Judged {
            verdict,
            rules: Arc::clone(rules),
            discounted: Vec::new(),
        };
        if verdict.matched {
            return unchanged(verdict);
        }
        let sides = [bodies.primary.as_ref(), bodies.candidate.as_ref()];
        let differing = keys(&verdict, sides);
        let noisy = self.noisy_keys(endpoint, &differing);
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
            limits,
        );
        // A pattern hides every path it matches. Every difference not
        // learned as noise must still be there, or nothing is discounted: a
        // safety net under keys that never generalise a member's name.
        let left = keys(&again, sides);
        let hid_more = differing
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
    /// volatile its two values looked (looked at only without a secondary,
    /// where the detector needs it).
    fn raw_keys(
        &self,
        exchange: &Exchange,
        verdict: &Verdict,
        bodies: &Bodies,
        now_ms: i64,
    ) -> Vec<(String, Volatility)> {
        let (p, c) = (bodies.primary.as_ref(), bodies.candidate.as_ref());
        let mut kinds: Vec<(String, Option<Kind>)> = Vec::new();
        for pointer in &verdict.paths {
            let Some(key) = pattern(pointer, [p, c]) else {
                continue;
            };
            let values = p
                .and_then(|p| p.pointer(pointer))
                .zip(c.and_then(|c| c.pointer(pointer)));
            let kind = match (values, self.secondary.is_none()) {
                (Some((a, b)), true) => kind_of(a, b, now_ms)
                    .filter(|k| *k != Kind::Counter || self.counts_up(exchange, &key, a)),
                _ => None,
            };
            // One sample counts once per key: the first pointer decides.
            if !kinds.iter().any(|(k, _)| *k == key) {
                kinds.push((key, kind));
            }
        }
        keys(verdict, [p, c])
            .into_iter()
            .map(|key| {
                let kind = kinds.iter().find(|(k, _)| *k == key).and_then(|(_, k)| *k);
                (key, Volatility::of(kind))
            })
            .collect()
    }
}

/// The bodies as JSON, parsed once for the keys and the detector: only
/// where a verdict names a body path, and only up to [`LEARN_MAX_BYTES`]
/// together (beyond, keys stay as the paths are, narrower).
struct Bodies {
    primary: Option<Value>,
    candidate: Option<Value>,
    secondary: Option<Value>,
}

impl Bodies {
    fn parse(
        exchange: &Exchange,
        secondary: Option<&RecordedResponse>,
        limit: usize,
        verdicts: [Option<&Verdict>; 2],
    ) -> Bodies {
        let none = Bodies {
            primary: None,
            candidate: None,
            secondary: None,
        };
        let wanted = verdicts
            .iter()
            .flatten()
            .any(|v| v.paths.iter().any(|p| !p.is_empty()));
        let size = exchange.primary.body.len()
            + exchange.candidate.body.len()
            + secondary.map_or(0, |s| s.body.len());
        if !wanted || size > LEARN_MAX_BYTES {
            return none;
        }
        Bodies {
            primary: json_of(&exchange.primary, limit),
            candidate: json_of(&exchange.candidate, limit),
            secondary: secondary.and_then(|s| json_of(s, limit)),
        }
    }
}

/// The bodies' bytes (as received) beyond which they are not parsed again
/// for the keys and the detector: a few milliseconds of parsing at most.
const LEARN_MAX_BYTES: usize = 2 * 1024 * 1024;

/// A response's body as JSON, decoded as the comparison decodes it.
fn json_of(response: &RecordedResponse, limit: usize) -> Option<Value> {
    let bytes = decode::decode(&response.body, &response.headers, limit).ok()?;
    serde_json::from_slice(&bytes).ok()
}
