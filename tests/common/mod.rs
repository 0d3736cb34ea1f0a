//! Shared helpers for black-box tests: a real gateway on `127.0.0.1:0` with a temp data dir, and
//! a blocking WebSocket client that writes its upgrade request byte for byte like the Go agent.
#![allow(dead_code)]

use aegis_gateway::config::Config;
use aegis_gateway::crypto::{random, SigningKey};
use aegis_gateway::protocol::agent::Agent;
use aegis_gateway::protocol::payloads::{
    RegistrationChallenge, RegistrationRequest, RegistrationResult,
};
use aegis_gateway::protocol::session::Profile;
use aegis_gateway::server::{self, Running};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

/// How long a test client waits for a frame before failing.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A gateway running in-process on an ephemeral port.
pub struct TestGateway {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub public_key: [u8; 32],
}

/// Test configuration: loopback, ephemeral port, two shards, temp data dir.
pub fn test_config(dir: &std::path::Path) -> Config {
    Config {
        websocket_addr: "127.0.0.1:0".parse().unwrap(),
        data_dir: dir.to_path_buf(),
        shards: Some(2),
        ..Config::default()
    }
}

impl TestGateway {
    pub fn start() -> TestGateway {
        Self::start_with(|_| {})
    }

    pub fn start_with(edit: impl FnOnce(&mut Config)) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let mut c = test_config(dir.path());
        edit(&mut c);
        let running = server::start(c).expect("gateway starts");
        TestGateway {
            addr: running.agent_addr,
            public_key: running.public_key,
            running: Some(running),
            dir,
        }
    }

    /// A new agent of this profile with a fresh key, that knows the gateway's key.
    pub fn agent(&self, agent_id: &str, profile: Profile) -> Agent {
        Agent::new(
            SigningKey::generate(),
            agent_id,
            profile,
            Some(self.public_key),
        )
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

/// What a client reads.
#[derive(Debug, PartialEq)]
pub enum Recv {
    Text(String),
    Close(u16),
    Timeout,
    Eof,
}

/// A connected test client.
pub struct Client {
    pub ws: WebSocket<TcpStream>,
}

/// Unix seconds.
pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The Go agent's upgrade request (gorilla/websocket): this header spelling and order.
pub fn go_upgrade_request(
    addr: SocketAddr,
    agent_id: &str,
    public_key_b64: &str,
    extra: &[(&str, &str)],
) -> String {
    let key = aegis_gateway::protocol::payloads::b64(&random::bytes::<16>());
    let mut s = format!(
        "GET /ws/agent HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: Aegis-Agent/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\nX-Agent-Id: {agent_id}\r\nX-Agent-Public-Key: {public_key_b64}\r\n"
    );
    for (k, v) in extra {
        s.push_str(&format!("{k}: {v}\r\n"));
    }
    s.push_str("\r\n");
    s
}

/// An HTTP status and body when the upgrade is refused.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: String,
}

/// Sends `request` and reads the response head; a 101 gives a client.
pub fn connect_raw(addr: SocketAddr, request: &[u8]) -> Result<Client, Refused> {
    connect_on(TcpStream::connect(addr).unwrap(), request)
}

/// Like [`connect_raw`] on an already connected stream.
pub fn connect_on(mut stream: TcpStream, request: &[u8]) -> Result<Client, Refused> {
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream.set_nodelay(true).unwrap();
    stream.write_all(request).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            _ => {
                return Err(Refused {
                    status: 0,
                    body: String::from_utf8_lossy(&head).into_owned(),
                })
            }
        }
    }
    let text = String::from_utf8_lossy(&head).into_owned();
    let status: u16 = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    if status != 101 {
        let mut body = String::new();
        let _ = stream.read_to_string(&mut body);
        return Err(Refused { status, body });
    }
    let ws = WebSocket::from_raw_socket(stream, Role::Client, None);
    Ok(Client { ws })
}

/// Connects as `agent` (first connection, or reconnect with uid and token).
pub fn connect(addr: SocketAddr, agent: &Agent, reconnect: Option<(&str, &str)>) -> Client {
    let req = match reconnect {
        None => go_upgrade_request(addr, agent.agent_id(), agent.public_b64(), &[]),
        Some((uid, token)) => go_upgrade_request(
            addr,
            uid,
            agent.public_b64(),
            &[("X-Agent-Uid", uid), ("X-Bootstrap-Token", token)],
        ),
    };
    connect_raw(addr, req.as_bytes()).expect("upgrade accepted")
}

impl Client {
    pub fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_string())).unwrap();
    }

    pub fn send_msg(&mut self, msg: Message) -> bool {
        self.ws.send(msg).is_ok()
    }

    /// Next text frame or close (pings are answered by tungstenite and skipped).
    pub fn recv(&mut self) -> Recv {
        loop {
            match self.ws.read() {
                Ok(Message::Text(t)) => return Recv::Text(t.to_string()),
                Ok(Message::Binary(b)) => {
                    return Recv::Text(String::from_utf8_lossy(&b).into_owned())
                }
                Ok(Message::Close(f)) => return Recv::Close(f.map_or(1005, |f| u16::from(f.code))),
                Ok(_) => continue,
                Err(tungstenite::Error::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Recv::Timeout
                }
                Err(_) => return Recv::Eof,
            }
        }
    }

    pub fn recv_text(&mut self) -> String {
        match self.recv() {
            Recv::Text(t) => t,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Reads until the close frame and returns its code (skipping text frames, kept in `seen`).
    pub fn recv_close(&mut self, seen: &mut Vec<String>) -> u16 {
        loop {
            match self.recv() {
                Recv::Text(t) => seen.push(t),
                Recv::Close(c) => return c,
                other => panic!("expected a close, got {other:?}"),
            }
        }
    }

    /// Expects no frame for `d`.
    pub fn expect_silence(&mut self, d: Duration) {
        self.ws.get_ref().set_read_timeout(Some(d)).unwrap();
        let r = self.recv();
        self.ws
            .get_ref()
            .set_read_timeout(Some(READ_TIMEOUT))
            .unwrap();
        assert_eq!(r, Recv::Timeout, "expected silence");
    }
}

/// A registration request for `agent`.
pub fn registration_request(agent: &Agent, host_id: &str) -> RegistrationRequest {
    RegistrationRequest {
        org_id: "org-test".into(),
        host_id: host_id.into(),
        agent_pubkey: agent.public_b64().to_string(),
        agent_version: "1.0.0".into(),
        capabilities: serde_json::json!(["ebpf", "policies"]),
        platform: serde_json::json!({"os": "linux", "arch": "x86_64"}),
        network: serde_json::json!({"hostname": host_id}),
        machine_id_hash: None,
    }
}

/// M1 → R1 on a fresh connection; panics if refused.
pub fn authenticate(c: &mut Client, agent: &mut Agent) {
    let m1 = agent.m1(now_s(), random::bytes::<16>());
    c.send(&m1);
    let r1 = c.recv_text();
    agent.on_r1(r1.as_bytes()).expect("R1 success");
}

/// M3 → R2 → M4 → R3; returns (uid, token) and switches the agent to its uid.
pub fn register(c: &mut Client, agent: &mut Agent, host_id: &str) -> (String, String) {
    let m3 = agent
        .m3(&registration_request(agent, host_id), now_s())
        .unwrap();
    c.send(&m3);
    let r2 = agent.open(c.recv_text().as_bytes()).expect("R2 opens");
    let challenge: RegistrationChallenge = serde_json::from_slice(&r2.body).unwrap();
    let m4 = agent.m4(&challenge, host_id, now_s()).unwrap();
    c.send(&m4);
    let r3 = agent.open(c.recv_text().as_bytes()).expect("R3 opens");
    assert_eq!(r3.envelope.channel, "agent.registration.complete");
    let result: RegistrationResult = serde_json::from_slice(&r3.body).unwrap();
    agent.set_uid(&result.agent_uid);
    (result.agent_uid, result.bootstrap_token)
}

/// Connect, authenticate and register a fresh agent; returns the client and (uid, token).
pub fn onboard(gw: &TestGateway, agent: &mut Agent, host_id: &str) -> (Client, String, String) {
    let mut c = connect(gw.addr, agent, None);
    authenticate(&mut c, agent);
    let (uid, token) = register(&mut c, agent, host_id);
    (c, uid, token)
}

/// Reads the error kind of an error frame.
pub fn error_kind(agent: &mut Agent, frame: &str) -> String {
    let opened = agent.open(frame.as_bytes()).expect("error frame opens");
    assert_eq!(opened.envelope.channel, "error");
    let v: serde_json::Value = serde_json::from_slice(&opened.body).unwrap();
    v["error"].as_str().unwrap_or_default().to_string()
}

/// Builds a runtime command for the control handle.
pub fn command(
    id: &str,
    kind: aegis_gateway::protocol::channel::BackendKind,
    json: &str,
) -> aegis_gateway::shard::Command {
    aegis_gateway::shard::Command {
        message_id: id.to_string(),
        kind,
        msg_type: aegis_gateway::protocol::envelope::MsgType::Request,
        message_json: json.as_bytes().to_vec(),
    }
}

/// Runs a future to completion on the test thread (the control handle works from any thread).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

/// Profile of the deployed Go agent.
pub const V1: Profile = Profile::V1;
/// Secure profile.
pub const V2: Profile = Profile::V2;
