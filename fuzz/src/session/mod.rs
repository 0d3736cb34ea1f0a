//! Drives a gateway [`Session`] like the runtime does (`src/shard/conn.rs`): frames in, signature
//! checks resolved at once, durable commits resolved at once, actions carried out in order and
//! nothing after a close. A real [`Agent`] builds the frames and reads every frame the gateway
//! sends. Invariants checked on every step:
//!
//! - nothing panics;
//! - after [`Action::Close`] the session emits nothing more (no action, no verify job, no
//!   command frame), and no action follows a close in the same list;
//! - every sent frame parses as an envelope, has all eight fields, carries a valid gateway
//!   signature outside the v2 sealed path and a nonce of exactly 12 bytes there; v2 sealed frames
//!   have `headers.seq` and a 16-byte nonce;
//! - once the agent accepted R1, it can open every later frame (signature, seq, AEAD);
//! - `tick` only acts at or after `next_deadline`.

pub mod ops;

use std::cell::RefCell;
use std::collections::VecDeque;

use aegis_gateway::crypto::hash_token;
use aegis_gateway::protocol::channel::{self, BackendKind, Channel};
use aegis_gateway::protocol::payloads::{
    decode_b64_exact, RegistrationChallenge, RegistrationResult,
};
use aegis_gateway::protocol::replay::NonceCache;
use aegis_gateway::protocol::session::{Action, Env, KnownAgent, Limits, Profile, Session};
use aegis_gateway::protocol::ErrorKind;
use aegis_gateway::testkit::agent::Agent;

use crate::keys::{gateway_key, new_agent, other_key, upgrade_for, AGENT_ID, T0};
use crate::mutate;
use ops::{Ctx, M4Pick, Op, RatePick, Scenario, Start, Verify, MAX_OPS};

const UID: &str = "5f0c6f3e-8d1a-4c47-9a53-2b1f0e6d7c81";
const TOKEN: &str = "bootstrap-token-0123456789abcdefghijklmnop";
/// Frames kept for replays and mutations.
const HISTORY: usize = 16;
/// The eight envelope fields every gateway frame carries.
const FIELDS: [&str; 8] = [
    "id",
    "type",
    "channel",
    "payload",
    "timestamp",
    "nonce",
    "signature",
    "headers",
];

/// What a run reached (for the harness's own tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// The session authenticated.
    pub authed: bool,
    /// The agent accepted R1.
    pub synced: bool,
    /// The session closed.
    pub closed: bool,
    /// The session is registered.
    pub registered: bool,
    /// Frames the gateway sent.
    pub sent: usize,
}

/// Runs one scenario for an agent of `profile`.
pub fn run(profile: Profile, s: Scenario) -> Summary {
    let mut limits = Limits::default();
    limits.message_rate = match s.rate {
        RatePick::Default => limits.message_rate,
        RatePick::Off => None,
        RatePick::Tiny(rate, burst) => Some((u32::from(rate), u32::from(burst))),
    };
    let nonces = RefCell::new(NonceCache::new());
    let env = Env {
        key: gateway_key(),
        limits: &limits,
        nonces: &nonces,
        registrations: None,
    };
    let mut st = State::new(profile, s.start, i64::from(s.jitter_ms));
    for op in s.ops.into_iter().take(MAX_OPS) {
        st.apply(&env, op);
    }
    Summary {
        authed: st.authed,
        synced: st.synced,
        closed: st.closed,
        registered: st.session.is_registered(),
        sent: st.sent,
    }
}

/// Everything but the environment.
struct State {
    /// The simulated agent's profile.
    profile: Profile,
    session: Session,
    agent: Agent,
    now: i64,
    /// A close was emitted.
    closed: bool,
    /// The session authenticated (R1 success was sent).
    authed: bool,
    /// The agent accepted R1 and shares the session keys.
    synced: bool,
    history: VecDeque<String>,
    sent: usize,
    m3_host: Option<String>,
    challenge: Option<RegistrationChallenge>,
}

impl State {
    fn new(profile: Profile, start: Start, jitter_ms: i64) -> State {
        let other = match profile {
            Profile::V1 => 2,
            Profile::V2 => 1,
        };
        let known = |key: [u8; 32], token: &str| KnownAgent {
            uid: UID.into(),
            public_key: key,
            token_hash: hash_token(token),
        };
        let own_key = crate::keys::agent_key().public();
        let (agent_id, reconnect, protocol, known) = match start {
            Start::Fresh => (AGENT_ID, None, None, None),
            Start::Pinned => (AGENT_ID, None, Some(profile.number()), None),
            Start::PinnedOther => (AGENT_ID, None, Some(other), None),
            Start::Reconnect => (UID, Some((UID, TOKEN)), None, Some(known(own_key, TOKEN))),
            Start::ReconnectWrongToken => (
                UID,
                Some((UID, TOKEN)),
                None,
                Some(known(own_key, "another-token")),
            ),
            Start::ReconnectOtherKey => (
                UID,
                Some((UID, TOKEN)),
                None,
                Some(known(other_key().public(), TOKEN)),
            ),
            Start::ReconnectUnknown => (UID, Some((UID, TOKEN)), None, None),
            Start::FirstButKnown => (UID, None, None, Some(known(own_key, TOKEN))),
        };
        let agent = new_agent(agent_id, profile);
        let up = upgrade_for(&agent, agent_id, reconnect, protocol);
        State {
            profile,
            session: Session::new(up, known, T0, &Limits::default(), jitter_ms),
            agent,
            now: T0,
            closed: false,
            authed: false,
            synced: false,
            history: VecDeque::new(),
            sent: 0,
            m3_host: None,
            challenge: None,
        }
    }

    fn apply(&mut self, env: &Env<'_>, op: Op) {
        let now = self.now;
        match op {
            Op::M1 { ts, nonce, ctx } => {
                let f = self.agent.m1(ts.at(now), nonce);
                self.feed_new(env, f, ctx);
            }
            Op::CustomM1(m1, ctx) => {
                let f = m1.frame(self.agent.agent_id(), now);
                self.feed_new(env, f, ctx);
            }
            Op::Heartbeat(ts, ctx) => {
                if let Ok(f) = self.agent.heartbeat(ts.at(now)) {
                    self.feed_new(env, f, ctx);
                }
            }
            Op::Message {
                channel,
                msg_type,
                body,
                ts,
                headers,
                ctx,
            } => {
                let ch = channel.text(self.agent.ident());
                let headers = headers.into_iter().take(4).collect();
                let t = ops::msg_type(msg_type);
                if let Ok(f) = self
                    .agent
                    .message(&ch, t, &body.bytes(), ts.at(now), headers)
                {
                    self.feed_new(env, f, ctx);
                }
            }
            Op::M3 {
                host,
                right_key,
                ts,
                ctx,
            } => {
                let host = host.text(AGENT_ID);
                self.m3_host = Some(host.clone());
                let req = ops::registration_request(&self.agent, &host, right_key);
                if let Ok(f) = self.agent.m3(&req, ts.at(now)) {
                    self.feed_new(env, f, ctx);
                }
            }
            Op::M4(pick, ts, ctx) => {
                let mut c = self
                    .challenge
                    .clone()
                    .unwrap_or_else(ops::made_up_challenge);
                let host = match pick {
                    M4Pick::Last => self.m3_host.clone().unwrap_or_default(),
                    M4Pick::WrongId => {
                        c.registration_id = "10000000-0000-4000-8000-000000000001".into();
                        self.m3_host.clone().unwrap_or_default()
                    }
                    M4Pick::WrongHost(name) => name.text("h-x"),
                };
                if let Ok(f) = self.agent.m4(&c, &host, ts.at(now)) {
                    self.feed_new(env, f, ctx);
                }
            }
            Op::Ack(id, ts, ctx) => {
                if let Ok(f) = self.agent.ack(&id, ts.at(now)) {
                    self.feed_new(env, f, ctx);
                }
            }
            Op::Replay(i, ctx) => {
                if let Some(f) = self.pick(i) {
                    self.feed(env, f.into_bytes(), ctx);
                }
            }
            Op::Mutate(i, m, ctx) => {
                if let Some(f) = self.pick(i) {
                    self.feed(env, mutate::mutate(&f, &m), ctx);
                }
            }
            Op::Raw(bytes, ctx) => self.feed(env, bytes, ctx),
            Op::Tick(step) => {
                let deadline = self.session.next_deadline(env.limits);
                self.now = self.now.saturating_add(step.ms());
                let actions = self.session.tick(env, self.now);
                if !actions.is_empty() {
                    assert!(
                        deadline.is_some_and(|d| d <= self.now),
                        "tick acted before next_deadline {deadline:?} (now {}): {actions:?}",
                        self.now
                    );
                }
                self.perform(env, actions, true);
            }
            Op::Command {
                kind,
                msg_type,
                body,
            } => {
                let kind = BackendKind::ALL[usize::from(kind) % BackendKind::ALL.len()];
                let t = ops::msg_type(msg_type);
                let f = self
                    .session
                    .command_frame(env, "cmd-1", kind, t, &body.bytes(), now);
                match f {
                    Some(f) => {
                        assert!(!self.closed, "command frame after close");
                        assert!(self.authed, "command frame before authentication");
                        self.check_sent(&f);
                    }
                    None => assert!(!self.authed || self.closed, "no command frame when authed"),
                }
            }
            Op::SpuriousVerified(ok) => {
                let actions = self.session.on_verified(env, ok, now);
                assert!(actions.is_empty(), "on_verified without a job: {actions:?}");
            }
            Op::SpuriousCommitted(ok) => {
                let actions = self.session.on_agent_committed(env, ok, now);
                assert!(
                    actions.is_empty(),
                    "commit result without a commit: {actions:?}"
                );
            }
            Op::Terminate(k) => {
                let kind = ErrorKind::ALL[usize::from(k) % ErrorKind::ALL.len()];
                let actions = self.session.terminate(env, kind, now);
                self.perform(env, actions, true);
            }
        }
    }

    fn pick(&self, i: u8) -> Option<String> {
        let n = self.history.len();
        (n > 0).then(|| self.history[usize::from(i) % n].clone())
    }

    /// Remembers a frame built by the agent, then feeds it.
    fn feed_new(&mut self, env: &Env<'_>, frame: String, ctx: Ctx) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(frame.clone());
        self.feed(env, frame.into_bytes(), ctx);
    }

    /// Feeds a frame like `Conn::on_frame`: the signature check is resolved before anything else.
    fn feed(&mut self, env: &Env<'_>, mut frame: Vec<u8>, ctx: Ctx) {
        let step = self.session.on_frame(env, &mut frame, self.now);
        let mut actions = step.actions;
        if let Some(job) = step.verify {
            assert!(!self.closed, "verify job after close");
            assert!(actions.is_empty(), "actions and a verify job at once");
            let ok = match ctx.verify {
                Verify::Real => job.public.verify(&job.msg, &job.sig),
                Verify::Pass => true,
                Verify::Fail => false,
            };
            self.now += i64::from(ctx.delay_ms);
            actions.extend(self.session.on_verified(env, ok, self.now));
        }
        self.perform(env, actions, ctx.commit_ok);
    }

    /// Carries out actions like `Conn::perform`, checking the invariants.
    fn perform(&mut self, env: &Env<'_>, actions: Vec<Action>, commit_ok: bool) {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(a) = queue.pop_front() {
            assert!(!self.closed, "action after close: {a:?}");
            match a {
                Action::Send(text) => self.check_sent(&text),
                Action::Close(code, _) => {
                    // 1000: the idle timeout (nothing, not even a pong, for IDLE_TIMEOUT); 4001-4011: PROTOCOL §7.
                    assert!(
                        code == 1000 || (4001..=4011).contains(&code),
                        "close code {code}"
                    );
                    self.closed = true;
                }
                Action::Authenticated { profile, .. } => {
                    assert!(!self.authed, "authenticated twice");
                    assert!(self.session.is_authenticated());
                    assert_eq!(profile, self.session.profile());
                    self.authed = true;
                }
                Action::CommitAgent(_) => {
                    let more = self.session.on_agent_committed(env, commit_ok, self.now);
                    queue.extend(more);
                }
                Action::Inbound { channel, body, .. } => {
                    let own = matches!(channel::parse(&channel),
                        Ok(Channel::Agent { id, .. }) if id == self.session.ident());
                    assert!(own, "inbound on a foreign channel {channel}");
                    assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
                }
                _ => {}
            }
        }
    }

    /// Checks a frame the gateway sends, and lets the agent read it.
    fn check_sent(&mut self, text: &str) {
        self.sent += 1;
        let e = mutate::parse(text.as_bytes())
            .unwrap_or_else(|| panic!("gateway frame is not an envelope: {text}"));
        let v: serde_json::Value = serde_json::from_str(text).expect("gateway frame is JSON");
        for k in FIELDS {
            assert!(v.get(k).is_some(), "field {k} missing in {text}");
        }
        let sealed = self.authed && self.session.profile() == Profile::V2 && e.channel != "auth";
        let nonce = e.nonce.as_deref().unwrap_or("");
        if sealed {
            assert!(
                decode_b64_exact::<16>(nonce).is_some(),
                "sealed nonce: {text}"
            );
            assert!(
                e.header("seq").is_some(),
                "sealed frame without seq: {text}"
            );
        } else {
            assert!(
                decode_b64_exact::<12>(nonce).is_some(),
                "12-byte nonce: {text}"
            );
            assert!(
                e.header("seq").is_none(),
                "seq outside the sealed path: {text}"
            );
            self.agent
                .check_plain_signature(&e)
                .unwrap_or_else(|err| panic!("gateway signature ({err}): {text}"));
        }
        if e.channel == "auth" {
            // R1: the agent derives its keys from it (fails for an M1 it did not build). A custom
            // M1 may have negotiated the other profile: the agent cannot follow that session.
            let same_profile = self.session.profile() == self.profile;
            self.synced = self.agent.on_r1(text.as_bytes()).is_ok() && same_profile;
            return;
        }
        if !self.synced {
            return;
        }
        let opened = self
            .agent
            .open(text.as_bytes())
            .unwrap_or_else(|err| panic!("agent cannot open a gateway frame ({err}): {text}"));
        match opened.envelope.channel.as_str() {
            "agent.registration" => {
                self.challenge = serde_json::from_slice(&opened.body).ok();
            }
            "agent.registration.complete" => {
                if let Ok(r) = serde_json::from_slice::<RegistrationResult>(&opened.body) {
                    self.agent.set_uid(&r.agent_uid);
                    assert_eq!(self.session.ident(), r.agent_uid);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
