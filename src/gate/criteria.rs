//! What a gate checks, parsed once from flags or query parameters: the
//! minimum parity, the confidence, optional latency and error limits, the
//! severity classes that fail it, and the endpoint patterns that select
//! what is judged.

use std::fmt;
use std::str::FromStr;

use super::latency::{LatencyLimits, Percentile};
use super::stats::normal_quantile;
use crate::compare::severity::{self, Severity};

/// The least parity to pass, in percent (`99.9`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MinParity(f64);

impl MinParity {
    /// As a fraction from 0 to 1.
    pub fn fraction(self) -> f64 {
        self.0 / 100.0
    }
    pub fn percent(self) -> f64 {
        self.0
    }
}

impl Default for MinParity {
    fn default() -> Self {
        MinParity(99.9)
    }
}

impl FromStr for MinParity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().trim_end_matches('%').parse::<f64>() {
            Ok(v) if (0.0..=100.0).contains(&v) => Ok(MinParity(v)),
            _ => Err(format!(
                "minimum parity is a percentage from 0 to 100, such as 99.9; got {s:?}"
            )),
        }
    }
}

/// The confidence of the Wilson interval, strictly between 0 and 1 (`0.95`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Confidence(f64);

impl Confidence {
    pub fn get(self) -> f64 {
        self.0
    }

    /// The two-sided standard normal quantile: 1.96 for 0.95.
    pub fn z(self) -> f64 {
        normal_quantile(1.0 - (1.0 - self.0) / 2.0)
    }
}

impl Default for Confidence {
    fn default() -> Self {
        Confidence(0.95)
    }
}

impl FromStr for Confidence {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<f64>() {
            Ok(v) if v > 0.0 && v < 1.0 => Ok(Confidence(v)),
            _ => Err(format!(
                "confidence is a fraction between 0 and 1 (exclusive), such as 0.95; got {s:?}"
            )),
        }
    }
}

/// A positive finite limit, such as a latency ratio or percentage points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit(f64);

impl Limit {
    pub fn get(self) -> f64 {
        self.0
    }
}

impl FromStr for Limit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(Limit(v)),
            _ => Err(format!(
                "expected a number of at least 0, such as 1.05 or 0.5; got {s:?}"
            )),
        }
    }
}

/// The severity classes whose mismatches fail the gate (`status,structure`):
/// each once, most severe first; empty fails on none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FailOn(Vec<Severity>);

impl FailOn {
    pub fn classes(&self) -> &[Severity] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromStr for FailOn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        severity::parse_list(s).map(FailOn)
    }
}

impl fmt::Display for FailOn {
    /// As given: the classes' names, comma-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.0.iter().map(|s| s.as_str()).collect();
        f.write_str(&names.join(","))
    }
}

/// An endpoint pattern: `GET /api/users/*`. `*` matches within one path
/// segment, `**` across segments; without a method the pattern matches the
/// path under any method.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointGlob(String);

impl FromStr for EndpointGlob {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s.is_empty() {
            return Err(
                "an endpoint pattern cannot be empty; use 'GET /api/users/*' or '/api/**'".into(),
            );
        }
        let path = s.rsplit_once(' ').map_or(s, |(_, p)| p);
        if !path.starts_with('/') {
            return Err(format!(
                "an endpoint pattern is `METHOD /path` or `/path`, with * and ** as wildcards; got {s:?}"
            ));
        }
        Ok(EndpointGlob(s.to_string()))
    }
}

impl fmt::Display for EndpointGlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl EndpointGlob {
    pub fn matches(&self, endpoint: &str) -> bool {
        let target = if self.0.contains(' ') {
            endpoint
        } else {
            endpoint.split_once(' ').map_or(endpoint, |(_, path)| path)
        };
        glob(self.0.as_bytes(), target.as_bytes())
    }
}

/// Matches in O(pattern × text) steps, whatever the pattern: the reachable
/// text positions after each pattern token. (A backtracking matcher would
/// take exponential time on patterns such as `/**/**/**/**x`.)
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let n = text.len();
    let mut reach = vec![false; n + 1];
    reach[0] = true;
    let mut p = 0;
    while p < pattern.len() {
        let mut next = vec![false; n + 1];
        if pattern[p] == b'*' {
            let across = pattern.get(p + 1) == Some(&b'*');
            p += if across { 2 } else { 1 };
            // Reachable from some earlier position without crossing a '/'
            // (or crossing anything, for `**`).
            let mut open = false;
            for j in 0..=n {
                if j > 0 && !across && text[j - 1] == b'/' {
                    open = false;
                }
                open |= reach[j];
                next[j] = open;
            }
        } else {
            for j in 0..n {
                next[j + 1] = reach[j] && text[j] == pattern[p];
            }
            p += 1;
        }
        reach = next;
    }
    reach[n]
}

/// What a gate checks, parsed once from flags or query parameters.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Criteria {
    pub min_parity: MinParity,
    pub confidence: Confidence,
    pub per_endpoint: bool,
    pub min_samples: u64,
    pub exclude_expected: bool,
    /// Empty: no latency check.
    pub max_latency_ratio: LatencyLimits,
    /// The least share of byte-identical pairs, if checked.
    pub min_byte_parity: Option<MinParity>,
    pub max_error_rate_delta: Option<Limit>,
    /// Fail when groups of these classes (not triaged `expected`) had
    /// mismatches; empty: the classes are shown, never judged.
    pub fail_on: FailOn,
    /// Empty: every endpoint.
    pub endpoints: Vec<EndpointGlob>,
}

/// A query parameter that does not parse, named.
#[derive(Debug, thiserror::Error)]
#[error("`{parameter}`: {message}")]
pub struct CriteriaError {
    pub parameter: String,
    pub message: String,
}

/// The query parameters the gate takes besides `since`, `until` and `run`.
pub const CRITERIA_PARAMETERS: [&str; 11] = [
    "min_parity",
    "confidence",
    "per_endpoint",
    "min_samples",
    "exclude_expected",
    "max_p99_ratio",
    "max_latency_ratio",
    "min_byte_parity",
    "max_error_rate_delta",
    "fail_on",
    "endpoint",
];

impl Criteria {
    /// From query parameters (`endpoint` may repeat); unknown names are the caller's to refuse.
    pub fn from_query(pairs: &[(String, String)]) -> Result<Criteria, CriteriaError> {
        fn parse<T: FromStr<Err = String>>(name: &str, value: &str) -> Result<T, CriteriaError> {
            value.parse().map_err(|message| CriteriaError {
                parameter: name.to_string(),
                message,
            })
        }
        fn flag(name: &str, value: &str) -> Result<bool, CriteriaError> {
            parse_flag(value).map_err(|message| CriteriaError {
                parameter: name.to_string(),
                message,
            })
        }
        let mut c = Criteria::default();
        for (name, value) in pairs {
            match name.as_str() {
                "min_parity" => c.min_parity = parse(name, value)?,
                "confidence" => c.confidence = parse(name, value)?,
                "per_endpoint" => c.per_endpoint = flag(name, value)?,
                "exclude_expected" => c.exclude_expected = flag(name, value)?,
                "min_samples" => {
                    c.min_samples = value.trim().parse().map_err(|_| CriteriaError {
                        parameter: name.clone(),
                        message: format!("expected a whole number of at least 0; got {value:?}"),
                    })?
                }
                "max_p99_ratio" => {
                    let limit = parse(name, value)?;
                    c.max_latency_ratio
                        .insert(Percentile::P99, limit)
                        .map_err(|message| CriteriaError {
                            parameter: name.clone(),
                            message,
                        })?;
                }
                "max_latency_ratio" => {
                    let limits: LatencyLimits = parse(name, value)?;
                    for (p, limit) in limits.iter() {
                        c.max_latency_ratio
                            .insert(p, limit)
                            .map_err(|message| CriteriaError {
                                parameter: name.clone(),
                                message,
                            })?;
                    }
                }
                "min_byte_parity" => c.min_byte_parity = Some(parse(name, value)?),
                "max_error_rate_delta" => c.max_error_rate_delta = Some(parse(name, value)?),
                "fail_on" => c.fail_on = parse(name, value)?,
                "endpoint" => c.endpoints.push(parse(name, value)?),
                _ => {}
            }
        }
        Ok(c)
    }

    /// The same criteria as query parameters, for asking a report API.
    pub fn to_query(&self) -> Vec<(&'static str, String)> {
        let mut q = vec![
            ("min_parity", self.min_parity.0.to_string()),
            ("confidence", self.confidence.0.to_string()),
            ("per_endpoint", self.per_endpoint.to_string()),
            ("min_samples", self.min_samples.to_string()),
            ("exclude_expected", self.exclude_expected.to_string()),
        ];
        // A p99 limit alone as `max_p99_ratio`, which a report API of an
        // earlier release also takes.
        let limits: Vec<_> = self.max_latency_ratio.iter().collect();
        match limits.as_slice() {
            [] => {}
            [(p, limit)] if *p == Percentile::P99 => {
                q.push(("max_p99_ratio", limit.0.to_string()));
            }
            _ => q.push(("max_latency_ratio", self.max_latency_ratio.to_string())),
        }
        if let Some(b) = self.min_byte_parity {
            q.push(("min_byte_parity", b.0.to_string()));
        }
        if let Some(d) = self.max_error_rate_delta {
            q.push(("max_error_rate_delta", d.0.to_string()));
        }
        // Only when set: a report API of an earlier release refuses it,
        // rather than deciding without it.
        if !self.fail_on.is_empty() {
            q.push(("fail_on", self.fail_on.to_string()));
        }
        q.extend(self.endpoints.iter().map(|e| ("endpoint", e.0.clone())));
        q
    }

    pub(super) fn selects(&self, endpoint: &str) -> bool {
        self.endpoints.is_empty() || self.endpoints.iter().any(|g| g.matches(endpoint))
    }
}

/// A boolean query parameter: `true`/`false`, `1`/`0`, `yes`/`no`; empty
/// (`?per_endpoint`) is true.
pub fn parse_flag(value: &str) -> Result<bool, String> {
    match value {
        "" | "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        _ => Err(format!("expected true or false; got {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_in_polynomial_time() {
        let pattern: EndpointGlob = format!("/{}b", "**/".repeat(200)).parse().unwrap();
        let endpoint = format!("GET /{}", "a/".repeat(300));
        assert!(!pattern.matches(&endpoint));
        let pattern: EndpointGlob = format!("/{}x", "*".repeat(300)).parse().unwrap();
        assert!(!pattern.matches(&format!("GET /{}", "a".repeat(500))));
    }

    #[test]
    fn endpoint_patterns() {
        let g: EndpointGlob = "GET /api/users/*".parse().unwrap();
        assert!(g.matches("GET /api/users/{id}"));
        assert!(!g.matches("GET /api/users/{id}/orders"));
        assert!(!g.matches("POST /api/users/{id}"));
        let g: EndpointGlob = "/api/**".parse().unwrap();
        assert!(g.matches("POST /api/users/{id}/orders"));
        assert!(!g.matches("GET /health"));
        let g: EndpointGlob = "* /api/users".parse().unwrap();
        assert!(g.matches("DELETE /api/users"));
        assert!("users".parse::<EndpointGlob>().is_err());
        assert!("".parse::<EndpointGlob>().is_err());
    }

    #[test]
    fn a_p99_limit_alone_asks_as_an_earlier_release_understands() {
        let c = Criteria {
            max_latency_ratio: "p99=1.05".parse().unwrap(),
            ..Criteria::default()
        };
        assert!(c
            .to_query()
            .contains(&("max_p99_ratio", "1.05".to_string())));
        let pairs: Vec<(String, String)> = c
            .to_query()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(Criteria::from_query(&pairs).unwrap(), c);
    }

    #[test]
    fn criteria_round_trip_through_query_parameters() {
        let c = Criteria {
            min_parity: "99.5".parse().unwrap(),
            confidence: "0.99".parse().unwrap(),
            per_endpoint: true,
            min_samples: 100,
            exclude_expected: true,
            max_latency_ratio: "p50=1.02,p99=1.05".parse().unwrap(),
            min_byte_parity: Some("90".parse().unwrap()),
            max_error_rate_delta: Some("0.5".parse().unwrap()),
            fail_on: "structure,status".parse().unwrap(),
            endpoints: vec!["GET /a/*".parse().unwrap(), "/b".parse().unwrap()],
        };
        let pairs: Vec<(String, String)> = c
            .to_query()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        assert_eq!(Criteria::from_query(&pairs).unwrap(), c);
        let bad = [("confidence".to_string(), "95".to_string())];
        assert_eq!(
            Criteria::from_query(&bad).unwrap_err().parameter,
            "confidence"
        );
        let twice = [
            ("max_p99_ratio".to_string(), "1.1".to_string()),
            ("max_latency_ratio".to_string(), "p99=1.2".to_string()),
        ];
        assert_eq!(
            Criteria::from_query(&twice).unwrap_err().parameter,
            "max_latency_ratio"
        );
        let unknown = [("fail_on".to_string(), "status,typo".to_string())];
        assert_eq!(
            Criteria::from_query(&unknown).unwrap_err().parameter,
            "fail_on"
        );
        assert_eq!(c.fail_on.to_string(), "status,structure");
        assert!("100.1".parse::<MinParity>().is_err());
        assert!("-1".parse::<Limit>().is_err());
    }
}
