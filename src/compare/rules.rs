//! Comparison rules: what to ignore, mask, reorder or forgive, as written in
//! `[compare]` (globally) and `[route.compare]` (per route, adding to the
//! global rules), checked once at start-up into [`Rules`]. The rules on
//! whole bodies, text and headers are in `body_rules`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

pub use super::body_rules::{
    BodyRule, HeaderMask, LowerHeaderName, MediaTypeSet, TextNormalisation, TextRule,
};

/// A JSON Pointer (RFC 6901) in which a segment `*` matches one level and
/// `**` any number of levels, including none: `/items/*/updated_at`, `/**/request_id`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct PathPattern {
    segments: Vec<PatternSegment>,
    text: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum PatternSegment {
    Literal(String),
    One,
    AnyDepth,
}

/// A path pattern that is not a JSON Pointer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("path pattern {0:?} must be a JSON Pointer such as \"/items/*/id\" or \"/**/request_id\" (\"\" is the whole body)")]
pub struct PathPatternError(pub String);

impl FromStr for PathPattern {
    type Err = PathPatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Ok(PathPattern {
                segments: Vec::new(),
                text: String::new(),
            });
        }
        let rest = s
            .strip_prefix('/')
            .ok_or_else(|| PathPatternError(s.to_string()))?;
        let mut segments = Vec::new();
        for raw in rest.split('/') {
            segments.push(match raw {
                "*" => PatternSegment::One,
                "**" => PatternSegment::AnyDepth,
                _ => PatternSegment::Literal(
                    unescape_segment(raw).ok_or_else(|| PathPatternError(s.to_string()))?,
                ),
            });
        }
        Ok(PathPattern {
            segments,
            text: s.to_string(),
        })
    }
}

/// RFC 6901: `~1` is `/`, `~0` is `~`; any other `~` is invalid.
fn unescape_segment(raw: &str) -> Option<String> {
    if !raw.contains('~') {
        return Some(raw.to_string());
    }
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '~' {
            match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            }
        } else {
            out.push(c);
        }
    }
    Some(out)
}

impl TryFrom<String> for PathPattern {
    type Error = PathPatternError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

// Ordered by their text, so patterns can key the config's maps.
impl Ord for PathPattern {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl PartialOrd for PathPattern {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PathPattern {
    /// Whether the pattern is `""`, the whole body.
    pub fn is_root(&self) -> bool {
        self.segments.is_empty()
    }

    /// Whether the pattern matches a path given as its segments.
    pub fn matches<S: AsRef<str>>(&self, path: &[S]) -> bool {
        let mut states = Cursor::start(self);
        for segment in path {
            states = states.advance(self, segment.as_ref());
            if states.is_empty() {
                return false;
            }
        }
        states.accepts(self)
    }
}

/// The positions a pattern can be at after some path segments: a tiny NFA,
/// so that a tree walk advances every pattern one segment at a time.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Cursor(Vec<usize>);

impl Cursor {
    pub(crate) fn start(pattern: &PathPattern) -> Cursor {
        let mut c = Cursor(vec![0]);
        c.close(pattern);
        c
    }

    /// Adds the positions reachable by letting a `**` match nothing.
    fn close(&mut self, pattern: &PathPattern) {
        let mut i = 0;
        while i < self.0.len() {
            let pos = self.0[i];
            if pattern.segments.get(pos) == Some(&PatternSegment::AnyDepth)
                && !self.0.contains(&(pos + 1))
            {
                self.0.push(pos + 1);
            }
            i += 1;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(crate) fn advance(&self, pattern: &PathPattern, segment: &str) -> Cursor {
        let mut next = Cursor(Vec::new());
        for &pos in &self.0 {
            match pattern.segments.get(pos) {
                Some(PatternSegment::AnyDepth) => next.push(pos),
                Some(PatternSegment::One) => next.push(pos + 1),
                Some(PatternSegment::Literal(lit)) if lit == segment => next.push(pos + 1),
                _ => {}
            }
        }
        next.close(pattern);
        next
    }

    fn push(&mut self, pos: usize) {
        if !self.0.contains(&pos) {
            self.0.push(pos);
        }
    }

    pub(crate) fn accepts(&self, pattern: &PathPattern) -> bool {
        self.0.contains(&pattern.segments.len())
    }
}

/// What a mask accepts as "the same kind of value".
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "String")]
pub enum MaskKind {
    /// A UUID string, any version.
    Uuid,
    /// A date-time string (RFC 3339, or Python's isoformat).
    Timestamp,
    /// Any number.
    Number,
    /// Any string.
    String,
    /// Any value at all, present on both sides.
    Any,
    /// A string the regular expression matches.
    Regex(regex::Regex),
}

/// A mask that is neither a known kind nor a valid regular expression.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "mask {0:?} is not uuid, timestamp, number, string, any, nor a valid regular expression: {1}"
)]
pub struct MaskKindError(pub String, pub String);

impl TryFrom<String> for MaskKind {
    type Error = MaskKindError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Ok(match s.as_str() {
            "uuid" => MaskKind::Uuid,
            "timestamp" => MaskKind::Timestamp,
            "number" => MaskKind::Number,
            "string" => MaskKind::String,
            "any" => MaskKind::Any,
            _ => MaskKind::Regex(
                regex::Regex::new(&s).map_err(|e| MaskKindError(s.clone(), e.to_string()))?,
            ),
        })
    }
}

impl MaskKind {
    /// The placeholder a masked value becomes, the same on both sides.
    pub fn placeholder(&self) -> &'static str {
        match self {
            MaskKind::Uuid => "<uuid>",
            MaskKind::Timestamp => "<timestamp>",
            MaskKind::Number => "<number>",
            MaskKind::String => "<string>",
            MaskKind::Any => "<any>",
            MaskKind::Regex(_) => "<masked>",
        }
    }
}

/// Numbers within `abs`, or within `rel` of the larger magnitude, are equal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NumberTolerance {
    #[serde(default)]
    pub abs: f64,
    #[serde(default)]
    pub rel: f64,
}

impl NumberTolerance {
    pub fn is_zero(&self) -> bool {
        self.abs <= 0.0 && self.rel <= 0.0
    }

    pub fn accepts(&self, a: f64, b: f64) -> bool {
        let diff = (a - b).abs();
        diff <= self.abs || diff <= self.rel * a.abs().max(b.abs())
    }
}

/// A named set of rules for a common migration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
pub enum Preset {
    /// The usual differences between Python (Django, Flask, FastAPI) and Go JSON APIs.
    #[serde(rename = "python-go")]
    PythonGo,
    /// No rules beyond what is always on.
    #[serde(rename = "none")]
    Off,
}

/// `[compare]` or `[route.compare]` as written: every key optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareConfig {
    pub preset: Option<Preset>,
    #[serde(default)]
    pub ignore: Vec<PathPattern>,
    #[serde(default)]
    pub mask: BTreeMap<PathPattern, MaskKind>,
    #[serde(default)]
    pub unordered: Vec<PathPattern>,
    #[serde(default)]
    pub keyed: BTreeMap<PathPattern, String>,
    pub number_tolerance: Option<NumberTolerance>,
    pub null_equals_missing: Option<bool>,
    pub null_equals_empty: Option<bool>,
    pub timestamps_as_instants: Option<bool>,
    pub numeric_strings: Option<bool>,
    pub compare_charset: Option<bool>,
    #[serde(default)]
    pub ignore_headers: Vec<String>,
    #[serde(default)]
    pub compare_headers: Vec<String>,
    /// A scalar equals a one-element array holding it (a query value echoed
    /// as "v" by Python, as ["v"] by Go's url.Values).
    #[serde(default)]
    pub scalar_as_array: Vec<PathPattern>,
    /// A comma-joined string equals the array of its parts ("a,b" and ["a","b"]).
    #[serde(default)]
    pub comma_joined: Vec<PathPattern>,
    /// Members the candidate may send where the primary does not.
    #[serde(default)]
    pub candidate_may_add: Vec<PathPattern>,
    /// Members the candidate may leave out where the primary sends them.
    #[serde(default)]
    pub candidate_may_omit: Vec<PathPattern>,
    /// How whole bodies are compared, of any kind.
    pub body: Option<BodyRule>,
    /// Differences of text bodies that do not count.
    #[serde(default)]
    pub normalise_text: Vec<TextRule>,
    /// For two redirects: status and Location compared, not the body.
    pub redirects_by_location: Option<bool>,
    /// Media types that count as one where the bodies are equal.
    #[serde(default)]
    pub media_types_equal: Vec<MediaTypeSet>,
    /// Header values compared by kind, not by value.
    #[serde(default)]
    pub header_mask: BTreeMap<LowerHeaderName, HeaderMask>,
}

impl CompareConfig {
    /// These rules with a route's added: lists and maps grow, set flags win.
    pub fn with(&self, route: &CompareConfig) -> CompareConfig {
        let mut out = self.clone();
        out.preset = route.preset.or(self.preset);
        out.ignore.extend(route.ignore.iter().cloned());
        out.mask
            .extend(route.mask.iter().map(|(k, v)| (k.clone(), v.clone())));
        out.unordered.extend(route.unordered.iter().cloned());
        out.keyed
            .extend(route.keyed.iter().map(|(k, v)| (k.clone(), v.clone())));
        out.number_tolerance = route.number_tolerance.or(self.number_tolerance);
        out.null_equals_missing = route.null_equals_missing.or(self.null_equals_missing);
        out.null_equals_empty = route.null_equals_empty.or(self.null_equals_empty);
        out.timestamps_as_instants = route.timestamps_as_instants.or(self.timestamps_as_instants);
        out.numeric_strings = route.numeric_strings.or(self.numeric_strings);
        out.compare_charset = route.compare_charset.or(self.compare_charset);
        out.ignore_headers
            .extend(route.ignore_headers.iter().cloned());
        out.compare_headers
            .extend(route.compare_headers.iter().cloned());
        out.scalar_as_array
            .extend(route.scalar_as_array.iter().cloned());
        out.comma_joined.extend(route.comma_joined.iter().cloned());
        out.candidate_may_add
            .extend(route.candidate_may_add.iter().cloned());
        out.candidate_may_omit
            .extend(route.candidate_may_omit.iter().cloned());
        out.body = route.body.or(self.body);
        out.normalise_text
            .extend(route.normalise_text.iter().copied());
        out.redirects_by_location = route.redirects_by_location.or(self.redirects_by_location);
        out.media_types_equal
            .extend(route.media_types_equal.iter().cloned());
        out.header_mask.extend(
            route
                .header_mask
                .iter()
                .map(|(k, v)| (k.clone(), v.clone())),
        );
        out
    }
}

/// What to do at the paths a pattern matches.
#[derive(Clone, Debug)]
pub(crate) enum Action {
    Ignore,
    Mask(MaskKind),
    Unordered,
    Keyed(String),
    /// Rules that need both sides, applied when they are reconciled.
    Pair(PairRule),
}

/// A rule on a pair of values at a path, which neither side shows alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PairRule {
    ScalarAsArray,
    CommaJoined,
    CandidateMayAdd,
    CandidateMayOmit,
}

/// The effective rules for one endpoint: preset applied, patterns compiled.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub(crate) paths: Vec<(PathPattern, Action)>,
    pub number_tolerance: NumberTolerance,
    pub null_equals_missing: bool,
    pub null_equals_empty: bool,
    pub timestamps_as_instants: bool,
    pub numeric_strings: bool,
    pub compare_charset: bool,
    /// Lower-case header names ignored on top of the defaults.
    pub ignore_headers: Vec<String>,
    /// Lower-case header names compared even if ignored by default.
    pub compare_headers: Vec<String>,
    pub body: BodyRule,
    pub text: TextNormalisation,
    pub redirects_by_location: bool,
    pub media_types_equal: Vec<MediaTypeSet>,
    pub header_masks: Vec<(LowerHeaderName, HeaderMask)>,
}

impl Rules {
    /// These rules with more paths ignored and more headers ignored: how
    /// learned noise is discounted, as plain data, without I/O here.
    pub fn with_ignored(&self, paths: &[PathPattern], headers: &[String]) -> Rules {
        let mut rules = self.clone();
        // First, so that an ignored path is gone before any other rule sees it.
        let ignored = paths.iter().map(|p| (p.clone(), Action::Ignore));
        rules.paths = ignored.chain(self.paths.iter().cloned()).collect();
        rules
            .ignore_headers
            .extend(headers.iter().map(|h| h.to_ascii_lowercase()));
        rules
    }

    /// The path patterns of rules that only JSON (and forms) can apply.
    pub fn path_rules(&self) -> impl Iterator<Item = &PathPattern> {
        self.paths.iter().map(|(pattern, _)| pattern)
    }
}

impl From<&CompareConfig> for Rules {
    fn from(c: &CompareConfig) -> Self {
        let preset = c.preset == Some(Preset::PythonGo);
        let mut paths: Vec<(PathPattern, Action)> = Vec::new();
        paths.extend(c.ignore.iter().map(|p| (p.clone(), Action::Ignore)));
        paths.extend(
            c.mask
                .iter()
                .map(|(p, kind)| (p.clone(), Action::Mask(kind.clone()))),
        );
        paths.extend(c.unordered.iter().map(|p| (p.clone(), Action::Unordered)));
        paths.extend(
            c.keyed
                .iter()
                .map(|(p, key)| (p.clone(), Action::Keyed(key.clone()))),
        );
        let pairs = [
            (&c.scalar_as_array, PairRule::ScalarAsArray),
            (&c.comma_joined, PairRule::CommaJoined),
            (&c.candidate_may_add, PairRule::CandidateMayAdd),
            (&c.candidate_may_omit, PairRule::CandidateMayOmit),
        ];
        for (patterns, rule) in pairs {
            paths.extend(patterns.iter().map(|p| (p.clone(), Action::Pair(rule))));
        }
        // `ignore = [""]` ignores the whole body, of whatever kind.
        let whole_body_ignored = c.ignore.iter().any(PathPattern::is_root);
        let body = match c.body {
            Some(rule) => rule,
            None if whole_body_ignored => BodyRule::Ignore,
            None => BodyRule::Compare,
        };
        let lower = |v: &Vec<String>| v.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
        Rules {
            paths,
            number_tolerance: c.number_tolerance.unwrap_or_default(),
            null_equals_missing: c.null_equals_missing.unwrap_or(preset),
            null_equals_empty: c.null_equals_empty.unwrap_or(preset),
            timestamps_as_instants: c.timestamps_as_instants.unwrap_or(preset),
            numeric_strings: c.numeric_strings.unwrap_or(preset),
            compare_charset: c.compare_charset.unwrap_or(false),
            ignore_headers: lower(&c.ignore_headers),
            compare_headers: lower(&c.compare_headers),
            body,
            text: TextNormalisation::from(c.normalise_text.as_slice()),
            redirects_by_location: c.redirects_by_location.unwrap_or(preset),
            media_types_equal: c.media_types_equal.clone(),
            header_masks: c
                .header_mask
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, path: &[&str]) -> bool {
        pattern.parse::<PathPattern>().unwrap().matches(path)
    }

    #[test]
    fn patterns_match_like_globs() {
        assert!(matches("/meta/served_at", &["meta", "served_at"]));
        assert!(!matches("/meta/served_at", &["meta"]));
        assert!(matches(
            "/items/*/updated_at",
            &["items", "3", "updated_at"]
        ));
        assert!(!matches("/items/*/updated_at", &["items", "updated_at"]));
        assert!(matches("/**/request_id", &["request_id"]));
        assert!(matches("/**/request_id", &["a", "b", "request_id"]));
        assert!(!matches("/**/request_id", &["a", "request_id", "x"]));
        assert!(matches("/a/**", &["a"]));
        assert!(matches("/a/**", &["a", "b", "c"]));
        assert!(matches("", &[] as &[&str]));
        assert!(matches("/a~1b/c~0d", &["a/b", "c~d"]));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["items", "/a/~2", "/a~"] {
            assert!(bad.parse::<PathPattern>().is_err(), "{bad}");
        }
    }

    #[test]
    fn route_rules_add_to_global_ones() {
        let global: CompareConfig =
            toml::from_str("ignore = [\"/a\"]\nnull_equals_missing = true").unwrap();
        let route: CompareConfig =
            toml::from_str("ignore = [\"/b\"]\nnull_equals_missing = false").unwrap();
        let merged = global.with(&route);
        assert_eq!(merged.ignore.len(), 2);
        assert_eq!(merged.null_equals_missing, Some(false));
    }

    #[test]
    fn the_preset_turns_on_its_rules_unless_overridden() {
        let c: CompareConfig =
            toml::from_str("preset = \"python-go\"\nnull_equals_empty = false").unwrap();
        let rules = Rules::from(&c);
        assert!(rules.null_equals_missing && rules.timestamps_as_instants && rules.numeric_strings);
        assert!(!rules.null_equals_empty);
    }

    #[test]
    fn bad_masks_and_map_keys_are_named() {
        let err = toml::from_str::<CompareConfig>("mask = { \"/a\" = \"(unclosed\" }").unwrap_err();
        assert!(err.to_string().contains("(unclosed"), "{err}");
        let err = toml::from_str::<CompareConfig>("keyed = { \"items\" = \"id\" }").unwrap_err();
        assert!(err.to_string().contains("\"items\""), "{err}");
    }
}
