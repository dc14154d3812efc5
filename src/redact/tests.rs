//! Unit tests of the redaction rules: consistent masks, query separators and
//! encodings, mislabelled bodies, multipart parts, and keys per run.

use super::*;
use http::HeaderValue;

fn redactor() -> Redactor {
    Redactor::new(
        &toml::from_str::<RedactConfig>(
            "headers = [\"X-Api-Key\"]\nquery = [\"token\"]\njson = [\"/**/password\", \"/card/number\"]\nkey = \"k\"",
        )
        .unwrap(),
    )
}

#[test]
fn secrets_are_masked_consistently() {
    let r = redactor();
    let mut h = HeaderMap::new();
    h.insert("authorization", HeaderValue::from_static("Bearer abc"));
    h.insert("x-api-key", HeaderValue::from_static("xyz"));
    h.insert("accept", HeaderValue::from_static("*/*"));
    let pairs = r.headers(&h);
    assert!(pairs
        .iter()
        .all(|(_, v)| !v.contains("abc") && !v.contains("xyz")));
    assert!(pairs.contains(&("accept".into(), "*/*".into())));
    assert_eq!(r.mask(b"same"), r.mask(b"same"));
    assert_ne!(r.mask(b"same"), r.mask(b"other"));

    let q = r.query("token=s3cr3t&page=2");
    assert!(!q.contains("s3cr3t") && q.ends_with("&page=2"), "{q}");

    let json = json_headers("application/json");
    let body = bytes::Bytes::from_static(
        br#"{"user":{"password":"hunter2"},"card":{"number":"4111"},"n":1}"#,
    );
    let out = String::from_utf8(r.body(&body, &json, 1 << 20).to_vec()).unwrap();
    assert!(
        !out.contains("hunter2") && !out.contains("4111") && out.contains("\"n\":1"),
        "{out}"
    );

    // Python's NaN, forms, bodies that do not parse or decode: nothing leaks.
    let nan = bytes::Bytes::from_static(br#"{"password":"hunter2","score":NaN}"#);
    assert!(!String::from_utf8_lossy(&r.body(&nan, &json, 1 << 20)).contains("hunter2"));
    let form = bytes::Bytes::from_static(b"user=ada&password=hunter2");
    let out = r.body(
        &form,
        &json_headers("application/x-www-form-urlencoded"),
        1 << 20,
    );
    let out = String::from_utf8_lossy(&out);
    assert!(
        !out.contains("hunter2") && out.contains("user=ada"),
        "{out}"
    );
    let broken = bytes::Bytes::from_static(br#"{"password":"hunter2""#);
    assert!(!String::from_utf8_lossy(&r.body(&broken, &json, 1 << 20)).contains("hunter2"));
    let mut gzip = json_headers("application/json");
    gzip.insert("content-encoding", HeaderValue::from_static("gzip"));
    let undecodable = bytes::Bytes::from_static(b"\x1f\x8b not really gzip hunter2");
    assert!(!String::from_utf8_lossy(&r.body(&undecodable, &gzip, 1 << 20)).contains("hunter2"));

    assert!(!r.query("Token=s3cr3t").contains("s3cr3t"));
    assert!(!r.query("t%6Fken=s3cr3t").contains("s3cr3t"));
    let mut location = HeaderMap::new();
    location.insert("location", HeaderValue::from_static("/cb?token=s3cr3t&x=1"));
    assert!(!r.headers(&location)[0].1.contains("s3cr3t"));
}

fn redacted(r: &Redactor, body: &'static [u8], content_type: &'static str) -> String {
    let body = bytes::Bytes::from_static(body);
    String::from_utf8_lossy(&r.body(&body, &json_headers(content_type), 1 << 20)).into_owned()
}

#[test]
fn separators_encodings_and_cases_do_not_hide_a_parameter() {
    let r = redactor();
    for query in [
        "a=1;token=s3cr3t",
        "a=1&TOKEN=s3cr3t",
        "to%6Ben=s3cr3t",
        "token=x&token=s3cr3t",
        "token[]=s3cr3t",
        "auth[token]=s3cr3t",
        "+token+=s3cr3t",
    ] {
        let out = r.query(query);
        assert!(!out.contains("s3cr3t"), "{query}: {out}");
    }
    assert_eq!(r.query("a=1;b=2&c"), "a=1;b=2&c");
    let graphql = r.query("query=q&variables=%7B%22password%22%3A%22s3cr3t%22%7D");
    assert!(
        graphql.starts_with("query=q&variables=%7B%22password") && !graphql.contains("s3cr3t"),
        "{graphql}"
    );
    let broken = r.query("variables=%7B%22password%22%3A%22s3cr3t");
    assert!(!broken.contains("s3cr3t"), "{broken}");
    let form = redacted(
        &r,
        b"variables={\"card\":{\"number\":\"4111\"}}&x=1",
        "application/x-www-form-urlencoded",
    );
    assert!(!form.contains("4111") && form.ends_with("&x=1"), "{form}");
    assert_eq!(
        r.target("/p?a=1;token=s"),
        format!("/p?a=1;token={}", r.mask(b"s"))
    );
    for form in [
        "user=ada;password=hunter2",
        "pass%77ord=hunter2",
        "PassWord=hunter2",
        "user[password]=hunter2",
        "card[number]=hunter2",
    ] {
        let out = redacted(
            &r,
            form.as_bytes().to_vec().leak(),
            "application/x-www-form-urlencoded",
        );
        assert!(!out.contains("hunter2"), "{form}: {out}");
    }
}

#[test]
fn mislabelled_and_unknown_bodies_are_sniffed_or_masked_whole() {
    let r = redactor();
    let json = br#"{"user":{"password":"hunter2"},"n":1}"#;
    for content_type in [
        "text/plain",
        "application/octet-stream",
        "application/vnd.api+json",
        "x/y",
    ] {
        let out = redacted(&r, json, content_type);
        assert!(
            !out.contains("hunter2") && out.contains("\"n\":1"),
            "{content_type}: {out}"
        );
    }
    let out = redacted(&r, b"user=ada&password=hunter2\n", "text/plain");
    assert!(
        !out.contains("hunter2") && out.contains("user=ada"),
        "{out}"
    );
    let out = redacted(&r, b"<p>password: hunter2</p>", "text/html");
    assert!(
        !out.contains("hunter2") && out.contains("redacted:"),
        "{out}"
    );
    let out = redacted(&r, b"{\"Password\":\"hunter2\"}", "application/json");
    assert!(!out.contains("hunter2"), "{out}");
    // Without JSON paths nothing is read into: bodies are kept.
    let plain = Redactor::new(&RedactConfig::default());
    let body = bytes::Bytes::from_static(b"<p>hello</p>");
    assert_eq!(plain.body(&body, &json_headers("text/html"), 1 << 20), body);
}

#[test]
fn multipart_parts_are_redacted_by_name_and_type() {
    let r = redactor();
    let body = b"--b0\r\nContent-Disposition: form-data; name=\"user\"\r\n\r\nada\r\n--b0\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n--b0\r\nContent-Disposition: form-data; name=\"meta\"\r\nContent-Type: application/json\r\n\r\n{\"card\":{\"number\":\"4111\"}}\r\n--b0\r\nContent-Disposition: form-data; name=\"note\"\r\nX-Api-Key: xyz\r\n\r\n{\"password\":\"broken\"\r\n--b0--\r\n";
    let out = redacted(&r, body, "multipart/form-data; boundary=b0");
    for secret in ["hunter2", "4111", "xyz", "broken"] {
        assert!(!out.contains(secret), "{secret}: {out}");
    }
    assert!(out.contains("\r\n\r\nada\r\n--b0\r\n"), "{out}");
    assert!(out.ends_with("--b0--\r\n"), "{out}");
    let exact = r.body_exact(
        &bytes::Bytes::from_static(
            b"--b0\r\nContent-Disposition: form-data; name=\"password\"\r\n\r\nhunter2\r\n--b0--",
        ),
        &json_headers("multipart/form-data; boundary=b0"),
        1 << 20,
    );
    assert!(exact.is_some_and(|b| !String::from_utf8_lossy(&b).contains("hunter2")));
    // Parts that cannot be told apart are masked with the whole body.
    for (body, content_type) in [
        (
            &b"--b0\r\nname: x\r\n\r\npassword=hunter2"[..],
            "multipart/form-data; boundary=b0",
        ),
        (
            &b"--b0\r\n\r\npassword=hunter2\r\n--b0--"[..],
            "multipart/form-data",
        ),
    ] {
        let out = redacted(&r, body.to_vec().leak(), content_type);
        assert!(
            !out.contains("hunter2") && out.starts_with("unparseable multipart"),
            "{out}"
        );
    }
}

fn json_headers(content_type: &'static str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static(content_type));
    h
}

#[test]
fn without_a_key_hashes_differ_between_runs() {
    let a = Redactor::new(&RedactConfig::default());
    let b = Redactor::new(&RedactConfig::default());
    assert_ne!(a.mask(b"x"), b.mask(b"x"));
}

#[test]
fn set_cookie_keeps_its_name_and_attributes_and_masks_its_value() {
    let r = redactor();
    let one = |value: &'static str| {
        let mut h = HeaderMap::new();
        h.insert("set-cookie", HeaderValue::from_static(value));
        r.headers(&h).remove(0).1
    };
    let sid = r.mask(b"abc123");
    assert_eq!(
        one("sessionid=abc123; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=3600"),
        format!("sessionid={sid}; Path=/; HttpOnly; Secure; SameSite=Lax; Max-Age=3600")
    );
    assert_eq!(
        one("sessionid=abc123; expires=Wed, 21 Oct 2015 07:28:00 GMT"),
        format!("sessionid={sid}; expires=Wed, 21 Oct 2015 07:28:00 GMT")
    );
    // A second cookie folded in after a comma, a misspelt or unknown
    // attribute, a bare token: names kept, values never.
    for hostile in [
        "sid=abc123; Path=/, token=s3cr3t; Path=/",
        "sid=abc123; Expires=s3cr3t",
        "sid=abc123; Expires=Wed, 21 Oct 2015 07:28:00 GMT, token=s3cr3t",
        "sid=abc123; token=s3cr3t",
        "sid=abc123; s3cr3t",
        "s3cr3t",
        "sid=abc123, token=s3cr3t",
        "s3cr3t, sid=abc123; Path=/",
        "s3cr3t sid=abc123",
        "\"s3cr3t\"=abc123",
    ] {
        let masked = one(hostile);
        assert!(
            !masked.contains("s3cr3t") && !masked.contains("abc123"),
            "{hostile} -> {masked}"
        );
    }
}

#[test]
fn a_set_cookie_listed_under_redact_is_masked_whole() {
    let r = Redactor::new(&toml::from_str::<RedactConfig>("headers = [\"Set-Cookie\"]").unwrap());
    let mut h = HeaderMap::new();
    h.insert("set-cookie", HeaderValue::from_static("sid=abc123; Path=/"));
    let (_, value) = r.headers(&h).remove(0);
    assert!(
        value.starts_with("redacted:") && !value.contains("sid"),
        "{value}"
    );
}
