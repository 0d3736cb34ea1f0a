//! Fixtures shared by the criterion benches: realistic v2 messages, the handshake crypto floor,
//! a hand-driven gateway side of the v2 handshake (to know the session keys), and authenticated
//! gateway [`Session`]s driven without IO, the way `src/protocol/session/tests.rs` does.
//!
//! Each bench binary uses a subset, hence the `dead_code` allowance.
#![allow(dead_code)]

pub mod clock;
pub mod work;

pub use aegis_gateway::testkit::floor::{claims, event_body};

use std::sync::Mutex;

use aegis_gateway::crypto::kdf::{derive_v2, Ephemeral, SessionKeys};
use aegis_gateway::crypto::{self, random, token, SigningKey};
use aegis_gateway::protocol::envelope::MsgType;
use aegis_gateway::protocol::payloads::b64;
use aegis_gateway::protocol::replay::NonceCache;
use aegis_gateway::protocol::session::{Action, Env, KnownAgent, Limits, Profile, Session};
use aegis_gateway::protocol::upgrade::UpgradeRequest;
use aegis_gateway::protocol::{frame, sigstr};
use aegis_gateway::testkit::agent::Agent;

/// Unix seconds of every timestamp in the fixtures.
pub const T0_S: i64 = 1_700_000_000;
/// [`T0_S`] in milliseconds (the session's `now_ms`).
pub const T0_MS: i64 = T0_S * 1000;
/// The agent id agents put in M1 (the Go agent's default).
pub const AGENT_ID: &str = "aegis-agent-001";
/// Batch size of the shard's verify batcher under load (DESIGN.md: up to 64).
pub const BATCH: usize = 64;

/// Body length giving a ~700-byte v2 envelope on `agent.{uuid}.threats`.
pub const EVENT_BODY_LEN: usize = 300;

/// A v2 `aegis/2:msg:…` signature input of about 600 bytes, distinct for each `i`.
pub fn v2_signed_string(i: usize) -> Vec<u8> {
    let channel = format!("agent.{}.threats", random::uuid_v4());
    let nonce = b64(&random::bytes::<16>());
    let mut payload = vec![0u8; 365];
    random::fill(&mut payload);
    let payload = b64(&payload);
    let s = sigstr::v2_msg(
        &format!("msg-{i}"),
        MsgType::Event.as_str(),
        &channel,
        T0_S,
        &nonce,
        i as u64 + 1,
        &payload,
    );
    assert!(
        (580..=620).contains(&s.len()),
        "signed string is {} B",
        s.len()
    );
    s
}

/// What the gateway holds when a v2 M1 has been parsed and checked (everything but crypto).
pub struct HandshakeInput {
    /// Gateway long-term key.
    pub gw: SigningKey,
    /// Agent long-term public key.
    pub agent_pub: [u8; 32],
    /// `aegis/2:auth:…` as signed by the agent.
    pub m1_signed: Vec<u8>,
    /// The M1 signature.
    pub m1_sig: [u8; 64],
    /// M1 nonce (raw and base64).
    pub m1_nonce: [u8; 16],
    m1_nonce_b64: String,
    /// The agent's ephemeral X25519 public key (raw and base64).
    pub kx: [u8; 32],
    kx_b64: String,
    claims: token::Claims,
    server_nonce: [u8; 16],
    server_nonce_b64: String,
    /// A stand-in for R1's `aegis/1:msg` envelope signature input, of R1's real length.
    r1_envelope_signed: Vec<u8>,
}

impl HandshakeInput {
    /// A valid v2 M1 from a fresh agent key.
    pub fn new() -> Self {
        let gw = SigningKey::generate();
        let agent = SigningKey::generate();
        let pk_b64 = b64(&agent.public());
        let m1_nonce = random::bytes::<16>();
        let m1_nonce_b64 = b64(&m1_nonce);
        let (_, kx) = Ephemeral::generate();
        let kx_b64 = b64(&kx);
        let m1_signed = sigstr::v2_auth(AGENT_ID, &pk_b64, T0_S, &m1_nonce_b64, &kx_b64);
        let m1_sig = agent.sign(&m1_signed);
        let server_nonce = random::bytes::<16>();
        // R1 payload is base64 of ~560 B of JSON (token ~360 B): ~750 B of base64.
        let r1_envelope_signed = sigstr::gateway_msg(
            &frame::new_id(),
            "response",
            "auth",
            T0_S,
            &b64(&random::bytes::<12>()),
            &b64(&[b'x'; 560]),
        );
        HandshakeInput {
            claims: claims(AGENT_ID, &pk_b64),
            gw,
            agent_pub: agent.public(),
            m1_signed,
            m1_sig,
            m1_nonce,
            m1_nonce_b64,
            kx,
            kx_b64,
            server_nonce_b64: b64(&server_nonce),
            server_nonce,
            r1_envelope_signed,
        }
    }

    /// The v2 handshake crypto floor (DESIGN.md §6): verify the M1 signature, X25519
    /// generate + agree, `derive_v2`, sign the session token, sign R1 (`aegis/2:auth-ok`).
    /// With `envelope_sig`, also the R1 envelope's `aegis/1:msg` signature, which PROTOCOL.md §2
    /// requires on every frame outside the sealed path (R1 included).
    pub fn floor(&self, envelope_sig: bool) -> (SessionKeys, String, [u8; 64], Option<[u8; 64]>) {
        assert!(crypto::verify(
            &self.agent_pub,
            &self.m1_signed,
            &self.m1_sig
        ));
        let (eph, eph_pub) = Ephemeral::generate();
        let shared = eph.agree(&self.kx).expect("agent kx is a valid X25519 key");
        let keys = derive_v2(&shared, &self.m1_nonce, &self.server_nonce);
        let session_token = token::sign(&self.gw, &self.claims);
        let r1_signed = sigstr::v2_auth_ok(
            &self.m1_nonce_b64,
            &self.kx_b64,
            &b64(&eph_pub),
            &self.server_nonce_b64,
            &session_token,
            self.claims.exp,
        );
        let r1_sig = self.gw.sign(&r1_signed);
        let env_sig = envelope_sig.then(|| self.gw.sign(&self.r1_envelope_signed));
        (keys, session_token, r1_sig, env_sig)
    }
}

/// The gateway side of the v2 handshake done by hand (not through [`Session`]), so the bench
/// knows the session keys ([`aegis_gateway::testkit::floor::link`]).
pub fn manual_link(gw: &SigningKey, uid: &str) -> (Agent, SessionKeys) {
    aegis_gateway::testkit::floor::link(gw, AGENT_ID, uid)
}

/// The gateway's surroundings of a [`Session`]: key, limits, the global nonce cache (behind a
/// mutex, as the runtime holds it).
pub struct Gateway {
    /// Gateway long-term key.
    pub key: SigningKey,
    /// Default limits.
    pub limits: Limits,
    /// M1 replay cache.
    pub nonces: Mutex<NonceCache>,
}

impl Gateway {
    /// A gateway with a fresh key.
    pub fn new() -> Self {
        Gateway {
            key: SigningKey::generate(),
            limits: Limits::default(),
            nonces: Mutex::new(NonceCache::new()),
        }
    }

    /// The session environment.
    pub fn env(&self) -> Env<'_> {
        Env {
            key: &self.key,
            limits: &self.limits,
            nonces: &self.nonces,
            registrations: None,
        }
    }
}

/// A registered v2 agent reconnecting (the steady state: every reconnect storm is this).
pub struct Registered {
    /// The agent side (ident = uid).
    pub agent: Agent,
    /// Its upgrade request (`X-Agent-Uid`, `X-Bootstrap-Token`, `X-Aegis-Protocol: 2`).
    pub upgrade: UpgradeRequest,
    /// What the store returns for the uid.
    pub known: KnownAgent,
}

impl Registered {
    /// A fresh registered agent of `gw`.
    pub fn new(gw: &Gateway) -> Self {
        let uid = random::uuid_v4();
        let bootstrap = random::token_urlsafe(32);
        let mut agent = Agent::new(
            SigningKey::generate(),
            AGENT_ID,
            Profile::V2,
            Some(gw.key.public()),
        );
        agent.set_uid(&uid);
        let upgrade = UpgradeRequest {
            path: "/ws/agent".into(),
            ws_key: "dGhlIHNhbXBsZSBub25jZQ==".into(),
            user_agent: "Aegis-Agent/2.0".into(),
            agent_id: uid.clone(),
            public_key: agent.key().public(),
            public_key_b64: agent.public_b64().to_string(),
            agent_uid: Some(uid.clone()),
            bootstrap_token: Some(bootstrap.clone()),
            protocol: Some(2),
        };
        let known = KnownAgent {
            uid,
            public_key: agent.key().public(),
            token_hash: crypto::hash_token(&bootstrap),
        };
        Registered {
            agent,
            upgrade,
            known,
        }
    }

    /// A new gateway session for this agent's connection, before M1.
    pub fn session(&self, now_ms: i64) -> Session {
        Session::new(
            self.upgrade.clone(),
            Some(self.known.clone()),
            now_ms,
            &Limits::default(),
            0,
        )
    }

    /// The agent's M1 for a new connection (fresh nonce and ephemeral key).
    pub fn m1(&mut self, now_ms: i64) -> Vec<u8> {
        self.agent.reset_session();
        self.agent.m1(now_ms / 1000, random::bytes()).into_bytes()
    }

    /// A ~700-byte sealed event from the agent on its own `threats` channel.
    pub fn event(&mut self, body: &[u8], now_ms: i64) -> Vec<u8> {
        let channel = format!("agent.{}.threats", self.agent.ident());
        self.agent
            .message(&channel, MsgType::Event, body, now_ms / 1000, Vec::new())
            .expect("agent is authenticated")
            .into_bytes()
    }

    /// Connects: M1 through `session` with its signature check, R1 back to the agent.
    pub fn connect(&mut self, gw: &Gateway, now_ms: i64) -> Session {
        let mut session = self.session(now_ms);
        let mut m1 = self.m1(now_ms);
        let actions = m1_to_r1(gw, &mut session, &mut m1, now_ms);
        let r1 = sent(&actions).expect("R1 is sent");
        self.agent.on_r1(r1.as_bytes()).expect("agent accepts R1");
        assert!(session.is_authenticated() && session.handshake_over());
        session
    }
}

/// Feeds M1 to `session`, verifies the signature job (single verify: a lone handshake is a
/// batch of one in the shard's batcher) and resumes; returns the actions (R1 first).
pub fn m1_to_r1(gw: &Gateway, session: &mut Session, m1: &mut [u8], now_ms: i64) -> Vec<Action> {
    let env = gw.env();
    let step = session.on_frame(&env, m1, now_ms);
    let job = step.verify.expect("a valid M1 asks for a signature check");
    let ok = job.public.verify(&job.msg, &job.sig);
    session.on_verified(&env, ok, now_ms)
}

/// The first frame sent among `actions`, if any.
pub fn sent(actions: &[Action]) -> Option<&str> {
    actions.iter().find_map(|a| match a {
        Action::Send(s) => Some(s.as_str()),
        _ => None,
    })
}

/// Whether `actions` route one inbound message.
pub fn routed(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Inbound { .. }))
}
