//! Shared helpers of the black-box tests.
//!
//! Layout of `tests/`: one file per scenario family, named for what a newcomer would look for
//! (`auth_attacks.rs`, `delivery.rs`, `crash_safety.rs`, …); a file opens with a `//!` line
//! saying what it shows. A test starts the real gateway (in-process with [`TestGateway`], or
//! the binary with [`Child`]) on `127.0.0.1:0` and a temp data dir, and asserts on what a real
//! client sees. A file that needs helpers starts with `mod common; use common::*;`. They live
//! here, one module per kind of thing, all re-exported:
//!
//! - `gateway`: [`TestGateway`], [`test_config`], control-handle helpers ([`command`], [`block_on`])
//! - `child`: the binary as a child process ([`Child`]) for kill/restart scenarios
//! - `go_agent`: an agent that reconnects like the deployed Go agent ([`GoAgent`])
//! - `client`: a blocking WebSocket [`Client`] sending the Go agent's upgrade request
//! - `session`: the agent side of the handshake ([`authenticate`], [`register`], [`onboard`]),
//!   error frames, and checks shared by attack scenarios ([`assert_still_serving`])
//! - `tls`: `wss://` clients and self-signed certificates
//! - `http`: one-shot HTTP/1.1 requests ([`http`], [`http_json`])
//! - `events`: the SSE event stream ([`open_events`], [`read_events`])
//! - `nats`: real `nats-server` processes, one or a 3-node cluster ([`NatsServer`], [`NatsCluster`])
//! - `tmpfs`: a small mounted tmpfs for full-disk scenarios ([`Tmpfs`])
//! - `poll`: [`eventually`] and [`poll_until`], the one way to wait for something to happen
//!
//! No `std::thread::sleep` to wait for something: poll the observable effect with
//! [`eventually`] (or a blocking read with a timeout), and give protocol timers short values in
//! the test's `Config` (`handshake_grace`, `idle_timeout`, `ping_interval`, `ack_timeout`,
//! `auth_timeout`, `upgrade_timeout`) instead of waiting out the defaults. A pause that is
//! itself the subject of a test ("nothing arrives within X", [`Client::expect_silence`]) stays
//! short and says so in a comment.
#![allow(dead_code, unused_imports)]

mod child;
mod client;
mod events;
mod gateway;
mod go_agent;
mod http;
mod nats;
mod poll;
mod session;
mod tls;
mod tmpfs;

pub use child::*;
pub use client::*;
pub use events::*;
pub use gateway::*;
pub use go_agent::*;
pub use http::*;
pub use nats::*;
pub use poll::*;
pub use session::*;
pub use tls::*;
pub use tmpfs::*;
