//! `shadowdiff show summary|groups|mismatch ID`: a running shadowdiff's
//! report API read for a person at a terminal (over SSH, say), as aligned
//! and coloured tables and a side-by-side diff instead of JSON. This module
//! holds the command's arguments, fetches what a view needs from the API
//! (with the report token, through the request helper the gate and rollout
//! commands share) and hands the JSON to the view that renders it.
//!
//! The JSON is read as `serde_json::Value`, never into the report module's
//! types: an API of another release, or a proxy in front of it answering
//! something else, must still render what is there rather than fail to
//! deserialize, and `show` stays a client of the wire format alone.

mod args;
mod groups;
mod mismatch;
mod noise;
mod side;
mod summary;
mod table;

use std::io::{IsTerminal, Write};
use std::time::Duration;

pub use args::{ColorWhen, Common, NoiseArgs, NoiseView, ReportApi, ShowArgs, Triage, View};
use clap::ValueEnum;
use serde_json::Value;

use crate::config::ReportToken;
use crate::gate::remote::RemoteError;
use crate::gate::TimeBound;

/// Why a view could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum ShowError {
    /// The API was not reached, refused the request, or failed.
    #[error("{}", with_cause(.0))]
    Api(#[from] RemoteError),
    /// The id names no stored mismatch.
    #[error("no mismatch {id} at the report API at {url} (the ID column of `shadowdiff show groups` lists stored ones)")]
    NoSuchMismatch { id: u64, url: String },
    /// Something answered with success, but not with JSON.
    #[error("the report API at {url} did not answer with JSON: {detail}")]
    NotJson { url: String, detail: String },
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

impl ShowError {
    /// Whether the request was refused (the caller's to fix: a token, an
    /// id, a parameter), rather than failed or not answered.
    pub fn is_refusal(&self) -> bool {
        match self {
            ShowError::Api(RemoteError::Refused { status, .. }) => *status < 500,
            ShowError::Api(RemoteError::Unauthorized | RemoteError::BadUrl(_)) => true,
            ShowError::NoSuchMismatch { .. } => true,
            ShowError::Api(RemoteError::Unreachable { .. } | RemoteError::Malformed { .. })
            | ShowError::NotJson { .. }
            | ShowError::Runtime(_) => false,
        }
    }
}

/// The error's message; for an API not reached, what actually happened
/// ("Connection refused", "operation timed out"): the innermost cause, where
/// the HTTP client's own message only repeats the URL.
fn with_cause(e: &RemoteError) -> String {
    let RemoteError::Unreachable { url, source } = e else {
        return e.to_string();
    };
    let mut cause: &dyn std::error::Error = source;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    format!("cannot reach the report API at {url}: {cause}")
}

/// How the output is laid out: its width in characters and whether it is
/// coloured.
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    pub width: usize,
    pub color: bool,
}

impl Layout {
    /// From the flags, the environment and what standard output is.
    fn of(args: &Common) -> Layout {
        let terminal = std::io::stdout().is_terminal();
        let measured =
            || terminal_size::terminal_size_of(std::io::stdout()).map(|(w, _)| usize::from(w.0));
        Layout::decide(
            args,
            terminal,
            std::env::var_os("NO_COLOR").as_deref(),
            std::env::var("COLUMNS").ok().as_deref(),
            measured,
        )
    }

    /// Colour: as asked, or (`auto`) on a terminal unless NO_COLOR is set
    /// to anything but empty (no-color.org). Width: the flag, else COLUMNS,
    /// else the terminal's, else 120.
    fn decide(
        args: &Common,
        terminal: bool,
        no_color: Option<&std::ffi::OsStr>,
        columns: Option<&str>,
        measured: impl FnOnce() -> Option<usize>,
    ) -> Layout {
        let color = match args.color {
            ColorWhen::Always => true,
            ColorWhen::Never => false,
            ColorWhen::Auto => terminal && no_color.is_none_or(|v| v.is_empty()),
        };
        let columns = columns
            .and_then(|c| c.trim().parse::<usize>().ok())
            .filter(|c| *c > 0);
        let width = match args.width {
            Some(width) => usize::from(width),
            None => columns.or_else(measured).unwrap_or(120),
        };
        // Narrower than this, no table is readable; the columns are cut instead.
        Layout {
            width: width.max(40),
            color,
        }
    }
}

/// Fetches and prints the view `args` asks for.
pub fn run(args: &ShowArgs) -> Result<(), ShowError> {
    let layout = Layout::of(&args.common);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ShowError::Runtime)?;
    let text = runtime.block_on(view(args, layout))?;
    // A reader that went away (`| head`) is no failure of the API's.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(())
}

/// The view as text: fetched, then rendered (or the JSON as it came).
async fn view(args: &ShowArgs, layout: Layout) -> Result<String, ShowError> {
    let api = Api::new(
        &args.common.api.report_url,
        args.common
            .api
            .report_token
            .as_ref()
            .map(ReportToken::as_str),
    )?;
    let raw = |(body, _): (String, Value)| match body.ends_with('\n') {
        true => body,
        false => body + "\n",
    };
    match &args.view {
        View::Summary { since } => {
            let query = [("since", since.as_ref().map(TimeBound::as_str))];
            let answer = api.get("summary", &query).await?;
            Ok(match args.common.json {
                true => raw(answer),
                false => summary::render(&answer.1, layout),
            })
        }
        View::Groups {
            endpoint,
            status,
            since,
        } => {
            let status = status.and_then(|s| s.to_possible_value());
            let query = [
                ("endpoint", endpoint.as_deref()),
                ("status", status.as_ref().map(|s| s.get_name())),
                ("since", since.as_ref().map(TimeBound::as_str)),
            ];
            let answer = api.get("groups", &query).await?;
            if args.common.json {
                return Ok(raw(answer));
            }
            // The newest mismatch of each group, so that a row names an id
            // `show mismatch` takes; one page is enough for that, and a
            // failure only leaves the column empty.
            let page = [
                ("endpoint", endpoint.as_deref()),
                ("since", since.as_ref().map(TimeBound::as_str)),
                ("limit", Some("500")),
            ];
            let latest = api.get("mismatches", &page).await.ok().map(|(_, v)| v);
            Ok(groups::render(&answer.1, latest.as_ref(), layout))
        }
        View::Noise(noise) => noise_view(noise, &args.common, layout).await,
        View::Mismatch { id } => {
            let path = format!("mismatches/{id}");
            let no_such = |e| match e {
                ShowError::Api(RemoteError::Refused { status: 404, .. }) => {
                    ShowError::NoSuchMismatch {
                        id: *id,
                        url: api.base.clone(),
                    }
                }
                e => e,
            };
            let answer = api.get(&path, &[]).await.map_err(no_such)?;
            if args.common.json {
                return Ok(raw(answer));
            }
            let curl = api
                .get(&format!("{path}/curl"), &[])
                .await
                .map_err(no_such)?;
            Ok(mismatch::render(&answer.1, Some(&curl.1), layout))
        }
    }
}

/// `shadowdiff noise`: the same as `show noise`.
pub fn noise(args: &NoiseArgs) -> Result<(), ShowError> {
    let layout = Layout::of(&args.common);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ShowError::Runtime)?;
    let text = runtime.block_on(noise_view(&args.noise, &args.common, layout))?;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
    Ok(())
}

/// The noise report (or a reset) as text.
async fn noise_view(
    view: &NoiseView,
    common: &Common,
    layout: Layout,
) -> Result<String, ShowError> {
    let api = Api::new(
        &common.api.report_url,
        common.api.report_token.as_ref().map(ReportToken::as_str),
    )?;
    if let Some(endpoint) = &view.reset {
        let (body, answer) = api
            .send(
                reqwest::Method::DELETE,
                "noise",
                &[("endpoint", Some(endpoint))],
            )
            .await?;
        return Ok(match common.json {
            true => body + "\n",
            false => format!(
                "forgot what was learned about {endpoint}: {} rows removed\n",
                text(&answer["removed"])
            ),
        });
    }
    let (body, answer) = api
        .get("noise", &[("endpoint", view.endpoint.as_deref())])
        .await?;
    Ok(match (common.json, view.suggest) {
        (true, _) => body + "\n",
        (false, true) => noise::suggestions(&answer),
        (false, false) => noise::render(&answer, layout),
    })
}

/// The report API at one base URL, with its token.
struct Api<'a> {
    base: String,
    token: Option<&'a str>,
    client: reqwest::Client,
}

impl<'a> Api<'a> {
    fn new(base: &str, token: Option<&'a str>) -> Result<Api<'a>, ShowError> {
        let trimmed = base.trim_end_matches('/');
        reqwest::Url::parse(trimmed)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| RemoteError::BadUrl(base.to_string()))?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|source| RemoteError::Unreachable {
                url: trimmed.to_string(),
                source,
            })?;
        Ok(Api {
            base: trimmed.to_string(),
            token,
            client,
        })
    }

    /// GET `/api/v1/{path}` with the query parameters that have a value:
    /// the body as it came and as JSON.
    async fn get(
        &self,
        path: &str,
        query: &[(&str, Option<&str>)],
    ) -> Result<(String, Value), ShowError> {
        self.send(reqwest::Method::GET, path, query).await
    }

    /// Any method to `/api/v1/{path}`, as [`Api::get`].
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, Option<&str>)],
    ) -> Result<(String, Value), ShowError> {
        let mut url = reqwest::Url::parse(&format!("{}/api/v1/{path}", self.base))
            .map_err(|_| RemoteError::BadUrl(self.base.clone()))?;
        let given: Vec<(&str, &str)> = query
            .iter()
            .filter_map(|(k, v)| v.map(|v| (*k, v)))
            .collect();
        if !given.is_empty() {
            url.query_pairs_mut().extend_pairs(given);
        }
        let body =
            crate::gate::remote::send(self.client.request(method, url), &self.base, self.token)
                .await?;
        let text = String::from_utf8_lossy(&body).into_owned();
        let value = serde_json::from_str(&text).map_err(|e| ShowError::NotJson {
            url: self.base.clone(),
            detail: e.to_string(),
        })?;
        Ok((text, value))
    }
}

/// A share (0 to 1) as a percentage with two decimals, cut rather than
/// rounded, so that 100.00% means every one and 0.9999x never shows as 100.
fn percent(share: f64) -> String {
    let hundredths = (share.clamp(0.0, 1.0) * 10_000.0).floor() / 100.0;
    format!("{hundredths:.2}%")
}

/// Milliseconds as people read them: three significant digits or so.
fn millis(ms: f64) -> String {
    match ms {
        ms if ms < 10.0 => format!("{ms:.2}"),
        ms if ms < 100.0 => format!("{ms:.1}"),
        ms => format!("{ms:.0}"),
    }
}

/// An RFC 3339 time of the API's as `2026-11-30 11:02:03` (UTC, whole
/// seconds), to fit a column; any other text as it is.
fn instant(text: &str) -> String {
    match crate::time::parse_millis(text) {
        Some(ms) => crate::time::format_millis(ms.div_euclid(1_000) * 1_000)
            .replace('T', " ")
            .trim_end_matches('Z')
            .to_string(),
        None => text.to_string(),
    }
}

/// A JSON value as a cell: text as it is, numbers and the rest as JSON,
/// null and absence as `-`.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        show: ShowArgs,
    }

    #[test]
    fn percentages_are_cut_not_rounded() {
        assert_eq!(percent(1.0), "100.00%");
        assert_eq!(percent(0.99999), "99.99%");
        assert_eq!(percent(0.5), "50.00%");
        assert_eq!(percent(0.0), "0.00%");
    }

    #[test]
    fn times_fit_a_column() {
        assert_eq!(instant("2026-11-30T11:02:03.456Z"), "2026-11-30 11:02:03");
        assert_eq!(instant("yesterday"), "yesterday");
        assert_eq!(millis(3.456), "3.46");
        assert_eq!(millis(34.56), "34.6");
        assert_eq!(millis(345.6), "346");
    }

    #[test]
    fn refusals_are_told_from_failures() {
        let refused = |status| {
            ShowError::Api(RemoteError::Refused {
                status,
                message: String::new(),
            })
        };
        assert!(refused(400).is_refusal());
        assert!(refused(404).is_refusal());
        assert!(!refused(503).is_refusal());
        assert!(ShowError::Api(RemoteError::Unauthorized).is_refusal());
        let unknown = ShowError::NoSuchMismatch {
            id: 7,
            url: "http://x".into(),
        };
        assert!(unknown.is_refusal());
        assert!(unknown.to_string().contains("no mismatch 7"), "{unknown}");
        assert!(!ShowError::Api(RemoteError::BadUrl("ftp://x".into()))
            .to_string()
            .is_empty());
    }

    #[test]
    fn colour_and_width_follow_the_flags_then_the_environment() {
        let args = |more: &[&str]| {
            let all = ["x", "summary"].iter().chain(more);
            Cli::try_parse_from(all).unwrap().show.common
        };
        let none = || None;
        let auto = args(&[]);
        let no_color = Some(std::ffi::OsStr::new("1"));
        let empty = Some(std::ffi::OsStr::new(""));
        assert!(Layout::decide(&auto, true, None, None, none).color);
        assert!(!Layout::decide(&auto, false, None, None, none).color);
        assert!(!Layout::decide(&auto, true, no_color, None, none).color);
        assert!(Layout::decide(&auto, true, empty, None, none).color);
        let always = args(&["--color", "always"]);
        assert!(Layout::decide(&always, false, no_color, None, none).color);
        let never = args(&["--color", "never"]);
        assert!(!Layout::decide(&never, true, None, None, none).color);

        assert_eq!(Layout::decide(&auto, false, None, None, none).width, 120);
        assert_eq!(
            Layout::decide(&auto, true, None, None, || Some(90)).width,
            90
        );
        assert_eq!(
            Layout::decide(&auto, true, None, Some("100"), || Some(90)).width,
            100
        );
        assert_eq!(
            Layout::decide(&auto, true, None, Some("wide"), || Some(90)).width,
            90
        );
        assert_eq!(
            Layout::decide(&auto, false, None, Some("10"), none).width,
            40
        );
        let flag = args(&["--width", "70"]);
        assert_eq!(
            Layout::decide(&flag, true, None, Some("100"), || Some(90)).width,
            70
        );
    }

    #[test]
    fn the_arguments_parse() {
        let cli = Cli::try_parse_from(["x", "groups", "--status", "bug", "--width", "80"]).unwrap();
        assert!(matches!(
            cli.show.view,
            View::Groups {
                status: Some(Triage::Bug),
                ..
            }
        ));
        assert_eq!(cli.show.common.width, Some(80));
        assert!(Cli::try_parse_from(["x", "mismatch", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "summary", "--since", "soon"]).is_err());
    }
}
