//! Latency and cost: the latency criteria (`p50=1.05,p99=1.10`: the
//! candidate's percentile at most that many times the primary's), their
//! verdict from the two sides' histograms, and the cost per request as a
//! proxy sees it (backend time to the response head and response bytes, per
//! side, with the candidate/primary ratios).

use std::fmt;
use std::str::FromStr;

use super::criteria::Limit;
use super::{Counts, GateCost, GateLatency, GateLatencyPercentile, GateVerdict, Side, SideCost};
use crate::store::Histogram;

/// A percentile, `p50` or `p99.9`: above 0, at most 100.
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct Percentile(f64);

impl Percentile {
    pub const P99: Percentile = Percentile(99.0);

    /// As a quantile, 0.99 for p99.
    pub fn quantile(self) -> f64 {
        self.0 / 100.0
    }
}

impl FromStr for Percentile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let t = s.trim();
        match t.strip_prefix('p').map(str::parse::<f64>) {
            Some(Ok(v)) if v > 0.0 && v <= 100.0 => Ok(Percentile(v)),
            _ => Err(format!(
                "a percentile is p followed by a number above 0 and at most 100, such as p50 or p99.9; got {s:?}"
            )),
        }
    }
}

impl fmt::Display for Percentile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

/// Latency limits by percentile, each named once, in percentile order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LatencyLimits(Vec<(Percentile, Limit)>);

impl LatencyLimits {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (Percentile, Limit)> + '_ {
        self.0.iter().copied()
    }

    /// The limit on one percentile, if there is one.
    pub fn get(&self, p: Percentile) -> Option<Limit> {
        self.0.iter().find(|(q, _)| *q == p).map(|(_, l)| *l)
    }

    /// Adds a limit; a percentile named twice is refused.
    pub fn insert(&mut self, p: Percentile, limit: Limit) -> Result<(), String> {
        if self.get(p).is_some() {
            return Err(format!("{p} is limited twice"));
        }
        self.0.push((p, limit));
        self.0
            .sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        Ok(())
    }
}

impl FromStr for LatencyLimits {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut limits = LatencyLimits::default();
        for part in s.split(',').filter(|p| !p.trim().is_empty()) {
            let (p, r) = part.split_once('=').ok_or_else(|| {
                format!("expected percentile=ratio pairs such as p50=1.05,p99=1.10; got {part:?}")
            })?;
            limits.insert(p.parse()?, r.parse()?)?;
        }
        if limits.is_empty() {
            return Err("expected percentile=ratio pairs such as p50=1.05,p99=1.10".into());
        }
        Ok(limits)
    }
}

impl fmt::Display for LatencyLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (p, l)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{p}={}", l.get())?;
        }
        Ok(())
    }
}

fn ms(h: &Histogram, q: f64) -> Option<f64> {
    h.quantile(q).map(|d| round4(d.as_secs_f64() * 1e3))
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}

fn ratio(candidate: Option<f64>, primary: Option<f64>) -> Option<f64> {
    match (primary, candidate) {
        (Some(p), Some(c)) if p > 0.0 => Some(round4(c / p)),
        _ => None,
    }
}

/// Each limited percentile: candidate over primary, at most its limit. The
/// report's `ratio` and `max_ratio` are the percentile closest to (or
/// furthest past) its limit.
pub(super) fn latency_verdict(
    limits: &LatencyLimits,
    primary: &Histogram,
    candidate: &Histogram,
    reasons: &mut Vec<String>,
) -> GateLatency {
    let percentiles: Vec<GateLatencyPercentile> = limits
        .iter()
        .map(|(p, max)| {
            let (pm, cm) = (ms(primary, p.quantile()), ms(candidate, p.quantile()));
            let r = ratio(cm, pm);
            let verdict = match r {
                None => GateVerdict::Inconclusive,
                Some(r) if r > max.get() => {
                    reasons.push(format!(
                        "candidate {p} is {r:.3}× the primary's (max {})",
                        max.get()
                    ));
                    GateVerdict::Fail
                }
                Some(_) => GateVerdict::Pass,
            };
            GateLatencyPercentile {
                percentile: p.to_string(),
                verdict,
                primary_ms: pm,
                candidate_ms: cm,
                ratio: r,
                max_ratio: max.get(),
            }
        })
        .collect();
    if percentiles.iter().any(|p| p.ratio.is_none()) {
        reasons.push("no latency samples for both sides".to_string());
    }
    let verdict = percentiles
        .iter()
        .map(|p| p.verdict)
        .max()
        .unwrap_or(GateVerdict::Inconclusive);
    let decisive = percentiles.iter().max_by(|a, b| {
        let share = |p: &GateLatencyPercentile| p.ratio.map_or(f64::INFINITY, |r| r / p.max_ratio);
        share(a).total_cmp(&share(b))
    });
    GateLatency {
        verdict,
        primary_p99_ms: ms(primary, Percentile::P99.quantile()),
        candidate_p99_ms: ms(candidate, Percentile::P99.quantile()),
        ratio: decisive.and_then(|p| p.ratio),
        max_ratio: decisive.map_or(0.0, |p| p.max_ratio),
        percentiles,
    }
}

/// Cost per compared request: each side's mean time to the response head
/// and response body bytes, and the candidate/primary ratios.
pub fn cost(outcomes: &Counts, primary: &Histogram, candidate: &Histogram) -> GateCost {
    let pairs = outcomes.measured_pairs();
    let side = |h: &Histogram, s: Side| SideCost {
        mean_ms: h.mean().map(|d| round4(d.as_secs_f64() * 1e3)),
        bytes_per_request: (pairs > 0)
            .then(|| round4(outcomes.response_bytes(s) as f64 / pairs as f64)),
    };
    let (p, c) = (
        side(primary, Side::Primary),
        side(candidate, Side::Candidate),
    );
    GateCost {
        time_ratio: ratio(c.mean_ms, p.mean_ms),
        bytes_ratio: ratio(c.bytes_per_request, p.bytes_per_request),
        primary: p,
        candidate: c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_print_back() {
        let l: LatencyLimits = "p99=1.10, p50=1.05".parse().unwrap();
        assert_eq!(l.to_string(), "p50=1.05,p99=1.1");
        assert_eq!(l.get(Percentile::P99).unwrap().get(), 1.1);
        for bad in [
            "",
            "p99",
            "p0=1",
            "p101=1",
            "99=1.1",
            "p99=-1",
            "p99=1,p99=2",
            "p50=x",
        ] {
            assert!(bad.parse::<LatencyLimits>().is_err(), "{bad:?}");
        }
        assert_eq!("p99.9".parse::<Percentile>().unwrap().to_string(), "p99.9");
    }
}
