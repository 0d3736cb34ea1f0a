//! What the fuzzer chooses for a session run: the start, the limits, and a sequence of
//! operations (frames built by a real [`Agent`], mutated or replayed frames, raw garbage, time
//! steps, runtime calls).

use aegis_gateway::protocol::channel::{AgentKind, BackendKind};
use aegis_gateway::protocol::envelope::{Envelope, MsgType};
use aegis_gateway::protocol::payloads::{b64, RegistrationChallenge, RegistrationRequest};
use aegis_gateway::protocol::sigstr;
use aegis_gateway::testkit::agent::Agent;
use arbitrary::Arbitrary;

use crate::keys::{agent_key, other_key};
use crate::mutate::Mutation;

/// One fuzzed session run.
#[derive(Arbitrary, Debug)]
pub struct Scenario {
    /// How the connection starts.
    pub start: Start,
    /// Message rate limit.
    pub rate: RatePick,
    /// Session-expiry jitter (ms).
    pub jitter_ms: u16,
    /// The operations, in order (at most [`MAX_OPS`] are run).
    pub ops: Vec<Op>,
}

/// Most operations run per input.
pub const MAX_OPS: usize = 48;

/// The upgrade and the store's record for the connection.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Start {
    /// First connection, no `X-Aegis-Protocol`.
    Fresh,
    /// First connection pinned to the agent's profile.
    Pinned,
    /// First connection pinned to the other profile (M1 must fail).
    PinnedOther,
    /// Reconnect with the right uid, token and key.
    Reconnect,
    /// Reconnect with a token that does not match the stored hash.
    ReconnectWrongToken,
    /// Reconnect whose stored key is another key.
    ReconnectOtherKey,
    /// Reconnect for a uid the store does not know.
    ReconnectUnknown,
    /// First connection whose `agent_id` is a registered uid.
    FirstButKnown,
}

/// Message rate limit of the run.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum RatePick {
    /// The default (500/s, burst 1000).
    Default,
    /// No limit.
    Off,
    /// A tiny limit, to reach the rate-limit paths.
    Tiny(u8, u8),
}

/// How the runtime answers a signature check.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Verify {
    /// Really verifies.
    Real,
    /// Says valid whatever the signature (a batch verifier bug, or a forged signature).
    Pass,
    /// Says invalid.
    Fail,
}

/// Runtime behaviour around one frame.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub struct Ctx {
    /// Signature check result.
    pub verify: Verify,
    /// Time spent in the verify batcher (ms).
    pub delay_ms: u8,
    /// Whether a durable commit requested by this frame succeeds.
    pub commit_ok: bool,
}

/// A timestamp relative to the session's clock.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum Ts {
    /// Now.
    Now,
    /// Now plus this many seconds.
    Skew(i16),
    /// Any value.
    Any(i64),
}

impl Ts {
    /// Unix seconds for a clock at `now_ms`.
    pub fn at(self, now_ms: i64) -> i64 {
        match self {
            Ts::Now => now_ms / 1000,
            Ts::Skew(s) => now_ms / 1000 + i64::from(s),
            Ts::Any(t) => t,
        }
    }
}

/// An id or host name.
#[derive(Arbitrary, Debug, Clone)]
pub enum Name {
    /// The agent's own (`ident` or configured id).
    Own,
    /// A valid other one.
    Valid(u8),
    /// Anything.
    Other(String),
}

impl Name {
    /// The text, with `own` for [`Name::Own`].
    pub fn text(&self, own: &str) -> String {
        match self {
            Name::Own => own.to_string(),
            Name::Valid(n) => format!("h-{n}"),
            Name::Other(s) => s.clone(),
        }
    }
}

/// A message body.
#[derive(Arbitrary, Debug, Clone)]
pub enum Body {
    /// A small JSON object.
    Json(u16),
    /// A JSON string.
    Text(String),
    /// Arbitrary bytes (usually not JSON).
    Raw(Vec<u8>),
}

impl Body {
    /// The bytes.
    pub fn bytes(&self) -> Vec<u8> {
        match self {
            Body::Json(n) => format!("{{\"n\":{n}}}").into_bytes(),
            Body::Text(s) => serde_json::to_vec(s).unwrap_or_default(),
            Body::Raw(b) => b.clone(),
        }
    }
}

/// A channel.
#[derive(Arbitrary, Debug, Clone)]
pub enum ChannelPick {
    /// `agent.{ident}.{kind}`.
    Own(u8),
    /// `agent.{other}.{kind}`.
    Other(u8),
    /// `backend.{ident}.{kind}`.
    Backend(u8),
    /// `auth`, `ack`, `error`, `agent.registration`, `agent.registration.complete`.
    Special(u8),
    /// Anything.
    Raw(String),
}

impl ChannelPick {
    /// The channel name for an agent whose channel id is `ident`.
    pub fn text(&self, ident: &str) -> String {
        let agent_kind = |k: u8| AgentKind::ALL[usize::from(k) % AgentKind::ALL.len()];
        match self {
            ChannelPick::Own(k) => format!("agent.{ident}.{}", agent_kind(*k)),
            ChannelPick::Other(k) => format!("agent.someone-else.{}", agent_kind(*k)),
            ChannelPick::Backend(k) => {
                let kind = BackendKind::ALL[usize::from(*k) % BackendKind::ALL.len()];
                format!("backend.{ident}.{kind}")
            }
            ChannelPick::Special(n) => {
                let names = [
                    "auth",
                    "ack",
                    "error",
                    "agent.registration",
                    "agent.registration.complete",
                ];
                names[usize::from(*n) % names.len()].to_string()
            }
            ChannelPick::Raw(s) => s.clone(),
        }
    }
}

/// Which M4 to send.
#[derive(Arbitrary, Debug, Clone)]
pub enum M4Pick {
    /// Answers the last R2 the agent read (or a made-up challenge).
    Last,
    /// Another registration id.
    WrongId,
    /// Another host id.
    WrongHost(Name),
}

/// One operation.
#[derive(Arbitrary, Debug)]
pub enum Op {
    /// A valid M1 built by the agent.
    M1 {
        /// Timestamp.
        ts: Ts,
        /// M1 nonce.
        nonce: [u8; 16],
        /// Runtime behaviour.
        ctx: Ctx,
    },
    /// An M1 with fields chosen by the fuzzer.
    CustomM1(Box<CustomM1>, Ctx),
    /// A heartbeat built by the agent.
    Heartbeat(Ts, Ctx),
    /// A message built by the agent.
    Message {
        /// Channel.
        channel: ChannelPick,
        /// Type index.
        msg_type: u8,
        /// Body.
        body: Body,
        /// Timestamp.
        ts: Ts,
        /// Extra headers.
        headers: Vec<(String, String)>,
        /// Runtime behaviour.
        ctx: Ctx,
    },
    /// M3 built by the agent.
    M3 {
        /// host_id.
        host: Name,
        /// Whether `agent_pubkey` is the session key.
        right_key: bool,
        /// Timestamp.
        ts: Ts,
        /// Runtime behaviour.
        ctx: Ctx,
    },
    /// M4 built by the agent.
    M4(M4Pick, Ts, Ctx),
    /// A v2 ack built by the agent.
    Ack(String, Ts, Ctx),
    /// One of the frames sent before, again.
    Replay(u8, Ctx),
    /// One of the frames sent before, mutated.
    Mutate(u8, Mutation, Ctx),
    /// Raw bytes.
    Raw(Vec<u8>, Ctx),
    /// Time passes, then the runtime ticks.
    Tick(TimeStep),
    /// The backend sends a command.
    Command {
        /// Kind index.
        kind: u8,
        /// Type index.
        msg_type: u8,
        /// Message JSON.
        body: Body,
    },
    /// `on_verified` with no check outstanding.
    SpuriousVerified(bool),
    /// `on_agent_committed` with no commit outstanding.
    SpuriousCommitted(bool),
    /// The runtime ends the session (e.g. replaced); index into the error kinds.
    Terminate(u8),
}

/// How far the clock moves.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum TimeStep {
    /// Milliseconds.
    Ms(u16),
    /// Seconds.
    Secs(u16),
    /// Hours (reaches session expiry).
    Hours(u8),
    /// Backwards, milliseconds (wall clocks do that).
    Back(u16),
}

impl TimeStep {
    /// The step in ms (negative for [`TimeStep::Back`]).
    pub fn ms(self) -> i64 {
        match self {
            TimeStep::Ms(n) => i64::from(n),
            TimeStep::Secs(n) => i64::from(n) * 1000,
            TimeStep::Hours(n) => i64::from(n) * 3_600_000,
            TimeStep::Back(n) => -i64::from(n),
        }
    }
}

/// The `v` field of a custom M1.
#[derive(Arbitrary, Debug, Clone, Copy)]
pub enum VPick {
    /// Absent (v1).
    Absent,
    /// `2`.
    Two,
    /// Any number.
    Any(i64),
}

/// A 32-byte key field of a custom M1, as text.
#[derive(Arbitrary, Debug, Clone)]
pub enum KeyPick {
    /// The agent's key.
    Own,
    /// Another valid key.
    Other,
    /// All zeros (the X25519 identity for `kx`).
    Zero,
    /// Any 32 bytes.
    Bytes([u8; 32]),
    /// Any text.
    Text(String),
}

impl KeyPick {
    fn text(&self) -> String {
        match self {
            KeyPick::Own => b64(&agent_key().public()),
            KeyPick::Other => b64(&other_key().public()),
            KeyPick::Zero => b64(&[0; 32]),
            KeyPick::Bytes(b) => b64(b),
            KeyPick::Text(s) => s.clone(),
        }
    }
}

/// The signature of a custom M1.
#[derive(Arbitrary, Debug, Clone)]
pub enum SigPick {
    /// The agent's valid signature over the fields.
    Valid,
    /// A signature over the fields by another key.
    OtherKey,
    /// Any 64 bytes.
    Bytes(Vec<u8>),
    /// Any text.
    Text(String),
}

/// An M1 with fields chosen by the fuzzer (signed correctly if asked to).
#[derive(Arbitrary, Debug, Clone)]
pub struct CustomM1 {
    /// `agent_id`.
    pub agent_id: Name,
    /// `public_key`.
    pub public_key: KeyPick,
    /// `timestamp`.
    pub ts: Ts,
    /// `nonce` bytes (base64 encoded), or text.
    pub nonce: Result<[u8; 16], String>,
    /// `v`.
    pub v: VPick,
    /// `kx`.
    pub kx: Option<KeyPick>,
    /// `signature`.
    pub sig: SigPick,
    /// The envelope's `type` index (0 = request).
    pub msg_type: u8,
}

impl CustomM1 {
    /// The M1 frame for an agent configured with `agent_id`, at `now_ms`.
    pub fn frame(&self, agent_id: &str, now_ms: i64) -> String {
        let agent_id = self.agent_id.text(agent_id);
        let public_key = self.public_key.text();
        let timestamp = self.ts.at(now_ms);
        let nonce = match &self.nonce {
            Ok(b) => b64(b),
            Err(s) => s.clone(),
        };
        let kx = self.kx.as_ref().map(KeyPick::text);
        let v = match self.v {
            VPick::Absent => None,
            VPick::Two => Some(2),
            VPick::Any(n) => Some(n),
        };
        let signed = match v {
            Some(2) => sigstr::v2_auth(
                &agent_id,
                &public_key,
                timestamp,
                &nonce,
                kx.as_deref().unwrap_or(""),
            ),
            _ => sigstr::v1_auth(&agent_id, &public_key, timestamp, &nonce),
        };
        let signature = match &self.sig {
            SigPick::Valid => b64(&agent_key().sign(&signed)),
            SigPick::OtherKey => b64(&other_key().sign(&signed)),
            SigPick::Bytes(b) => b64(b),
            SigPick::Text(s) => s.clone(),
        };
        let mut m1 = serde_json::json!({
            "agent_id": agent_id,
            "public_key": public_key,
            "timestamp": timestamp,
            "nonce": nonce,
            "signature": signature,
        });
        if let Some(v) = v {
            m1["v"] = v.into();
        }
        if let Some(kx) = kx {
            m1["kx"] = kx.into();
        }
        let e = Envelope {
            id: "auth-1".into(),
            msg_type: msg_type(if self.msg_type < 200 {
                0
            } else {
                self.msg_type
            }),
            channel: "auth".into(),
            payload: b64(m1.to_string().as_bytes()),
            timestamp,
            nonce: None,
            signature: None,
            headers: Vec::new(),
        };
        Agent::go_json(&e)
    }
}

/// The n-th message type (mod 6).
pub fn msg_type(n: u8) -> MsgType {
    MsgType::ALL[usize::from(n) % MsgType::ALL.len()]
}

/// The M3 body for `host`, with the agent's key or another one.
pub fn registration_request(agent: &Agent, host: &str, right_key: bool) -> RegistrationRequest {
    RegistrationRequest {
        org_id: "org-1".into(),
        host_id: host.into(),
        agent_pubkey: if right_key {
            agent.public_b64().to_string()
        } else {
            b64(&other_key().public())
        },
        agent_version: "1.0.0".into(),
        capabilities: serde_json::json!(["ebpf"]),
        platform: serde_json::json!({"os": "linux"}),
        network: serde_json::json!({"hostname": host}),
        machine_id_hash: None,
    }
}

/// A challenge that no gateway sent.
pub fn made_up_challenge() -> RegistrationChallenge {
    RegistrationChallenge {
        registration_id: "00000000-0000-4000-8000-000000000000".into(),
        nonce: b64(&[9; 32]),
        server_time: "2023-11-14T22:13:20Z".into(),
    }
}
