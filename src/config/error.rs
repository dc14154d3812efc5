//! Why configuration was refused: each error names where the value came
//! from (file and key, variable, or flag) and what would be accepted.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Why configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A key in the config file is unknown, of the wrong type or out of range.
    #[error("config file {path}: key `{key}`: {message}")]
    File {
        path: PathBuf,
        key: String,
        message: String,
    },
    /// A `SHADOWDIFF_*` variable is unknown or its value is invalid.
    #[error("environment variable {var}: {message}")]
    Env { var: String, message: String },
    /// A required setting (a backend) was given nowhere.
    #[error("no {key} backend given: pass --{key} URL, set SHADOWDIFF_{env}, or put `{key} = \"http://…\"` in the config file", env = .key.to_ascii_uppercase())]
    Missing { key: &'static str },
    /// A setting that would do nothing without another.
    #[error("{key} is set, but does nothing without {needs}: set it too, or leave {key} out")]
    Needs {
        key: &'static str,
        needs: &'static str,
    },
    /// A route names a backend no `[backend.NAME]` declares.
    #[error("{key}: no backend is named {name:?}; declare it as [backend.{name}] with a url (declared: {})", if .known.is_empty() { "none".to_string() } else { .known.join(", ") })]
    UnknownBackend {
        key: String,
        name: String,
        known: Vec<String>,
    },
    /// A value that is valid alone but refused with the rest of the settings.
    #[error("{key}: {message}")]
    Refused { key: String, message: String },
    /// Two listeners (the proxy, the report API, the metrics) would need
    /// the same port.
    #[error("{first} ({first_addr}) and {second} ({second_addr}) share a port: each listener needs its own; change one (--{first_flag}/--{second_flag}, SHADOWDIFF_{first_env}/SHADOWDIFF_{second_env} or the config file)", first_flag = .first.replace('_', "-"), second_flag = .second.replace('_', "-"), first_env = .first.to_ascii_uppercase(), second_env = .second.to_ascii_uppercase())]
    SharedPort {
        first: &'static str,
        first_addr: SocketAddr,
        second: &'static str,
        second_addr: SocketAddr,
    },
}
