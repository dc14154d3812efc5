//! What the learner counts a difference under: a body path generalised no
//! further than what the bodies show (a segment that indexes an array on
//! either side becomes `*`; an object's member stays itself, digits or
//! not), or `header:<name>`. Without the bodies (too large, or not JSON) a
//! path stays as it is: narrower, never broader. A member named `*` or
//! `**` would read as a pattern, so a path through one is not counted.

use serde_json::Value;

use crate::compare::{observed_pattern as pattern, Verdict};

/// A verdict's differing keys, sorted and each once, given the two bodies
/// it compared where they were parsed.
pub fn keys(verdict: &Verdict, sides: [Option<&Value>; 2]) -> Vec<String> {
    let mut keys: Vec<String> = verdict
        .paths
        .iter()
        .filter_map(|p| pattern(p, sides))
        .collect();
    keys.extend(
        verdict
            .headers
            .iter()
            .map(|h| format!("header:{}", h.name.to_ascii_lowercase())),
    );
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_array_indexes_generalise() {
        let p = json!({"items": [{"price": 1}], "stats": {"2024": 1, "total": 2}});
        let c = json!({"items": [{"price": 2}], "stats": {"2024": 3, "total": 2}});
        let sides = [Some(&p), Some(&c)];
        assert_eq!(pattern("/items/0/price", sides).unwrap(), "/items/*/price");
        assert_eq!(
            pattern("/stats/2024", sides).unwrap(),
            "/stats/2024",
            "a member, not an index"
        );
        assert_eq!(pattern("/items/3", [Some(&p), None]).unwrap(), "/items/*");
        assert_eq!(
            pattern("/stats/9", [None, None]).unwrap(),
            "/stats/9",
            "no body: as it is"
        );
    }

    #[test]
    fn a_member_named_like_a_pattern_is_not_counted() {
        let p = json!({"*": 1, "**": {"a": 1}});
        assert_eq!(pattern("/*", [Some(&p), None]), None);
        assert_eq!(pattern("/**/a", [Some(&p), None]), None);
        assert_eq!(pattern("", [Some(&p), None]).unwrap(), "");
    }
}
