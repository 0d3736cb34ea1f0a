//! # Aegis Gateway
//!
//! The backend that Aegis security agents connect to over WebSocket. The wire contract is
//! `PROTOCOL.md` (v1 legacy and v2 secure profiles); the architecture is `DESIGN.md`.
//!
//! ## Module map
//!
//! | module | what it is |
//! |---|---|
//! | [`protocol`] | sans-IO wire contract: upgrade head, WebSocket framing, envelope, channels, signature strings, registration rules, the session state machine and its timers on a passed-in clock ([`protocol::time`]) |
//! | [`crypto`] | Ed25519 (single + batch verify), ChaCha20-Poly1305, X25519 + HKDF, EdDSA JWT, PEM keys |
//! | [`shard`] | the glommio runtime (the only module that names glommio): executors, listeners, socket hand-off, mesh, presence, verify batcher, the connection task; [`shard::rt`] is the door other modules use |
//! | [`store`] | the fleet state interface ([`store::Fleet`]) and its embedded backend: fjall keyspaces, group commit, sweeps |
//! | [`cluster`] | the fleet state in NATS JetStream (cluster mode, DESIGN §7), a second [`store::Fleet`] |
//! | [`ops`] | the fleet operations behind the admin API: send, broadcast, status, list, revoke, events |
//! | [`aegisflux`] | the drop-in for AegisFlux's gateway: commands from `websocket.messages`, agent messages out on `aegis.agent.<id>.<kind>` |
//! | [`admin`] | admin HTTP/1.1 API: routes, bearer auth, typed validation, OpenAPI, SSE, per-IP limits |
//! | [`router`] | agent→backend routing: event batching for the event log, the hand-off to AegisFlux's publisher |
//! | [`handover`] | restarts that refuse no dial: systemd socket activation, listening sockets handed to a successor |
//! | [`tls`] | rustls server config for `wss://` and the admin API, reload on SIGHUP |
//! | [`config`] | one `Config`: defaults, env vars, flags, `validate()` |
//! | [`server`] | wiring for `serve` and tests: keys, store or cluster, shards, admin |
//! | [`metrics`] | metric names and the Prometheus recorder |
//! | [`telemetry`] | logging set-up |
//! | `testkit` | (feature `testkit`) the agent side of the protocol, the test `Pair`, the crypto floor |
//!
//! Dependencies point one way: `protocol` and `crypto` import nothing of the gateway's
//! runtime; `store` and `cluster` know `protocol`'s records; `shard` drives `protocol` and calls
//! `store::Fleet`; `ops` calls `store::Fleet` and the shards' `GatewayHandle`; `admin` calls
//! `ops` through its `Backend` trait; `server` wires them.
//!
//! ## Data flow of an inbound message
//!
//! socket → read through the shard's buffer → WebSocket unframe ([`protocol::ws`], headers by
//! tungstenite; an idle connection owns no buffer) → [`protocol::session::Session`] parses the
//! envelope and returns a signature check → the shard's verify batcher checks many at once →
//! the session opens the AEAD, checks seq and routes → actions (replies, presence, event-log
//! and `last_seen` writes through [`store::Fleet`]) are carried out by the connection task.
//!
//! ## Data flow of a command and its ack
//!
//! `POST /api/v1/agents/{id}/send` → [`admin`] validates it into a typed command → [`ops`]
//! writes it to the agent's durable queue ([`store::Fleet`], fsynced or JetStream-acked before
//! the answer `queued`) and nudges the shard that holds the agent (or, in a cluster, the node)
//! → the connection task seals and sends it → a v2 agent's sealed `{"ack": id}` (a v1 agent's
//! delivery, PROTOCOL §7) marks it delivered in the queue; unacked commands are retried after
//! `ACK_TIMEOUT` up to `MESSAGE_RETRY_ATTEMPTS`, expired after `MESSAGE_TTL`.
//!
//! Prerequisites: Linux ≥ 5.8 with io_uring; glommio registers 64 KiB of locked memory per shard.

#![deny(unsafe_code)]

pub mod admin;
pub mod aegisflux;
pub mod cluster;
pub mod config;
pub mod crypto;
pub mod handover;
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
