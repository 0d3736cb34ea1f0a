//! A blocking WebSocket client that writes its upgrade request byte for byte like the Go agent
//! (gorilla/websocket), over plain TCP or TLS.

use aegis_gateway::crypto::random;
use aegis_gateway::testkit::agent::Agent;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;
use tungstenite::protocol::Role;
use tungstenite::{Message, WebSocket};

/// How long a test client waits for a frame before failing.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

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

/// A connected test client.
pub struct Client<S: Timeouts = TcpStream> {
    pub ws: WebSocket<S>,
}

/// An HTTP status and body when the upgrade is refused.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: String,
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

/// Sends `request` and reads the response head; a 101 gives a client.
pub fn connect_raw(addr: SocketAddr, request: &[u8]) -> Result<Client, Refused> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_nodelay(true).unwrap();
    connect_on(stream, request)
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
    /// Sends a text frame; panics if the socket is gone.
    pub fn send(&mut self, text: &str) {
        self.ws.send(Message::text(text.to_string())).unwrap();
    }

    /// Sends any message; false if the socket is gone.
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

    /// Like [`Client::recv`] with a read timeout of `d` for this one read.
    pub fn recv_within(&mut self, d: Duration) -> Recv {
        self.ws.get_ref().set_timeout(d);
        let r = self.recv();
        self.ws.get_ref().set_timeout(READ_TIMEOUT);
        r
    }

    /// The next text frame; panics on anything else.
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

    /// Expects no frame for `d`. "Nothing arrives" is then the subject of the test, so `d`
    /// is a short, deliberate window, not a wait for something to happen.
    pub fn expect_silence(&mut self, d: Duration) {
        assert_eq!(self.recv_within(d), Recv::Timeout, "expected silence");
    }
}
