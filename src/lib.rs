//! # Aegis Gateway
//!
//! The backend that Aegis security agents connect to over WebSocket. The wire contract is
//! `PROTOCOL.md` (v1 legacy and v2 secure profiles); the architecture is `DESIGN.md`.
//!
//! ## Module map
//!
//! | module | what it is |
//! |---|---|
//! | [`admin`] | admin HTTP/1.1 API on its own executor: routes, bearer auth, validation, OpenAPI, SSE |
//! | [`config`] | one `Config`: defaults, env vars, flags, `validate()` |
//! | [`crypto`] | Ed25519 (single + batch verify), ChaCha20-Poly1305, X25519 + HKDF, EdDSA JWT, PEM keys |
//! | [`protocol`] | sans-IO: upgrade head, envelope, channels, signature strings, the session state machine, the agent side |
//! | [`router`] | agent→backend event routing; the admin API's operations on the gateway |
//! | [`shard`] | glommio runtime: executors, SO_REUSEPORT listeners, socket hand-off, mesh, presence, verify batcher |
//! | [`store`] | fjall keyspaces and group commit |
//! | [`server`] | wiring for `serve` and tests |
//! | [`metrics`] | metric names |
//!
//! ## Data flow of an inbound frame
//!
//! socket → read through the shard's buffer → WebSocket unframe ([`protocol::ws`], headers by
//! tungstenite; an idle connection owns no buffer) → [`protocol::session::Session::on_frame`] parses
//! the envelope and returns a signature check → the shard's verify batcher checks many at once →
//! `on_verified` opens the AEAD and routes → actions (replies, presence, store writes) are carried
//! out by the connection task.
//!
//! Prerequisites: Linux ≥ 5.8 with io_uring; glommio registers 64 KiB of locked memory per shard.

#![deny(unsafe_code)]

pub mod admin;
pub mod cluster;
pub mod config;
pub mod crypto;
pub mod metrics;
pub mod ops;
pub mod protocol;
pub mod router;
pub mod server;
pub mod shard;
pub mod store;
pub mod telemetry;
#[cfg(any(test, feature = "testkit"))]
pub mod testkit;
pub mod tls;
