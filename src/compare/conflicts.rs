//! Rules written in one table that would do nothing because another rule of
//! the same table overrides them: refused at start, naming both, so nothing
//! in a config is accepted and then silently ignored. (A route's table may
//! override the global one on purpose: only each table as written is
//! checked.)

use super::body_rules::BodyRule;
use super::rules::{CompareConfig, PathPattern};

/// The first rule of `config` that another makes idle, said plainly.
pub fn idle_rule(config: &CompareConfig) -> Option<String> {
    whole_body(config)
        .or_else(|| ignored_paths(config))
        .or_else(|| ignored_headers(config))
}

/// With the body ignored or compared by length or kind, no rule on its
/// content has anything to act on.
fn whole_body(c: &CompareConfig) -> Option<String> {
    let body = match c.body {
        Some(BodyRule::Compare) | None if c.ignore.iter().any(PathPattern::is_root) => {
            "ignore = [\"\"]"
        }
        Some(BodyRule::Ignore) => "body = \"ignore\"",
        Some(BodyRule::Length) => "body = \"length\"",
        Some(BodyRule::Kind) => "body = \"kind\"",
        Some(BodyRule::Compare) | None => return None,
    };
    let content_rules = [
        ("ignore", c.ignore.iter().any(|p| !p.is_root())),
        ("mask", !c.mask.is_empty()),
        ("unordered", !c.unordered.is_empty()),
        ("keyed", !c.keyed.is_empty()),
        ("scalar_as_array", !c.scalar_as_array.is_empty()),
        ("comma_joined", !c.comma_joined.is_empty()),
        ("candidate_may_add", !c.candidate_may_add.is_empty()),
        ("candidate_may_omit", !c.candidate_may_omit.is_empty()),
        ("normalise_text", !c.normalise_text.is_empty()),
        ("number_tolerance", c.number_tolerance.is_some()),
        (
            "ignore = [\"\"] with body",
            c.body.is_some() && c.ignore.iter().any(PathPattern::is_root),
        ),
    ];
    let idle: Vec<&str> = content_rules
        .iter()
        .filter(|(_, set)| *set)
        .map(|(key, _)| *key)
        .collect();
    (!idle.is_empty()).then(|| {
        format!(
            "{body} leaves the body's content uncompared, so {} would do nothing here; remove them, or compare the body",
            idle.join(", ")
        )
    })
}

/// A path both ignored and given another rule: the ignore wins.
fn ignored_paths(c: &CompareConfig) -> Option<String> {
    let others = [
        ("mask", c.mask.keys().collect::<Vec<_>>()),
        ("unordered", c.unordered.iter().collect()),
        ("keyed", c.keyed.keys().collect()),
        ("scalar_as_array", c.scalar_as_array.iter().collect()),
        ("comma_joined", c.comma_joined.iter().collect()),
        ("candidate_may_add", c.candidate_may_add.iter().collect()),
        ("candidate_may_omit", c.candidate_may_omit.iter().collect()),
    ];
    for (key, patterns) in others {
        if let Some(both) = patterns.iter().find(|p| c.ignore.contains(p)) {
            return Some(format!(
                "\"{both}\" is in ignore and in {key}: ignored, it would never reach the {key} rule"
            ));
        }
    }
    None
}

/// A header both ignored and compared, or ignored and masked.
fn ignored_headers(c: &CompareConfig) -> Option<String> {
    let ignored = |name: &str| {
        c.ignore_headers
            .iter()
            .any(|h| h.trim().eq_ignore_ascii_case(name))
    };
    if let Some(both) = c.compare_headers.iter().find(|h| ignored(h.trim())) {
        return Some(format!(
            "header {both:?} is in ignore_headers and in compare_headers: say which"
        ));
    }
    c.header_mask
        .keys()
        .find(|name| ignored(name.as_str()))
        .map(|name| {
            format!(
                "header {:?} is in ignore_headers and in header_mask: a masked header is compared by its kind; remove one",
                name.as_str()
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idle(toml: &str) -> Option<String> {
        idle_rule(&toml::from_str::<CompareConfig>(toml).unwrap())
    }

    #[test]
    fn rules_that_would_do_nothing_are_named() {
        let whole = idle("body = \"ignore\"\nmask = { \"/a\" = \"uuid\" }").unwrap();
        assert!(
            whole.contains("body = \"ignore\"") && whole.contains("mask"),
            "{whole}"
        );
        let root = idle("ignore = [\"\", \"/a\"]\nnormalise_text = [\"final_newline\"]").unwrap();
        assert!(
            root.contains("ignore = [\"\"]") && root.contains("normalise_text"),
            "{root}"
        );
        let both = idle("ignore = [\"/a\"]\nunordered = [\"/a\"]").unwrap();
        assert!(
            both.contains("\"/a\" is in ignore and in unordered"),
            "{both}"
        );
        let header = idle("ignore_headers = [\"X-A\"]\ncompare_headers = [\"x-a\"]").unwrap();
        assert!(
            header.contains("ignore_headers and in compare_headers"),
            "{header}"
        );
        let masked = idle("ignore_headers = [\"last-modified\"]\nheader_mask = { \"Last-Modified\" = \"http-date\" }").unwrap();
        assert!(masked.contains("header_mask"), "{masked}");
        let length = idle("body = \"length\"\nignore = [\"\"]").unwrap();
        assert!(length.contains("with body"), "{length}");
    }

    #[test]
    fn rules_that_each_do_something_pass() {
        assert_eq!(idle("body = \"length\""), None);
        assert_eq!(idle("ignore = [\"\"]"), None);
        assert_eq!(
            idle("body = \"compare\"\nignore = [\"/a\"]\nmask = { \"/b\" = \"uuid\" }"),
            None
        );
        assert_eq!(
            idle("ignore_headers = [\"x-a\"]\ncompare_headers = [\"x-b\"]"),
            None
        );
    }
}
