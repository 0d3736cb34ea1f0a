//! One agent connection: TCP connect (optionally from a chosen loopback source address), the
//! upgrade request written by hand like the Go agent's, the 101 head read by hand, then
//! async-tungstenite over the glommio stream with small buffers.

use crate::url::Endpoint;
use aegis_gateway::testkit::agent::AgentError;
use async_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use async_tungstenite::tungstenite::{Error as WsError, Message};
use async_tungstenite::WebSocketStream;
use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};
use glommio::net::TcpStream;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

/// A client WebSocket over glommio.
pub type Ws = WebSocketStream<TcpStream>;

/// Largest upgrade response head accepted.
const MAX_HEAD: usize = 16 * 1024;
/// Largest gateway message accepted.
const MAX_MESSAGE: usize = 1 << 20;

/// Why an agent's step failed; each maps to an error label of the report.
#[derive(Debug, thiserror::Error)]
pub enum Fail {
    /// TCP connect failed.
    #[error("connect: {0}")]
    Connect(std::io::ErrorKind),
    /// A step did not finish in time.
    #[error("timeout waiting for {0}")]
    Timeout(&'static str),
    /// The upgrade was refused with this status.
    #[error("upgrade refused: HTTP {0}")]
    Http(u16),
    /// The response head was not HTTP or too large.
    #[error("malformed upgrade response")]
    BadHead,
    /// The gateway closed the WebSocket with this code.
    #[error("closed by gateway with {0}")]
    Closed(u16),
    /// The TCP connection ended without a close frame.
    #[error("connection lost")]
    Eof,
    /// A WebSocket or socket error.
    #[error("websocket: {0}")]
    Ws(String),
    /// The agent logic refused a gateway frame.
    #[error("agent: {0}")]
    Agent(#[from] AgentError),
    /// The gateway answered with an error frame where a reply was expected.
    #[error("gateway error {0}")]
    Gateway(String),
    /// A frame on an unexpected channel.
    #[error("unexpected frame on {0}")]
    Unexpected(String),
}

impl Fail {
    /// The label counted in the report's `errors`.
    pub fn label(&self) -> String {
        match self {
            Fail::Connect(k) => format!("connect_{k:?}").to_lowercase(),
            Fail::Timeout(what) => format!("timeout_{what}"),
            Fail::Http(s) => format!("http_{s}"),
            Fail::BadHead => "bad_upgrade_response".into(),
            Fail::Closed(c) => format!("closed_{c}"),
            Fail::Eof => "eof".into(),
            Fail::Ws(_) => "ws_error".into(),
            Fail::Agent(e) => match e {
                AgentError::Malformed(_) => "malformed_frame".into(),
                AgentError::Refused(_) => "auth_refused".into(),
                AgentError::BadSignature => "bad_gateway_signature".into(),
                AgentError::Seq { .. } => "bad_seq".into(),
                AgentError::Decrypt => "decrypt".into(),
                AgentError::NotReady => "not_ready".into(),
            },
            Fail::Gateway(kind) => format!("gw_{kind}"),
            Fail::Unexpected(_) => "unexpected_frame".into(),
        }
    }
}

impl From<WsError> for Fail {
    fn from(e: WsError) -> Fail {
        match e {
            WsError::ConnectionClosed | WsError::AlreadyClosed => Fail::Eof,
            WsError::Io(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Fail::Eof,
            other => Fail::Ws(other.to_string()),
        }
    }
}

/// Small buffers: 19,000 connections per process must fit.
pub fn ws_config() -> WebSocketConfig {
    let mut c = WebSocketConfig::default();
    c.read_buffer_size = 4096;
    c.write_buffer_size = 16 * 1024;
    c.max_write_buffer_size = 4 * MAX_MESSAGE;
    c.max_message_size = Some(MAX_MESSAGE);
    c.max_frame_size = Some(MAX_MESSAGE);
    c
}

/// Opens a TCP connection to `to`, from `source` when given, within `timeout`.
pub async fn tcp_connect(
    to: SocketAddr,
    source: Option<Ipv4Addr>,
    timeout: Duration,
) -> Result<TcpStream, Fail> {
    let stream = match source {
        None => TcpStream::connect_timeout(to, timeout)
            .await
            .map_err(|e| Fail::Connect(std::io::Error::from(e).kind()))?,
        Some(ip) => bound_connect(to, ip, timeout).await?,
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Non-blocking connect from `ip`, polled until connected (glommio has no connect for a bound
/// socket): loopback connects complete in microseconds, so a 1 ms poll costs nothing.
async fn bound_connect(to: SocketAddr, ip: Ipv4Addr, timeout: Duration) -> Result<TcpStream, Fail> {
    use socket2::{Domain, Protocol, SockAddr, Socket, Type};
    let io = |e: std::io::Error| Fail::Connect(e.kind());
    let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).map_err(io)?;
    crate::sys::bind_address_no_port(&s).map_err(io)?;
    s.bind(&SockAddr::from(SocketAddr::new(ip.into(), 0)))
        .map_err(io)?;
    s.set_nonblocking(true).map_err(io)?;
    match s.connect(&SockAddr::from(to)) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {
            let until = Instant::now() + timeout;
            loop {
                if let Some(e) = s.take_error().map_err(io)? {
                    return Err(io(e));
                }
                if s.peer_addr().is_ok() {
                    break;
                }
                if Instant::now() >= until {
                    return Err(Fail::Timeout("connect"));
                }
                glommio::timer::sleep(Duration::from_millis(1)).await;
            }
        }
        Err(e) => return Err(io(e)),
    }
    Ok(crate::sys::into_glommio(s))
}

/// The Go agent's upgrade request (header spelling and order), plus `X-Agent-Uid` and
/// `X-Bootstrap-Token` on a reconnect.
pub fn upgrade_request(
    ep: &Endpoint,
    agent_id: &str,
    public_key_b64: &str,
    reconnect: Option<(&str, &str)>,
) -> String {
    let key = aegis_gateway::protocol::payloads::b64(&aegis_gateway::crypto::random::bytes::<16>());
    let id = reconnect.map_or(agent_id, |(uid, _)| uid);
    let mut s = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Aegis-Agent/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\nX-Agent-Id: {id}\r\nX-Agent-Public-Key: {public_key_b64}\r\n",
        ep.path, ep.host_header
    );
    if let Some((uid, token)) = reconnect {
        s.push_str(&format!(
            "X-Agent-Uid: {uid}\r\nX-Bootstrap-Token: {token}\r\n"
        ));
    }
    s.push_str("\r\n");
    s
}

/// The status of a response head, or `None` if it is not HTTP/1.x.
pub fn head_status(head: &[u8]) -> Option<u16> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => resp.code,
        _ => None,
    }
}

/// Writes `request`, reads the response head and, on 101, returns the WebSocket.
pub async fn upgrade(mut stream: TcpStream, request: &str, timeout: Duration) -> Result<Ws, Fail> {
    let io = |e: std::io::Error| Fail::Ws(e.to_string());
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let read_head = async {
        let mut head = Vec::with_capacity(256);
        let mut chunk = [0u8; 512];
        loop {
            let n = stream.read(&mut chunk).await.map_err(io)?;
            if n == 0 {
                return Err(Fail::Eof);
            }
            head.extend_from_slice(chunk.get(..n).unwrap_or_default());
            if let Some(end) = find_head_end(&head) {
                return Ok((head, end));
            }
            if head.len() > MAX_HEAD {
                return Err(Fail::BadHead);
            }
        }
    };
    let (head, end) = with_timeout(timeout, "upgrade", read_head).await??;
    match head_status(head.get(..end).unwrap_or_default()) {
        Some(101) => {}
        Some(code) => return Err(Fail::Http(code)),
        None => return Err(Fail::BadHead),
    }
    let rest = head.get(end..).unwrap_or_default().to_vec();
    Ok(if rest.is_empty() {
        WebSocketStream::from_raw_socket(stream, Role::Client, Some(ws_config())).await
    } else {
        WebSocketStream::from_partially_read(stream, rest, Role::Client, Some(ws_config())).await
    })
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

/// Runs `f`, or gives `Fail::Timeout(what)` after `d`.
pub async fn with_timeout<T>(
    d: Duration,
    what: &'static str,
    f: impl std::future::Future<Output = T>,
) -> Result<T, Fail> {
    futures_lite::future::or(async { Ok(f.await) }, async {
        glommio::timer::sleep(d).await;
        Err(Fail::Timeout(what))
    })
    .await
}

/// What the next WebSocket message was.
pub enum Incoming {
    /// A text (or binary) frame.
    Text(Vec<u8>),
    /// A pong with its payload.
    Pong(Vec<u8>),
}

/// The next text frame or pong (pings are answered by tungstenite); a close or EOF is an error.
pub async fn next_incoming(ws: &mut Ws) -> Result<Incoming, Fail> {
    loop {
        match ws.next().await {
            None => return Err(Fail::Eof),
            Some(Err(e)) => return Err(e.into()),
            Some(Ok(Message::Text(t))) => return Ok(Incoming::Text(t.as_bytes().to_vec())),
            Some(Ok(Message::Binary(b))) => return Ok(Incoming::Text(b.to_vec())),
            Some(Ok(Message::Pong(p))) => return Ok(Incoming::Pong(p.to_vec())),
            Some(Ok(Message::Close(f))) => {
                return Err(Fail::Closed(f.map_or(1005, |f| u16::from(f.code))))
            }
            Some(Ok(_)) => continue,
        }
    }
}

/// The next text frame within `d`.
pub async fn next_text(ws: &mut Ws, d: Duration, what: &'static str) -> Result<Vec<u8>, Fail> {
    with_timeout(d, what, async {
        loop {
            if let Incoming::Text(t) = next_incoming(ws).await? {
                return Ok(t);
            }
        }
    })
    .await?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upgrade_request_looks_like_the_go_agent() {
        let ep = crate::url::parse_ws("ws://127.0.0.1:8080/ws/agent").unwrap();
        let r = upgrade_request(&ep, "lg-1", "PK==", None);
        assert!(r.starts_with(
            "GET /ws/agent HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: Aegis-Agent/1.0\r\n"
        ));
        assert!(r.contains("X-Agent-Id: lg-1\r\nX-Agent-Public-Key: PK==\r\n\r\n"));
        assert!(!r.contains("X-Agent-Uid"));
        let r = upgrade_request(&ep, "lg-1", "PK==", Some(("uid-9", "tok")));
        assert!(r.contains("X-Agent-Id: uid-9\r\n"));
        assert!(r.contains("X-Agent-Uid: uid-9\r\nX-Bootstrap-Token: tok\r\n\r\n"));
    }

    #[test]
    fn reads_status_of_heads() {
        assert_eq!(
            head_status(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"),
            Some(101)
        );
        assert_eq!(
            head_status(b"HTTP/1.1 429 Too Many Requests\r\nContent-Length: 0\r\n\r\n"),
            Some(429)
        );
        assert_eq!(head_status(b"garbage\r\n\r\n"), None);
        assert_eq!(find_head_end(b"HTTP/1.1 101 OK\r\n\r\nxyz"), Some(19));
        assert_eq!(find_head_end(b"HTTP/1.1 101 OK\r\n"), None);
    }

    #[test]
    fn labels_are_stable() {
        assert_eq!(Fail::Http(503).label(), "http_503");
        assert_eq!(Fail::Closed(4001).label(), "closed_4001");
        assert_eq!(
            Fail::Gateway("replay_detected".into()).label(),
            "gw_replay_detected"
        );
        assert_eq!(Fail::Agent(AgentError::Decrypt).label(), "decrypt");
        assert_eq!(
            Fail::Connect(std::io::ErrorKind::ConnectionRefused).label(),
            "connect_connectionrefused"
        );
    }
}
