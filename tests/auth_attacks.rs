//! Attacks on authentication over real sockets: forged, replayed and stale M1, a key that does
//! not match the upgrade headers, a message before auth, and attempts to take over a registered
//! uid. Each is refused (R1 `success:false`, close 4001) and the gateway still serves a fresh
//! client afterwards.

mod common;
use aegis_gateway::crypto::{random, SigningKey};
use aegis_gateway::protocol::envelope;
use aegis_gateway::protocol::payloads::b64;
use aegis_gateway::testkit::agent::Agent;
use common::*;
use std::time::Duration;

#[test]
fn auth_attacks_fail_with_4001() {
    let gw = TestGateway::start();
    // Bad signature: M1 signed by another key but claiming this one.
    let mut a = gw.agent("victim-1", V1);
    let mut c = connect(gw.addr, &a, None);
    let m1 = a.m1(now_s(), random::bytes::<16>());
    let mut raw = m1.clone().into_bytes();
    let mut e = envelope::parse(&mut raw).unwrap();
    let json =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &e.payload).unwrap();
    let mut req: serde_json::Value = serde_json::from_slice(&json).unwrap();
    req["signature"] = b64(&SigningKey::generate().sign(b"x")).into();
    e.payload = b64(&serde_json::to_vec(&req).unwrap());
    let (r, code) = m1_outcome(&mut c, &e.to_json());
    assert!(!r.success && r.session_token.is_empty() && r.expires_at == 0);
    assert_eq!(code, 4001);

    // Replayed auth nonce: the same M1 on a second connection.
    let mut c = connect(gw.addr, &a, None);
    let m1 = a.m1(now_s(), [42; 16]);
    c.send(&m1);
    a.on_r1(c.recv_text().as_bytes()).unwrap();
    let mut c2 = connect(gw.addr, &a, None);
    let (r, code) = m1_outcome(&mut c2, &m1);
    assert!(!r.success, "replay accepted");
    assert_eq!(code, 4001);

    // Stale timestamp.
    let mut c = connect(gw.addr, &a, None);
    let (r, code) = m1_outcome(&mut c, &a.m1(now_s() - 3600, random::bytes::<16>()));
    assert!(!r.success);
    assert_eq!(code, 4001);

    // Key in M1 ≠ header key: headers of agent b, M1 of agent a.
    let b = gw.agent("victim-1", V1);
    let mut c = connect(gw.addr, &b, None);
    let (r, code) = m1_outcome(&mut c, &a.m1(now_s(), random::bytes::<16>()));
    assert!(!r.success);
    assert_eq!(code, 4001);

    // A message before auth: authentication_failed error frame, then 4001.
    let mut c = connect(gw.addr, &a, None);
    c.send(r#"{"id":"h1","type":"heartbeat","channel":"agent.victim-1.heartbeat","payload":"e30=","timestamp":1,"nonce":"aGVhcnRiZWF0X25vbmNl","signature":"AA=="}"#);
    let mut seen = Vec::new();
    assert_eq!(c.recv_close(&mut seen), 4001);
    assert!(seen[0].contains("\"channel\":\"error\""));
    assert_still_serving(&gw);
}

#[test]
fn hijacking_a_uid_fails() {
    let gw = TestGateway::start();
    let mut victim = gw.agent("victim-2", V2);
    let (mut vc, uid, token) = onboard(&gw, &mut victim, "host-victim");
    // Wrong token with the victim's key material unknown to the attacker: attacker key.
    let mut thief = gw.agent("thief", V2);
    let req = go_upgrade_request(
        gw.addr,
        &uid,
        thief.public_b64(),
        &[
            ("X-Agent-Uid", &uid),
            (
                "X-Bootstrap-Token",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            ),
        ],
    );
    let mut c = connect_raw(gw.addr, req.as_bytes()).unwrap();
    let (r, code) = m1_outcome(&mut c, &thief.m1(now_s(), random::bytes::<16>()));
    assert!(!r.success);
    assert_eq!(code, 4001);
    // The right token (stolen) but the attacker's key.
    let req = go_upgrade_request(
        gw.addr,
        &uid,
        thief.public_b64(),
        &[("X-Agent-Uid", &uid), ("X-Bootstrap-Token", &token)],
    );
    let mut c = connect_raw(gw.addr, req.as_bytes()).unwrap();
    let (r, code) = m1_outcome(&mut c, &thief.m1(now_s(), random::bytes::<16>()));
    assert!(!r.success);
    assert_eq!(code, 4001);
    // An unregistered agent posing as the uid on a first connection.
    let mut poser = Agent::new(SigningKey::generate(), &uid, V2, Some(gw.public_key));
    let mut c = connect(gw.addr, &poser, None);
    let (r, code) = m1_outcome(&mut c, &poser.m1(now_s(), random::bytes::<16>()));
    assert!(!r.success);
    assert_eq!(code, 4001);
    // The victim's connection was never replaced.
    let hb = victim.heartbeat(now_s()).unwrap();
    vc.send(&hb);
    vc.expect_silence(Duration::from_millis(200));
    let _ = thief.ident();
    assert_still_serving(&gw);
}
