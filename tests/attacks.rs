//! Attacks over real sockets: each is rejected with the PROTOCOL error kind or close code, and
//! the gateway still serves a fresh client afterwards.

mod common;
use aegis_gateway::crypto::{random, SigningKey};
use aegis_gateway::protocol::envelope::{self, MsgType};
use aegis_gateway::protocol::payloads::{b64, AuthResponse};
use aegis_gateway::testkit::agent::Agent;
use common::*;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use tungstenite::Message;

/// A fresh v2 agent can still connect, authenticate and heartbeat.
fn assert_still_serving(gw: &TestGateway) {
    let mut a = gw.agent(
        &format!(
            "fresh-{}",
            random::token_urlsafe(6).replace(['-', '_'], "x")
        ),
        V2,
    );
    let mut c = connect(gw.addr, &a, None);
    authenticate(&mut c, &mut a);
    let hb = a.heartbeat(now_s()).unwrap();
    c.send(&hb);
    c.expect_silence(Duration::from_millis(100));
}

/// Sends M1 and returns (R1, close code).
fn m1_outcome(c: &mut Client, m1: &str) -> (AuthResponse, u16) {
    c.send(m1);
    let r1 = c.recv_text();
    let mut raw = r1.into_bytes();
    let e = envelope::parse(&mut raw).unwrap();
    let json =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, e.payload).unwrap();
    let r: AuthResponse = serde_json::from_slice(&json).unwrap();
    let code = c.recv_close(&mut Vec::new());
    (r, code)
}

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

#[test]
fn forged_heartbeats_close_v1_on_the_third() {
    let gw = TestGateway::start();
    let mut a = gw.agent("aegis-agent-001", V1);
    let (mut c, _uid, _) = onboard(&gw, &mut a, "host-forge");
    let real = a.heartbeat(now_s()).unwrap();
    let mut raw = real.into_bytes();
    let mut e = envelope::parse(&mut raw).unwrap();
    e.signature = Some(b64(&SigningKey::generate().sign(b"forged")));
    let forged = e.to_json();
    for _ in 0..2 {
        c.send(&forged);
        assert_eq!(
            error_kind(&mut a, &c.recv_text()),
            "signature_verification_failed"
        );
    }
    c.send(&forged);
    let mut seen = Vec::new();
    assert_eq!(c.recv_close(&mut seen), 4003);
    assert_eq!(
        error_kind(&mut a, &seen[0]),
        "signature_verification_failed"
    );
    assert_still_serving(&gw);
}

#[test]
fn channel_and_envelope_abuse() {
    let gw = TestGateway::start();
    for profile in [V1, V2] {
        let mut a = gw.agent("abuser", profile);
        let (mut c, _uid, _) = onboard(&gw, &mut a, "host-abuse");
        // Publishing on another agent's channel.
        let f = a
            .message(
                "agent.someone-else.policies",
                MsgType::Event,
                b"{}",
                now_s(),
                vec![],
            )
            .unwrap();
        c.send(&f);
        assert_eq!(error_kind(&mut a, &c.recv_text()), "channel_forbidden");
        // Malformed JSON and binary garbage: invalid_message, 5th closes 4008.
        c.send("{not json");
        assert_eq!(error_kind(&mut a, &c.recv_text()), "invalid_message");
        assert!(c.send_msg(Message::Binary(random::bytes::<64>().to_vec().into())));
        assert_eq!(error_kind(&mut a, &c.recv_text()), "invalid_message");
        for _ in 0..2 {
            c.send("[]");
            assert_eq!(error_kind(&mut a, &c.recv_text()), "invalid_message");
        }
        c.send("null");
        let mut seen = Vec::new();
        assert_eq!(c.recv_close(&mut seen), 4008);
        assert_eq!(error_kind(&mut a, &seen[0]), "invalid_message");
    }
    assert_still_serving(&gw);
}

#[test]
fn v2_tampered_replayed_and_skipped() {
    let gw = TestGateway::start();
    // Tampered payload.
    let mut a = gw.agent("tamper", V2);
    let (mut c, uid, _) = onboard(&gw, &mut a, "host-t");
    let ch = format!("agent.{uid}.logs");
    let f = a
        .message(&ch, MsgType::Event, br#"{"l":1}"#, now_s(), vec![])
        .unwrap();
    let tampered = f.replacen("\"payload\":\"", "\"payload\":\"AAAA", 1);
    c.send(&tampered);
    let mut seen = Vec::new();
    assert_eq!(c.recv_close(&mut seen), 4003);
    assert_eq!(
        error_kind(&mut a, &seen[0]),
        "signature_verification_failed"
    );
    // Replayed seq.
    let mut a = gw.agent("replay", V2);
    let (mut c, uid, _) = onboard(&gw, &mut a, "host-r");
    let f = a
        .message(
            &format!("agent.{uid}.logs"),
            MsgType::Event,
            b"{}",
            now_s(),
            vec![],
        )
        .unwrap();
    c.send(&f);
    c.expect_silence(Duration::from_millis(100));
    c.send(&f);
    let mut seen = Vec::new();
    assert_eq!(c.recv_close(&mut seen), 4006);
    assert_eq!(error_kind(&mut a, &seen[0]), "replay_detected");
    // Skipped seq.
    let mut a = gw.agent("skip", V2);
    let (mut c, uid, _) = onboard(&gw, &mut a, "host-s");
    let ch = format!("agent.{uid}.logs");
    let _lost = a
        .message(&ch, MsgType::Event, b"{}", now_s(), vec![])
        .unwrap();
    let f = a
        .message(&ch, MsgType::Event, b"{}", now_s(), vec![])
        .unwrap();
    c.send(&f);
    assert_eq!(c.recv_close(&mut Vec::new()), 4006);
    assert_still_serving(&gw);
}

#[test]
fn oversize_and_invalid_utf8_close_1009_and_1007() {
    let gw = TestGateway::start();
    let mut a = gw.agent("big", V2);
    let (mut c, _, _) = onboard(&gw, &mut a, "host-big");
    let big = vec![b'a'; 300 * 1024];
    let _ = c.send_msg(Message::Binary(big.into()));
    assert_eq!(c.recv_close(&mut Vec::new()), 1009);

    // Invalid UTF-8 in a text frame, written raw (masked, as a client must).
    for authed in [false, true] {
        let mut a = gw.agent("utf8", V2);
        let mut c = connect(gw.addr, &a, None);
        if authed {
            authenticate(&mut c, &mut a);
        }
        let payload = [0xffu8, 0xfe, 0xfd];
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x81, 0x80 | payload.len() as u8];
        frame.extend_from_slice(&mask);
        frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        c.ws.get_mut().write_all(&frame).unwrap();
        assert_eq!(c.recv_close(&mut Vec::new()), 1007);
    }
    assert_still_serving(&gw);
}

#[test]
fn bad_upgrades_get_http_errors() {
    let gw = TestGateway::start_with(|c| c.upgrade_timeout = Duration::from_secs(1));
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
    // Slowloris: half a head, then nothing; the gateway closes the socket (upgrade timeout 1 s).
    let mut s = TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /ws/agent HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let mut buf = [0u8; 16];
    let n = s.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "slow client is cut off without a response");
    assert_still_serving(&gw);
}

#[test]
fn two_hundred_rapid_reconnects_of_one_uid() {
    let gw = TestGateway::start();
    let mut a = gw.agent("flappy", V2);
    let (first, uid, token) = onboard(&gw, &mut a, "host-flap");
    let mut prev = first;
    for _ in 0..200 {
        a.reset_session();
        let mut c = connect(gw.addr, &a, Some((&uid, &token)));
        authenticate(&mut c, &mut a);
        assert_eq!(prev.recv_close(&mut Vec::new()), 4010);
        prev = c;
    }
    // The last connection is the live one: it gets a command.
    let handle = gw.running.as_ref().unwrap().handle();
    let out = block_on(handle.deliver(
        &uid,
        command(
            "after-flap",
            aegis_gateway::protocol::channel::BackendKind::Policies,
            "{}",
        ),
    ));
    assert!(out.is_ok(), "{out:?}");
    assert_eq!(
        a.open(prev.recv_text().as_bytes()).unwrap().envelope.id,
        "after-flap"
    );
    assert_still_serving(&gw);
}

#[test]
fn silent_client_after_upgrade_is_cut_off_with_4001() {
    let gw = TestGateway::start_with(|c| c.auth_timeout = Duration::from_secs(1));
    let a = gw.agent("silent", V2);
    let mut c = connect(gw.addr, &a, None);
    let mut seen = Vec::new();
    assert_eq!(c.recv_close(&mut seen), 4001);
    let mut raw = seen[0].clone().into_bytes();
    let e = envelope::parse(&mut raw).unwrap();
    assert_eq!(e.channel, "error");
    let json =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &e.payload).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["error"], "authentication_failed");
    assert_still_serving(&gw);
}

#[test]
fn gateway_pings_and_closes_an_idle_connection() {
    let gw = TestGateway::start_with(|c| {
        c.ping_interval = Duration::from_millis(300);
        c.idle_timeout = Duration::from_millis(1200);
    });
    let mut a = gw.agent("idle", V2);
    let mut c = connect(gw.addr, &a, None);
    authenticate(&mut c, &mut a);
    // Not reading means not answering pings: the connection is silent. Read the server's raw
    // frames afterwards (a WebSocket client would try to answer the pings on a closed socket).
    std::thread::sleep(Duration::from_millis(2000));
    let mut raw = Vec::new();
    let _ = c.ws.get_mut().read_to_end(&mut raw);
    let (mut pings, mut code, mut i) = (0, 0u16, 0usize);
    while i + 2 <= raw.len() {
        let (opcode, len) = (raw[i] & 0x0f, usize::from(raw[i + 1] & 0x7f));
        let payload = &raw[(i + 2).min(raw.len())..(i + 2 + len).min(raw.len())];
        match opcode {
            0x9 => pings += 1,
            0x8 if payload.len() >= 2 => code = u16::from_be_bytes([payload[0], payload[1]]),
            _ => {}
        }
        i += 2 + len;
    }
    assert!(pings >= 2, "gateway pinged ({pings})");
    assert_eq!(code, 1000, "idle timeout closes normally");
    assert_still_serving(&gw);
}
