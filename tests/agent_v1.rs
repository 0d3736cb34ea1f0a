//! A v1 client that behaves exactly like the deployed Go agent: auth → heartbeat → registration
//! → reconnect with uid; a command written to it decrypts to what was sent.

mod common;
use aegis_gateway::protocol::channel::BackendKind;
use aegis_gateway::protocol::envelope;
use aegis_gateway::protocol::payloads::decode_b64_exact;
use common::*;
use std::time::Duration;

#[test]
fn go_agent_lifecycle_and_command() {
    let gw = TestGateway::start();
    let mut agent = gw.agent("aegis-agent-001", V1);
    let mut c = connect(gw.addr, &agent, None);
    authenticate(&mut c, &mut agent);
    // Heartbeat (constant nonce, trailing newline): no reply frame.
    let hb = agent.heartbeat(now_s()).unwrap();
    assert!(hb.ends_with("}\n"));
    assert!(hb.contains("\"nonce\":\"aGVhcnRiZWF0X25vbmNl\""));
    c.send(&hb);
    c.expect_silence(Duration::from_millis(300));
    let (uid, token) = register(&mut c, &mut agent, "host-v1");
    // The record is durable before R3: it is in the store now.
    let store = gw.running.as_ref().unwrap().store.as_ref().unwrap();
    let rec = store.get_agent(&uid).unwrap().expect("agent record stored");
    assert_eq!(rec.host_id, "host-v1");
    assert_eq!(rec.public_key, agent.public_b64());

    // A command to the connected agent: v1 channel rewrite, double encoding, 12-byte nonce.
    let handle = gw.running.as_ref().unwrap().handle();
    let sent = r#"{"policy_id":"p-1","rules":[{"action":"deny","path":"/tmp/x"}]}"#;
    let out = block_on(handle.deliver(&uid, command("m-1", BackendKind::Policies, sent)));
    assert!(out.is_ok(), "{out:?}");
    let frame = c.recv_text();
    let mut raw = frame.clone().into_bytes();
    let e = envelope::parse(&mut raw).unwrap();
    assert_eq!(e.channel, "backend.policies");
    assert_eq!(e.id, "m-1");
    assert!(decode_b64_exact::<12>(e.nonce.as_deref().unwrap()).is_some());
    let opened = agent.open(frame.as_bytes()).unwrap();
    assert_eq!(opened.body, sent.as_bytes());

    // Reconnect with uid + token: R1 ends the handshake; the old connection gets 4010.
    agent.reset_session();
    let mut c2 = connect(gw.addr, &agent, Some((&uid, &token)));
    authenticate(&mut c2, &mut agent);
    let mut seen = Vec::new();
    assert_eq!(c.recv_close(&mut seen), 4010);
    let hb = agent.heartbeat(now_s()).unwrap();
    assert!(hb.contains(&format!("agent.{uid}.heartbeat")));
    c2.send(&hb);
    c2.expect_silence(Duration::from_millis(300));
    // The new connection receives commands.
    let out = block_on(handle.deliver(
        &uid,
        command("m-2", BackendKind::Threats, r#"{"ioc":"1.2.3.4"}"#),
    ));
    assert!(out.is_ok(), "{out:?}");
    let opened = agent.open(c2.recv_text().as_bytes()).unwrap();
    assert_eq!(opened.envelope.channel, "backend.threats");
    assert_eq!(opened.body, br#"{"ioc":"1.2.3.4"}"#);
}
