//! Readers of the admin event stream (`GET /api/v1/events`, Server-Sent Events).

use super::client::READ_TIMEOUT;
use super::gateway::{TestGateway, TOKEN};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

/// Opens `GET /api/v1/events{query}` (resuming after `last_id`) on the admin listener. Without
/// `last_id` the stream starts after seq 0, so it also carries events stored before it opened.
pub fn open_events(gw: &TestGateway, query: &str, last_id: Option<u64>) -> TcpStream {
    open_events_on(gw.admin, TOKEN, query, last_id)
}

/// [`open_events`] on any admin address with `token`.
pub fn open_events_on(
    admin: SocketAddr,
    token: &str,
    query: &str,
    last_id: Option<u64>,
) -> TcpStream {
    let mut s = TcpStream::connect(admin).unwrap();
    s.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    let mut req = format!(
        "GET /api/v1/events{query} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
    );
    if let Some(id) = last_id {
        req.push_str(&format!("Last-Event-ID: {id}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s
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
