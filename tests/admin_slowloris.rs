//! The admin API under a slow-loris attack from one IP, against the real gateway (hardening
//! issue, item 4): 300 connections that never finish a request head, more than the listener's
//! 256-connection cap, must not shut the admin API for another client, nor health probes from
//! anywhere, the attacker's own address included.

mod common;
use common::*;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};

/// A connection to `to` from source address `ip` (any of 127.0.0.0/8 reaches loopback).
fn connect_from(to: SocketAddr, ip: [u8; 4]) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&SocketAddr::from((ip, 0)).into()).unwrap();
    socket.connect(&to.into()).unwrap();
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
    stream
}

/// One request with `Connection: close` from `ip`; the response's status.
fn status_from(to: SocketAddr, ip: [u8; 4], path: &str, token: Option<&str>) -> u16 {
    let mut s = connect_from(to, ip);
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: gw\r\n{auth}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw).0
}

#[test]
fn slow_clients_of_one_ip_do_not_shut_the_admin_api() {
    let gw = TestGateway::start();
    let attackers: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut s = connect_from(gw.admin, [127, 0, 0, 1]);
            s.write_all(b"GET /api/v1/agents HTTP/1.1\r\nHost: gw\r\nX-Slow: a")
                .unwrap();
            s
        })
        .collect();
    assert_eq!(
        status_from(gw.admin, [127, 0, 0, 2], "/api/v1/agents", Some(TOKEN)),
        200,
        "another client is shut out"
    );
    for ip in [[127, 0, 0, 3], [127, 0, 0, 1]] {
        assert_eq!(status_from(gw.admin, ip, "/healthz", None), 200, "{ip:?}");
        assert_eq!(status_from(gw.admin, ip, "/readyz", None), 200, "{ip:?}");
    }
    // The attacker's address itself still gets a real request through (it takes the slot of
    // one of its own slow connections).
    assert_eq!(
        status_from(gw.admin, [127, 0, 0, 1], "/api/v1/agents", Some(TOKEN)),
        200
    );
    drop(attackers);
}
