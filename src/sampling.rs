//! Sampling: which requests get a shadow copy.
//!
//! A decision is either sticky (a hash of a key such as a user id, identical on
//! every instance and every release, so a user's session is wholly in or wholly
//! out) or, for requests without the key, a random draw.

use std::fmt;
use std::str::FromStr;

use http::header::{HeaderName, COOKIE};
use http::HeaderMap;

/// The fraction of requests to shadow, from 0.0 (none) to 1.0 (all).
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, serde::Deserialize)]
#[serde(try_from = "f64")]
pub struct SampleRate(f64);

/// A sample rate outside 0..=1 or not a number.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("sample rate must be a number from 0.0 to 1.0 (0.05 means 5%), got {0}")]
pub struct SampleRateError(pub String);

impl SampleRate {
    /// Shadow nothing.
    pub const NONE: SampleRate = SampleRate(0.0);
    /// Shadow everything.
    pub const ALL: SampleRate = SampleRate(1.0);

    pub fn new(rate: f64) -> Result<Self, SampleRateError> {
        if (0.0..=1.0).contains(&rate) {
            Ok(SampleRate(rate))
        } else {
            Err(SampleRateError(rate.to_string()))
        }
    }

    pub fn get(self) -> f64 {
        self.0
    }

    /// Whether a uniformly distributed 64-bit value falls inside the rate.
    /// Monotonic in the rate: a key sampled at 1% is also sampled at 5%, so
    /// raising the rate between rollout steps only ever adds users.
    fn admits(self, draw: u64) -> bool {
        // 53 bits is the f64 mantissa: exact, and uniform on [0, 1).
        let unit = (draw >> 11) as f64 / (1u64 << 53) as f64;
        unit < self.0
    }
}

impl TryFrom<f64> for SampleRate {
    type Error = SampleRateError;
    fn try_from(rate: f64) -> Result<Self, Self::Error> {
        SampleRate::new(rate)
    }
}

impl FromStr for SampleRate {
    type Err = SampleRateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let rate: f64 = s
            .trim()
            .parse()
            .map_err(|_| SampleRateError(format!("{s:?}")))?;
        SampleRate::new(rate)
    }
}

impl fmt::Display for SampleRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Where the sticky-sampling key of a request is found.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub enum StickyKey {
    /// A request header, such as `header:x-user-id`.
    Header(HeaderName),
    /// A cookie by name, such as `cookie:session`.
    Cookie(String),
    /// A query parameter by name, such as `query:user`.
    Query(String),
}

/// A sticky key that is not `header:NAME`, `cookie:NAME` or `query:NAME`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("sticky key must be \"header:NAME\", \"cookie:NAME\" or \"query:NAME\", got {0:?}")]
pub struct StickyKeyError(pub String);

impl FromStr for StickyKey {
    type Err = StickyKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || StickyKeyError(s.to_string());
        let (kind, name) = s.split_once(':').ok_or_else(bad)?;
        let name = name.trim();
        if name.is_empty() {
            return Err(bad());
        }
        match kind.trim() {
            "header" => HeaderName::from_bytes(name.as_bytes())
                .map(StickyKey::Header)
                .map_err(|_| bad()),
            "cookie" => Ok(StickyKey::Cookie(name.to_string())),
            "query" => Ok(StickyKey::Query(name.to_string())),
            _ => Err(bad()),
        }
    }
}

impl TryFrom<String> for StickyKey {
    type Error = StickyKeyError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for StickyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StickyKey::Header(name) => write!(f, "header:{name}"),
            StickyKey::Cookie(name) => write!(f, "cookie:{name}"),
            StickyKey::Query(name) => write!(f, "query:{name}"),
        }
    }
}

impl StickyKey {
    /// The key's value in a request, if the request carries it.
    pub fn find<'a>(&self, headers: &'a HeaderMap, query: Option<&'a str>) -> Option<&'a [u8]> {
        match self {
            StickyKey::Header(name) => headers.get(name).map(|v| v.as_bytes()),
            StickyKey::Cookie(name) => headers
                .get_all(COOKIE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(';'))
                .filter_map(|pair| pair.trim().split_once('='))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_bytes()),
            StickyKey::Query(name) => query?
                .split('&')
                .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.as_bytes()),
        }
        .filter(|v| !v.is_empty())
    }
}

/// The share of clients the candidate serves, in percent (0 to 100). Like
/// a sample rate it admits a 64-bit draw below it, so a client served at 5%
/// is still served at 25%; the serving draw is salted apart from the
/// sampling draw, so that the clients sampled are not the clients served.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd, serde::Deserialize)]
#[serde(try_from = "f64")]
pub struct Weight(f64);

impl Weight {
    pub const ZERO: Weight = Weight(0.0);

    pub fn new(percent: f64) -> Result<Self, String> {
        match (0.0..=100.0).contains(&percent) {
            true => Ok(Weight(percent)),
            false => Err(format!(
                "a weight is a percentage from 0 to 100; got {percent}"
            )),
        }
    }

    pub fn percent(self) -> f64 {
        self.0
    }

    /// Whether a client whose key draws `draw` is served by the candidate.
    pub fn admits(self, draw: u64) -> bool {
        let unit = (draw >> 11) as f64 / (1u64 << 53) as f64;
        unit * 100.0 < self.0
    }

    /// The serving draw of a client key: its hash, salted and mixed again,
    /// so that it is independent of the sampling draw.
    pub fn draw(key: &[u8]) -> u64 {
        mix(stable_hash(key) ^ 0x5e7e_5e7e_5e7e_5e7e)
    }
}

impl TryFrom<f64> for Weight {
    type Error = String;
    fn try_from(percent: f64) -> Result<Self, Self::Error> {
        Weight::new(percent)
    }
}

impl FromStr for Weight {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let percent: f64 = s
            .trim()
            .trim_end_matches('%')
            .parse()
            .map_err(|_| format!("a weight is a percentage from 0 to 100; got {s:?}"))?;
        Weight::new(percent)
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A stable 64-bit hash: FNV-1a, then the SplitMix64 finaliser so that short,
/// similar keys ("user-1", "user-2") still spread evenly. Stable across
/// instances, platforms and releases, unlike `std`'s hasher.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// SplitMix64's finaliser: every input bit moves every output bit.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Decides, request by request, whether to shadow.
#[derive(Clone, Debug, Default)]
pub struct Sampler {
    sticky: Option<StickyKey>,
}

impl Sampler {
    pub fn new(sticky: Option<StickyKey>) -> Self {
        Sampler { sticky }
    }

    pub fn decide(&self, rate: SampleRate, headers: &HeaderMap, query: Option<&str>) -> bool {
        if rate.get() <= 0.0 {
            return false;
        }
        if rate.get() >= 1.0 {
            return true;
        }
        let draw = match self.sticky.as_ref().and_then(|k| k.find(headers, query)) {
            Some(key) => stable_hash(key),
            None => rand::random::<u64>(),
        };
        rate.admits(draw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_header(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_str(value).unwrap());
        h
    }

    #[test]
    fn rate_is_checked() {
        assert!("1.5".parse::<SampleRate>().is_err());
        assert!("-0.1".parse::<SampleRate>().is_err());
        assert!("NaN".parse::<SampleRate>().is_err());
        assert!("abc".parse::<SampleRate>().is_err());
        assert_eq!("0.25".parse::<SampleRate>().unwrap().get(), 0.25);
    }

    #[test]
    fn sticky_key_parses_all_three_kinds() {
        assert_eq!(
            "header:X-User-Id".parse::<StickyKey>().unwrap(),
            StickyKey::Header(HeaderName::from_static("x-user-id"))
        );
        assert_eq!(
            "cookie:sid".parse::<StickyKey>().unwrap(),
            StickyKey::Cookie("sid".into())
        );
        assert_eq!(
            "query:user".parse::<StickyKey>().unwrap(),
            StickyKey::Query("user".into())
        );
        for bad in ["x-user-id", "header:", "body:x", "header:bad header"] {
            assert!(bad.parse::<StickyKey>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn sticky_key_is_found_in_header_cookie_and_query() {
        let cookie = with_header("cookie", "a=1; sid=abc; b=2");
        assert_eq!(
            StickyKey::Cookie("sid".into()).find(&cookie, None),
            Some(&b"abc"[..])
        );
        let q = Some("x=1&user=42&user=43");
        assert_eq!(
            StickyKey::Query("user".into()).find(&HeaderMap::new(), q),
            Some(&b"42"[..])
        );
        let h = with_header("x-user-id", "7");
        assert_eq!(
            StickyKey::Header(HeaderName::from_static("x-user-id")).find(&h, None),
            Some(&b"7"[..])
        );
        assert_eq!(
            StickyKey::Query("user".into()).find(&HeaderMap::new(), Some("user=")),
            None
        );
    }

    #[test]
    fn hash_is_stable_across_releases() {
        // Pinned values: changing the hash would reshuffle every user's
        // sampling decision in the middle of a rollout.
        assert_eq!(stable_hash(b""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(stable_hash(b"user-42"), 0x7a15_96f0_e94b_5793);
        assert_ne!(stable_hash(b"user-42"), stable_hash(b"user-43"));
    }

    #[test]
    fn sticky_rate_holds_over_many_keys() {
        let sampler = Sampler::new(Some("header:x-user-id".parse().unwrap()));
        let rate = SampleRate::new(0.1).unwrap();
        let sampled = (0..10_000)
            .filter(|i| sampler.decide(rate, &with_header("x-user-id", &i.to_string()), None))
            .count();
        assert!(
            (900..=1100).contains(&sampled),
            "sampled {sampled} of 10000"
        );
    }

    #[test]
    fn sticky_decision_is_monotonic_in_rate() {
        let sampler = Sampler::new(Some("query:u".parse().unwrap()));
        let low = SampleRate::new(0.05).unwrap();
        let high = SampleRate::new(0.25).unwrap();
        for i in 0..2_000 {
            let q = format!("u={i}");
            if sampler.decide(low, &HeaderMap::new(), Some(&q)) {
                assert!(sampler.decide(high, &HeaderMap::new(), Some(&q)));
            }
        }
    }

    #[test]
    fn rate_extremes_never_draw() {
        let sampler = Sampler::default();
        assert!(!sampler.decide(SampleRate::NONE, &HeaderMap::new(), None));
        assert!(sampler.decide(SampleRate::ALL, &HeaderMap::new(), None));
    }
}
