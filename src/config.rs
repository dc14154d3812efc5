//! Configuration: the TOML file, `SHADOWDIFF_*` environment variables and
//! command-line flags, merged in that order (a flag beats the environment,
//! which beats the file) and parsed once into [`Settings`].
//!
//! Every value is checked here, so the rest of the program only ever sees
//! typed, valid settings. An error names where the value came from (file and
//! key, variable, or flag) and what would be accepted. Each serve setting is
//! declared once, in the table in `settings.rs`.

mod backend;
mod backends;
mod declare;
mod error;
mod layer;
mod located;
mod notify;
#[cfg(test)]
mod readme;
mod rewrite;
mod role;
mod serving;
mod settings;
mod token;
mod units;
pub mod value;

pub use backend::{url_error, BackendUrl, BackendUrlError, HostHeader};
pub use backends::{BackendName, BackendSpec, CandidateChoice, CandidateTarget, Target, Targets};
pub use declare::{Declared, DefaultDoc};
pub use error::ConfigError;
pub use notify::{GateWatch, WebhookUrl};
pub use rewrite::{HeaderSource, PathPrefix, RewritableHeader, Rewrite};
pub use role::RoleHeader;
pub use serving::{Advance, Fallback, Plan, Writes};
pub use settings::{ConnectionLimits, Layer, Mode, Route, ServeFlags, Settings};
pub use token::{ReportToken, TokenError};
pub use units::{DelayMillis, HumanDuration, NonZeroMillis};

/// The prefix of every environment variable that sets a serve setting.
pub const ENV_PREFIX: &str = "SHADOWDIFF_";
