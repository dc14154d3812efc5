//! The integration tests: real HTTP backends on 127.0.0.1, the real proxy,
//! and the real binary for the command line.

mod architecture;
mod breaker;
mod cli;
mod collector;
mod credentials;
mod cutover;
mod deploy;
mod diff_cli;
mod facade;
mod fidelity;
mod fuzz_corpus;
mod gate;
mod golden;
mod host;
mod hostile_candidates;
mod hostile_clients;
mod isolation;
mod latency;
mod metrics;
mod migrations;
mod notify;
mod persistence;
mod port_pair;
mod prometheus;
mod properties;
mod replay;
mod report_api;
mod report_contract;
mod rollout;
mod sampling;
mod secrets;
mod store;
mod store_faults;
mod support;
mod writer_faults;
