//! The crypto floor of an inbound v2 message (DESIGN §6): what no gateway can avoid doing for a
//! sealed message — parse its envelope, verify its signature (in a batch of 64, as the shard's
//! batcher does under load), decode and open its payload — and nothing else. It is the
//! denominator of the "gateway CPU per inbound message" target, measured by `benches/` and by
//! `aegis-loadgen throughput` in the same run as the gateway's own CPU.
//!
//! The gateway side of the handshake is done by hand here ([`link`]) so the floor knows the
//! session key; no socket, runtime or session is involved.

use crate::crypto::kdf::{derive_v2, Ephemeral, SessionKeys};
use crate::crypto::SigningKey;
use crate::crypto::{aead, random, token, verify_batch_parsed, AeadKey, ParsedItem, PublicKey};
use crate::protocol::envelope::{self, Envelope, MsgType};
use crate::protocol::payloads::{b64, decode_b64_exact, AuthRequest, AuthResponse};
use crate::protocol::session::Profile;
use crate::protocol::{frame, sigstr};
use crate::testkit::agent::Agent;
use base64::Engine as _;

/// Unix seconds of the floor's timestamps (the floor checks no clock).
pub const T0_S: i64 = 1_700_000_000;

/// Size of the event body of the floor's messages (a typical eBPF threat report).
pub const EVENT_BODY_LEN: usize = 300;

/// What every floor here is: frames, checked in place one run at a time. A run gets a fresh
/// copy of the frames ([`Floor::inputs`]) because parsing rewrites them.
pub trait Floor {
    /// The frames one run checks.
    fn frames(&self) -> &[Vec<u8>];

    /// The floor itself, on `bufs` from [`Floor::inputs`]; returns the total plaintext length.
    ///
    /// # Panics
    /// If a frame does not check out (the inputs were not this floor's).
    fn run(&mut self, bufs: &mut [Vec<u8>]) -> usize;

    /// A fresh copy of the frames, for one run.
    fn inputs(&self) -> Vec<Vec<u8>> {
        self.frames().to_vec()
    }

    /// How many messages one run checks.
    fn len(&self) -> usize {
        self.frames().len()
    }

    /// Whether there are no messages.
    fn is_empty(&self) -> bool {
        self.frames().is_empty()
    }
}

/// A JSON event body of exactly `len` bytes (an eBPF threat report padded in `details`).
pub fn event_body(len: usize) -> Vec<u8> {
    let head = r#"{"rule":"exec-untrusted","pid":41327,"comm":"curl","path":"/usr/bin/curl","severity":"high","details":""#;
    let tail = r#""}"#;
    let pad = len.saturating_sub(head.len() + tail.len());
    let mut s = String::with_capacity(len);
    s.push_str(head);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str(tail);
    s.into_bytes()
}

/// The session token claims the hand-made R1 carries.
pub fn claims(sub: &str, agent_pk_b64: &str) -> token::Claims {
    token::Claims {
        iss: "aegis-gateway".to_string(),
        sub: sub.to_string(),
        pk: agent_pk_b64.to_string(),
        iat: T0_S,
        exp: T0_S + 86_400,
        jti: random::token_urlsafe(16),
        v: 2,
    }
}

/// The gateway side of the v2 handshake done by hand for a new agent with id `agent_id` and uid
/// `uid`: returns the agent (its `on_r1` accepted the reply) and the session keys.
///
/// # Panics
/// Only if the protocol code itself is broken (the agent's own M1 does not parse, or it
/// refuses a correct R1).
pub fn link(gw: &SigningKey, agent_id: &str, uid: &str) -> (Agent, SessionKeys) {
    let mut agent = Agent::new(
        SigningKey::generate(),
        agent_id,
        Profile::V2,
        Some(gw.public()),
    );
    agent.set_uid(uid);
    let mut m1 = agent.m1(T0_S, random::bytes()).into_bytes();
    let e = envelope::parse(&mut m1).expect("M1 parses");
    let raw = base64::engine::general_purpose::STANDARD
        .decode(e.payload.as_bytes())
        .expect("M1 payload is base64");
    let req: AuthRequest = serde_json::from_slice(&raw).expect("M1 payload JSON");
    let kx_b64 = req.kx.clone().expect("v2 M1 has kx");
    let kx = decode_b64_exact::<32>(&kx_b64).expect("kx is 32 bytes");
    let nonce = decode_b64_exact::<16>(&req.nonce).expect("nonce is 16 bytes");
    let (eph, eph_pub) = Ephemeral::generate();
    let shared = eph.agree(&kx).expect("agree");
    let server_nonce = random::bytes::<16>();
    let keys = derive_v2(&shared, &nonce, &server_nonce);
    let c = claims(uid, agent.public_b64());
    let session_token = token::sign(gw, &c);
    let (backend_key, sn) = (b64(&eph_pub), b64(&server_nonce));
    let signed = sigstr::v2_auth_ok(
        &req.nonce,
        &kx_b64,
        &backend_key,
        &sn,
        &session_token,
        c.exp,
    );
    let resp = AuthResponse {
        success: true,
        session_token,
        backend_key,
        expires_at: c.exp,
        message: "authenticated".to_string(),
        v: Some(2),
        server_nonce: Some(sn),
        signature: Some(b64(&gw.sign(&signed))),
    };
    let json = serde_json::to_vec(&resp).expect("R1 JSON");
    let r1 = frame::plain(
        gw,
        frame::new_id(),
        MsgType::Response,
        "auth".into(),
        b64(&json),
        T0_S,
    );
    agent
        .on_r1(r1.to_json().as_bytes())
        .expect("agent accepts the hand-made R1");
    (agent, keys)
}

/// `n` consecutive sealed events of one agent and what it takes to check them: the agent key
/// parsed once (as the gateway does per session, so the ratio stays honest) and the session key.
pub struct InboundFloor {
    agent_pub: PublicKey,
    rx: AeadKey,
    frames: Vec<Vec<u8>>,
    ok: Vec<bool>,
}

impl InboundFloor {
    /// `n` sealed events with a body of `body_len` bytes (≈ 700-byte frames at 300).
    pub fn new(n: usize, body_len: usize) -> Self {
        let gw = SigningKey::generate();
        let (mut agent, keys) = link(&gw, "aegis-agent-001", &random::uuid_v4());
        let body = event_body(body_len);
        let channel = format!("agent.{}.threats", agent.ident());
        let frames = (0..n)
            .map(|_| {
                let f = agent.message(&channel, MsgType::Event, &body, T0_S, Vec::new());
                f.expect("authenticated").into_bytes()
            })
            .collect();
        InboundFloor {
            agent_pub: PublicKey::parse(&agent.key().public()).expect("valid key"),
            rx: AeadKey::new(&keys.a2g),
            frames,
            ok: Vec::with_capacity(n),
        }
    }

    /// The first frame (a sample envelope).
    pub fn frame(&self) -> &[u8] {
        self.frames.first().map_or(&[], Vec::as_slice)
    }
}

impl Floor for InboundFloor {
    fn frames(&self) -> &[Vec<u8>] {
        &self.frames
    }

    /// Parse every envelope, verify all signatures in one batch, open every payload.
    fn run(&mut self, bufs: &mut [Vec<u8>]) -> usize {
        let envs: Vec<Envelope> = bufs
            .iter_mut()
            .map(|b| envelope::parse(b).expect("envelope"))
            .collect();
        let mut signed = Vec::with_capacity(envs.len());
        for e in &envs {
            let seq: u64 = e.header("seq").and_then(|s| s.parse().ok()).expect("seq");
            let sig = e.signature.as_deref().and_then(decode_b64_exact::<64>);
            let nonce = e.nonce.as_deref().expect("nonce");
            let ty = e.msg_type.as_str();
            let s = sigstr::v2_msg(&e.id, ty, &e.channel, e.timestamp, nonce, seq, &e.payload);
            signed.push((seq, s, sig.expect("signature")));
        }
        let public = &self.agent_pub;
        let items: Vec<ParsedItem<'_>> = signed
            .iter()
            .map(|(_, msg, sig)| ParsedItem { public, msg, sig })
            .collect();
        verify_batch_parsed(&items, &mut self.ok);
        assert!(self.ok.len() == envs.len() && self.ok.iter().all(|v| *v));
        let mut total = 0;
        for (e, (seq, _, _)) in envs.iter().zip(&signed) {
            let aad = sigstr::v2_aad(&e.id, e.msg_type.as_str(), &e.channel, e.timestamp, *seq);
            let mut buf = base64::engine::general_purpose::STANDARD
                .decode(e.payload.as_bytes())
                .expect("payload base64");
            let nonce = aead::v2_nonce(*seq);
            total += self
                .rx
                .open_in_place(&nonce, &aad, &mut buf)
                .expect("opens")
                .len();
        }
        total
    }
}

/// Heartbeats of one agent as a fleet sends them — one at a time, each verified alone (the
/// shard's batch of one at low rate) — and what it takes to check them: the floor of the
/// `fleet` shape (DESIGN §9). v1: parse, the v1 signature string, one verify, the base64
/// payload decoded; v2: parse, one verify, open.
pub struct HeartbeatFloor {
    profile: Profile,
    ident: String,
    pk_b64: String,
    agent_pub: PublicKey,
    rx: Option<AeadKey>,
    frames: Vec<Vec<u8>>,
    ok: Vec<bool>,
}

impl HeartbeatFloor {
    /// `n` heartbeats of a new `profile` agent (seconds apart, as a fleet's are).
    ///
    /// # Panics
    /// Only if the protocol code itself is broken (see [`link`]).
    pub fn new(profile: Profile, n: usize) -> Self {
        let uid = random::uuid_v4();
        let (mut agent, rx) = match profile {
            Profile::V2 => {
                let (a, keys) = link(&SigningKey::generate(), "aegis-agent-001", &uid);
                (a, Some(AeadKey::new(&keys.a2g)))
            }
            Profile::V1 => {
                let mut a = Agent::new(SigningKey::generate(), "aegis-agent-001", profile, None);
                a.set_uid(&uid);
                a.assume_v1_session();
                (a, None)
            }
        };
        let frames = (0..n)
            .map(|i| {
                let ts = T0_S + 30 * i as i64;
                let f = agent.heartbeat(ts).expect("authenticated");
                f.into_bytes()
            })
            .collect();
        HeartbeatFloor {
            profile,
            ident: agent.ident().to_string(),
            pk_b64: agent.public_b64().to_string(),
            agent_pub: PublicKey::parse(&agent.key().public()).expect("valid key"),
            rx,
            frames,
            ok: Vec::with_capacity(1),
        }
    }
}

impl Floor for HeartbeatFloor {
    fn frames(&self) -> &[Vec<u8>] {
        &self.frames
    }

    /// Each heartbeat parsed and verified alone; v1 payloads decoded, v2 ones opened.
    fn run(&mut self, bufs: &mut [Vec<u8>]) -> usize {
        let mut total = 0;
        for b in bufs.iter_mut() {
            let e = envelope::parse(b).expect("envelope");
            let sig = e.signature.as_deref().and_then(decode_b64_exact::<64>);
            let sig = sig.expect("signature");
            let nonce = e.nonce.as_deref().expect("nonce");
            let ty = e.msg_type.as_str();
            let (seq, msg) = match self.profile {
                Profile::V1 => (
                    0,
                    sigstr::v1_msg(&self.ident, &self.pk_b64, e.timestamp, nonce),
                ),
                Profile::V2 => {
                    let seq: u64 = e.header("seq").and_then(|s| s.parse().ok()).expect("seq");
                    let s =
                        sigstr::v2_msg(&e.id, ty, &e.channel, e.timestamp, nonce, seq, &e.payload);
                    (seq, s)
                }
            };
            let item = ParsedItem {
                public: &self.agent_pub,
                msg: &msg,
                sig: &sig,
            };
            verify_batch_parsed(&[item], &mut self.ok);
            assert!(self.ok.first() == Some(&true), "heartbeat verifies");
            let mut buf = base64::engine::general_purpose::STANDARD
                .decode(e.payload.as_bytes())
                .expect("payload base64");
            total += match &self.rx {
                None => buf.len(),
                Some(rx) => {
                    let aad = sigstr::v2_aad(&e.id, ty, &e.channel, e.timestamp, seq);
                    let nonce = aead::v2_nonce(seq);
                    rx.open_in_place(&nonce, &aad, &mut buf)
                        .expect("opens")
                        .len()
                }
            };
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_floors_check_every_heartbeat_of_both_profiles() {
        for profile in [Profile::V1, Profile::V2] {
            let mut f = HeartbeatFloor::new(profile, 3);
            assert_eq!(f.len(), 3);
            let mut bufs = f.inputs();
            // `{"status":"healthy","timestamp":1700000000}` and its successors.
            assert_eq!(f.run(&mut bufs), 3 * 43, "{profile:?}");
        }
    }

    #[test]
    #[should_panic(expected = "heartbeat verifies")]
    fn a_heartbeat_floor_refuses_another_agents_heartbeats() {
        let mut f = HeartbeatFloor::new(Profile::V1, 1);
        let other = HeartbeatFloor::new(Profile::V1, 1);
        let mut bufs = other.inputs();
        f.run(&mut bufs);
    }

    #[test]
    fn floor_checks_and_opens_every_message() {
        let mut f = InboundFloor::new(8, EVENT_BODY_LEN);
        assert_eq!(f.len(), 8);
        let mut bufs = f.inputs();
        assert_eq!(f.run(&mut bufs), 8 * EVENT_BODY_LEN);
        assert!(f.frame().len() > 600, "a realistic frame");
    }

    #[test]
    #[should_panic(expected = "opens")]
    fn floor_refuses_frames_it_cannot_open() {
        let mut f = InboundFloor::new(2, 64);
        let other = InboundFloor::new(2, 64);
        // Another agent's frames: signatures fail first (batch), or opening does.
        let mut bufs = other.inputs();
        f.agent_pub = other.agent_pub;
        f.run(&mut bufs);
    }
}
