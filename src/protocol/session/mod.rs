//! The per-connection protocol state machine (PROTOCOL §3–§7), sans IO.
//!
//! The runtime feeds it frames and the time, and carries out the [`Action`]s it returns. Signature
//! checks are handed out as a [`VerifyJob`] so the runtime can verify many sessions' signatures in
//! one batch; the session resumes with [`Session::on_verified`]. Durable writes (the agent record
//! before R3) are handed out as [`Action::CommitAgent`]; the session resumes with
//! [`Session::on_agent_committed`]. At most one job of either kind is outstanding per session, and
//! the runtime feeds no frame while one is.

mod auth;
mod feed;
mod registration;
mod replies;
mod steady;
mod timers;

use crate::crypto::{AeadKey, SigningKey};
use crate::protocol::envelope::MsgType;
use crate::protocol::replay::NonceCheck;
use crate::protocol::time::Now;
use crate::protocol::upgrade::UpgradeRequest;
use crate::protocol::ErrorKind;

pub use feed::Fed;
pub use registration::{NewAgent, PendingRecord};
pub use replies::RATE_LIMITED_CLOSE;
use replies::{ReplyEncoding, Windows};
#[cfg(any(test, feature = "testkit"))]
pub(crate) use steady::parse_seq;
pub use steady::Parsed;

/// Protocol timers and limits, from configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Accepted clock skew for timestamps, seconds. Default = 300.
    pub timestamp_window_s: i64,
    /// Session lifetime, seconds. Default = 86400 (24 h).
    pub session_timeout_s: i64,
    /// Handshake end after the last handshake reply, ms. Default = 5000.
    pub handshake_grace_ms: i64,
    /// Time allowed for M1 after the upgrade, ms. Default = 10000.
    pub auth_timeout_ms: i64,
    /// Lifetime of a pending registration, seconds. Default = 300.
    pub registration_ttl_s: i64,
    /// Per-connection message rate limit `(per second, burst)` after authentication; `None`
    /// disables it. Default = (500, 1000).
    pub message_rate: Option<(u32, u32)>,
    /// Gateway ping period, ms. Default = 30000.
    pub ping_interval_ms: i64,
    /// A connection that sends nothing (not even a pong) for this long is closed, ms.
    /// Default = 90000.
    pub idle_timeout_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timestamp_window_s: 300,
            session_timeout_s: 86_400,
            handshake_grace_ms: 5_000,
            auth_timeout_ms: 10_000,
            registration_ttl_s: 300,
            message_rate: Some((500, 1000)),
            ping_interval_ms: 30_000,
            idle_timeout_ms: 90_000,
        }
    }
}

/// What the session needs from its surroundings.
pub struct Env<'a> {
    /// The gateway's long-term key.
    pub key: &'a SigningKey,
    /// Timers and limits.
    pub limits: &'a Limits,
    /// The M1 nonce replay cache.
    pub nonces: &'a dyn NonceCheck,
    /// Admission of pending registrations (caps); `None` admits every one.
    pub registrations: Option<&'a dyn crate::protocol::registration::RegistrationGate>,
}

/// A registered agent as the runtime found it in the store (for reconnects, and to refuse a
/// first connection whose `agent_id` is a registered uid).
#[derive(Debug, Clone)]
pub struct KnownAgent {
    /// The agent's uid.
    pub uid: String,
    /// Its registered public key.
    pub public_key: [u8; 32],
    /// Hex SHA-256 of its bootstrap token.
    pub token_hash: String,
}

/// The negotiated profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Legacy Go agent profile.
    V1,
    /// Secure profile.
    V2,
}

impl Profile {
    /// `1` or `2`.
    pub fn number(self) -> u8 {
        match self {
            Profile::V1 => 1,
            Profile::V2 => 2,
        }
    }
}

/// A signature check the runtime must perform (batched) before the session can go on.
#[derive(Debug, Clone)]
pub struct VerifyJob {
    /// Signer's public key (parsed once per session).
    pub public: crate::crypto::PublicKey,
    /// Signed bytes.
    pub msg: Vec<u8>,
    /// Signature.
    pub sig: [u8; 64],
}

/// What the runtime must do, in order.
#[derive(Debug)]
pub enum Action {
    /// Write this text frame.
    Send(String),
    /// Close the WebSocket with this code and reason; nothing is processed afterwards.
    Close(u16, &'static str),
    /// The session authenticated as this canonical identity: register presence (replacing and
    /// closing with 4010 an older connection of the same identity).
    Authenticated {
        /// Canonical identity: the uid, or `agent_id#public_key` before registration.
        identity: String,
        /// Negotiated profile.
        profile: Profile,
    },
    /// The handshake is over: unsolicited frames (queued commands) may now be sent.
    HandshakeOver,
    /// Persist this pending registration (not synced).
    PersistRegistration(PendingRecord),
    /// Forget a pending registration.
    RemoveRegistration(String),
    /// Store this agent durably (synced), then call [`Session::on_agent_committed`].
    CommitAgent(NewAgent),
    /// The connection's identity changed to this uid after R3 (re-key presence).
    Registered {
        /// Identity before registration.
        old_identity: String,
        /// The new uid.
        uid: String,
    },
    /// A verified heartbeat from this identity (update last_seen; no reply).
    Heartbeat,
    /// A verified agent→backend message to route.
    Inbound {
        /// Envelope id.
        id: String,
        /// Channel as sent.
        channel: String,
        /// Envelope type.
        msg_type: MsgType,
        /// Decrypted / decoded JSON body.
        body: String,
    },
    /// A v2 ack for this command id.
    Ack(String),
    /// The [`Action::Ack`] that follows came from an agent built before PROTOCOL §7 put the
    /// acked id in the sealed payload (payload `{}`, id from `headers.ack`): accepted for one
    /// release, counted.
    LegacyAck,
    /// Write a WebSocket ping (the gateway's keepalive, PROTOCOL §1).
    Ping,
    /// A verified frame arrived (v1 delivery accounting: earlier writes are delivered).
    Verified,
    /// An error frame was sent or a frame dropped, for metrics.
    Rejected(ErrorKind),
}

/// Result of feeding a frame: actions to perform now, and maybe a signature check to run before
/// calling [`Session::on_verified`].
#[derive(Debug, Default)]
pub struct Step {
    /// Actions to perform now, in order.
    pub actions: Vec<Action>,
    /// A signature check to run, then resume.
    pub verify: Option<VerifyJob>,
}

impl Step {
    fn actions(actions: Vec<Action>) -> Self {
        Step {
            actions,
            verify: None,
        }
    }
    fn verify(job: VerifyJob) -> Self {
        Step {
            actions: Vec::new(),
            verify: Some(job),
        }
    }
}

/// Session keys per profile. One per session; the size difference is the second AEAD key.
#[allow(clippy::large_enum_variant)]
enum Keys {
    V1 {
        key: AeadKey,
    },
    V2 {
        tx: AeadKey,
        rx: AeadKey,
        send_seq: u64,
        recv_seq: u64,
    },
}

enum Phase {
    AwaitAuth,
    Authed,
    Closed,
}

/// A deferred step waiting for its signature check.
enum Deferred {
    Auth(Box<auth::PendingAuth>),
    Msg(Box<steady::Parsed>),
}

/// What a session keeps of its upgrade request: the path, WebSocket key and user agent were
/// checked by the upgrade, and a long-lived session does not carry them.
struct Peer {
    agent_id: String,
    public_key: [u8; 32],
    public_key_b64: String,
    agent_uid: Option<String>,
    /// Dropped once the session is authenticated.
    bootstrap_token: Option<String>,
    protocol: Option<u8>,
}

impl From<UpgradeRequest> for Peer {
    fn from(u: UpgradeRequest) -> Self {
        Peer {
            agent_id: u.agent_id,
            public_key: u.public_key,
            public_key_b64: u.public_key_b64,
            agent_uid: u.agent_uid,
            bootstrap_token: u.bootstrap_token,
            protocol: u.protocol,
        }
    }
}

/// Per-connection protocol state.
pub struct Session {
    peer: Peer,
    /// The agent's key from the upgrade, decompressed once; `None` if it is not a valid key.
    agent_key: Option<crate::crypto::PublicKey>,
    known: Option<KnownAgent>,
    /// The monotonic time of the latest call that passed one in (see [`Now`]).
    mono_ms: i64,
    /// Timers, monotonic ms: the upgrade (auth timeout), the expiry close, the last handshake
    /// reply (grace), the last inbound traffic (idle timeout), the next ping.
    created_mono: i64,
    phase: Phase,
    profile: Profile,
    keys: Option<Keys>,
    /// uid, or agent_id from M1 before registration (the `{id}` of channels and v1 signatures).
    ident: String,
    identity: String,
    registered: bool,
    close_at_mono: i64,
    handshake_over: bool,
    last_reply_mono: i64,
    last_inbound_mono: i64,
    next_ping_mono: i64,
    // Handshake-only state is boxed: an idle session carries two null pointers, not the
    // registration records.
    committing: Option<Box<registration::Committing>>,
    pending_reg: Option<Box<registration::PendingRecord>>,
    deferred: Option<Deferred>,
    /// Failure windows, allocated at the first failure (most sessions never have one).
    windows: Option<Box<Windows>>,
    bucket: Option<crate::protocol::ratelimit::TokenBucket>,
    session_expires_s: i64,
    expiry_jitter_ms: i64,
}

impl Session {
    /// A session for a connection whose upgrade request was accepted. `known` is the store's
    /// record for `X-Agent-Uid` (reconnect) or for `X-Agent-Id` (first connection), if any.
    /// `expiry_jitter_ms` spreads session-expiry closes (the session closes that much before its
    /// token expires).
    pub fn new(
        upgrade: UpgradeRequest,
        known: Option<KnownAgent>,
        now: impl Into<Now>,
        limits: &Limits,
        expiry_jitter_ms: i64,
    ) -> Self {
        let mono = now.into().mono_ms;
        Session {
            agent_key: crate::crypto::PublicKey::parse(&upgrade.public_key),
            peer: Peer::from(upgrade),
            known,
            mono_ms: mono,
            created_mono: mono,
            phase: Phase::AwaitAuth,
            profile: Profile::V1,
            keys: None,
            ident: String::new(),
            identity: String::new(),
            registered: false,
            close_at_mono: i64::MAX,
            handshake_over: false,
            last_reply_mono: mono,
            last_inbound_mono: mono,
            next_ping_mono: mono.saturating_add(limits.ping_interval_ms),
            committing: None,
            pending_reg: None,
            deferred: None,
            windows: None,
            bucket: None,
            session_expires_s: 0,
            expiry_jitter_ms: expiry_jitter_ms.max(0),
        }
    }

    /// Takes the time of a call: remembers its monotonic part for the timers set while the
    /// call runs, returns its wall part.
    fn clock(&mut self, now: impl Into<Now>) -> i64 {
        let now = now.into();
        self.mono_ms = now.mono_ms;
        now.unix_ms
    }

    fn windows(&mut self) -> &mut Windows {
        self.windows.get_or_insert_with(Box::default)
    }

    /// The canonical identity used for sharding before authentication: the uid on a reconnect,
    /// `agent_id#public_key` otherwise.
    pub fn canonical_id(upgrade: &UpgradeRequest) -> String {
        match &upgrade.agent_uid {
            Some(uid) => uid.clone(),
            None => unregistered_identity(&upgrade.agent_id, &upgrade.public_key_b64),
        }
    }

    /// Whether M1 succeeded.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.phase, Phase::Authed)
    }

    /// Whether the handshake is over (queued commands may be sent).
    pub fn handshake_over(&self) -> bool {
        self.handshake_over
    }

    /// The negotiated profile (meaningful once authenticated).
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The canonical identity once authenticated.
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The `{id}` of this agent's channels: uid, or agent_id before registration.
    pub fn ident(&self) -> &str {
        &self.ident
    }

    /// Whether the agent is registered (reconnect, or after R3).
    pub fn is_registered(&self) -> bool {
        self.registered
    }

    /// Unix seconds at which the session token expires (0 before authentication).
    pub fn session_expires(&self) -> i64 {
        self.session_expires_s
    }

    /// The id of the registration this connection has pending (after R2, before R3), if any.
    pub fn pending_registration(&self) -> Option<&str> {
        self.pending_reg
            .as_deref()
            .map(|p| p.registration_id.as_str())
    }

    /// The agent's public key as presented in the upgrade.
    pub fn public_key(&self) -> &[u8; 32] {
        &self.peer.public_key
    }

    /// Feeds one received message (text or binary frame contents).
    pub fn on_frame(&mut self, env: &Env<'_>, frame: &mut [u8], now: impl Into<Now>) -> Step {
        let now_ms = self.clock(now);
        match self.phase {
            Phase::Closed => Step::default(),
            Phase::AwaitAuth if self.deferred.is_some() => Step::default(),
            Phase::AwaitAuth => self.on_auth_frame(env, frame, now_ms),
            Phase::Authed => self.on_session_frame(env, frame, now_ms),
        }
    }

    /// Resumes after the signature check handed out by the previous [`Step`].
    pub fn on_verified(&mut self, env: &Env<'_>, ok: bool, now: impl Into<Now>) -> Vec<Action> {
        let now_ms = self.clock(now);
        match self.deferred.take() {
            Some(Deferred::Auth(p)) => self.finish_auth(env, *p, ok, now_ms),
            Some(Deferred::Msg(p)) => self.finish_parsed(env, *p, ok, now_ms),
            None => Vec::new(),
        }
    }

    /// Closes the session for a graceful reason decided by the runtime (e.g. replaced by a newer
    /// connection): sends the error frame when one applies and returns the close. Nothing on a
    /// session that is already closed.
    pub fn terminate(
        &mut self,
        env: &Env<'_>,
        kind: ErrorKind,
        now: impl Into<Now>,
    ) -> Vec<Action> {
        let now_ms = self.clock(now);
        let mut out = Vec::new();
        if matches!(self.phase, Phase::Closed) {
            return out;
        }
        if matches!(self.phase, Phase::Authed) {
            self.fatal(
                env,
                &mut out,
                kind,
                "connection closed by the gateway",
                now_ms,
            );
        } else {
            self.phase = Phase::Closed;
            out.push(Action::Close(kind.code(), kind.as_str()));
        }
        out
    }
}

/// Whether timestamp `ts` is at most `window_s` seconds away from `now_s`. `ts` comes from the
/// peer: the difference is computed without overflow (an `i64::MIN`-ish `ts` is simply out of
/// the window).
fn within_window(ts: i64, now_s: i64, window_s: i64) -> bool {
    ts.checked_sub(now_s)
        .and_then(i64::checked_abs)
        .is_some_and(|d| d <= window_s)
}

/// The identity of an unregistered agent: `agent_id#public_key` (`#` is in neither character set).
pub fn unregistered_identity(agent_id: &str, public_key_b64: &str) -> String {
    let mut s = String::with_capacity(agent_id.len() + 1 + public_key_b64.len());
    s.push_str(agent_id);
    s.push('#');
    s.push_str(public_key_b64);
    s
}

#[cfg(test)]
mod tests;
