//! A hand-written JSON serialiser for the property tests, so that key
//! order, escapes, whitespace and number spellings can vary in ways
//! serde_json never produces: the same document, spelled differently.

use proptest::prelude::*;
use serde_json::Value;

/// How to write a document other than serde_json's compact form.
#[derive(Clone, Debug)]
pub(super) struct Style {
    pub(super) pretty: bool,
    pub(super) shuffle_keys: bool,
    pub(super) escape_non_ascii: bool,
    pub(super) escape_ascii: bool,
    pub(super) respell_numbers: bool,
    pub(super) seed: u64,
}

pub(super) fn style() -> impl Strategy<Value = Style> {
    any::<(bool, bool, bool, bool, bool, u64)>().prop_map(|(p, s, n, a, r, seed)| Style {
        pretty: p,
        shuffle_keys: s,
        escape_non_ascii: n,
        escape_ascii: a,
        respell_numbers: r,
        seed,
    })
}

struct Writer {
    style: Style,
    state: u64,
    out: String,
}

pub(super) fn write(v: &Value, style: &Style) -> String {
    let mut w = Writer {
        state: style.seed | 1,
        style: style.clone(),
        out: String::new(),
    };
    w.value(v, 0);
    if w.style.pretty {
        w.out.push('\n');
    }
    w.out
}

impl Writer {
    /// xorshift64: deterministic from the seed, so a failure replays.
    fn next(&mut self) -> u64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        self.state
    }

    fn coin(&mut self) -> bool {
        self.next().is_multiple_of(2)
    }

    fn newline(&mut self, depth: usize) {
        if self.style.pretty {
            self.out.push('\n');
            self.out.push_str(&"  ".repeat(depth));
        }
    }

    fn value(&mut self, v: &Value, depth: usize) {
        match v {
            Value::Null => self.out.push_str("null"),
            Value::Bool(b) => self.out.push_str(if *b { "true" } else { "false" }),
            Value::Number(n) => {
                let text = if self.style.respell_numbers {
                    self.respell(n.as_str())
                } else {
                    n.as_str().to_string()
                };
                self.out.push_str(&text);
            }
            Value::String(s) => self.string(s),
            Value::Array(items) => {
                self.out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.newline(depth + 1);
                    self.value(item, depth + 1);
                }
                if !items.is_empty() {
                    self.newline(depth);
                }
                self.out.push(']');
            }
            Value::Object(map) => {
                let mut entries: Vec<(&String, &Value)> = map.iter().collect();
                if self.style.shuffle_keys {
                    for i in (1..entries.len()).rev() {
                        let j = (self.next() % (i as u64 + 1)) as usize;
                        entries.swap(i, j);
                    }
                }
                self.out.push('{');
                for (i, (k, child)) in entries.iter().enumerate() {
                    if i > 0 {
                        self.out.push(',');
                    }
                    self.newline(depth + 1);
                    self.string(k);
                    self.out
                        .push_str(if self.style.pretty { ": " } else { ":" });
                    self.value(child, depth + 1);
                }
                if !entries.is_empty() {
                    self.newline(depth);
                }
                self.out.push('}');
            }
        }
    }

    fn string(&mut self, s: &str) {
        self.out.push('"');
        for c in s.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                '\n' if !self.coin() => self.out.push_str("\\n"),
                '\t' if !self.coin() => self.out.push_str("\\t"),
                '/' if self.style.escape_ascii && self.coin() => self.out.push_str("\\/"),
                c if (c as u32) < 0x20 => self.unicode_escape(c),
                c if !c.is_ascii() && self.style.escape_non_ascii => self.unicode_escape(c),
                c if self.style.escape_ascii && self.next().is_multiple_of(4) => {
                    self.unicode_escape(c)
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    /// `\uXXXX`, as a surrogate pair above the BMP, in either hex case.
    fn unicode_escape(&mut self, c: char) {
        let mut units = [0u16; 2];
        for unit in c.encode_utf16(&mut units).iter() {
            let escaped = if self.coin() {
                format!("\\u{unit:04x}")
            } else {
                format!("\\u{unit:04X}")
            };
            self.out.push_str(&escaped);
        }
    }

    /// Another spelling of exactly the same number.
    fn respell(&mut self, text: &str) -> String {
        let (sign, unsigned) = match text.strip_prefix('-') {
            Some(rest) => ("-", rest),
            None => ("", text),
        };
        let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
            Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
            None => (unsigned, None),
        };
        let exp: i128 = exponent.map_or(0, |e| e.parse().unwrap());
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        match self.next() % 4 {
            0 => {
                let zeros = "0".repeat(1 + (self.next() % 3) as usize);
                let exp_part = exponent.map_or(String::new(), |e| format!("e{e}"));
                format!("{sign}{int}.{frac}{zeros}{exp_part}")
            }
            1 => {
                let letter = if self.coin() { "e" } else { "E" };
                let exp_sign = match (exp < 0, self.coin()) {
                    (true, _) => "-",
                    (false, true) => "+",
                    (false, false) => "",
                };
                let pad = "0".repeat((self.next() % 3) as usize);
                format!("{sign}{mantissa}{letter}{exp_sign}{pad}{}", exp.abs())
            }
            2 => {
                // The point moved to the end: the digits as one integer.
                let digits = format!("{int}{frac}");
                let digits = match digits.trim_start_matches('0') {
                    "" => "0",
                    d => d,
                };
                format!("{sign}{digits}e{}", exp - frac.len() as i128)
            }
            _ if int.len() > 1 => {
                // The point moved one place left.
                let (head, last) = int.split_at(int.len() - 1);
                format!("{sign}{head}.{last}{frac}e{}", exp + 1)
            }
            _ => text.to_string(),
        }
    }
}
