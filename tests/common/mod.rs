//! Shared helpers for black-box tests: a real gateway on `127.0.0.1:0` with a temp data dir, and
//! a blocking WebSocket client that writes its upgrade request byte for byte like the Go agent.
#![allow(dead_code)]

use aegis_gateway::config::Config;
use aegis_gateway::crypto::{random, SigningKey};
use aegis_gateway::protocol::payloads::{
    RegistrationChallenge, RegistrationRequest, RegistrationResult,
};
use aegis_gateway::protocol::session::Profile;
use aegis_gateway::server::{self, Running};
use aegis_gateway::testkit::agent::Agent;
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
    pub admin: SocketAddr,
    pub public_key: [u8; 32],
}

/// Admin token of in-process test gateways.
pub const TOKEN: &str = "test-token";

/// Test configuration: loopback, ephemeral ports, two shards, temp data dir.
pub fn test_config(dir: &std::path::Path) -> Config {
    Config {
        websocket_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(TOKEN.to_string()),
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
            admin: running.admin_addr,
            public_key: running.public_key,
            running: Some(running),
            dir,
        }
    }

    /// `POST /api/v1/agents/{id}/send` with the test token; returns (status, JSON).
    pub fn send(&self, id: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        http_json(
            self.admin,
            "POST",
            &format!("/api/v1/agents/{id}/send"),
            Some(TOKEN),
            Some(&body.to_string()),
        )
    }

    /// `GET /api/v1/messages/{id}`: the per-agent delivery records.
    pub fn message(&self, id: &str) -> serde_json::Value {
        let (status, v) = http_json(
            self.admin,
            "GET",
            &format!("/api/v1/messages/{id}"),
            Some(TOKEN),
            None,
        );
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Status of the first delivery record of a message.
    pub fn message_status(&self, id: &str) -> String {
        self.message(id)["deliveries"][0]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Polls until the message's first delivery has `status` (bounded).
    pub fn wait_status(&self, id: &str, status: &str) {
        for _ in 0..250 {
            if self.message_status(id) == status {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("message {id} never reached {status}: {}", self.message(id));
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

/// A stream whose read timeout can be set (plain TCP, or TLS over TCP).
pub trait Timeouts: Read + Write {
    fn set_timeout(&self, d: Duration);
}

impl Timeouts for TcpStream {
    fn set_timeout(&self, d: Duration) {
        self.set_read_timeout(Some(d)).unwrap();
    }
}

impl Timeouts for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn set_timeout(&self, d: Duration) {
        self.sock.set_read_timeout(Some(d)).unwrap();
    }
}

/// A connected test client.
pub struct Client<S: Timeouts = TcpStream> {
    pub ws: WebSocket<S>,
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
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    connect_on(stream, request)
}

/// A TLS client configuration trusting only `ca_pem` (ring provider).
pub fn tls_client_config(ca_pem: &[u8]) -> std::sync::Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pemfile::certs(&mut &ca_pem[..]) {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    std::sync::Arc::new(config)
}

/// A TLS stream to `addr` for server name `localhost`, trusting only `ca_pem`.
pub fn tls_stream(
    addr: SocketAddr,
    ca_pem: &[u8],
) -> rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(tls_client_config(ca_pem), name).unwrap();
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    rustls::StreamOwned::new(conn, tcp)
}

/// Connects over TLS trusting only `ca_pem` (server name `localhost`) and upgrades.
pub fn connect_tls(
    addr: SocketAddr,
    ca_pem: &[u8],
    request: &[u8],
) -> Result<Client<rustls::StreamOwned<rustls::ClientConnection, TcpStream>>, Refused> {
    connect_on(tls_stream(addr, ca_pem), request)
}

/// Writes a self-signed certificate for `localhost`/127.0.0.1 and its key with openssl.
pub fn self_signed(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
        ])
        .arg(format!("/CN={name}"))
        .args([
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-keyout",
        ])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl is installed");
    assert!(status.success());
    (cert, key)
}

/// Like [`connect_raw`] on an already connected stream.
pub fn connect_on<S: Timeouts>(mut stream: S, request: &[u8]) -> Result<Client<S>, Refused> {
    stream.set_timeout(READ_TIMEOUT);
    if stream.write_all(request).is_err() {
        return Err(Refused {
            status: 0,
            body: String::new(),
        });
    }
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

impl<S: Timeouts> Client<S> {
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
        self.ws.get_ref().set_timeout(d);
        let r = self.recv();
        self.ws.get_ref().set_timeout(READ_TIMEOUT);
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
pub fn authenticate<S: Timeouts>(c: &mut Client<S>, agent: &mut Agent) {
    let m1 = agent.m1(now_s(), random::bytes::<16>());
    c.send(&m1);
    let r1 = c.recv_text();
    agent.on_r1(r1.as_bytes()).expect("R1 success");
}

/// M3 → R2 → M4 → R3; returns (uid, token) and switches the agent to its uid.
pub fn register<S: Timeouts>(
    c: &mut Client<S>,
    agent: &mut Agent,
    host_id: &str,
) -> (String, String) {
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
        seq: 0,
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

/// One HTTP/1.1 request on a fresh connection (`Connection: close`); returns (status, body).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(t) = token {
        req.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    if let Some(b) = body {
        req.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            b.len()
        ));
    }
    req.push_str("\r\n");
    if let Some(b) = body {
        req.push_str(b);
    }
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

/// (status, body) of a raw HTTP/1.1 response; status 0 when there is none.
pub fn parse_response(raw: &[u8]) -> (u16, String) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|x| x.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// JSON body of an HTTP call.
pub fn http_json(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, serde_json::Value) {
    let (status, text) = http(addr, method, path, token, body);
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

/// The gateway binary running as a child process.
pub struct Child {
    pub child: std::process::Child,
    pub agent_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub public_key: [u8; 32],
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

/// Admin token used by child-process tests.
pub const CHILD_TOKEN: &str = "test-admin-token-0123456789";

impl Child {
    /// Starts `aegis-gateway serve` on `data_dir` with ephemeral ports; waits for its "serving" line.
    pub fn spawn(data_dir: &std::path::Path, extra_env: &[(&str, &str)]) -> Child {
        use std::io::BufRead;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_aegis-gateway"));
        cmd.arg("serve")
            .env("DATA_DIR", data_dir)
            .env("WEBSOCKET_ADDR", "127.0.0.1:0")
            .env("ADMIN_ADDR", "127.0.0.1:0")
            .env("ADMIN_TOKEN", CHILD_TOKEN)
            .env("SHARDS", "2")
            .env("LOG_FORMAT", "pretty")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("gateway binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("aegis-gateway serving") {
                    let _ = tx.send(line.clone());
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("gateway reports it is serving");
        let field = |name: &str| -> String {
            let start = line
                .find(&format!("{name}="))
                .unwrap_or_else(|| panic!("{name} in {line}"))
                + name.len()
                + 1;
            line[start..]
                .split_whitespace()
                .next()
                .unwrap()
                .trim_matches('"')
                .to_string()
        };
        let public_key =
            aegis_gateway::protocol::payloads::decode_b64_exact::<32>(&field("public_key"))
                .unwrap();
        Child {
            agent_addr: field("agent_addr").parse().unwrap(),
            admin_addr: field("admin_addr").parse().unwrap(),
            public_key,
            child,
            log,
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for exit (bounded); returns the exit code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        None
    }

    /// A new agent that knows this gateway's key.
    pub fn agent(&self, agent_id: &str, profile: Profile) -> Agent {
        Agent::new(
            SigningKey::generate(),
            agent_id,
            profile,
            Some(self.public_key),
        )
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads SSE lines until `n` events arrived; returns (id, data) pairs.
pub fn read_events(s: &mut TcpStream, n: usize) -> Vec<(u64, serde_json::Value)> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    while out.len() < n {
        let k = s.read(&mut chunk).expect("event stream open");
        assert!(k > 0, "stream ended");
        buf.extend_from_slice(&chunk[..k]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        out.clear();
        for block in text.split("\n\n") {
            let id = block
                .lines()
                .find_map(|l| l.strip_prefix("id: "))
                .and_then(|x| x.parse().ok());
            let data = block
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .and_then(|x| serde_json::from_str(x).ok());
            if let (Some(id), Some(data)) = (id, data) {
                out.push((id, data));
            }
        }
    }
    out
}

/// Opens `GET /api/v1/events{query}` (resuming after `last_id`) on the admin listener.
pub fn open_events(gw: &TestGateway, query: &str, last_id: Option<u64>) -> TcpStream {
    let mut s = TcpStream::connect(gw.admin).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut req = format!(
        "GET /api/v1/events{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
    );
    if let Some(id) = last_id {
        req.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s
}

/// Whether the test runs as root (euid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A tmpfs mounted on a fresh temp directory, unmounted on drop (also when the test panics).
/// Declare it before anything that uses it (a [`Child`] gateway), so that is dropped first.
pub struct Tmpfs {
    mountpoint: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=…`, e.g. `96m`). `Err` says why it could not.
    pub fn mount(size: &str) -> Result<Tmpfs, String> {
        let mountpoint = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let out = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(mountpoint.path())
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { mountpoint })
    }

    /// [`Tmpfs::mount`], or `None` (with the reason on stderr) when not root and mounting is
    /// refused. As root a failed mount fails the test.
    pub fn mount_or_skip(size: &str) -> Option<Tmpfs> {
        match Tmpfs::mount(size) {
            Ok(fs) => Some(fs),
            Err(why) if is_root() => panic!("running as root but cannot mount a tmpfs: {why}"),
            Err(why) => {
                eprintln!("skipped: not root and cannot mount a tmpfs: {why}");
                None
            }
        }
    }

    /// The mounted directory.
    pub fn path(&self) -> &std::path::Path {
        self.mountpoint.path()
    }

    /// Writes a file in it until the file system is full (ENOSPC): whole MiBs, then pages,
    /// then single bytes. Returns the file and the bytes written.
    pub fn fill(&self, name: &str) -> (std::path::PathBuf, u64) {
        let path = self.path().join(name);
        let mut f = std::fs::File::create(&path).unwrap();
        let chunk = vec![0xA5u8; 1 << 20];
        let mut written = 0u64;
        for size in [1 << 20, 4096, 1] {
            loop {
                match f.write(&chunk[..size]) {
                    Ok(0) => break,
                    Ok(n) => written += n as u64,
                    Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
                    Err(e) => panic!("filling {}: {e}", path.display()),
                }
            }
        }
        (path, written)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let path = self.mountpoint.path();
        let ok = std::process::Command::new("umount")
            .arg(path)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Still busy (a process left in it): detach now, freed when the last user goes.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(path)
                .status();
        }
    }
}
