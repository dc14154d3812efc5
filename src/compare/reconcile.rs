//! The step of a JSON comparison that needs both sides: where the rules
//! forgive a difference, the candidate's normal form is brought to the
//! primary's, so only real differences remain and the patch between the two
//! shows just those. Some of these rules hold everywhere (number tolerance,
//! null against empty, numeric strings); the pair rules hold at their paths
//! only (a scalar against a one-element array, a comma-joined string against
//! its parts, a member only one named side sends).

use serde_json::{Number, Value};

use super::json::{canonical_number, numeric_string};
use super::rules::{Action, Cursor, PairRule, PathPattern, Rules};

/// Brings `candidate` towards `primary` wherever `rules` forgive the difference.
pub fn reconcile(primary: &Value, candidate: &mut Value, rules: &Rules) {
    let pairs: Vec<(&PathPattern, PairRule)> = rules
        .paths
        .iter()
        .filter_map(|(pattern, action)| match action {
            Action::Pair(rule) => Some((pattern, *rule)),
            _ => None,
        })
        .collect();
    let cursors = pairs.iter().map(|(p, _)| Cursor::start(p)).collect();
    Pairing { rules, pairs }.visit(primary, candidate, &Here(cursors));
}

struct Pairing<'r> {
    rules: &'r Rules,
    pairs: Vec<(&'r PathPattern, PairRule)>,
}

/// Where each pair rule's pattern stands at the current path.
struct Here(Vec<Cursor>);

impl Pairing<'_> {
    fn step(&self, here: &Here, segment: &str) -> Here {
        Here(
            self.pairs
                .iter()
                .zip(&here.0)
                .map(|((pattern, _), cursor)| cursor.advance(pattern, segment))
                .collect(),
        )
    }

    /// Whether `rule` holds at this path.
    fn holds(&self, here: &Here, rule: PairRule) -> bool {
        self.pairs
            .iter()
            .zip(&here.0)
            .any(|((pattern, r), cursor)| *r == rule && cursor.accepts(pattern))
    }

    fn visit(&self, primary: &Value, candidate: &mut Value, here: &Here) {
        if forgiven(primary, candidate, self.rules) || self.forgiven_here(primary, candidate, here)
        {
            *candidate = primary.clone();
            return;
        }
        match (primary, candidate) {
            (Value::Object(p), Value::Object(c)) => {
                for (key, cv) in c.iter_mut() {
                    if let Some(pv) = p.get(key) {
                        match self.pairs.is_empty() {
                            // Without pair rules there is nothing to track.
                            true => self.visit(pv, cv, here),
                            false => self.visit(pv, cv, &self.step(here, key)),
                        }
                    }
                }
                if !self.pairs.is_empty() {
                    self.one_sided_members(p, c, here);
                }
                // An empty container equals null, and null equals missing: so,
                // with both rules, an empty container equals a missing member.
                if self.rules.null_equals_empty && self.rules.null_equals_missing {
                    c.retain(|key, cv| p.contains_key(key) || !is_empty_container(cv));
                    for (key, pv) in p {
                        if is_empty_container(pv) && !c.contains_key(key) {
                            c.insert(key.clone(), pv.clone());
                        }
                    }
                }
            }
            (Value::Array(p), Value::Array(c)) => {
                for (index, (pv, cv)) in p.iter().zip(c.iter_mut()).enumerate() {
                    match self.pairs.is_empty() {
                        true => self.visit(pv, cv, here),
                        // Only then is the index spelled out.
                        false => self.visit(pv, cv, &self.step(here, &index.to_string())),
                    }
                }
            }
            _ => {}
        }
    }

    /// Members only one side sends, where a rule allows that side to.
    fn one_sided_members(
        &self,
        p: &serde_json::Map<String, Value>,
        c: &mut serde_json::Map<String, Value>,
        here: &Here,
    ) {
        c.retain(|key, _| {
            p.contains_key(key) || !self.holds(&self.step(here, key), PairRule::CandidateMayAdd)
        });
        for (key, pv) in p {
            if !c.contains_key(key) && self.holds(&self.step(here, key), PairRule::CandidateMayOmit)
            {
                c.insert(key.clone(), pv.clone());
            }
        }
    }

    /// The pair rules of this path that forgive this pair.
    fn forgiven_here(&self, p: &Value, c: &Value, here: &Here) -> bool {
        if self.pairs.is_empty() {
            return false;
        }
        let scalar_in_array = |scalar: &Value, array: &Value| match array {
            Value::Array(items) if items.len() == 1 && !is_container(scalar) => {
                items[0] == *scalar || forgiven(scalar, &items[0], self.rules)
            }
            _ => false,
        };
        let joined = |text: &Value, array: &Value| match (text, array) {
            (Value::String(s), Value::Array(items)) => {
                let parts: Vec<&str> = s.split(',').map(str::trim).collect();
                parts.len() == items.len()
                    && parts
                        .iter()
                        .zip(items)
                        .all(|(part, item)| item.as_str() == Some(*part))
            }
            _ => false,
        };
        (self.holds(here, PairRule::ScalarAsArray)
            && (scalar_in_array(p, c) || scalar_in_array(c, p)))
            || (self.holds(here, PairRule::CommaJoined) && (joined(p, c) || joined(c, p)))
    }
}

fn is_container(v: &Value) -> bool {
    matches!(v, Value::Array(_) | Value::Object(_))
}

fn is_empty_container(v: &Value) -> bool {
    match v {
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

/// Whether the rules forgive this pair of scalars, where only the pair can
/// tell: a null against an empty `[]` or `{}` (never `[]` against `{}`), a
/// numeric string against the number it spells (never two strings), and
/// numbers within tolerance.
fn forgiven(p: &Value, c: &Value, rules: &Rules) -> bool {
    let empty_pair = |a: &Value, b: &Value| a.is_null() && is_empty_container(b);
    let spelled = |s: &str, n: &Number| {
        numeric_string(s)
            .is_some_and(|m| canonical_number(m.as_str()) == canonical_number(n.as_str()))
    };
    match (p, c) {
        (Value::Number(a), Value::Number(b)) if !rules.number_tolerance.is_zero() => {
            matches!((a.as_f64(), b.as_f64()), (Some(x), Some(y)) if rules.number_tolerance.accepts(x, y))
        }
        (Value::String(s), Value::Number(n)) | (Value::Number(n), Value::String(s)) => {
            rules.numeric_strings && spelled(s, n)
        }
        _ => rules.null_equals_empty && (empty_pair(p, c) || empty_pair(c, p)),
    }
}
