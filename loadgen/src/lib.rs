//! # aegis-loadgen
//!
//! The bundled load generator of aegis-gateway: a simulated fleet of v1 (Go agent) and v2 agents
//! that speak the real protocol through the gateway's own sans-IO agent
//! ([`aegis_gateway::testkit::agent::Agent`]) over real sockets, on glommio executors.
//!
//! ## Module map
//!
//! | module | what it is |
//! |---|---|
//! | [`cli`] | the command line → [`Options`] |
//! | [`options`] | scenarios, profiles, every parameter, validation (loopback only) |
//! | [`driver`] | one process's run: executors, barriers, gateway sampling, the report |
//! | [`exec`] | glommio executors, barriers, connect/run/close of a set of agents |
//! | [`scenario`] | what each executor does in each scenario |
//! | [`sim`] | one simulated agent over a socket |
//! | [`ws`] | TCP connect (source address), hand-written upgrade, WebSocket helpers |
//! | [`commands`] | admin `send`/`broadcast` driver of `commands`, `mixed` and `soak` |
//! | [`restart`] | the `restart` scenario's coordinator: restarts the spawned gateway once all agents are connected |
//! | [`soak`] | the soak's sampler: gateway RSS, descriptors, threads, CPU over time; growth |
//! | [`admin`] | blocking HTTP/1.1 client for the admin API and `/metrics` |
//! | [`window`] | barrier instants and gateway samples of the measured window |
//! | [`multiproc`], [`coord`] | splitting a run over child processes, their barrier protocol |
//! | [`gateway`] | `--spawn-gateway`: start, find, stop a gateway process |
//! | [`stats`], [`hist`], [`report`], [`progress`] | counting, HDR histograms, JSON/table, progress line |
//! | [`procfs`], [`sys`], [`url`] | `/proc` readings, the few raw syscalls, loopback URLs |
//!
//! ## Phases
//!
//! Every scenario runs the same three barriers: `B_START` (agents created), `B_READY` (ramp
//! done; the measured window starts at its release) and `B_END` (window over). The coordinating
//! thread samples the gateway's `/proc/PID/stat` and `status` (and `/metrics` when `--admin` is
//! given) at each, so CPU per message and RSS per connection cover exactly the window.

pub mod admin;
pub mod cli;
pub mod commands;
pub mod coord;
pub mod driver;
pub mod exec;
pub mod floor;
pub mod gateway;
pub mod hist;
pub mod multiproc;
pub mod options;
pub mod procfs;
pub mod progress;
pub mod report;
pub mod restart;
pub mod scenario;
pub mod sim;
pub mod soak;
pub mod stats;
pub mod sys;
pub mod url;
pub mod window;
pub mod ws;

pub use driver::run;
pub use options::{Options, ProfileChoice, Scenario};
pub use report::Report;
