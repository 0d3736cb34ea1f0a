//! A test agent over real sockets that reconnects exactly like the deployed Go agent
//! ([`GoReconnect`]: one dial 2 s after a close, stranded for good if it fails, an extra
//! reconnect that closes the next healthy connection), receiving (and acking) commands.

use super::client::{connect_on, go_upgrade_request, Client, Recv};
use super::session::{authenticate, now_s, register};
use aegis_gateway::crypto::random;
use aegis_gateway::testkit::agent::Agent;
pub use aegis_gateway::testkit::reconnect::{GoReconnect, Step};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A Go-like agent.
pub struct GoAgent {
    pub agent: Agent,
    pub uid: String,
    pub token: String,
    pub policy: GoReconnect,
    /// Command ids received (v2 ones acked), in arrival order.
    pub received: Vec<String>,
    /// Close codes the gateway sent.
    pub server_closes: Vec<u16>,
    addr: SocketAddr,
    client: Option<Client>,
}

/// One dial as the agent makes it: TCP connect, upgrade, M1 → R1. `None` if any step fails.
fn dial(addr: SocketAddr, agent: &mut Agent, uid: &str, token: &str) -> Option<Client> {
    let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10)).ok()?;
    stream.set_nodelay(true).ok()?;
    let req = go_upgrade_request(
        addr,
        uid,
        agent.public_b64(),
        &[("X-Agent-Uid", uid), ("X-Bootstrap-Token", token)],
    );
    let mut c = connect_on(stream, req.as_bytes()).ok()?;
    agent.reset_session();
    c.send(&agent.m1(now_s(), random::bytes::<16>()));
    match c.recv() {
        Recv::Text(r1) => agent.on_r1(r1.as_bytes()).ok().map(|_| c),
        _ => None,
    }
}

impl GoAgent {
    /// Connects, authenticates and registers `agent` at `addr` (panics if that fails).
    pub fn onboard(addr: SocketAddr, mut agent: Agent, host_id: &str) -> GoAgent {
        let mut c = super::client::connect(addr, &agent, None);
        authenticate(&mut c, &mut agent);
        let (uid, token) = register(&mut c, &mut agent, host_id);
        GoAgent {
            agent,
            uid,
            token,
            policy: GoReconnect::connected(),
            received: Vec::new(),
            server_closes: Vec::new(),
            addr,
            client: Some(c),
        }
    }

    /// Whether a connection is up now.
    pub fn connected(&self) -> bool {
        self.client.is_some()
    }

    /// Lives like the agent until `until` (or until `done` holds, checked after each frame):
    /// reads frames, acks commands, and reconnects as the policy says. Bounded by `until`.
    pub fn run_until(&mut self, until: Instant, done: impl Fn(&GoAgent) -> bool) {
        while Instant::now() < until && !done(self) {
            let now = Instant::now();
            match self.policy.next(now) {
                Step::Stranded => return,
                Step::Dial => {
                    self.client = dial(self.addr, &mut self.agent, &self.uid, &self.token);
                    self.policy.dialled(self.client.is_some(), Instant::now());
                }
                Step::WaitToDial(at) => std::thread::sleep(at.min(until) - now),
                Step::CloseOwn => {
                    if let Some(mut c) = self.client.take() {
                        let _ = c.ws.close(None);
                        let _ = c.ws.flush();
                    }
                    self.policy.closed(Instant::now());
                }
                Step::Connected(look) => {
                    let wait = look
                        .unwrap_or(until)
                        .min(until)
                        .saturating_duration_since(now);
                    self.read_for(
                        wait.clamp(Duration::from_millis(10), Duration::from_millis(500)),
                    );
                }
            }
        }
    }

    /// Reads one frame (or times out after `wait`), handling commands and closes.
    fn read_for(&mut self, wait: Duration) {
        let Some(c) = self.client.as_mut() else {
            return;
        };
        match c.recv_within(wait) {
            Recv::Timeout => {}
            Recv::Text(t) => {
                if let Ok(opened) = self.agent.open(t.as_bytes()) {
                    if !opened.envelope.channel.starts_with("backend.") {
                        return;
                    }
                    self.received.push(opened.envelope.id.clone());
                    if let Ok(ack) = self.agent.ack(&opened.envelope.id, now_s()) {
                        c.send(&ack);
                    }
                }
            }
            Recv::Close(code) => {
                self.server_closes.push(code);
                self.client = None;
                self.policy.closed(Instant::now());
            }
            Recv::Eof => {
                self.client = None;
                self.policy.closed(Instant::now());
            }
        }
    }
}
