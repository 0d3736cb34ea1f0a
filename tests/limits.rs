//! Limits that protect the fleet, each triggering with its documented status or close code while
//! the gateway keeps serving others.

mod common;
use aegis_gateway::protocol::channel::BackendKind;
use aegis_gateway::protocol::envelope::MsgType;
use aegis_gateway::protocol::session::unregistered_identity;
use common::*;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Sends the Go agent's upgrade from source address `from` and returns the HTTP status.
fn upgrade_status_from(gw: &TestGateway, from: &str) -> u16 {
    let a = gw.agent("limit-probe", V1);
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let src: SocketAddr = format!("{from}:0").parse().unwrap();
    sock.bind(&src.into()).unwrap();
    sock.connect(&gw.addr.into()).unwrap();
    let stream: TcpStream = sock.into();
    let req = go_upgrade_request(gw.addr, a.agent_id(), a.public_b64(), &[]);
    match connect_on(stream, req.as_bytes()) {
        Ok(_) => 101,
        Err(r) => r.status,
    }
}

#[test]
fn connect_rate_per_ip_answers_429() {
    let gw = TestGateway::start_with(|c| {
        c.connect_rate = 1;
        c.connect_burst = 3;
    });
    let statuses: Vec<u16> = (0..4)
        .map(|_| upgrade_status_from(&gw, "127.0.0.1"))
        .collect();
    assert_eq!(&statuses[..3], &[101, 101, 101]);
    assert_eq!(statuses[3], 429);
    // Another client address is not affected.
    assert_eq!(upgrade_status_from(&gw, "127.0.0.2"), 101);
}

#[test]
fn max_connections_answers_503_and_frees_slots() {
    let gw = TestGateway::start_with(|c| c.max_connections = 3);
    let mut held = Vec::new();
    for i in 0..3 {
        let mut a = gw.agent(&format!("max-{i}"), V2);
        let mut c = connect(gw.addr, &a, None);
        authenticate(&mut c, &mut a);
        held.push(c);
    }
    let a = gw.agent("max-extra", V2);
    let req = go_upgrade_request(gw.addr, a.agent_id(), a.public_b64(), &[]);
    let refused = connect_raw(gw.addr, req.as_bytes())
        .err()
        .expect("refused at the limit");
    assert_eq!(refused.status, 503);
    assert!(refused.body.contains("\"error\""));
    // Freeing one slot lets a new agent in (the slot is released when the server sees the close).
    held.pop();
    eventually("a freed slot admits a new agent", WAIT, || {
        let req = go_upgrade_request(gw.addr, a.agent_id(), a.public_b64(), &[]);
        connect_raw(gw.addr, req.as_bytes()).is_ok()
    });
}

#[test]
fn message_rate_limit_then_close_4007() {
    let gw = TestGateway::start_with(|c| {
        c.message_rate = 1;
        c.message_burst = 5;
    });
    for profile in [V1, V2] {
        let mut a = gw.agent("chatty", profile);
        let (mut c, uid, _) = onboard(&gw, &mut a, "host-chatty");
        // Registration used part of the burst; drain the rest with accepted messages.
        let ch = format!("agent.{uid}.logs");
        let mut limited = 0;
        let code = loop {
            let f = a
                .message(&ch, MsgType::Event, b"{}", now_s(), vec![])
                .unwrap();
            c.send(&f);
            match c.recv_within(Duration::from_millis(200)) {
                Recv::Text(t) => {
                    assert_eq!(error_kind(&mut a, &t), "rate_limited");
                    limited += 1;
                }
                Recv::Close(code) => break code,
                Recv::Timeout => {}
                other => panic!("{other:?}"),
            }
            assert!(
                limited <= 10,
                "no close after {limited} rate_limited errors"
            );
        };
        assert_eq!(code, 4007);
        assert_eq!(
            limited, 10,
            "the 10th limited frame gets its error, then the close"
        );
    }
    // Others are still served.
    let mut a = gw.agent("quiet", V2);
    let mut c = connect(gw.addr, &a, None);
    authenticate(&mut c, &mut a);
}

#[test]
fn throttled_v2_agent_stays_in_sequence() {
    let gw = TestGateway::start_with(|c| {
        c.message_rate = 2;
        c.message_burst = 4;
        // During the handshake error frames are dropped silently (PROTOCOL §3): end it soon.
        c.handshake_grace = Duration::from_millis(100);
    });
    let mut a = gw.agent("throttled", V2);
    let mut c = connect(gw.addr, &a, None);
    authenticate(&mut c, &mut a);
    let ch = format!("agent.{}.logs", a.ident());
    // The handshake is over once a command held back during it is written (PROTOCOL §3:
    // nothing unsolicited before its end), so from then on error frames are sent.
    let identity = unregistered_identity(a.agent_id(), a.public_b64());
    let probe = block_on(
        gw.handle()
            .deliver(&identity, command("grace-over", BackendKind::Tests, "{}")),
    );
    assert!(probe.is_ok(), "{probe:?}");
    let opened = a.open(c.recv_text().as_bytes()).unwrap();
    assert_eq!(opened.envelope.id, "grace-over");
    let mut limited = 0;
    for _ in 0..6 {
        let f = a
            .message(&ch, MsgType::Event, b"{}", now_s(), vec![])
            .unwrap();
        c.send(&f);
    }
    // Errors come at once; 500 ms of silence means all of them have been read.
    while let Recv::Text(t) = c.recv_within(Duration::from_millis(500)) {
        assert_eq!(error_kind(&mut a, &t), "rate_limited");
        limited += 1;
    }
    assert!(limited >= 1);
    // Once the bucket refills (a token per 500 ms), the next message (next seq) is accepted: no
    // replay_detected. Poll: a message sent before the refill is rate_limited (never anything
    // else), one sent after it gets no reply.
    loop {
        let f = a
            .message(&ch, MsgType::Event, b"{}", now_s(), vec![])
            .unwrap();
        c.send(&f);
        match c.recv_within(Duration::from_millis(300)) {
            Recv::Timeout => break,
            Recv::Text(t) => assert_eq!(error_kind(&mut a, &t), "rate_limited"),
            other => panic!("{other:?}"),
        }
        limited += 1;
        assert!(limited < 10, "still limited after {limited} frames");
    }
}
