//! The handshake and steady state driven step by step for both profiles, no IO: a gateway
//! [`Session`] and an [`Agent`] pass frames by hand.

use super::*;
use crate::crypto::{self, SigningKey};
use crate::protocol::channel::BackendKind;
use crate::protocol::payloads::{b64, AuthResponse, RegistrationChallenge};
use crate::testkit::agent::{Agent, AgentError};
use crate::testkit::pair::{
    close_code, error_kind_of, registration_request, sends, upgrade_for, Pair, T0,
};

fn r1_of(frame: &str) -> AuthResponse {
    let mut buf = frame.as_bytes().to_vec();
    let e = crate::protocol::envelope::parse(&mut buf).unwrap();
    assert_eq!(
        crate::protocol::payloads::decode_b64_exact::<12>(e.nonce.as_deref().unwrap()).map(|_| ()),
        Some(())
    );
    let raw =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, e.payload).unwrap();
    serde_json::from_slice(&raw).unwrap()
}

#[test]
fn v1_full_handshake_then_command() {
    let mut p = Pair::new(Profile::V1);
    let actions = p.authenticate();
    assert!(matches!(
        actions[1],
        Action::Authenticated {
            profile: Profile::V1,
            ..
        }
    ));
    assert!(
        !p.session.handshake_over(),
        "first connection: handshake lasts until R3"
    );
    // A heartbeat between R1 and M3: no reply.
    let hb = p.agent.heartbeat(p.ts()).unwrap();
    assert!(hb.ends_with('\n'), "Go agent style trailing newline");
    let actions = p.feed(&hb);
    assert!(sends(&actions).is_empty());
    assert!(actions.iter().any(|a| matches!(a, Action::Heartbeat)));
    let (uid, _) = p.register();
    assert_eq!(p.session.ident(), uid);
    let frame = p
        .with(|s, env, now| {
            s.command_frame(
                env,
                "cmd-1",
                BackendKind::Policies,
                MsgType::Request,
                br#"{"rule":"deny"}"#,
                now,
            )
        })
        .unwrap();
    let opened = p.agent.open(frame.as_bytes()).unwrap();
    assert_eq!(
        opened.envelope.channel, "backend.policies",
        "v1 channel rewrite"
    );
    assert_eq!(opened.envelope.id, "cmd-1");
    assert_eq!(opened.body, br#"{"rule":"deny"}"#);
    p.agent.check_plain_signature(&opened.envelope).unwrap();
}

#[test]
fn v2_full_handshake_then_sealed_command_and_ack() {
    let mut p = Pair::new(Profile::V2);
    let actions = p.authenticate();
    let r1 = r1_of(&sends(&actions)[0]);
    assert_eq!(r1.v, Some(2));
    assert!(r1.session_token.len() >= 20);
    let claims = crypto::token::verify(&p.gw.public(), &r1.session_token, p.ts()).unwrap();
    assert_eq!(claims.sub, "aegis-agent-001");
    assert_eq!(claims.v, 2);
    assert_eq!(r1.expires_at, claims.exp);
    let hb = p.agent.heartbeat(p.ts()).unwrap();
    assert!(p.feed(&hb).iter().any(|a| matches!(a, Action::Heartbeat)));
    let (uid, _) = p.register();
    let frame = p
        .with(|s, env, now| {
            s.command_frame(
                env,
                "cmd-9",
                BackendKind::Investigations,
                MsgType::Request,
                br#"{"q":1}"#,
                now,
            )
        })
        .unwrap();
    let opened = p.agent.open(frame.as_bytes()).unwrap();
    assert_eq!(
        opened.envelope.channel,
        format!("backend.{uid}.investigations")
    );
    assert_eq!(opened.body, br#"{"q":1}"#);
    let ack = p.agent.ack("cmd-9", p.ts()).unwrap();
    let actions = p.feed(&ack);
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Ack(id) if id == "cmd-9")));
}

#[test]
fn v2_agent_rejects_r1_signed_by_another_gateway() {
    let mut p = Pair::new(Profile::V2);
    let mut impostor = Agent::new(
        p.agent.key().clone(),
        "aegis-agent-001",
        Profile::V2,
        Some(SigningKey::generate().public()),
    );
    let m1 = impostor.m1(p.ts(), [7; 16]);
    let actions = p.feed(&m1);
    let r1 = sends(&actions);
    assert_eq!(
        impostor.on_r1(r1[0].as_bytes()).unwrap_err(),
        AgentError::BadSignature
    );
}

#[test]
fn reconnect_with_uid_ends_handshake_at_r1() {
    for profile in [Profile::V1, Profile::V2] {
        let mut p = Pair::new(profile);
        p.authenticate();
        let (uid, token) = p.register();
        let known = KnownAgent {
            uid: uid.clone(),
            public_key: p.agent.key().public(),
            token_hash: crypto::hash_token(&token),
        };
        p.agent.reset_session();
        let up = upgrade_for(&p.agent, Some((&uid, &token)), None);
        p.session = Session::new(up, Some(known.clone()), p.now, &p.limits, 0);
        let actions = p.authenticate();
        assert!(actions.iter().any(|a| matches!(a, Action::HandshakeOver)));
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::Authenticated { identity, .. } if *identity == uid)));
        // M3 on a registered connection is refused, connection stays.
        let m3 = p
            .agent
            .m3(&registration_request(&p.agent, "host-1"), p.ts())
            .unwrap();
        let actions = p.feed(&m3);
        assert_eq!(
            error_kind_of(&mut p.agent, &sends(&actions)[0]),
            "registration_failed"
        );
        assert_eq!(close_code(&actions), None);

        // Wrong token, and the right token with another key: both refused.
        let up = upgrade_for(
            &p.agent,
            Some((&uid, "not-the-token-not-the-token-000000")),
            None,
        );
        p.session = Session::new(up, Some(known.clone()), p.now, &p.limits, 0);
        let m1 = p.agent.m1(p.ts(), crypto::random::bytes::<16>());
        let actions = p.feed(&m1);
        assert!(!r1_of(&sends(&actions)[0]).success);
        assert_eq!(close_code(&actions), Some(4001));
        let mut thief = Agent::new(SigningKey::generate(), "aegis-agent-001", profile, None);
        let up = upgrade_for(&thief, Some((&uid, &token)), None);
        p.session = Session::new(up, Some(known), p.now, &p.limits, 0);
        let m1 = thief.m1(p.ts(), crypto::random::bytes::<16>());
        let actions = p.feed(&m1);
        assert!(!r1_of(&sends(&actions)[0]).success);
        assert_eq!(close_code(&actions), Some(4001));
    }
}

#[test]
fn m1_failures_get_r1_false_and_4001() {
    // Bad signature: M1 signed by another key.
    let mut p = Pair::new(Profile::V1);
    let other = Agent::new(SigningKey::generate(), "aegis-agent-001", Profile::V1, None);
    let forged = {
        let mut o = other;
        o.m1(p.ts(), [1; 16])
    };
    // Same shape, but the payload's key is the other agent's: mismatch with the header.
    let actions = p.feed(&forged);
    assert!(!r1_of(&sends(&actions)[0]).success);
    assert_eq!(close_code(&actions), Some(4001));
    // Replay: the same M1 twice.
    let mut p = Pair::new(Profile::V1);
    let m1 = p.agent.m1(p.ts(), [9; 16]);
    assert!(r1_of(&sends(&p.feed(&m1))[0]).success);
    let up = upgrade_for(&p.agent, None, None);
    p.session = Session::new(up, None, p.now, &p.limits, 0);
    let actions = p.feed(&m1);
    let r1 = r1_of(&sends(&actions)[0]);
    assert!(!r1.success);
    assert!(r1.message.contains("already used"));
    // Stale timestamp.
    let mut p = Pair::new(Profile::V2);
    let m1 = p.agent.m1(p.ts() - 301, [2; 16]);
    let actions = p.feed(&m1);
    assert!(!r1_of(&sends(&actions)[0]).success);
    // Profile mismatch with X-Aegis-Protocol.
    let mut p = Pair::new(Profile::V1);
    let up = upgrade_for(&p.agent, None, Some(2));
    p.session = Session::new(up, None, p.now, &p.limits, 0);
    let m1 = p.agent.m1(p.ts(), [3; 16]);
    assert!(!r1_of(&sends(&p.feed(&m1))[0]).success);
}

#[test]
fn first_frame_not_m1_gets_authentication_failed() {
    for frame in [
        "garbage",
        "{}",
        r#"{"id":"x","type":"event","channel":"auth","payload":"","timestamp":1}"#,
    ] {
        let mut p = Pair::new(Profile::V1);
        let actions = p.feed(frame);
        assert_eq!(close_code(&actions), Some(4001));
        let mut buf = sends(&actions)[0].clone().into_bytes();
        let e = crate::protocol::envelope::parse(&mut buf).unwrap();
        assert_eq!(e.channel, "error");
        let raw =
            base64::Engine::decode(&base64::engine::general_purpose::STANDARD, e.payload).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        assert_eq!(v["error"], "authentication_failed");
        assert_eq!(v["code"], 4001);
    }
}

/// A registered v2 pair in steady state.
fn steady(profile: Profile) -> Pair {
    let mut p = Pair::new(profile);
    p.authenticate();
    p.register();
    p
}

#[test]
fn v2_tampered_payload_skipped_and_replayed_seq_are_fatal() {
    // Tampered payload: signature check fails → 4003.
    let mut p = steady(Profile::V2);
    let ch = format!("agent.{}.logs", p.agent.ident());
    let f = p
        .agent
        .message(&ch, MsgType::Event, b"{}", p.ts(), vec![])
        .unwrap();
    let tampered = f.replacen("\"payload\":\"", "\"payload\":\"A", 1);
    let actions = p.feed(&tampered);
    assert_eq!(close_code(&actions), Some(4003));
    assert_eq!(
        error_kind_of(&mut p.agent, &sends(&actions)[0]),
        "signature_verification_failed"
    );

    // Replayed seq → 4006.
    let mut p = steady(Profile::V2);
    let f = p
        .agent
        .message(&ch, MsgType::Event, b"{}", p.ts(), vec![])
        .unwrap();
    let first = p.feed(&f);
    assert_eq!(close_code(&first), None);
    let actions = p.feed(&f);
    assert_eq!(close_code(&actions), Some(4006));

    // Skipped seq → 4006.
    let mut p = steady(Profile::V2);
    let ch = format!("agent.{}.logs", p.agent.ident());
    let _lost = p
        .agent
        .message(&ch, MsgType::Event, b"{}", p.ts(), vec![])
        .unwrap();
    let next = p
        .agent
        .message(&ch, MsgType::Event, b"{}", p.ts(), vec![])
        .unwrap();
    assert_eq!(close_code(&p.feed(&next)), Some(4006));
}

#[test]
fn channel_rules() {
    for profile in [Profile::V1, Profile::V2] {
        let mut p = steady(profile);
        let own = format!("agent.{}.threats", p.agent.ident());
        let actions = p.feed_agent(|a, ts| {
            a.message(&own, MsgType::Event, br#"{"t":1}"#, ts, vec![])
                .unwrap()
        });
        assert!(actions
            .iter()
            .any(|a| matches!(a, Action::Inbound { body, .. } if body == r#"{"t":1}"#)));
        let other = p
            .agent
            .message(
                "agent.someone-else.threats",
                MsgType::Event,
                b"{}",
                p.ts(),
                vec![],
            )
            .unwrap();
        let actions = p.feed(&other);
        assert_eq!(
            error_kind_of(&mut p.agent, &sends(&actions)[0]),
            "channel_forbidden"
        );
        assert_eq!(close_code(&actions), None);
        let unknown = format!("agent.{}.nope", p.agent.ident());
        let actions = p.feed_agent(|a, ts| {
            a.message(&unknown, MsgType::Event, b"{}", ts, vec![])
                .unwrap()
        });
        assert_eq!(
            error_kind_of(&mut p.agent, &sends(&actions)[0]),
            "channel_not_found"
        );
    }
}

#[test]
fn fifth_invalid_message_closes_4008_and_auth_channel_is_invalid() {
    let mut p = steady(Profile::V2);
    let auth = p
        .agent
        .message("auth", MsgType::Request, b"{}", p.ts(), vec![])
        .unwrap();
    let actions = p.feed(&auth);
    assert_eq!(
        error_kind_of(&mut p.agent, &sends(&actions)[0]),
        "invalid_message"
    );
    // The auth frame did not advance seq: seq 2 is now a skip, but seq... the agent used seq 1 on
    // it, so the gateway still expects 1. Replay the counter by sending garbage 4 more times.
    for i in 0..4 {
        let actions = p.feed("not json");
        assert_eq!(
            error_kind_of(&mut p.agent, &sends(&actions)[0]),
            "invalid_message"
        );
        assert_eq!(close_code(&actions), if i == 3 { Some(4008) } else { None });
    }
}

#[test]
fn v1_forged_heartbeats_close_on_the_third() {
    let mut p = steady(Profile::V1);
    let mut forger = Agent::new(SigningKey::generate(), "x", Profile::V1, None);
    // The forger signs with its own key but uses the victim's envelope fields.
    forger.set_uid(p.agent.ident());
    let real = p.agent.heartbeat(p.ts()).unwrap();
    let mut buf = real.into_bytes();
    let mut e = crate::protocol::envelope::parse(&mut buf).unwrap();
    let bad_sig = b64(&forger.key().sign(b"whatever"));
    e.signature = Some(bad_sig);
    let forged = e.to_json();
    for i in 0..3 {
        let actions = p.feed(&forged);
        assert!(!actions.iter().any(|a| matches!(a, Action::Heartbeat)));
        assert_eq!(
            error_kind_of(&mut p.agent, &sends(&actions)[0]),
            "signature_verification_failed"
        );
        assert_eq!(close_code(&actions), if i == 2 { Some(4003) } else { None });
    }
}

#[test]
fn handshake_ends_after_grace_and_errors_are_silent_during_it() {
    let mut p = Pair::new(Profile::V2);
    p.authenticate();
    // During the handshake a forbidden channel is dropped silently.
    let f = p
        .agent
        .message("agent.other.logs", MsgType::Event, b"{}", p.ts(), vec![])
        .unwrap();
    let actions = p.feed(&f);
    assert!(sends(&actions).is_empty());
    assert!(actions
        .iter()
        .any(|a| matches!(a, Action::Rejected(ErrorKind::ChannelForbidden))));
    assert!(p.with(|s, env, _| s.tick(env, T0 + 4_999)).is_empty());
    let actions = p.with(|s, env, _| s.tick(env, T0 + 5_000));
    assert!(actions.iter().any(|a| matches!(a, Action::HandshakeOver)));
}

#[test]
fn m4_for_another_registration_fails_and_leaves_it() {
    let mut p = Pair::new(Profile::V1);
    p.authenticate();
    let req = registration_request(&p.agent, "host-1");
    let r2 = sends(&p.feed_agent(|a, ts| a.m3(&req, ts).unwrap()))[0].clone();
    let challenge: RegistrationChallenge =
        serde_json::from_slice(&p.agent.open(r2.as_bytes()).unwrap().body).unwrap();
    let mut wrong = challenge.clone();
    wrong.registration_id = crypto::random::uuid_v4();
    let actions = p.feed_agent(|a, ts| a.m4(&wrong, "host-1", ts).unwrap());
    assert_eq!(
        error_kind_of(&mut p.agent, &sends(&actions)[0]),
        "registration_failed"
    );
    assert!(!actions
        .iter()
        .any(|a| matches!(a, Action::RemoveRegistration(_))));
    // Our own registration still completes afterwards.
    let actions = p.feed_agent(|a, ts| a.m4(&challenge, "host-1", ts).unwrap());
    assert!(actions.iter().any(|a| matches!(a, Action::CommitAgent(_))));
}

#[test]
fn session_expiry_sends_session_expired_and_4009() {
    let mut p = steady(Profile::V2);
    let exp_ms = p.session.session_expires() * 1000;
    // The agent keeps talking (pongs, heartbeats), so the idle timeout never comes first.
    p.session.on_traffic(exp_ms - 1);
    assert!(p
        .with(|s, env, _| s.tick(env, exp_ms - 1))
        .iter()
        .all(|a| !matches!(a, Action::Close(..))));
    p.session.on_traffic(exp_ms);
    let actions = p.with(|s, env, _| s.tick(env, exp_ms));
    assert_eq!(close_code(&actions), Some(4009));
    assert_eq!(
        error_kind_of(&mut p.agent, &sends(&actions)[0]),
        "session_expired"
    );
}

#[test]
fn every_gateway_frame_has_eight_fields_and_right_nonce() {
    let mut p = Pair::new(Profile::V1);
    let mut frames = sends(&p.authenticate());
    let req = registration_request(&p.agent, "h");
    let m3 = p.agent.m3(&req, p.ts()).unwrap();
    frames.extend(sends(&p.feed(&m3)));
    frames.push(
        p.with(|s, env, now| {
            s.command_frame(env, "c", BackendKind::Threats, MsgType::Event, b"{}", now)
        })
        .unwrap(),
    );
    for f in frames {
        let v: serde_json::Value = serde_json::from_str(&f).unwrap();
        let o = v.as_object().unwrap();
        for k in [
            "id",
            "type",
            "channel",
            "payload",
            "timestamp",
            "nonce",
            "signature",
            "headers",
        ] {
            assert!(o.contains_key(k), "{k} missing in {f}");
        }
        let nonce = o["nonce"].as_str().unwrap();
        assert!(
            crate::protocol::payloads::decode_b64_exact::<12>(nonce).is_some(),
            "v1 nonce 12 bytes: {f}"
        );
    }
}

// ---- regressions found by the fuzz targets (fuzz/) -------------------------------------------

/// Timestamps at the ends of the i64 range overflowed `ts - now` (a panic in debug builds; in
/// release `now + i64::MIN` wrapped into the window).
const EXTREME_TS: [i64; 4] = [i64::MIN, i64::MIN + 1, i64::MAX, T0 / 1000 + i64::MIN];

#[test]
fn m1_with_an_extreme_timestamp_fails_authentication() {
    for profile in [Profile::V1, Profile::V2] {
        for ts in EXTREME_TS {
            let mut p = Pair::new(profile);
            let m1 = p.agent.m1(ts, crypto::random::bytes::<16>());
            let actions = p.feed(&m1);
            let r1 = r1_of(&sends(&actions)[0]);
            assert!(!r1.success, "{profile:?} {ts}");
            assert!(r1.message.contains("timestamp"), "{}", r1.message);
            assert_eq!(close_code(&actions), Some(4001));
        }
    }
}

#[test]
fn message_with_an_extreme_timestamp_is_a_signature_failure() {
    for profile in [Profile::V1, Profile::V2] {
        for ts in EXTREME_TS {
            let mut p = steady(profile);
            let hb = p.agent.heartbeat(ts).unwrap();
            let actions = p.feed(&hb);
            assert!(!actions.iter().any(|a| matches!(a, Action::Heartbeat)));
            assert_eq!(
                error_kind_of(&mut p.agent, &sends(&actions)[0]),
                "signature_verification_failed"
            );
            let fatal = profile == Profile::V2;
            assert_eq!(
                close_code(&actions),
                fatal.then_some(4003),
                "{profile:?} {ts}"
            );
        }
    }
}

#[test]
fn within_window_edges() {
    assert!(within_window(1000, 1000, 0));
    assert!(within_window(700, 1000, 300));
    assert!(within_window(1300, 1000, 300));
    assert!(!within_window(699, 1000, 300));
    assert!(!within_window(1301, 1000, 300));
    assert!(!within_window(i64::MIN, 1000, i64::MAX));
    assert!(!within_window(i64::MIN + 1000, 1000, 300));
    assert!(!within_window(i64::MAX, -1, i64::MAX));
    assert!(within_window(i64::MAX, 1, i64::MAX));
}

#[test]
fn terminate_after_close_emits_nothing() {
    // Before authentication, and after it.
    let mut p = Pair::new(Profile::V1);
    let first = p.with(|s, env, now| s.terminate(env, ErrorKind::Replaced, now));
    assert_eq!(close_code(&first), Some(4010));
    let again = p.with(|s, env, now| s.terminate(env, ErrorKind::Replaced, now));
    assert!(again.is_empty(), "{again:?}");
    let mut p = steady(Profile::V2);
    let first = p.with(|s, env, now| s.terminate(env, ErrorKind::Replaced, now));
    assert_eq!(close_code(&first), Some(4010));
    for kind in ErrorKind::ALL {
        let again = p.with(|s, env, now| s.terminate(env, kind, now));
        assert!(again.is_empty(), "{kind:?}: {again:?}");
    }
}

#[test]
fn agent_refuses_a_seq_spelled_differently() {
    // `u64::from_str` accepts `+2` and `02`; the signature covers the number, so the agent took
    // a frame whose `headers.seq` text had been changed.
    let mut p = steady(Profile::V2);
    let frame = p
        .with(|s, env, now| {
            s.command_frame(env, "c", BackendKind::Tests, MsgType::Request, b"{}", now)
        })
        .unwrap();
    let mut buf = frame.clone().into_bytes();
    let e = crate::protocol::envelope::parse(&mut buf).unwrap();
    let seq = e.header("seq").unwrap().to_string();
    for spelled in [format!("+{seq}"), format!("0{seq}"), format!("{seq} ")] {
        let mut changed = e.clone();
        changed.set_header("seq", spelled.clone());
        let err = p.agent.open(changed.to_json().as_bytes()).unwrap_err();
        assert_eq!(err, AgentError::Malformed("seq".into()), "{spelled}");
    }
    assert_eq!(p.agent.open(frame.as_bytes()).unwrap().body, b"{}");
}

impl Pair {
    /// Feeds frames the way the runtime does for one read of an authenticated v2 session:
    /// all parsed ahead, their signatures checked together, then finished in order.
    fn feed_ahead(&mut self, frames: &[String]) -> Vec<Action> {
        let env = Env {
            key: &self.gw,
            limits: &self.limits,
            nonces: &self.nonces,
            registrations: None,
        };
        assert!(self.session.parse_ahead(&env, self.now) >= frames.len());
        let mut parsed: Vec<_> = frames
            .iter()
            .map(|f| {
                let mut buf = f.as_bytes().to_vec();
                self.session.parse_frame(&env, &mut buf, self.now)
            })
            .collect();
        let verdicts: Vec<bool> = parsed
            .iter_mut()
            .map(|p| {
                p.take_job()
                    .is_some_and(|j| j.public.verify(&j.msg, &j.sig))
            })
            .collect();
        let mut out = Vec::new();
        for (p, ok) in parsed.into_iter().zip(verdicts) {
            out.extend(self.session.finish_parsed(&env, p, ok, self.now));
        }
        out
    }
}

/// What a list of actions amounts to, without the random parts of frames (ids, the uid).
fn summary(agent: &mut Agent, actions: &[Action]) -> Vec<String> {
    let uid = agent.ident().to_string();
    actions
        .iter()
        .map(|a| match a {
            Action::Send(f) => format!("send {}", error_kind_of(agent, f)),
            Action::Close(code, _) => format!("close {code}"),
            Action::Inbound { channel, body, .. } => {
                format!("inbound {} {body}", channel.replace(&uid, "{uid}"))
            }
            Action::Rejected(kind) => format!("rejected {}", kind.as_str()),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn frames_parsed_ahead_finish_exactly_as_one_at_a_time() {
    // Each script: a function of the pair's agent giving the frames of one read.
    type Script = fn(&mut Pair) -> Vec<String>;
    fn event(p: &mut Pair, body: &[u8]) -> String {
        let ch = format!("agent.{}.logs", p.agent.ident());
        p.agent
            .message(&ch, MsgType::Event, body, p.ts(), vec![])
            .unwrap()
    }
    let scripts: [(&str, Script); 4] = [
        ("all valid", |p| {
            (0..5)
                .map(|i| event(p, format!("{{\"n\":{i}}}").as_bytes()))
                .collect()
        }),
        ("garbage in between", |p| {
            vec![
                event(p, b"{\"a\":1}"),
                "not json".into(),
                event(p, b"{\"b\":2}"),
            ]
        }),
        ("replay in the middle closes, nothing after", |p| {
            let first = event(p, b"{\"a\":1}");
            let after = event(p, b"{\"c\":3}");
            vec![first.clone(), first, after]
        }),
        ("tampered in the middle closes 4003", |p| {
            let a = event(p, b"{\"a\":1}");
            let b = event(p, b"{\"b\":2}").replacen("\"payload\":\"", "\"payload\":\"A", 1);
            let c = event(p, b"{\"c\":3}");
            vec![a, b, c]
        }),
    ];
    for (name, script) in scripts {
        let mut one = steady(Profile::V2);
        let frames = script(&mut one);
        let mut sequential = Vec::new();
        for f in &frames {
            sequential.extend(one.feed(f));
        }
        let mut ahead = steady(Profile::V2);
        let frames = script(&mut ahead);
        let batched = ahead.feed_ahead(&frames);
        let (a, b) = (
            summary(&mut one.agent, &sequential),
            summary(&mut ahead.agent, &batched),
        );
        assert_eq!(a, b, "{name}");
        let has = |what: &str| a.iter().any(|x| x.contains(what));
        match name {
            "all valid" => assert_eq!(a.iter().filter(|x| x.starts_with("inbound")).count(), 5),
            "garbage in between" => assert!(has("invalid_message") && has("{\"b\":2}")),
            "replay in the middle closes, nothing after" => {
                assert!(has("close 4006") && !has("{\"c\":3}"), "{a:?}")
            }
            _ => assert!(has("close 4003") && !has("{\"c\":3}"), "{a:?}"),
        }
    }
}

#[test]
fn parse_ahead_is_bounded_by_profile_handshake_and_rate() {
    let mut p = Pair::new(Profile::V2);
    assert_eq!(
        p.with(|s, env, now| s.parse_ahead(env, now)),
        0,
        "before M1"
    );
    p.authenticate();
    assert_eq!(
        p.with(|s, env, now| s.parse_ahead(env, now)),
        0,
        "during the handshake"
    );
    p.register();
    let burst = p.limits.message_rate.map(|(_, b)| b as usize).unwrap();
    // M3 and M4 took two tokens of the burst.
    assert_eq!(p.with(|s, env, now| s.parse_ahead(env, now)), burst - 2);
    let mut v1 = steady(Profile::V1);
    assert_eq!(v1.with(|s, env, now| s.parse_ahead(env, now)), 0, "v1");
}

// Acks (PROTOCOL §7): the acked id comes from the sealed payload.
#[path = "ack_tests.rs"]
mod ack;

// ---- timers, on virtual time ------------------------------------------------------------------

fn has_ping(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Ping))
}

#[test]
fn pings_come_every_interval_and_silence_closes_at_the_idle_timeout() {
    let mut p = steady(Profile::V2);
    p.limits.ping_interval_ms = 1_000;
    p.limits.idle_timeout_ms = 3_000;
    let start = p.now;
    // The session was built with the default ping interval: its first ping is due at 30 s.
    // Traffic resets the idle clock, not the ping clock.
    p.session.on_traffic(start);
    let first = p.session.next_deadline(&p.limits).unwrap();
    assert!(
        first <= start + 3_000,
        "the idle deadline bounds the wait: {first}"
    );
    let at = |p: &mut Pair, t: i64| p.with(|s, env, _| s.tick(env, t));
    assert!(at(&mut p, start + 2_999).is_empty(), "nothing due yet");
    // At the idle timeout with no traffic: closed with 1000, no error frame.
    let actions = at(&mut p, start + 3_000);
    assert_eq!(close_code(&actions), Some(1000), "{actions:?}");
    assert!(sends(&actions).is_empty());
    assert!(
        at(&mut p, start + 10_000).is_empty(),
        "a closed session does nothing"
    );
}

#[test]
fn traffic_keeps_a_connection_alive_and_pings_keep_coming() {
    let mut p = Pair::new(Profile::V2);
    p.limits.ping_interval_ms = 1_000;
    p.limits.idle_timeout_ms = 2_500;
    p.session = Session::new(upgrade_for(&p.agent, None, None), None, T0, &p.limits, 0);
    p.authenticate();
    let mut pings = 0;
    for step in 1..=10 {
        let t = T0 + step * 500;
        // The agent answers every other half second (a pong, say).
        if step % 2 == 0 {
            p.session.on_traffic(t);
        }
        let actions = p.with(|s, env, _| s.tick(env, t));
        assert_eq!(close_code(&actions), None, "step {step}: {actions:?}");
        if has_ping(&actions) {
            pings += 1;
        }
    }
    assert_eq!(pings, 5, "one ping per second over 5 s");
}

#[test]
fn the_auth_timeout_and_the_handshake_grace_fire_on_time() {
    let mut p = Pair::new(Profile::V2);
    p.limits.auth_timeout_ms = 400;
    p.limits.handshake_grace_ms = 200;
    p.session = Session::new(upgrade_for(&p.agent, None, None), None, T0, &p.limits, 0);
    assert_eq!(p.session.next_deadline(&p.limits), Some(T0 + 400));
    let quiet = p.with(|s, env, _| s.tick(env, T0 + 399));
    assert!(quiet.is_empty(), "{quiet:?}");
    let actions = p.with(|s, env, _| s.tick(env, T0 + 400));
    assert_eq!(close_code(&actions), Some(4001));
    assert_eq!(
        error_kind_before_auth_of(&sends(&actions)[0]),
        "authentication_failed"
    );

    // A first connection's handshake ends HANDSHAKE_GRACE after R1 when nothing is pending.
    let mut p = Pair::new(Profile::V2);
    p.limits.handshake_grace_ms = 200;
    p.authenticate();
    assert!(!p.session.handshake_over());
    let r1_at = p.now;
    let early = p.with(|s, env, _| s.tick(env, r1_at + 199));
    assert!(!early.iter().any(|a| matches!(a, Action::HandshakeOver)));
    let due = p.with(|s, env, _| s.tick(env, r1_at + 200));
    assert!(
        due.iter().any(|a| matches!(a, Action::HandshakeOver)),
        "{due:?}"
    );
}

#[test]
fn a_wall_clock_step_fires_no_timer() {
    let mut p = steady(Profile::V2);
    let t = p.now;
    // The wall clock jumps two days ahead (NTP step, VM resume); only a second passed.
    let jumped = Now {
        unix_ms: t + 2 * 86_400_000,
        mono_ms: t + 1_000,
    };
    p.session.on_traffic(jumped);
    let actions = p.with(|s, env, _| s.tick(env, jumped));
    assert_eq!(close_code(&actions), None, "{actions:?}");
    // The expiry close still comes after the session's lifetime on the monotonic clock.
    let later = Now {
        unix_ms: jumped.unix_ms,
        mono_ms: t + 86_400_000,
    };
    p.session.on_traffic(later);
    let actions = p.with(|s, env, _| s.tick(env, later));
    assert_eq!(close_code(&actions), Some(4009), "{actions:?}");
}

fn error_kind_before_auth_of(frame: &str) -> String {
    let mut buf = frame.as_bytes().to_vec();
    let e = crate::protocol::envelope::parse(&mut buf).unwrap();
    let raw =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, e.payload).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    v["error"].as_str().unwrap().to_string()
}

/// A gate that admits `n` registrations, then refuses.
struct Quota(std::cell::Cell<usize>);

impl crate::protocol::registration::RegistrationGate for Quota {
    fn admit(&self, _id: &str, _expires_at: i64) -> bool {
        let left = self.0.get();
        self.0.set(left.saturating_sub(1));
        left > 0
    }
}

/// Feeds one frame with `env` and resolves its signature check for real.
fn feed_verified(session: &mut Session, env: &Env<'_>, buf: &mut [u8], now: i64) -> Vec<Action> {
    let step = session.on_frame(env, buf, now);
    let mut actions = step.actions;
    if let Some(job) = step.verify {
        let ok = job.public.verify(&job.msg, &job.sig);
        actions.extend(session.on_verified(env, ok, now));
    }
    actions
}

#[test]
fn a_registration_past_the_caps_is_refused_and_nothing_is_stored() {
    let mut p = Pair::new(Profile::V2);
    p.authenticate();
    let req = registration_request(&p.agent, "host-capped");
    let m3 = p.agent.m3(&req, p.ts()).unwrap();
    let quota = Quota(std::cell::Cell::new(0));
    let env = Env {
        key: &p.gw,
        limits: &p.limits,
        nonces: &p.nonces,
        registrations: Some(&quota),
    };
    let mut buf = m3.into_bytes();
    let actions = feed_verified(&mut p.session, &env, &mut buf, p.now);
    assert!(
        !actions
            .iter()
            .any(|a| matches!(a, Action::PersistRegistration(_))),
        "nothing pending: {actions:?}"
    );
    assert_eq!(p.session.pending_registration(), None);
    let frames = sends(&actions);
    assert_eq!(
        error_kind_of(&mut p.agent, &frames[0]),
        "registration_failed"
    );
    // With room again, the same agent's next M3 is admitted and its record is kept.
    quota.0.set(1);
    let m3 = p.agent.m3(&req, p.ts()).unwrap();
    let mut buf = m3.into_bytes();
    let actions = feed_verified(&mut p.session, &env, &mut buf, p.now);
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, Action::PersistRegistration(_))),
        "{actions:?}"
    );
    assert!(p.session.pending_registration().is_some());
}
