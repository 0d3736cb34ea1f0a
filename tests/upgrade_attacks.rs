//! Attacks on the HTTP upgrade: garbage instead of HTTP, missing or inconsistent agent headers,
//! an oversize head, and a slowloris client. Each gets its HTTP error (or the socket is cut),
//! and the gateway still serves a fresh client afterwards.

mod common;
use aegis_gateway::crypto::random;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[test]
fn bad_upgrades_get_http_errors() {
    // The slowloris case below waits out the upgrade timeout: keep it short. Every other request
    // is written whole at once, so it is complete long before the timeout.
    let gw = TestGateway::start_with(|c| c.upgrade_timeout = Duration::from_millis(300));
    // Binary garbage instead of HTTP.
    let r = connect_raw(gw.addr, &random::bytes::<256>()).err().unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("\"error\""));
    // Missing X-Agent-Public-Key.
    let req = String::from("GET /ws/agent HTTP/1.1\r\nHost: x\r\nUser-Agent: Aegis-Agent/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Agent-Id: a\r\n\r\n");
    let r = connect_raw(gw.addr, req.as_bytes()).err().unwrap();
    assert_eq!(r.status, 400);
    assert!(r.body.contains("invalid_request"));
    // X-Agent-Uid without X-Bootstrap-Token.
    let a = gw.agent("u", V1);
    let req = go_upgrade_request(gw.addr, "u", a.public_b64(), &[("X-Agent-Uid", "u")]);
    assert_eq!(
        connect_raw(gw.addr, req.as_bytes()).err().unwrap().status,
        400
    );
    // Oversize head.
    let mut req = go_upgrade_request(gw.addr, "u", a.public_b64(), &[]).into_bytes();
    req.truncate(req.len() - 2);
    req.extend(format!("X-Pad: {}\r\n\r\n", "p".repeat(20 * 1024)).into_bytes());
    assert_eq!(connect_raw(gw.addr, &req).err().unwrap().status, 431);
    // Slowloris: half a head, then nothing; the gateway closes the socket once the upgrade
    // timeout passes (the read below blocks until then, bounded by its own 10 s timeout).
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /ws/agent HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "slow client is cut off without a response");
    assert_still_serving(&gw);
}
