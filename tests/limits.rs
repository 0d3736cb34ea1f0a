//! Limits that protect the fleet, each triggering with its documented status or close code while
//! the gateway keeps serving others.

mod common;
use aegis_gateway::protocol::envelope::MsgType;
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
    let mut ok = false;
    for _ in 0..100 {
        let req = go_upgrade_request(gw.addr, a.agent_id(), a.public_b64(), &[]);
        if connect_raw(gw.addr, req.as_bytes()).is_ok() {
            ok = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(ok, "slot was not released");
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
            c.ws.get_ref()
                .set_read_timeout(Some(Duration::from_millis(200)))
                .unwrap();
            match c.recv() {
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
    });
    let mut a = gw.agent("throttled", V2);
    let mut c = connect(gw.addr, &a, None);
    authenticate(&mut c, &mut a);
    let ch = format!("agent.{}.logs", a.ident());
    // Wait out the handshake grace so error frames are sent.
    std::thread::sleep(Duration::from_millis(5200));
    let mut limited = 0;
    for _ in 0..6 {
        let f = a
            .message(&ch, MsgType::Event, b"{}", now_s(), vec![])
            .unwrap();
        c.send(&f);
    }
    c.ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    while let Recv::Text(t) = c.recv() {
        assert_eq!(error_kind(&mut a, &t), "rate_limited");
        limited += 1;
    }
    assert!(limited >= 1);
    // After the bucket refills, the next message (next seq) is accepted: no replay_detected.
    std::thread::sleep(Duration::from_millis(1100));
    let f = a
        .message(&ch, MsgType::Event, b"{}", now_s(), vec![])
        .unwrap();
    c.send(&f);
    c.expect_silence(Duration::from_millis(300));
}
