//! Body decoding and classification: undo Content-Encoding (gzip, deflate,
//! br, zstd), bounded so a small compressed body cannot expand without limit,
//! and sort the result by media type.

use std::io::Read;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::HeaderMap;
use serde::Serialize;

/// What a body holds, by its media type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyKind {
    Empty,
    /// `application/json` and any `+json` type.
    Json,
    /// One JSON value a line: `application/x-ndjson`, `application/jsonl`,
    /// or a text body of two or more lines, each a JSON object or array.
    JsonLines,
    /// `application/x-www-form-urlencoded`.
    Form,
    /// `text/*`, XML, JavaScript, or unlabelled UTF-8.
    Text,
    Binary,
}

impl BodyKind {
    pub fn of(headers: &HeaderMap, body: &[u8]) -> BodyKind {
        if body.is_empty() {
            return BodyKind::Empty;
        }
        match media_type(headers) {
            Some(t) if t == "application/json" || t.ends_with("+json") => BodyKind::Json,
            Some(t) if JSON_LINES_TYPES.contains(&t.as_str()) => BodyKind::JsonLines,
            Some(t) if t == "application/x-www-form-urlencoded" => BodyKind::Form,
            Some(t)
                if t.starts_with("text/")
                    || t.ends_with("+xml")
                    || t == "application/xml"
                    || t == "application/javascript" =>
            {
                BodyKind::Text
            }
            None if std::str::from_utf8(body).is_ok() => BodyKind::Text,
            _ => BodyKind::Binary,
        }
    }
}

/// Media types of newline-delimited JSON, as servers label it.
const JSON_LINES_TYPES: &[&str] = &[
    "application/x-ndjson",
    "application/ndjson",
    "application/jsonl",
    "application/x-jsonlines",
    "application/jsonlines",
];

/// The media type a saved body's file extension stands for, where it
/// says one (`shadowdiff diff` on two body files).
pub fn media_type_for_extension(extension: &str) -> Option<&'static str> {
    Some(match extension.to_ascii_lowercase().as_str() {
        "json" => "application/json",
        "ndjson" | "jsonl" => "application/x-ndjson",
        "txt" | "text" => "text/plain",
        "html" | "htm" => "text/html",
        "xml" => "application/xml",
        "csv" => "text/csv",
        _ => return None,
    })
}

/// The media type of a Content-Type header, lower case, without parameters.
pub fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    let media = value.split(';').next()?.trim().to_ascii_lowercase();
    (!media.is_empty()).then_some(media)
}

/// Content-codings undone at most, in one body.
pub const MAX_CODINGS: usize = 3;

/// A body with its Content-Encoding undone, or why it could not be.
pub fn decode(body: &Bytes, headers: &HeaderMap, limit: usize) -> Result<Bytes, String> {
    let encodings: Vec<String> = headers
        .get_all(CONTENT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|e| e.trim().to_ascii_lowercase())
        .filter(|e| !e.is_empty() && e != "identity")
        .collect();
    // Real servers apply one coding, rarely two; a long list is a bomb.
    if encodings.len() > MAX_CODINGS {
        return Err(format!(
            "{} stacked content-codings (at most {MAX_CODINGS} are decoded)",
            encodings.len()
        ));
    }
    let mut current = body.clone();
    // Codings are listed in the order applied, so they are undone last first.
    for encoding in encodings.iter().rev() {
        let data: &[u8] = &current;
        let decoded = match encoding.as_str() {
            "gzip" | "x-gzip" => read_bounded(flate2::read::MultiGzDecoder::new(data), limit),
            "deflate" => {
                // RFC 9110's deflate is zlib-wrapped; some servers send raw deflate.
                read_bounded(flate2::read::ZlibDecoder::new(data), limit)
                    .or_else(|_| read_bounded(flate2::read::DeflateDecoder::new(data), limit))
            }
            "br" => read_bounded(brotli::Decompressor::new(data, 8 * 1024), limit),
            "zstd" => zstd::stream::read::Decoder::new(data)
                .map_err(|e| e.to_string())
                .and_then(|d| read_bounded(d, limit)),
            other => Err(format!("unsupported content-encoding {other:?}")),
        }
        .map_err(|e| format!("{encoding} decoding failed: {e}"))?;
        current = Bytes::from(decoded);
    }
    Ok(current)
}

fn read_bounded(reader: impl Read, limit: usize) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    let read = reader
        .take((limit as u64).saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| e.to_string())?;
    if read > limit {
        return Err(format!("decoded body exceeds {limit} bytes"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::io::Write;

    fn with(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    fn gzip(data: &[u8]) -> Bytes {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    #[test]
    fn every_supported_encoding_round_trips() {
        let text = b"{\"hello\":\"world\"}".repeat(100);
        let mut br = Vec::new();
        brotli::CompressorWriter::new(&mut br, 4096, 5, 22)
            .write_all(&text)
            .unwrap();
        let zstd = zstd::encode_all(&text[..], 3).unwrap();
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
        zlib.write_all(&text).unwrap();
        for (encoding, body) in [
            ("gzip", gzip(&text)),
            ("br", Bytes::from(br)),
            ("zstd", Bytes::from(zstd)),
            ("deflate", Bytes::from(zlib.finish().unwrap())),
            ("identity", Bytes::from(text.clone())),
        ] {
            let decoded = decode(&body, &with("content-encoding", encoding), 1 << 20).unwrap();
            assert_eq!(&decoded[..], &text[..], "{encoding}");
        }
    }

    #[test]
    fn broken_or_oversized_bodies_are_errors() {
        let body = gzip(&[b'a'; 10_000]);
        let truncated = body.slice(..body.len() / 2);
        assert!(decode(&truncated, &with("content-encoding", "gzip"), 1 << 20).is_err());
        let err = decode(&body, &with("content-encoding", "gzip"), 100).unwrap_err();
        assert!(err.contains("exceeds 100 bytes"), "{err}");
        assert!(decode(&body, &with("content-encoding", "compress"), 1 << 20).is_err());
    }

    #[test]
    fn kinds_follow_the_media_type() {
        assert_eq!(
            BodyKind::of(
                &with("content-type", "application/json; charset=utf-8"),
                b"{}"
            ),
            BodyKind::Json
        );
        assert_eq!(
            BodyKind::of(&with("content-type", "application/problem+json"), b"{}"),
            BodyKind::Json
        );
        assert_eq!(
            BodyKind::of(&with("content-type", "text/html"), b"<p>"),
            BodyKind::Text
        );
        assert_eq!(
            BodyKind::of(
                &with("content-type", "application/x-www-form-urlencoded"),
                b"a=1"
            ),
            BodyKind::Form
        );
        assert_eq!(
            BodyKind::of(&with("content-type", "image/png"), b"\x89PNG"),
            BodyKind::Binary
        );
        assert_eq!(BodyKind::of(&HeaderMap::new(), b"plain"), BodyKind::Text);
        assert_eq!(BodyKind::of(&HeaderMap::new(), b""), BodyKind::Empty);
    }
}
