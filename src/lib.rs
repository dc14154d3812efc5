//! shadowdiff: a shadow-traffic proxy that proves a new backend (the *candidate*)
//! answers like the old one (the *primary*) before each rollout step.
//!
//! The crate is a library with a thin binary on top. ARCHITECTURE.md is the map;
//! in short, a request flows `proxy` → (sampled) `shadow` → `compare` → `outcome`,
//! and everything that shapes that flow comes from `config`, parsed once into types.

pub mod breaker;
pub mod budget;
pub mod cli;
pub mod compare;
pub mod config;
pub mod connections;
pub mod endpoint;
pub mod exchange;
pub mod forgive;
pub mod gate;
pub mod headers;
pub mod noise;
pub mod notify;
pub mod outcome;
pub mod proxy;
pub mod record;
pub mod redact;
pub mod rejudge;
pub mod replay;
pub mod report;
pub mod rollout;
pub mod sampling;
pub mod server;
pub mod shadow;
pub mod show;
pub mod store;
pub mod time;
pub mod ui;
pub mod upstream;
pub mod verdict_record;
pub mod writer;

pub use config::Settings;
pub use server::Server;
