//! One simulated agent: the gateway's own sans-IO [`Agent`] driven over a real socket — connect,
//! M1/R1, registration, heartbeats and events, command receipt with latency and acks, and the
//! pre-signed blast of the throughput scenario ([`blast`]).

mod blast;
mod go_like;

pub use blast::{event_body, BARRIER};

use crate::options::Options;
use crate::stats::{h, Recorder};
use crate::url::Endpoint;
use crate::ws::{
    next_incoming, next_text, tcp_connect, upgrade, upgrade_request, Fail, Incoming, Ws,
};
use aegis_gateway::crypto::{random, SigningKey};
use aegis_gateway::protocol::envelope::MsgType;
use aegis_gateway::protocol::payloads::{
    RegistrationChallenge, RegistrationRequest, RegistrationResult,
};
use aegis_gateway::protocol::session::Profile;
use aegis_gateway::testkit::agent::{Agent, AgentError};
use async_tungstenite::tungstenite::Message;
use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Longest wait of one handshake step.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);

/// What every agent of an executor shares.
pub struct Env {
    /// Agent endpoint.
    pub ep: Endpoint,
    /// Every agent endpoint (cluster nodes; agent `g` uses `eps[g % len]`).
    pub eps: Vec<Endpoint>,
    /// The run's options.
    pub opts: Arc<Options>,
    /// The executor's recorder.
    pub rec: Rc<Recorder>,
    /// Hard end of the run.
    pub deadline: Instant,
}

impl Env {
    /// The endpoint agent `index` connects to.
    pub fn ep_for(&self, index: usize) -> &Endpoint {
        self.eps
            .get(index % self.eps.len().max(1))
            .unwrap_or(&self.ep)
    }

    /// `STEP_TIMEOUT`, shortened so nothing waits past the deadline.
    pub fn step(&self) -> Duration {
        let left = self.deadline.saturating_duration_since(Instant::now());
        STEP_TIMEOUT.min(left).max(Duration::from_millis(10))
    }
}

/// Unix seconds.
pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// CLOCK_REALTIME in nanoseconds.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// What a gateway frame turned out to be.
#[derive(Debug, PartialEq)]
pub enum Handled {
    /// A command, with the ack to write (v2).
    Command(Option<String>),
    /// An error frame (counted).
    Error,
}

/// A simulated agent.
pub struct Sim {
    /// Global index (ids, profile and source address follow from it).
    pub index: usize,
    /// Protocol profile.
    pub profile: Profile,
    /// The protocol logic.
    pub agent: Agent,
    /// Its host id for registration.
    pub host_id: String,
    /// Source address, if chosen.
    pub source: Option<Ipv4Addr>,
    /// `(uid, bootstrap token)` after registration.
    pub creds: Option<(String, String)>,
    /// The live connection.
    pub ws: Option<Ws>,
    /// An M1 built before the measured window (reconnect storm), sent by the next connect.
    prepared_m1: Option<String>,
    /// An R1 received in the measured window whose checks (signatures, key agreement) run
    /// after it ([`Sim::check_deferred_r1`]).
    deferred_r1: Option<Vec<u8>>,
    seen: HashSet<String>,
    events: u64,
    /// Messages written since the last barrier.
    unsettled_sent: u64,
    /// Error frames received since the last barrier.
    unsettled_errors: u64,
}

impl Sim {
    /// Agent number `index` of run `opts` (a fresh key).
    pub fn new(index: usize, opts: &Options) -> Sim {
        let profile = opts.profile.for_agent(index);
        let agent_id = format!("lg-{}-{index}", opts.run_id);
        let source = (!opts.source_ips.is_empty())
            .then(|| opts.source_ips.get(index % opts.source_ips.len()).copied())
            .flatten();
        Sim {
            index,
            profile,
            agent: Agent::new(
                SigningKey::generate(),
                &agent_id,
                profile,
                opts.gateway_public(),
            ),
            host_id: format!("lg-host-{}-{index}", opts.run_id),
            source,
            creds: None,
            ws: None,
            prepared_m1: None,
            deferred_r1: None,
            seen: HashSet::new(),
            events: 0,
            unsettled_sent: 0,
            unsettled_errors: 0,
        }
    }

    /// Drops the connection (no close frame), as a crashed or cut-off agent would.
    pub fn disconnect(&mut self, env: &Env) {
        if self.ws.take().is_some() {
            env.rec.connected(-1);
        }
    }

    /// Sends a close frame (bounded wait) and drops the connection.
    pub async fn close(&mut self, env: &Env) {
        if let Some(ws) = self.ws.as_mut() {
            let _ = crate::ws::with_timeout(Duration::from_secs(1), "close", ws.close(None)).await;
        }
        self.disconnect(env);
    }

    /// Connects and authenticates (a reconnect when registered), recording upgrade→R1 latency
    /// in `hist`; registers on a first connection when the run asks for it.
    /// Builds the next connection's M1 now (its ephemeral key and signature), so that the
    /// connect spends no agent-side crypto before R1. With it, that connect also defers R1's
    /// checks: the storm measures the gateway, not the load generator's own signing and
    /// verifying.
    pub fn prepare_m1(&mut self) {
        self.agent.reset_session();
        self.prepared_m1 = Some(self.agent.m1(now_s(), random::bytes::<16>()));
    }

    /// Runs the checks of a deferred R1 (gateway signatures, key agreement); a failure is
    /// counted as an error and drops the connection.
    pub fn check_deferred_r1(&mut self, env: &Env) {
        if let Some(r1) = self.deferred_r1.take() {
            if let Err(e) = self.agent.on_r1(&r1) {
                env.rec.error(&Fail::from(e).label());
                self.disconnect(env);
            }
        }
    }

    pub async fn connect(&mut self, env: &Env, hist: &str) -> Result<(), Fail> {
        self.disconnect(env);
        let step = env.step();
        let ep = env.ep_for(self.index);
        let stream = tcp_connect(ep.addr, self.source, step).await?;
        let prepared = self.prepared_m1.take();
        if prepared.is_none() {
            self.agent.reset_session();
        }
        let reconnect = self.creds.as_ref().map(|(u, t)| (u.as_str(), t.as_str()));
        let req = upgrade_request(
            ep,
            self.agent.agent_id(),
            self.agent.public_b64(),
            reconnect,
        );
        let is_reconnect = reconnect.is_some();
        let t0 = Instant::now();
        let mut ws = upgrade(stream, &req, step).await?;
        let deferred = prepared.is_some();
        let m1 = prepared.unwrap_or_else(|| self.agent.m1(now_s(), random::bytes::<16>()));
        ws.send(Message::text(m1)).await?;
        let r1 = next_text(&mut ws, step, "r1").await?;
        if deferred {
            Agent::peek_r1(&r1)?;
            self.deferred_r1 = Some(r1);
        } else {
            self.agent.on_r1(&r1)?;
        }
        env.rec.latency(hist, t0.elapsed());
        env.rec.count(|c| {
            c.authenticated += 1;
            c.reconnected += u64::from(is_reconnect);
        });
        self.ws = Some(ws);
        env.rec.connected(1);
        if !is_reconnect && env.opts.registers() {
            self.register(env, step).await?;
        }
        Ok(())
    }

    /// M3 → R2 → M4 → R3.
    async fn register(&mut self, env: &Env, step: Duration) -> Result<(), Fail> {
        let ws = self.ws.as_mut().ok_or(Fail::Eof)?;
        let req = RegistrationRequest {
            org_id: "org-loadgen".into(),
            host_id: self.host_id.clone(),
            agent_pubkey: self.agent.public_b64().to_string(),
            agent_version: "1.0.0-loadgen".into(),
            capabilities: serde_json::json!(["ebpf", "policies"]),
            platform: serde_json::json!({"os": "linux", "arch": "x86_64"}),
            network: serde_json::json!({"hostname": self.host_id}),
            machine_id_hash: None,
        };
        let t0 = Instant::now();
        ws.send(Message::text(self.agent.m3(&req, now_s())?))
            .await?;
        let r2 = self.agent.open(&next_text(ws, step, "r2").await?)?;
        expect_channel(&r2, "agent.registration")?;
        let challenge: RegistrationChallenge = serde_json::from_slice(&r2.body)
            .map_err(|_| AgentError::Malformed("R2 payload".into()))?;
        let m4 = self.agent.m4(&challenge, &self.host_id, now_s())?;
        ws.send(Message::text(m4)).await?;
        let r3 = self.agent.open(&next_text(ws, step, "r3").await?)?;
        expect_channel(&r3, "agent.registration.complete")?;
        let result: RegistrationResult = serde_json::from_slice(&r3.body)
            .map_err(|_| AgentError::Malformed("R3 payload".into()))?;
        self.agent.set_uid(&result.agent_uid);
        self.creds = Some((result.agent_uid, result.bootstrap_token));
        env.rec.latency(h::REGISTRATION, t0.elapsed());
        env.rec.count(|c| c.registered += 1);
        Ok(())
    }

    /// Steady state until cancelled or the connection fails: heartbeats every `heartbeat`,
    /// events every `event_every`, commands opened (latency recorded) and acked (v2).
    pub async fn run(
        &mut self,
        env: &Env,
        heartbeat: Option<Duration>,
        event_every: Option<Duration>,
    ) {
        if let Err(e) = self.run_inner(env, heartbeat, event_every).await {
            env.rec.error(&e.label());
            self.disconnect(env);
        }
    }

    async fn run_inner(
        &mut self,
        env: &Env,
        heartbeat: Option<Duration>,
        event_every: Option<Duration>,
    ) -> Result<(), Fail> {
        let far = Duration::from_secs(3600);
        let start = Instant::now();
        // Random phases spread the fleet's traffic over the period.
        let phase = |d: Duration| d.mul_f64(f64::from(random::bytes::<1>()[0]) / 256.0);
        let mut next_hb = heartbeat.map_or(start + far, |d| start + phase(d));
        let mut next_ev = event_every.map_or(start + far, |d| start + phase(d));
        let ping_every = (env.opts.ping_s > 0.0).then(|| Duration::from_secs_f64(env.opts.ping_s));
        let mut next_ping = ping_every.map_or(start + far, |d| start + phase(d));
        let channel = format!("agent.{}.logs", self.agent.ident());
        loop {
            let Some(ws) = self.ws.as_mut() else {
                return Ok(());
            };
            let now = Instant::now();
            if let (Some(d), true) = (heartbeat, now >= next_hb) {
                ws.send(Message::text(self.agent.heartbeat(now_s())?))
                    .await?;
                env.rec.sent(1);
                self.unsettled_sent += 1;
                env.rec.count(|c| c.heartbeats_sent += 1);
                next_hb = (next_hb + d).max(now);
            }
            if let (Some(d), true) = (event_every, now >= next_ev) {
                self.events += 1;
                let ts = now_s();
                let body = event_body(self.events, ts, env.opts.payload);
                let frame = self
                    .agent
                    .message(&channel, MsgType::Event, &body, ts, Vec::new())?;
                ws.send(Message::text(frame)).await?;
                env.rec.sent(1);
                self.unsettled_sent += 1;
                env.rec.count(|c| c.events_sent += 1);
                next_ev = (next_ev + d).max(now);
            }
            if let (Some(d), true) = (ping_every, now >= next_ping) {
                // The Go agent's keepalive: a ping with payload `heartbeat` (PROTOCOL §1).
                ws.send(Message::Ping(b"heartbeat".to_vec().into())).await?;
                env.rec.count(|c| c.pings_sent += 1);
                next_ping = (next_ping + d).max(now);
            }
            let wait = next_hb
                .min(next_ev)
                .min(next_ping)
                .saturating_duration_since(Instant::now());
            let got = futures_lite::future::or(async { Some(next_incoming(ws).await) }, async {
                glommio::timer::sleep(wait).await;
                None
            })
            .await;
            match got {
                None => {}
                Some(Ok(Incoming::Pong(_))) => env.rec.count(|c| c.pongs_received += 1),
                Some(Err(e)) => return Err(e),
                Some(Ok(Incoming::Text(t))) => self.on_text(env, &t).await?,
            }
        }
    }

    /// Handles a gateway frame and writes the ack it calls for.
    async fn on_text(&mut self, env: &Env, t: &[u8]) -> Result<(), Fail> {
        if let Handled::Command(Some(ack)) = self.handle(env, t)? {
            if let Some(ws) = self.ws.as_mut() {
                ws.send(Message::text(ack)).await?;
                env.rec.sent(1);
                self.unsettled_sent += 1;
                env.rec.count(|c| c.acks_sent += 1);
            }
        }
        Ok(())
    }

    /// Reads a gateway frame after the handshake: errors are counted, commands timed and
    /// (v2) answered with an ack.
    pub fn handle(&mut self, env: &Env, frame: &[u8]) -> Result<Handled, Fail> {
        let opened = self.agent.open(frame)?;
        let channel = opened.envelope.channel.as_str();
        if channel == "error" {
            env.rec.error(&format!("gw_{}", error_kind(&opened.body)));
            self.unsettled_errors += 1;
            return Ok(Handled::Error);
        }
        if !channel.starts_with("backend.") {
            return Err(Fail::Unexpected(channel.to_string()));
        }
        let id = opened.envelope.id.clone();
        if self.seen.insert(id.clone()) {
            let v: serde_json::Value = serde_json::from_slice(&opened.body).unwrap_or_default();
            let broadcast = v.get("lg").and_then(|x| x.as_str()) == Some("broadcast");
            if let Some(sent_at) = v.get("sent_at_ns").and_then(|x| x.as_u64()) {
                let us = now_ns().saturating_sub(sent_at) / 1000;
                let hist = if broadcast { h::BROADCAST } else { h::COMMAND };
                env.rec.latency_us(hist, us);
            }
            if broadcast {
                env.rec.count(|c| c.broadcasts_received += 1);
                env.rec
                    .live
                    .broadcasts_received
                    .fetch_add(1, Ordering::Relaxed);
            } else {
                env.rec.count(|c| c.commands_received += 1);
                env.rec
                    .live
                    .commands_received
                    .fetch_add(1, Ordering::Relaxed);
            }
        } else {
            env.rec.count(|c| c.duplicates += 1);
        }
        Ok(Handled::Command(match self.profile {
            Profile::V2 => Some(self.agent.ack(&id, now_s())?),
            Profile::V1 => None,
        }))
    }
}

/// The `error` field of an error payload (`unknown` if absent).
pub fn error_kind(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        .filter(|k| k.len() <= 64 && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
        .unwrap_or_else(|| "unknown".into())
}

fn expect_channel(o: &aegis_gateway::testkit::agent::Opened, want: &str) -> Result<(), Fail> {
    match o.envelope.channel.as_str() {
        c if c == want => Ok(()),
        "error" => Err(Fail::Gateway(error_kind(&o.body))),
        other => Err(Fail::Unexpected(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kind_is_sanitised() {
        assert_eq!(
            error_kind(br#"{"error":"replay_detected","code":4006}"#),
            "replay_detected"
        );
        assert_eq!(error_kind(b"not json"), "unknown");
        assert_eq!(error_kind(br#"{"error":"a b\nc"}"#), "unknown");
    }

    #[test]
    fn sims_spread_over_source_addresses_and_profiles() {
        let mut o = Options::new(crate::options::Scenario::Connect);
        o.profile = crate::options::ProfileChoice::Mix;
        o.source_ips = vec![Ipv4Addr::new(127, 0, 0, 1), Ipv4Addr::new(127, 0, 0, 2)];
        let a = Sim::new(4, &o);
        let b = Sim::new(5, &o);
        assert_eq!(a.source, Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(b.source, Some(Ipv4Addr::new(127, 0, 0, 2)));
        assert_eq!((a.profile, b.profile), (Profile::V1, Profile::V2));
        assert!(a.agent.agent_id().ends_with("-4"));
    }
}
