//! One source of serve settings, a [`Layer`]: the config file, the
//! `SHADOWDIFF_*` variables or the flags, each key optional. Layers overlay
//! (a flag beats the environment, which beats the file) and then resolve into
//! [`Settings`]. The `Layer` type itself, and how layers overlay, come from
//! the settings table (`settings.rs`).

use std::collections::BTreeMap;
use std::path::Path;

use super::{located, ConfigError, Layer, Settings, ENV_PREFIX};

/// Variables with the prefix that are not serve settings.
const ENV_NOT_SETTINGS: &[&str] = &[
    "SHADOWDIFF_CONFIG",
    "SHADOWDIFF_LOG",
    "SHADOWDIFF_LOG_FORMAT",
];

/// An optionally signed run of digits (and `_`, as TOML allows).
fn looks_like_integer(value: &str) -> bool {
    let digits = value.trim().trim_start_matches(['+', '-']);
    digits.starts_with(|c: char| c.is_ascii_digit())
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_')
}

impl Layer {
    /// The comparison rules this layer sets for a request to `method path`:
    /// the first matching route's added to the global `[compare]`; the
    /// global rules alone without a request or a matching route.
    pub fn rules_for(&self, request: Option<(&http::Method, &str)>) -> crate::compare::Rules {
        let global = self.compare.clone().unwrap_or_default();
        let route = request.and_then(|(method, path)| {
            self.routes
                .iter()
                .flatten()
                .find(|r| r.pattern.matches(method, path))
        });
        match route.and_then(|r| r.compare.as_ref()) {
            Some(own) => crate::compare::Rules::from(&global.with(own)),
            None => crate::compare::Rules::from(&global),
        }
    }

    /// Reads and checks a TOML config file.
    pub fn from_file(path: &Path) -> Result<Layer, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text).map_err(|(key, message)| ConfigError::File {
            path: path.to_path_buf(),
            key,
            message,
        })
    }

    /// Parses TOML text; the error is the dotted key path and the reason.
    pub fn from_toml(text: &str) -> Result<Layer, (String, String)> {
        let layer = Self::parse_toml(text)?;
        layer.check_rules()?;
        Ok(layer)
    }

    /// Refuses a `[compare]` table (global or a route's) with a rule that
    /// another rule of the same table makes idle.
    fn check_rules(&self) -> Result<(), (String, String)> {
        let global = self.compare.iter().map(|c| ("compare".to_string(), c));
        let routes = self.routes.iter().flatten().enumerate();
        let routes =
            routes.filter_map(|(i, r)| Some((format!("route[{i}].compare"), r.compare.as_ref()?)));
        for (key, table) in global.chain(routes) {
            if let Some(idle) = crate::compare::conflicts::idle_rule(table) {
                return Err((key, idle));
            }
        }
        Ok(())
    }

    fn parse_toml(text: &str) -> Result<Layer, (String, String)> {
        let deserializer = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(deserializer).map_err(|e| {
            // A number out of range fails in the parser, before any key is
            // known; the key is then read back from where the error points.
            let located = || {
                e.inner()
                    .span()
                    .and_then(|s| located::key_at(text, s.start))
            };
            let key = match e.path().to_string() {
                p if p == "." => located().unwrap_or_else(|| "(top level)".to_string()),
                p => p,
            };
            // toml's message carries the line, a caret under the value, and the reason.
            (key, e.into_inner().to_string().trim_end().to_string())
        })
    }

    /// Reads the `SHADOWDIFF_*` variables among `vars`. Variables with the
    /// prefix that are no setting (Kubernetes makes `SHADOWDIFF_PORT` and the
    /// like for a Service of that name) are returned, to be warned about, not
    /// refused.
    pub fn from_env(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<(Layer, Vec<String>), ConfigError> {
        let mut table = toml::Table::new();
        let mut names = BTreeMap::new();
        let mut unknown = Vec::new();
        for (var, value) in vars {
            let Some(key) = var.strip_prefix(ENV_PREFIX) else {
                continue;
            };
            if ENV_NOT_SETTINGS.contains(&var.as_str()) {
                continue;
            }
            let key = key.to_ascii_lowercase();
            if !Layer::KEYS.contains(&key.as_str()) {
                unknown.push(var);
                continue;
            }
            if looks_like_integer(&value) && value.trim().replace('_', "").parse::<i64>().is_err() {
                // Else it would be read as a string and refused as "invalid type".
                return Err(ConfigError::Env {
                    var,
                    message: format!(
                        "{value} is too large (or too small) a number for this setting"
                    ),
                });
            }
            // Numbers and booleans as TOML reads them, anything else as a string,
            // so that one deserializer checks the file and the environment alike.
            // Text settings stay text: a token or a name may be all digits.
            let parsed = format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .filter(|v| !v.is_str() && !v.is_table() && !v.is_array())
                .filter(|_| !Layer::is_text(&key))
                .unwrap_or_else(|| toml::Value::String(value.clone()));
            names.insert(key.clone(), var);
            table.insert(key, parsed);
        }
        let layer = serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
            let path = e.path().to_string();
            let var = names
                .get(&path)
                .cloned()
                .unwrap_or_else(|| format!("{ENV_PREFIX}{}", path.to_ascii_uppercase()));
            ConfigError::Env {
                var,
                message: e.into_inner().to_string(),
            }
        })?;
        Ok((layer, unknown))
    }

    /// Whether the key's value is text even when it looks like a number.
    fn is_text(key: &str) -> bool {
        Layer::DECLARED.iter().any(|d| d.key == key && d.text)
    }

    /// Refuses two listeners (`listen`, `report_listen` and, when set,
    /// `metrics_listen`; defaults where unset) that would need the same
    /// port: equal addresses, or one port where either side listens on every
    /// address. Port 0 takes a free port, so never clashes.
    pub fn check_listeners(&self) -> Result<(), ConfigError> {
        let default =
            |text: &str| -> std::net::SocketAddr { text.parse().expect("valid default address") };
        let mut listeners = vec![
            (
                "listen",
                self.listen
                    .unwrap_or_else(|| default(Settings::DEFAULT_LISTEN)),
            ),
            (
                "report_listen",
                self.report_listen
                    .unwrap_or_else(|| default(Settings::DEFAULT_REPORT_LISTEN)),
            ),
        ];
        listeners.extend(self.metrics_listen.map(|m| ("metrics_listen", m)));
        for (i, &(first, a)) in listeners.iter().enumerate() {
            for &(second, b) in &listeners[i + 1..] {
                let overlap =
                    a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified();
                if a.port() != 0 && a.port() == b.port() && overlap {
                    return Err(ConfigError::SharedPort {
                        first,
                        first_addr: a,
                        second,
                        second_addr: b,
                    });
                }
            }
        }
        Ok(())
    }

    /// Complete settings: defaults for what no layer set, an error for a
    /// missing backend or for a report API on the proxy's port.
    pub fn resolve(self) -> Result<Settings, ConfigError> {
        self.check_listeners()?;
        let settings = self.declared_settings()?;
        // Nothing accepted and then ignored.
        if settings.notify_gate.is_some()
            && settings.notify_webhook_url.is_none()
            && settings.notify_slack_url.is_none()
        {
            return Err(ConfigError::Needs {
                key: "notify_gate",
                needs: "notify_webhook_url or notify_slack_url",
            });
        }
        // Every route's backends resolve: an unknown name, a rewrite on a
        // primary or on a route without a candidate is refused now.
        super::Targets::new(&settings)?;
        check_weights(&settings)?;
        Ok(settings)
    }
}

/// A weight that could not be applied is refused: outside inline mode
/// nothing is served by the candidate, and a route without one has none.
fn check_weights(settings: &Settings) -> Result<(), ConfigError> {
    let above_zero = |w: Option<crate::sampling::Weight>| w.is_some_and(|w| w.percent() > 0.0);
    let routes = settings.routes.iter().enumerate();
    for (i, route) in routes.filter(|(_, r)| above_zero(r.weight)) {
        if matches!(route.candidate, Some(super::CandidateChoice::None)) {
            return Err(ConfigError::Refused {
                key: format!("route[{i}].weight"),
                message: "the route has no candidate (`candidate = false`) to serve it".into(),
            });
        }
    }
    for (i, route) in settings.routes.iter().enumerate() {
        if route.plan.is_some() && matches!(route.candidate, Some(super::CandidateChoice::None)) {
            return Err(ConfigError::Refused {
                key: format!("route[{i}].plan"),
                message: "the route has no candidate (`candidate = false`) to move traffic to"
                    .into(),
            });
        }
    }
    let serving = above_zero(Some(settings.weight))
        || settings
            .routes
            .iter()
            .any(|r| above_zero(r.weight) || r.plan.is_some());
    if serving && settings.mode != super::Mode::Inline {
        return Err(ConfigError::Refused {
            key: "weight".into(),
            message: format!(
                "only an inline proxy can let the candidate serve clients; mode is {}",
                settings.mode
            ),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::sampling::SampleRate;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const FULL: &str = r#"
        listen = "127.0.0.1:8080"
        primary = "http://127.0.0.1:8001"
        candidate = "http://127.0.0.1:8002/"
        mode = "mirror"
        sample_rate = 1
        sticky_key = "header:x-user-id"
        max_body_bytes = 10485760
        candidate_timeout_ms = 5000
        max_in_flight = 4096
        queue = 10000

        [[route]]
        match = "GET /api/users/{id}"
        sample_rate = 0.5

        [[route]]
        match = "POST /api/orders"
        mirror_unsafe = true
    "#;

    #[test]
    fn the_documented_file_parses() {
        let s = Layer::from_toml(FULL).unwrap().resolve().unwrap();
        assert_eq!(s.mode, Mode::Mirror);
        assert_eq!(s.candidate.to_string(), "http://127.0.0.1:8002");
        assert_eq!(s.routes.len(), 2);
        assert_eq!(s.routes[0].sample_rate.unwrap().get(), 0.5);
        assert!(s.routes[1].mirror_unsafe);
        assert_eq!(s.sticky_key.unwrap().to_string(), "header:x-user-id");
    }

    #[test]
    fn file_errors_name_the_key() {
        let cases = [
            ("sample_rate = 1.5", "sample_rate", "from 0.0 to 1.0"),
            (
                "sampel_rate = 0.5",
                "sampel_rate",
                "unknown field `sampel_rate`",
            ),
            ("mode = \"sideways\"", "mode", "unknown variant"),
            ("primary = \"ftp://x\"", "primary", "http://"),
            ("queue = 0", "queue", "nonzero"),
            (
                "[[route]]\nmatch = \"GET users\"",
                "route[0].match",
                "must start with /",
            ),
            (
                "[[route]]\nmatch = \"GET /a\"\nsample = 1",
                "route[0].sample",
                "unknown field `sample`",
            ),
            (
                "candidate_timeout_ms = 0",
                "candidate_timeout_ms",
                "at least 1",
            ),
            ("listen = \"nowhere\"", "listen", "socket address"),
            (
                "[compare]\nignore = [\"items\"]",
                "compare.ignore[0]",
                "JSON Pointer",
            ),
            (
                "[compare]\nmask = { \"/a\" = \"(\" }",
                "compare.mask./a",
                "regular expression",
            ),
            (
                "[compare]\nkeyed = { \"items\" = \"id\" }",
                "compare.keyed.items",
                "JSON Pointer",
            ),
            (
                "[compare]\npreset = \"ruby-go\"",
                "compare.preset",
                "python-go",
            ),
            (
                "[[route]]\nmatch = \"GET /a\"\n[route.compare]\nunordered = [\"x\"]",
                "route[0].compare.unordered[0]",
                "JSON Pointer",
            ),
        ];
        for (text, key, reason) in cases {
            let (k, msg) = Layer::from_toml(text).unwrap_err();
            assert_eq!(k, key, "{text}: {msg}");
            assert!(msg.contains(reason), "{text}: {msg}");
        }
    }

    #[test]
    fn env_is_read_and_checked() {
        let (layer, unknown) = Layer::from_env(env(&[
            ("SHADOWDIFF_SAMPLE_RATE", "0.25"),
            ("SHADOWDIFF_PRIMARY", "http://localhost:1"),
            ("SHADOWDIFF_LISTEN", "0.0.0.0:9000"),
            ("SHADOWDIFF_MODE", "mirror"),
            ("SHADOWDIFF_LOG", "debug"),
            ("PATH", "/bin"),
        ]))
        .unwrap();
        assert_eq!(layer.sample_rate.unwrap().get(), 0.25);
        assert_eq!(layer.mode, Some(Mode::Mirror));
        assert_eq!(layer.listen.unwrap().port(), 9000);

        let err = Layer::from_env(env(&[("SHADOWDIFF_SAMPLE_RATE", "2")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("environment variable SHADOWDIFF_SAMPLE_RATE:"),
            "{err}"
        );
        assert!(unknown.is_empty());
        let (_, unknown) = Layer::from_env(env(&[
            ("SHADOWDIFF_SAMPLERATE", "0.1"),
            ("SHADOWDIFF_PORT", "tcp://10.0.0.1:80"),
        ]))
        .unwrap();
        assert_eq!(unknown, ["SHADOWDIFF_SAMPLERATE", "SHADOWDIFF_PORT"]);
    }

    #[test]
    fn later_layers_win() {
        let file = Layer::from_toml(
            "sample_rate = 0.1\nqueue = 5\nprimary = \"http://a\"\ncandidate = \"http://b\"",
        )
        .unwrap();
        let (env, _) = Layer::from_env(env(&[
            ("SHADOWDIFF_SAMPLE_RATE", "0.2"),
            ("SHADOWDIFF_QUEUE", "6"),
        ]))
        .unwrap();
        let flags = Layer {
            sample_rate: Some(SampleRate::new(0.3).unwrap()),
            ..Layer::default()
        };
        let s = file.overlay(env).overlay(flags).resolve().unwrap();
        assert_eq!(s.sample_rate.get(), 0.3);
        assert_eq!(s.queue.get(), 6);
    }

    #[test]
    fn missing_backend_says_how_to_give_it() {
        let err = Layer::default().resolve().unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("--primary") && msg.contains("SHADOWDIFF_PRIMARY"),
            "{msg}"
        );
    }

    #[test]
    fn numbers_out_of_range_name_their_key() {
        let (key, msg) =
            Layer::from_toml("queue = 1\nmax_body_bytes = 99999999999999999999").unwrap_err();
        assert_eq!(key, "max_body_bytes", "{msg}");
        assert!(msg.contains("too large"), "{msg}");
        let (key, _) =
            Layer::from_toml("[[route]]\nmatch = \"GET /a\"\nsample_rate = -99999999999999999999")
                .unwrap_err();
        assert_eq!(key, "route[0].sample_rate");
        for value in ["99999999999999999999", "-99999999999999999999"] {
            let err = Layer::from_env(env(&[("SHADOWDIFF_MAX_BODY_BYTES", value)])).unwrap_err();
            let msg = err.to_string();
            assert!(
                msg.starts_with("environment variable SHADOWDIFF_MAX_BODY_BYTES:")
                    && msg.contains("too large"),
                "{msg}"
            );
        }
        let (layer, _) = Layer::from_env(env(&[("SHADOWDIFF_QUEUE", "1_000")])).unwrap();
        assert_eq!(layer.queue.unwrap().get(), 1000);
    }

    #[test]
    fn an_empty_report_token_is_refused_where_it_was_given() {
        let (key, msg) = Layer::from_toml("report_token = \"\"").unwrap_err();
        assert_eq!(key, "report_token");
        assert!(msg.contains("empty"), "{msg}");
        for value in ["", "  "] {
            let err = Layer::from_env(env(&[("SHADOWDIFF_REPORT_TOKEN", value)])).unwrap_err();
            assert!(
                err.to_string()
                    .starts_with("environment variable SHADOWDIFF_REPORT_TOKEN:"),
                "{err}"
            );
        }
        // A token of digits is a token, not a number.
        let (layer, _) = Layer::from_env(env(&[("SHADOWDIFF_REPORT_TOKEN", "12345")])).unwrap();
        assert_eq!(layer.report_token.unwrap().as_str(), "12345");
    }

    #[test]
    fn the_proxy_and_the_report_api_need_their_own_ports() {
        let backends = "primary = \"http://a\"\ncandidate = \"http://b\"\n";
        for (listen, report) in [
            ("127.0.0.1:9000", "127.0.0.1:9000"),
            ("0.0.0.0:9000", "127.0.0.1:9000"),
            ("127.0.0.1:9000", "[::]:9000"),
            ("127.0.0.1:9090", ""),
        ] {
            let mut text = format!("{backends}listen = \"{listen}\"\n");
            if !report.is_empty() {
                text.push_str(&format!("report_listen = \"{report}\"\n"));
            }
            let err = Layer::from_toml(&text).unwrap().resolve().unwrap_err();
            assert!(
                matches!(err, ConfigError::SharedPort { .. }),
                "{text}: {err}"
            );
            assert!(err.to_string().contains("report_listen"), "{err}");
        }
        let text = format!("{backends}notify_gate = \"min_parity=99\"\n");
        let err = Layer::from_toml(&text).unwrap().resolve().unwrap_err();
        assert!(err.to_string().contains("notify_webhook_url"), "{err}");
        let text = format!("{backends}metrics_listen = \"127.0.0.1:9090\"\n");
        let err = Layer::from_toml(&text).unwrap().resolve().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("report_listen (127.0.0.1:9090) and metrics_listen"),
            "{err}"
        );
        for (listen, report) in [
            ("127.0.0.1:9000", "127.0.0.2:9000"),
            ("127.0.0.1:0", "127.0.0.1:0"),
            ("0.0.0.0:9000", "0.0.0.0:9001"),
        ] {
            let text = format!("{backends}listen = \"{listen}\"\nreport_listen = \"{report}\"\n");
            assert!(Layer::from_toml(&text).unwrap().resolve().is_ok(), "{text}");
        }
    }
}
