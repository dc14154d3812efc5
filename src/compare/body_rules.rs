//! Rules on whole bodies, text bodies and header values: the ones that hold
//! for every kind of body, where the path rules of `rules` hold for JSON and
//! forms only. Each type parses its config text once and refuses what it
//! cannot apply.

use std::collections::BTreeSet;

use serde::Deserialize;

use super::rules::MaskKind;

/// How a whole body is compared, whatever its kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyRule {
    /// By kind: structurally for JSON and forms, by lines for text.
    #[default]
    Compare,
    /// Not at all (random or seeded bytes; `ignore = [""]` means this too).
    Ignore,
    /// Only its length, decoded.
    Length,
    /// Only its kind: both JSON, both text, both binary, both empty.
    Kind,
}

/// One difference of text bodies that does not count.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextRule {
    /// `\r\n` and `\n` end a line alike.
    LineEndings,
    /// Spaces and tabs at the end of a line.
    TrailingWhitespace,
    /// Newlines at the end of the body.
    FinalNewline,
}

/// The text rules in force, as flags.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TextNormalisation {
    pub line_endings: bool,
    pub trailing_whitespace: bool,
    pub final_newline: bool,
}

impl From<&[TextRule]> for TextNormalisation {
    fn from(rules: &[TextRule]) -> Self {
        TextNormalisation {
            line_endings: rules.contains(&TextRule::LineEndings),
            trailing_whitespace: rules.contains(&TextRule::TrailingWhitespace),
            final_newline: rules.contains(&TextRule::FinalNewline),
        }
    }
}

impl TextNormalisation {
    pub fn is_off(&self) -> bool {
        *self == TextNormalisation::default()
    }

    /// The text with the differences these rules forgive taken out.
    pub fn apply(&self, text: &str) -> String {
        let text = match self.line_endings {
            true => text.replace("\r\n", "\n"),
            false => text.to_string(),
        };
        let mut text = match self.trailing_whitespace {
            true => text
                .split('\n')
                .map(|line| line.trim_end_matches([' ', '\t']))
                .collect::<Vec<_>>()
                .join("\n"),
            false => text,
        };
        if self.final_newline {
            // Line ends only: a bare `\r` is no newline.
            while text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
        }
        text
    }
}

/// A set of media types that count as one where the bodies are equal
/// (`["text/html", "text/plain"]`): lower case, at least two.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<String>")]
pub struct MediaTypeSet(BTreeSet<String>);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("media_types_equal takes lists of at least two media types such as [\"text/html\", \"text/plain\"], without parameters; got {0:?}")]
pub struct MediaTypeSetError(pub Vec<String>);

impl TryFrom<Vec<String>> for MediaTypeSet {
    type Error = MediaTypeSetError;
    fn try_from(types: Vec<String>) -> Result<Self, Self::Error> {
        let valid = |t: &String| {
            let mut parts = t.split('/');
            let whole = |p: Option<&str>| {
                p.is_some_and(|p| {
                    !p.is_empty() && p.bytes().all(|b| b.is_ascii_graphic() && b != b';')
                })
            };
            whole(parts.next()) && whole(parts.next()) && parts.next().is_none()
        };
        let set: BTreeSet<String> = types
            .iter()
            .map(|t| t.trim().to_ascii_lowercase())
            .collect();
        if set.len() < 2 || !set.iter().all(valid) {
            return Err(MediaTypeSetError(types));
        }
        Ok(MediaTypeSet(set))
    }
}

impl MediaTypeSet {
    /// Whether both media types (lower case, no parameters) are in the set.
    pub fn holds(&self, a: &str, b: &str) -> bool {
        self.0.contains(a) && self.0.contains(b)
    }
}

/// A header name as written in a config: valid, and compared lower case.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(try_from = "String")]
pub struct LowerHeaderName(String);

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0:?} is not a valid header name")]
pub struct HeaderNameError(pub String);

impl TryFrom<String> for LowerHeaderName {
    type Error = HeaderNameError;
    fn try_from(name: String) -> Result<Self, Self::Error> {
        http::HeaderName::from_bytes(name.trim().as_bytes())
            .map(|n| LowerHeaderName(n.as_str().to_string()))
            .map_err(|_| HeaderNameError(name))
    }
}

impl LowerHeaderName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What a masked header value must look like on both sides: a kind of
/// value (`http-date`, `uuid`, `timestamp`, `number`, `any`) or a regular
/// expression. The values themselves are not compared.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "String")]
pub enum HeaderMask {
    /// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, or its obsolete forms).
    HttpDate,
    Kind(MaskKind),
}

impl TryFrom<String> for HeaderMask {
    type Error = <MaskKind as TryFrom<String>>::Error;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.as_str() {
            "http-date" => Ok(HeaderMask::HttpDate),
            _ => MaskKind::try_from(s).map(HeaderMask::Kind),
        }
    }
}

impl HeaderMask {
    /// Whether a header value is of this kind.
    pub fn accepts(&self, value: &str) -> bool {
        match self {
            HeaderMask::HttpDate => httpdate::parse_http_date(value).is_ok(),
            HeaderMask::Kind(kind) => kind.accepts_text(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_rules_take_out_only_what_they_name() {
        let all = TextNormalisation {
            line_endings: true,
            trailing_whitespace: true,
            final_newline: true,
        };
        assert_eq!(all.apply("a \r\nb\t\n\n"), "a\nb");
        let endings = TextNormalisation::from(&[TextRule::LineEndings][..]);
        assert_eq!(endings.apply("a \r\nb\n"), "a \nb\n");
        let last = TextNormalisation::from(&[TextRule::FinalNewline][..]);
        assert_eq!(last.apply("a\r\n\n"), "a");
        assert_eq!(last.apply("a \nb"), "a \nb");
    }

    #[test]
    fn media_type_sets_need_two_plain_types() {
        let ok = MediaTypeSet::try_from(vec!["text/html".into(), "Text/Plain".into()]).unwrap();
        assert!(ok.holds("text/html", "text/plain"));
        assert!(!ok.holds("text/html", "application/json"));
        for bad in [
            vec!["text/html"],
            vec!["text/html", "text/html"],
            vec!["text", "text/plain"],
            vec!["text/html; charset=utf-8", "text/plain"],
        ] {
            let bad: Vec<String> = bad.into_iter().map(String::from).collect();
            assert!(MediaTypeSet::try_from(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn header_masks_accept_their_kind_only() {
        let date = HeaderMask::try_from("http-date".to_string()).unwrap();
        assert!(date.accepts("Sun, 06 Nov 1994 08:49:37 GMT"));
        assert!(!date.accepts("2024-01-01T00:00:00Z"));
        let re = HeaderMask::try_from("^/orders/[0-9]+$".to_string()).unwrap();
        assert!(re.accepts("/orders/42") && !re.accepts("/orders/x"));
        assert!(HeaderMask::try_from("(".to_string()).is_err());
        assert!(LowerHeaderName::try_from("bad name".to_string()).is_err());
        assert_eq!(
            LowerHeaderName::try_from("Last-Modified".to_string())
                .unwrap()
                .as_str(),
            "last-modified"
        );
    }
}
