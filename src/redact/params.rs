//! Query strings and form bodies as servers read them: pairs separated by
//! `&` or `;`, names percent-decoded, bracketed or dotted names in parts.

/// `name=value` pairs separated by `&` or `;`, each value replaced by what
/// `replace` gives for its raw name and value (`None` keeps it); everything
/// else is kept as it was.
pub(super) fn pairs(text: &str, replace: impl Fn(&str, &str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    for piece in text.split_inclusive(['&', ';']) {
        let (pair, separator) = match piece.strip_suffix(['&', ';']) {
            Some(pair) => (pair, &piece[pair.len()..]),
            None => (piece, ""),
        };
        match pair
            .split_once('=')
            .and_then(|(name, value)| Some((name, replace(name, value)?)))
        {
            Some((name, value)) => {
                out.push_str(name);
                out.push('=');
                out.push_str(&value);
            }
            None => out.push_str(pair),
        }
        out.push_str(separator);
    }
    out
}

/// A raw value as a server reads it: percent-decoded, `+` as a space.
pub(super) fn decoded_value(raw: &str) -> String {
    form_urlencoded::parse(format!("v={raw}").as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

/// A raw parameter name as a server reads it: percent-decoded, `+` as a
/// space, surrounding spaces dropped.
pub(super) fn decoded_name(raw: &str) -> String {
    let name: String = form_urlencoded::parse(raw.as_bytes())
        .next()
        .map(|(k, _)| k.into_owned())
        .unwrap_or_default();
    name.trim().to_string()
}

/// The parts of a bracketed or dotted name: `user[password]` and
/// `user.password` are `user`, `password`.
pub(super) fn name_parts(name: &str) -> Vec<&str> {
    name.split(['[', ']', '.'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

/// Whether text of no known type reads as a form (`a=1&b=2`): something
/// assigned, and nothing a form cannot hold raw (spaces, quotes, markup).
pub(super) fn form_like(text: &str) -> bool {
    let text = text.trim_end();
    text.contains('=')
        && !text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || "<>{}\"".contains(c))
}
