//! Sans-IO protocol pieces (PROTOCOL.md): bytes and values in, values and bytes out. No
//! sockets, no runtime, no clock reads (time is a parameter).
//!
//! - [`upgrade`]: the HTTP/1.1 WebSocket upgrade request (§1) and its responses.
//! - [`envelope`]: the JSON envelope of every frame (§2), parsed in place with simd-json.
//! - [`payloads`]: the handshake and error payload JSON (§4, §6, §7), base64 and id helpers.
//! - [`sigstr`]: every signed string and AEAD associated data (§2, §4, §5, §6).
//! - [`channel`]: channel names (§7).
//! - [`error`]: error kinds, their codes, and WebSocket close codes (§7).
//! - [`frame`]: building the frames the gateway sends (plain, v1-encrypted, v2-sealed).
//! - [`replay`]: the M1 nonce replay cache.
//! - [`registration`]: the rules of registration shared by the session and the HTTP fallback.
//! - [`session`]: the per-connection state machine (§3–§7).
//! - [`time`]: the two clocks the session takes ([`time::Now`]: wall and monotonic).
//! - [`ws`]: RFC 6455 framing (server side): message assembly without per-connection buffers.
//!
//! The agent side of the protocol (tests, load generator) is `testkit::agent`.

pub mod channel;
pub mod envelope;
pub mod error;
pub mod frame;
pub mod payloads;
pub mod ratelimit;
pub mod register_http;
pub mod registration;
pub mod replay;
pub mod session;
pub mod sigstr;
pub mod time;
pub mod upgrade;
pub mod ws;

pub use channel::{AgentKind, BackendKind, Channel, ChannelError};
pub use envelope::{Envelope, EnvelopeError, MsgType};
pub use error::{close, Blame, ErrorKind};
pub use payloads::{
    AuthRequest, AuthResponse, ErrorPayload, PayloadError, RegistrationChallenge,
    RegistrationComplete, RegistrationRequest, RegistrationResult,
};
pub use upgrade::{Parsed, UpgradeError, UpgradeRequest};
