//! A gateway session and an agent side by side, no IO (quinn-proto's test `Pair`): frames
//! passed by hand, signatures checked as the runtime does, time virtual. One pair for the
//! session's unit tests, the property tests and the fuzz harnesses.

use crate::crypto::{self, SigningKey};
use crate::protocol::channel::BackendKind;
use crate::protocol::envelope::MsgType;
use crate::protocol::payloads::{RegistrationChallenge, RegistrationRequest, RegistrationResult};
use crate::protocol::replay::NonceCache;
use crate::protocol::session::{Action, Env, Limits, Profile, Session};
use crate::protocol::upgrade::UpgradeRequest;
use crate::testkit::agent::Agent;
use std::cell::RefCell;

/// The start of virtual time (Unix ms).
pub const T0: i64 = 1_700_000_000_000;

/// A gateway [`Session`] and an [`Agent`] that pass frames by hand, on virtual time (`now`,
/// the same value on both clocks), with everything the session's [`Env`] borrows.
pub struct Pair {
    /// The gateway's key.
    pub gw: SigningKey,
    /// The session's timers and limits.
    pub limits: Limits,
    /// The M1 replay cache.
    pub nonces: RefCell<NonceCache>,
    /// The gateway side.
    pub session: Session,
    /// The agent side.
    pub agent: Agent,
    /// Virtual time, Unix ms.
    pub now: i64,
}

/// The upgrade request `agent` sends (a reconnect with `(uid, token)`).
pub fn upgrade_for(
    agent: &Agent,
    reconnect: Option<(&str, &str)>,
    protocol: Option<u8>,
) -> UpgradeRequest {
    let (agent_id, uid, token) = match reconnect {
        Some((uid, token)) => (
            uid.to_string(),
            Some(uid.to_string()),
            Some(token.to_string()),
        ),
        None => (agent.agent_id().to_string(), None, None),
    };
    UpgradeRequest {
        path: "/ws/agent".into(),
        ws_key: "dGhlIHNhbXBsZSBub25jZQ==".into(),
        user_agent: "Aegis-Agent/1.0".into(),
        agent_id,
        public_key: agent.key().public(),
        public_key_b64: agent.public_b64().to_string(),
        agent_uid: uid,
        bootstrap_token: token,
        protocol,
    }
}

impl Pair {
    /// A fresh connection of a new agent with `profile` (default limits, random keys).
    pub fn new(profile: Profile) -> Pair {
        let gw = SigningKey::generate();
        let agent = Agent::new(
            SigningKey::generate(),
            "aegis-agent-001",
            profile,
            Some(gw.public()),
        );
        Pair::with_keys(gw, agent, None, Limits::default())
    }

    /// A fresh connection of `agent` to a gateway with key `gw`, announcing `protocol` in the
    /// upgrade, under `limits`.
    pub fn with_keys(gw: SigningKey, agent: Agent, protocol: Option<u8>, limits: Limits) -> Pair {
        let up = upgrade_for(&agent, None, protocol);
        Pair {
            session: Session::new(up, None, T0, &limits, 0),
            gw,
            limits,
            nonces: RefCell::new(NonceCache::new()),
            agent,
            now: T0,
        }
    }

    /// Runs `f` with the session and its environment (disjoint borrows of the pair).
    pub fn with<R>(&mut self, f: impl FnOnce(&mut Session, &Env<'_>, i64) -> R) -> R {
        let env = Env {
            key: &self.gw,
            limits: &self.limits,
            nonces: &self.nonces,
            registrations: None,
        };
        f(&mut self.session, &env, self.now)
    }

    /// Feeds a frame, performing the signature check like the runtime does.
    pub fn feed(&mut self, frame: &str) -> Vec<Action> {
        let mut buf = frame.as_bytes().to_vec();
        let now = self.now;
        let env = Env {
            key: &self.gw,
            limits: &self.limits,
            nonces: &self.nonces,
            registrations: None,
        };
        let step = self.session.on_frame(&env, &mut buf, now);
        let mut out = step.actions;
        if let Some(job) = step.verify {
            let ok = job.public.verify(&job.msg, &job.sig);
            out.extend(self.session.on_verified(&env, ok, now));
        }
        out
    }

    /// Builds a frame with the agent and feeds it.
    pub fn feed_agent(&mut self, f: impl FnOnce(&mut Agent, i64) -> String) -> Vec<Action> {
        let ts = self.ts();
        let frame = f(&mut self.agent, ts);
        self.feed(&frame)
    }

    /// Virtual time in Unix seconds.
    pub fn ts(&self) -> i64 {
        self.now / 1000
    }

    /// M1 → R1; returns the actions.
    pub fn authenticate(&mut self) -> Vec<Action> {
        let m1 = self.agent.m1(self.ts(), crypto::random::bytes::<16>());
        let actions = self.feed(&m1);
        let r1 = sends(&actions);
        assert_eq!(r1.len(), 1, "exactly R1 is sent: {actions:?}");
        self.agent
            .on_r1(r1[0].as_bytes())
            .expect("R1 accepted by the agent");
        actions
    }

    /// M3 → R2 → M4 → commit → R3; returns (uid, token).
    pub fn register(&mut self) -> (String, String) {
        let req = registration_request(&self.agent, "host-1");
        let m3 = self.agent.m3(&req, self.ts()).unwrap();
        let actions = self.feed(&m3);
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::PersistRegistration(_))));
        let r2 = sends(&actions);
        assert_eq!(r2.len(), 1, "R2 only: {actions:?}");
        let opened = self.agent.open(r2[0].as_bytes()).unwrap();
        assert_eq!(opened.envelope.channel, "agent.registration");
        let challenge: RegistrationChallenge = serde_json::from_slice(&opened.body).unwrap();
        assert_eq!(challenge.server_time.len(), 20);
        let m4 = self.agent.m4(&challenge, "host-1", self.ts()).unwrap();
        let actions = self.feed(&m4);
        assert!(
            sends(&actions).is_empty(),
            "nothing before the record is durable"
        );
        let new = actions
            .iter()
            .find_map(|a| match a {
                Action::CommitAgent(n) => Some(n.clone()),
                _ => None,
            })
            .expect("CommitAgent");
        assert_eq!(new.request.host_id, "host-1");
        let actions = self.with(|s, env, now| s.on_agent_committed(env, true, now));
        let r3 = sends(&actions);
        assert_eq!(r3.len(), 1);
        let opened = self.agent.open(r3[0].as_bytes()).unwrap();
        let result: RegistrationResult = serde_json::from_slice(&opened.body).unwrap();
        assert_eq!(result.agent_uid, new.agent_uid);
        assert!(result.bootstrap_token.len() >= 32);
        assert_eq!(crypto::hash_token(&result.bootstrap_token), new.token_hash);
        assert!(actions.iter().any(|a| matches!(a, Action::HandshakeOver)));
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::Registered { uid, .. } if *uid == result.agent_uid)));
        self.agent.set_uid(&result.agent_uid);
        (result.agent_uid, result.bootstrap_token)
    }
}

/// A registration request (M3) of `agent` for host `host`.
pub fn registration_request(agent: &Agent, host: &str) -> RegistrationRequest {
    RegistrationRequest {
        org_id: "org-1".into(),
        host_id: host.into(),
        agent_pubkey: agent.public_b64().to_string(),
        agent_version: "1.0.0".into(),
        capabilities: serde_json::json!(["ebpf"]),
        platform: serde_json::json!({"os": "linux", "arch": "x86_64"}),
        network: serde_json::json!({"hostname": host}),
        machine_id_hash: None,
    }
}

/// The frames an action list sends.
pub fn sends(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Send(s) => Some(s.clone()),
            _ => None,
        })
        .collect()
}

/// The close code an action list ends with.
pub fn close_code(actions: &[Action]) -> Option<u16> {
    actions.iter().find_map(|a| match a {
        Action::Close(c, _) => Some(*c),
        _ => None,
    })
}

/// The `error` kind of an error frame.
pub fn error_kind_of(agent: &mut Agent, frame: &str) -> String {
    let opened = agent.open(frame.as_bytes()).expect("error frame opens");
    let v: serde_json::Value = serde_json::from_slice(&opened.body).unwrap();
    v["error"].as_str().unwrap().to_string()
}

impl Pair {
    /// Feeds a frame; `forced_ok` passes its signature check whatever it is (to test what comes
    /// after the signature, the AEAD say).
    pub fn feed_bytes(&mut self, frame: &[u8], forced_ok: bool) -> Vec<Action> {
        let mut buf = frame.to_vec();
        let now = self.now;
        let env = Env {
            key: &self.gw,
            limits: &self.limits,
            nonces: &self.nonces,
            registrations: None,
        };
        let step = self.session.on_frame(&env, &mut buf, now);
        let mut out = step.actions;
        if let Some(job) = step.verify {
            let ok = forced_ok || job.public.verify(&job.msg, &job.sig);
            out.extend(self.session.on_verified(&env, ok, now));
        }
        out
    }

    /// A command frame from the gateway to the agent.
    pub fn command(
        &mut self,
        id: &str,
        kind: BackendKind,
        msg_type: MsgType,
        body: &[u8],
    ) -> String {
        let now = self.now;
        self.with(|s, env, _| s.command_frame(env, id, kind, msg_type, body, now))
            .expect("authenticated")
    }
}
