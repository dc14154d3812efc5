//! Named backends (`[backend.NAME]`) and what each request is sent to: a
//! route may name its own primary and candidate, or `candidate = false` to
//! be proxied and not shadowed. [`Targets`] resolves this once, at start,
//! into one [`Target`] per route (and one for requests no route matches),
//! which the proxy and the shadow stage read without looking anything up.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::rewrite::Rewrite;
use super::{BackendUrl, ConfigError, HostHeader, NonZeroMillis, Settings};

/// A backend's name: letters, digits, `-` and `_`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "String")]
pub struct BackendName(String);

impl BackendName {
    /// What the candidate set by `candidate` is called in reports.
    pub const DEFAULT_CANDIDATE: &'static str = "candidate";

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BackendName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        match valid {
            true => Ok(BackendName(s)),
            false => Err(format!(
                "a backend name is 1 to 64 letters, digits, - or _; got {s:?}"
            )),
        }
    }
}

impl fmt::Debug for BackendName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for BackendName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `[backend.NAME]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackendSpec {
    pub url: BackendUrl,
    /// As a candidate: give up after this long (else `candidate_timeout_ms`).
    #[serde(default)]
    pub timeout_ms: Option<NonZeroMillis>,
    /// As a candidate: calls to it at once at most; beyond, samples are
    /// dropped (`dropped/backend_busy`) so one slow service cannot take
    /// every shadow slot from the others.
    #[serde(default)]
    pub max_in_flight: Option<std::num::NonZeroUsize>,
    /// As a candidate: how its requests differ from the client's.
    #[serde(default)]
    pub rewrite: Rewrite,
}

/// A route's `candidate`: a backend's name, or `false` for none.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "CandidateText")]
pub enum CandidateChoice {
    Backend(BackendName),
    /// Proxied to the primary and never shadowed.
    None,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum CandidateText {
    Name(String),
    Flag(bool),
}

impl TryFrom<CandidateText> for CandidateChoice {
    type Error = String;
    fn try_from(text: CandidateText) -> Result<Self, Self::Error> {
        match text {
            CandidateText::Name(name) => name.try_into().map(CandidateChoice::Backend),
            CandidateText::Flag(false) => Ok(CandidateChoice::None),
            CandidateText::Flag(true) => Err(
                "`candidate = true` names no backend: give a [backend.NAME]'s name, or false for none".into(),
            ),
        }
    }
}

/// Where one request goes: its primary, and its candidate if it has one.
#[derive(Clone, Debug)]
pub struct Target {
    /// Its backend's name; `primary` for the one set by `primary`.
    pub primary_name: String,
    pub primary: BackendUrl,
    pub candidate: Option<CandidateTarget>,
    /// With `recheck` on: how long a safe request's mismatch waits before
    /// both backends are called again.
    pub recheck: Option<Duration>,
}

/// A candidate as a request meets it, its rewrites (backend's and route's) merged.
#[derive(Clone, Debug)]
pub struct CandidateTarget {
    /// Its backend's name; `candidate` for the one set by `candidate`.
    pub name: String,
    pub url: BackendUrl,
    pub host: HostHeader,
    pub timeout: Duration,
    /// Its own cap on calls at once (shared by every route naming it).
    pub max_in_flight: Option<std::num::NonZeroUsize>,
    pub rewrite: Rewrite,
}

/// One [`Target`] per route, in route order, and one for the rest.
#[derive(Clone, Debug)]
pub struct Targets {
    default: Arc<Target>,
    routes: Vec<Arc<Target>>,
    /// The routes' patterns, in order, to find an endpoint's route.
    patterns: Vec<crate::endpoint::RoutePattern>,
}

impl Targets {
    /// Resolves every route's backends; an unknown name, a rewrite that
    /// would be ignored or one on a primary is refused, naming its key.
    pub fn new(settings: &Settings) -> Result<Targets, ConfigError> {
        let default_candidate = CandidateTarget {
            name: BackendName::DEFAULT_CANDIDATE.to_string(),
            url: settings.candidate.clone(),
            host: settings.candidate_host.clone(),
            timeout: settings.candidate_timeout,
            max_in_flight: None,
            rewrite: Rewrite::default(),
        };
        let named = |key: String, name: &BackendName| {
            settings
                .backends
                .get(name)
                .ok_or_else(|| ConfigError::UnknownBackend {
                    key,
                    name: name.to_string(),
                    known: settings.backends.keys().map(|k| k.to_string()).collect(),
                })
        };
        let mut routes = Vec::with_capacity(settings.routes.len());
        for (i, route) in settings.routes.iter().enumerate() {
            let primary_name = route
                .primary
                .as_ref()
                .map_or("primary".to_string(), BackendName::to_string);
            let primary = match &route.primary {
                None => settings.primary.clone(),
                Some(name) => {
                    let spec = named(format!("route[{i}].primary"), name)?;
                    if !spec.rewrite.is_empty() {
                        return Err(ConfigError::Refused {
                            key: format!("route[{i}].primary"),
                            message: format!("backend {name} has a rewrite, and a primary's request is never rewritten: name a backend without one"),
                        });
                    }
                    spec.url.clone()
                }
            };
            let own = route.rewrite.clone().unwrap_or_default();
            let candidate = match &route.candidate {
                Some(CandidateChoice::None) => {
                    if !own.is_empty() {
                        return Err(ConfigError::Refused {
                            key: format!("route[{i}].rewrite"),
                            message: "the route has no candidate (`candidate = false`), so nothing would be rewritten".into(),
                        });
                    }
                    None
                }
                None => Some(CandidateTarget {
                    rewrite: own.clone(),
                    host: own
                        .host
                        .clone()
                        .unwrap_or_else(|| default_candidate.host.clone()),
                    ..default_candidate.clone()
                }),
                Some(CandidateChoice::Backend(name)) => {
                    let spec = named(format!("route[{i}].candidate"), name)?;
                    let rewrite = spec.rewrite.with(&own);
                    Some(CandidateTarget {
                        name: name.to_string(),
                        url: spec.url.clone(),
                        host: rewrite
                            .host
                            .clone()
                            .unwrap_or_else(|| settings.candidate_host.clone()),
                        timeout: spec
                            .timeout_ms
                            .map_or(settings.candidate_timeout, NonZeroMillis::duration),
                        max_in_flight: spec.max_in_flight,
                        rewrite,
                    })
                }
            };
            let recheck = recheck(settings, route.recheck, format!("route[{i}].recheck"))?;
            if route.recheck == Some(true) && candidate.is_none() {
                return Err(ConfigError::Refused {
                    key: format!("route[{i}].recheck"),
                    message: "the route has no candidate (`candidate = false`), so nothing is compared to recheck".into(),
                });
            }
            routes.push(Arc::new(Target {
                primary_name,
                primary,
                candidate,
                recheck,
            }));
        }
        Ok(Targets {
            patterns: settings.routes.iter().map(|r| r.pattern.clone()).collect(),
            default: Arc::new(Target {
                primary_name: "primary".to_string(),
                primary: settings.primary.clone(),
                candidate: Some(default_candidate),
                recheck: recheck(settings, None, "recheck".into())?,
            }),
            routes,
        })
    }

    /// The target of the route at `index`, or of requests no route matches.
    pub fn get(&self, index: Option<usize>) -> &Arc<Target> {
        index
            .and_then(|i| self.routes.get(i))
            .unwrap_or(&self.default)
    }

    /// The target of an endpoint named `METHOD /template`, as its requests
    /// were named: by the first route its template fits.
    pub fn for_endpoint(&self, endpoint: &str) -> &Arc<Target> {
        let route = endpoint.split_once(' ').and_then(|(method, path)| {
            let method = http::Method::from_bytes(method.as_bytes()).ok()?;
            self.patterns.iter().position(|p| p.matches(&method, path))
        });
        self.get(route)
    }

    /// Each named candidate with its own cap on calls at once.
    pub fn limits(&self) -> impl Iterator<Item = (&str, std::num::NonZeroUsize)> {
        std::iter::once(&self.default)
            .chain(&self.routes)
            .filter_map(|t| t.candidate.as_ref())
            .filter_map(|c| Some((c.name.as_str(), c.max_in_flight?)))
    }

    /// The longest any candidate may take: a shared client's connect timeout.
    pub fn longest_candidate_timeout(&self) -> Duration {
        std::iter::once(&self.default)
            .chain(&self.routes)
            .filter_map(|t| t.candidate.as_ref())
            .map(|c| c.timeout)
            .max()
            .unwrap_or_default()
    }
}

/// A route's recheck delay, when its own `recheck` (or else the global one)
/// is on. Refused in collector mode, which is given the primary's responses
/// and cannot ask the primary again: `key` names the setting that asked.
fn recheck(
    settings: &Settings,
    own: Option<bool>,
    key: String,
) -> Result<Option<Duration>, ConfigError> {
    let on = own.unwrap_or(settings.recheck);
    if on && settings.mode == super::Mode::Collector {
        let key = if own.is_some() { key } else { "recheck".into() };
        return Err(ConfigError::Refused {
            key,
            message: "collector mode is given the primary's responses and cannot call the primary again: a recheck needs inline or mirror mode".into(),
        });
    }
    Ok(on.then_some(settings.recheck_delay))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Layer;

    fn settings(text: &str) -> Result<Settings, ConfigError> {
        let base = "primary = \"http://mono:1\"\ncandidate = \"http://cand:2\"\n";
        Layer::from_toml(&format!("{base}{text}"))
            .map_err(|(key, message)| ConfigError::Refused { key, message })?
            .resolve()
    }

    #[test]
    fn routes_reach_their_own_backends() {
        let s = settings(
            r#"
            [backend.orders]
            url = "http://orders:3"
            timeout_ms = 700
            rewrite = { path_prefix = { from = "/api/orders", to = "/orders" } }
            [backend.search]
            url = "http://search:4"

            [[route]]
            match = "GET /api/orders/{id}"
            candidate = "orders"
            [route.rewrite]
            set_headers = { x-version = "2" }

            [[route]]
            match = "GET /search"
            primary = "search"
            candidate = false

            [[route]]
            match = "GET /users/{id}"
            "#,
        )
        .unwrap();
        let targets = Targets::new(&s).unwrap();
        let orders = targets.get(Some(0)).candidate.as_ref().unwrap();
        assert_eq!(
            (orders.name.as_str(), orders.url.to_string()),
            ("orders", "http://orders:3".into())
        );
        assert_eq!(orders.timeout, Duration::from_millis(700));
        assert_eq!(orders.rewrite.target("/api/orders/1"), "/orders/1");
        assert_eq!(orders.rewrite.set_headers.len(), 1);
        let search = targets.get(Some(1));
        assert_eq!(search.primary.to_string(), "http://search:4");
        assert!(search.candidate.is_none());
        let users = targets.get(Some(2)).candidate.as_ref().unwrap();
        assert_eq!(users.name, "candidate");
        assert_eq!(targets.get(None).primary.to_string(), "http://mono:1");
    }

    #[test]
    fn a_routes_recheck_overrides_the_global_one() {
        let routes = "[[route]]\nmatch = \"GET /a\"\nrecheck = false\n[[route]]\nmatch = \"GET /b\"\nrecheck = true\n[[route]]\nmatch = \"GET /c\"\n";
        let off = Targets::new(&settings(routes).unwrap()).unwrap();
        let on = Targets::new(
            &settings(&format!("recheck = true\nrecheck_delay_ms = 250\n{routes}")).unwrap(),
        )
        .unwrap();
        let second = Duration::from_secs(1);
        let quarter = Duration::from_millis(250);
        let delays = |t: &Targets| [None, Some(0), Some(1), Some(2)].map(|i| t.get(i).recheck);
        assert_eq!(delays(&off), [None, None, Some(second), None]);
        assert_eq!(
            delays(&on),
            [Some(quarter), None, Some(quarter), Some(quarter)]
        );
        for (text, key, words) in [
            (
                "mode = \"collector\"\nrecheck = true",
                "recheck",
                "collector mode",
            ),
            (
                "mode = \"collector\"\n[[route]]\nmatch = \"GET /a\"\nrecheck = true",
                "route[0].recheck",
                "collector mode",
            ),
            (
                "[[route]]\nmatch = \"GET /a\"\ncandidate = false\nrecheck = true",
                "route[0].recheck",
                "no candidate",
            ),
        ] {
            match settings(text) {
                Err(ConfigError::Refused { key: k, message }) => {
                    assert_eq!(k, key, "{text}");
                    assert!(message.contains(words), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
        // Collector mode with every route's recheck off and no global one.
        let quiet = "mode = \"collector\"\n[[route]]\nmatch = \"GET /a\"\nrecheck = false";
        assert!(settings(quiet).is_ok());
    }

    #[test]
    fn bad_references_are_refused_with_their_key() {
        let cases = [
            ("[[route]]\nmatch = \"GET /a\"\ncandidate = \"nope\"", "route[0].candidate", "nope"),
            ("[[route]]\nmatch = \"GET /a\"\nprimary = \"nope\"", "route[0].primary", "nope"),
            (
                "[backend.b]\nurl = \"http://b\"\nrewrite = { remove_headers = [\"cookie\"] }\n[[route]]\nmatch = \"GET /a\"\nprimary = \"b\"",
                "route[0].primary",
                "never rewritten",
            ),
            (
                "[[route]]\nmatch = \"GET /a\"\ncandidate = false\nrewrite = { remove_headers = [\"cookie\"] }",
                "route[0].rewrite",
                "no candidate",
            ),
            ("[[route]]\nmatch = \"GET /a\"\ncandidate = true", "route[0].candidate", "false for none"),
            ("[backend.\"a b\"]\nurl = \"http://b\"", "backend", "backend name"),
            ("[backend.b]\nurl = \"http://b\"\nrewrite = { remove_headers = [\"connection\"] }", "backend.b.rewrite.remove_headers[0]", "hop-by-hop"),
        ];
        for (text, key, words) in cases {
            let err = settings(text).and_then(|s| Targets::new(&s).map(|_| ()));
            match err {
                Err(ConfigError::Refused { key: k, message })
                | Err(ConfigError::UnknownBackend {
                    key: k,
                    name: message,
                    ..
                }) => {
                    assert!(k.starts_with(key), "{text}: {k}");
                    assert!(message.contains(words), "{text}: {message}");
                }
                other => panic!("{text}: {other:?}"),
            }
        }
    }
}
