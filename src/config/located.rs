//! Naming the key of a config file error that the TOML parser raises before
//! any key is known. An integer out of range (`max_body_bytes =
//! 99999999999999999999`) fails while the text is parsed, so the error has no
//! key path, only a byte offset; the key is read back from the text there.

/// The dotted key path (`route[1].sample_rate`, as serde paths are written)
/// of the `key = value` line holding byte `offset` of `text`.
pub fn key_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    let (key, _) = line.split_once('=')?;
    let key = unquote(key.trim());
    if key.is_empty() || key.starts_with('[') {
        return None;
    }
    match table_before(&text[..start]) {
        Some(table) => Some(format!("{table}.{key}")),
        None => Some(key),
    }
}

/// The path of the table that the lines of `before` leave open, if any:
/// `[[route]]` counted as `route[n]`, `[route.compare]` under it as
/// `route[n].compare`.
fn table_before(before: &str) -> Option<String> {
    let headers: Vec<&str> = before
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with('['))
        .collect();
    let last = *headers.last()?;
    let name = |header: &str| {
        header
            .trim_start_matches('[')
            .split(']')
            .next()
            .unwrap_or("")
            .trim()
            .to_string()
    };
    let arrays = |of: &str| {
        headers
            .iter()
            .filter(|h| h.starts_with("[[") && name(h) == of)
            .count()
    };
    let table = name(last);
    let (first, rest) = table.split_once('.').unwrap_or((&table, ""));
    let n = arrays(first);
    let head = if n > 0 {
        format!("{first}[{}]", n - 1)
    } else {
        first.to_string()
    };
    Some(if rest.is_empty() {
        head
    } else {
        format!("{head}.{rest}")
    })
}

fn unquote(key: &str) -> String {
    key.trim_matches(|c| c == '"' || c == '\'').to_string()
}

#[cfg(test)]
mod tests {
    use super::key_at;

    fn at(text: &str, needle: &str) -> Option<String> {
        key_at(text, text.find(needle).unwrap())
    }

    #[test]
    fn keys_are_found_under_their_tables() {
        assert_eq!(at("a = 1\nqueue = 99", "99").as_deref(), Some("queue"));
        let routes = "[[route]]\nmatch = \"GET /a\"\n[[route]]\nmatch = \"GET /b\"\n[route.compare]\nx = 7\n";
        assert_eq!(at(routes, "7").as_deref(), Some("route[1].compare.x"));
        assert_eq!(
            at("[redact]\n\"key\" = 5", "5").as_deref(),
            Some("redact.key")
        );
        assert_eq!(at("[compare]\n", "]"), None);
    }
}
