//! What was learned about one endpoint, as plain data: each path's rates
//! and whether it is noise (with a secondary) or looks volatile (without
//! one), and the narrowest config that forgives exactly those paths. A
//! suggestion names only paths seen to differ, generalised no further than
//! array indexes: never `**`, never a parent that would hide a sibling.

use super::significance::Test;
use super::volatile::Kind;
use super::EndpointCounts;

/// Of a path's differences, at least this share must be of one volatile
/// kind, and the path must differ on at least this share of compared
/// samples, for the detector to propose a mask.
const DETECTOR_SHARE: f64 = 0.9;

/// One path of one endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct PathReport {
    /// A generalised JSON Pointer, or `header:<name>`.
    pub path: String,
    /// Paired samples: the share of them on which the primary and the
    /// secondary differed here, and the primary and the candidate.
    pub noise_rate: f64,
    pub raw_rate: f64,
    /// Over every compared sample, the share on which the primary and the
    /// candidate differed here.
    pub raw_rate_all: f64,
    /// Learned as noise from the secondary.
    pub noise: bool,
    /// Proposed by the detector: the kind its values nearly always were.
    pub volatile: Option<Kind>,
    /// Why, in a sentence.
    pub why: String,
}

/// One endpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointReport {
    pub endpoint: String,
    pub compared: u64,
    pub paired: u64,
    /// Paths learned as noise or proposed as volatile, by path.
    pub paths: Vec<PathReport>,
    /// The config that forgives them, for the endpoint's route; `None` when
    /// there is nothing to forgive.
    pub suggestion: Option<String>,
}

/// The report of one endpoint from its counts.
pub fn endpoint_report(
    endpoint: &str,
    counts: &EndpointCounts,
    min_samples: u64,
) -> EndpointReport {
    let mut paths: Vec<PathReport> = counts
        .paths
        .iter()
        .filter_map(|(path, c)| {
            let test = Test {
                samples: counts.paired,
                noise: c.noise,
                raw: c.raw_paired,
                min_samples,
            };
            let noise = !path.is_empty() && test.is_noise();
            let raw_rate_all = share(c.raw, counts.compared);
            let volatile = (counts.compared >= min_samples.max(1)
                && raw_rate_all >= DETECTOR_SHARE)
                .then(|| {
                    Kind::ALL
                        .into_iter()
                        .find(|k| share(c.volatile.get(*k), c.raw) >= DETECTOR_SHARE)
                })
                .flatten();
            let why = match (noise, volatile) {
                (true, _) => test.explain(path),
                (false, Some(kind)) => format!(
                    "looks volatile: {path} differs from the candidate on {:.1}% of {} requests, {:.1}% of the time as a {} on both sides",
                    100.0 * raw_rate_all,
                    counts.compared,
                    100.0 * share(c.volatile.get(kind), c.raw),
                    kind.as_str()
                ),
                (false, None) => return None,
            };
            Some(PathReport {
                path: path.clone(),
                noise_rate: test.noise_rate(),
                raw_rate: test.raw_rate(),
                raw_rate_all,
                noise,
                volatile,
                why,
            })
        })
        .collect();
    paths.sort_by(|a, b| a.path.cmp(&b.path));
    EndpointReport {
        endpoint: endpoint.to_string(),
        compared: counts.compared,
        paired: counts.paired,
        suggestion: suggestion(endpoint, &paths),
        paths,
    }
}

fn share(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// `[[route]]` with a `[route.compare]` forgiving exactly these paths:
/// noise ignored, volatile values masked by kind.
fn suggestion(endpoint: &str, paths: &[PathReport]) -> Option<String> {
    let quoted = |text: &str| toml::Value::String(text.to_string()).to_string();
    let (mut ignore, mut headers, mut masks) = (Vec::new(), Vec::new(), Vec::new());
    for p in paths {
        match (p.path.strip_prefix("header:"), p.noise, p.volatile) {
            (Some(name), true, _) => headers.push(quoted(name)),
            (Some(_), false, _) => {}
            (None, true, _) => ignore.push(quoted(&p.path)),
            (None, false, Some(kind)) => {
                masks.push(format!("{} = {}", quoted(&p.path), quoted(kind.mask())))
            }
            (None, false, None) => {}
        }
    }
    if ignore.is_empty() && headers.is_empty() && masks.is_empty() {
        return None;
    }
    let mut text = format!("[[route]]\nmatch = {}\n[route.compare]\n", quoted(endpoint));
    if !ignore.is_empty() {
        text.push_str(&format!("ignore = [{}]\n", ignore.join(", ")));
    }
    if !masks.is_empty() {
        text.push_str(&format!("mask = {{ {} }}\n", masks.join(", ")));
    }
    if !headers.is_empty() {
        text.push_str(&format!("ignore_headers = [{}]\n", headers.join(", ")));
    }
    Some(text)
}
