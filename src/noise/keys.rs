//! What the learner counts a difference under: a body path generalised no
//! further than what the bodies show (a segment that indexes an array on
//! either side becomes `*`; an object's member stays itself, digits or
//! not), or `header:<name>`. Without the bodies (too large, or not JSON) a
//! path stays as it is: narrower, never broader. A member named `*` or
//! `**` would read as a pattern, so a path through one is not counted.

use serde_json::Value;

use crate::compare::Verdict;

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

/// One pointer's key, or `None` when a member's name would read as a pattern.
pub fn pattern(pointer: &str, sides: [Option<&Value>; 2]) -> Option<String> {
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
