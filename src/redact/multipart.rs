//! Multipart bodies (`multipart/form-data`, RFC 7578; `multipart/*`, RFC
//! 2046) split into their parts by the boundary, so that each part can be
//! redacted by its name and type, and joined again.
//!
//! A small parser over bytes, strict on purpose: parts must be separated by
//! CRLF and the closing delimiter must be there. Anything else is reported as
//! unparseable, and the caller then masks the body whole: a lenient parser
//! that guessed wrong would let a secret through.

/// Parts in one body at most; more is treated as unparseable.
const MAX_PARTS: usize = 1_000;

/// One part: its raw header block (without the blank line) and its content.
pub(super) struct Part<'a> {
    pub headers: &'a [u8],
    pub content: &'a [u8],
}

/// The `boundary` parameter of a multipart Content-Type, if valid
/// (1 to 70 characters, RFC 2046).
pub(super) fn boundary(content_type: &str) -> Option<String> {
    let boundary = parameters(content_type)
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("boundary"))
        .map(|(_, value)| value)?;
    (1..=70).contains(&boundary.len()).then_some(boundary)
}

/// The parts of a body, or `None` if it is not a well-formed multipart
/// body with this boundary. The preamble and epilogue, which receivers
/// ignore, are left out.
pub(super) fn split<'a>(body: &'a [u8], boundary: &str) -> Option<Vec<Part<'a>>> {
    let delimiter = format!("--{boundary}").into_bytes();
    let next_delimiter = [b"\r\n".as_slice(), &delimiter].concat();
    let mut pos = if body.starts_with(&delimiter) {
        delimiter.len()
    } else {
        find(body, &next_delimiter)? + next_delimiter.len()
    };
    let mut parts = Vec::new();
    loop {
        let rest = &body[pos..];
        if rest.starts_with(b"--") {
            return Some(parts);
        }
        // Transport padding may follow a delimiter before its line break.
        let padding = rest
            .iter()
            .take_while(|b| matches!(b, b' ' | b'\t'))
            .count();
        if !rest[padding..].starts_with(b"\r\n") {
            return None;
        }
        pos += padding + 2;
        let (headers, start) = if body[pos..].starts_with(b"\r\n") {
            (&body[pos..pos], pos + 2)
        } else {
            let end = pos + find(&body[pos..], b"\r\n\r\n")?;
            (&body[pos..end], end + 4)
        };
        let end = start + find(&body[start..], &next_delimiter)?;
        parts.push(Part {
            headers,
            content: &body[start..end],
        });
        if parts.len() > MAX_PARTS {
            return None;
        }
        pos = end + next_delimiter.len();
    }
}

/// A part's header lines as name and value; `None` if a line is not a header.
pub(super) fn header_lines(block: &[u8]) -> Option<Vec<(&str, &str)>> {
    let text = std::str::from_utf8(block).ok()?;
    if text.is_empty() {
        return Some(Vec::new());
    }
    text.split("\r\n")
        .map(|line| {
            let (name, value) = line.split_once(':')?;
            let valid = !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic());
            valid.then_some((name, value.trim()))
        })
        .collect()
}

/// The `name` a part's Content-Disposition gives it, decoded from the
/// RFC 5987 form (`name*=UTF-8''…`) when that is used.
pub(super) fn field_name(headers: &[(&str, &str)]) -> Option<String> {
    let disposition = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-disposition"))?
        .1;
    let params = parameters(disposition);
    let get = |key: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.clone())
    };
    match get("name*") {
        Some(extended) => {
            let encoded = extended.splitn(3, '\'').nth(2).unwrap_or(&extended);
            Some(percent_decode(encoded))
        }
        None => get("name"),
    }
}

/// Whether a part is a file (its Content-Disposition has a filename).
pub(super) fn is_file(headers: &[(&str, &str)]) -> bool {
    headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-disposition"))
        .flat_map(|(_, v)| parameters(v))
        .any(|(n, _)| n.eq_ignore_ascii_case("filename") || n.eq_ignore_ascii_case("filename*"))
}

/// The `;`-separated parameters of a header value (after its first item),
/// with quoted values unquoted. A `;` inside quotes does not separate.
fn parameters(value: &str) -> Vec<(String, String)> {
    let mut pieces = Vec::new();
    let (mut current, mut quoted, mut escaped) = (String::new(), false, false);
    for c in value.chars() {
        match (quoted, escaped, c) {
            (true, true, _) => {
                current.push(c);
                escaped = false;
            }
            (true, false, '\\') => escaped = true,
            (_, _, '"') => quoted = !quoted,
            (false, _, ';') => pieces.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    pieces.push(current);
    pieces
        .into_iter()
        .skip(1)
        .filter_map(|p| {
            let (name, value) = p.split_once('=')?;
            Some((name.trim().to_string(), value.trim().to_string()))
        })
        .collect()
}

/// Percent-decoding of a name, lossy where the bytes are not UTF-8.
pub(super) fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The first position of `needle` in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    let first = *needle.first()?;
    let mut from = 0;
    while let Some(offset) = haystack.get(from..)?.iter().position(|&b| b == first) {
        let at = from + offset;
        if haystack[at..].starts_with(needle) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_split_by_the_boundary() {
        let body = b"preamble\r\n--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\none\r\n--xyz\r\nContent-Disposition: form-data; name*=UTF-8''pass%77ord; filename=\"f;x\"\r\nContent-Type: application/json\r\n\r\n{\"k\":1}\r\n--xyz--\r\nepilogue";
        let parts = split(body, "xyz").unwrap();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content, b"one");
        assert_eq!(parts[1].content, b"{\"k\":1}");
        let headers = header_lines(parts[1].headers).unwrap();
        assert_eq!(field_name(&headers).as_deref(), Some("password"));
        assert!(is_file(&headers));
        assert!(!is_file(&header_lines(parts[0].headers).unwrap()));
    }

    #[test]
    fn malformed_bodies_are_refused() {
        assert!(split(b"--xyz\r\nname: a\r\n\r\nno end", "xyz").is_none());
        assert!(split(b"--xyz\nname: a\n\nlf only\n--xyz--", "xyz").is_none());
        assert!(split(b"no delimiter at all", "xyz").is_none());
        assert!(header_lines(b"not a header").is_none());
        assert_eq!(
            boundary("multipart/form-data; boundary=\"a b\"").as_deref(),
            Some("a b")
        );
        assert!(boundary("multipart/form-data").is_none());
        assert!(boundary("multipart/form-data; boundary=").is_none());
    }
}
