//! A v2 client completes auth → heartbeat → registration → reconnect, verifies the gateway's R1
//! signature, and decrypts a sealed command; its ack is accepted.

mod common;
use aegis_gateway::protocol::channel::BackendKind;
use aegis_gateway::protocol::payloads::AuthResponse;
use common::*;
use std::time::Duration;

#[test]
fn v2_lifecycle_and_sealed_command() {
    let gw = TestGateway::start();
    let mut agent = gw.agent("agent-v2-a", V2);
    let mut c = connect(gw.addr, &agent, None);
    // R1 is verified against the gateway key inside `on_r1` (mutual authentication).
    let m1 = agent.m1(now_s(), aegis_gateway::crypto::random::bytes::<16>());
    c.send(&m1);
    let r1: AuthResponse = agent.on_r1(c.recv_text().as_bytes()).expect("R1 verified");
    assert_eq!(r1.v, Some(2));
    assert!(r1.signature.is_some());
    let hb = agent.heartbeat(now_s()).unwrap();
    c.send(&hb);
    c.expect_silence(Duration::from_millis(300));
    let (uid, token) = register(&mut c, &mut agent, "host-v2");
    let handle = gw.running.as_ref().unwrap().handle();
    let sent = r#"{"investigation":"inv-7","collect":["processes"]}"#;
    let out = block_on(handle.deliver(&uid, command("m-v2", BackendKind::Investigations, sent)));
    assert!(out.is_ok(), "{out:?}");
    let opened = agent
        .open(c.recv_text().as_bytes())
        .expect("sealed command opens");
    assert_eq!(
        opened.envelope.channel,
        format!("backend.{uid}.investigations")
    );
    assert_eq!(opened.envelope.id, "m-v2");
    assert_eq!(opened.body, sent.as_bytes());
    let ack = agent.ack("m-v2", now_s()).unwrap();
    c.send(&ack);
    c.expect_silence(Duration::from_millis(300));

    // Reconnect with uid: authenticated, and a command reaches the new connection.
    agent.reset_session();
    let mut c2 = connect(gw.addr, &agent, Some((&uid, &token)));
    authenticate(&mut c2, &mut agent);
    let out = block_on(handle.deliver(&uid, command("m-v2b", BackendKind::Tests, "[1,2,3]")));
    assert!(out.is_ok(), "{out:?}");
    let opened = agent.open(c2.recv_text().as_bytes()).unwrap();
    assert_eq!(opened.body, b"[1,2,3]");
    assert_eq!(opened.envelope.header("seq"), Some("1"));
}

#[test]
fn unregistered_agents_sharing_an_id_do_not_replace_each_other() {
    let gw = TestGateway::start();
    let mut a = gw.agent("aegis-agent-001", V2);
    let mut b = gw.agent("aegis-agent-001", V2);
    let mut ca = connect(gw.addr, &a, None);
    authenticate(&mut ca, &mut a);
    let mut cb = connect(gw.addr, &b, None);
    authenticate(&mut cb, &mut b);
    // Both stay up: each heartbeat is accepted silently.
    for (c, ag) in [(&mut ca, &mut a), (&mut cb, &mut b)] {
        let hb = ag.heartbeat(now_s()).unwrap();
        c.send(&hb);
        c.expect_silence(Duration::from_millis(200));
    }
}
