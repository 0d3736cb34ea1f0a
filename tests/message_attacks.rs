//! Attacks with frames after authentication: forged signatures, publishing on another agent's
//! channel, malformed envelopes, tampered / replayed / skipped v2 seqs, oversize and invalid
//! UTF-8 frames. Each gets the PROTOCOL error kind and close code, and the gateway still serves
//! a fresh client afterwards.

mod common;
use aegis_gateway::crypto::{random, SigningKey};
use aegis_gateway::protocol::envelope::{self, MsgType};
use aegis_gateway::protocol::payloads::b64;
use common::*;
use std::io::Write;
use std::time::Duration;
use tungstenite::Message;

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
