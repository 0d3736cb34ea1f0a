//! Acks (PROTOCOL §7): the gateway takes the acked id from the opened payload `{"ack":id}`;
//! `headers.ack`, covered by neither the signature nor the AAD, only has to agree; a payload
//! `{}` (older agents) is taken with `headers.ack` for one release.

use super::*;

/// An authenticated, registered pair past its handshake.
fn registered(profile: Profile) -> Pair {
    let mut p = Pair::new(profile);
    p.authenticate();
    p.register();
    assert!(p.session.handshake_over());
    p
}

fn acks(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Ack(id) => Some(id.clone()),
            _ => None,
        })
        .collect()
}

fn legacy(actions: &[Action]) -> usize {
    actions
        .iter()
        .filter(|a| matches!(a, Action::LegacyAck))
        .count()
}

/// An ack frame from the agent with `body` as its (sealed) payload and `header` as
/// `headers.ack` (none when `None`).
fn ack_frame(p: &mut Pair, msg_type: MsgType, body: &[u8], header: Option<&str>) -> String {
    let headers = header
        .map(|h| vec![("ack".to_string(), h.to_string())])
        .unwrap_or_default();
    let ts = p.ts();
    p.agent.message("ack", msg_type, body, ts, headers).unwrap()
}

/// The frame is refused with `invalid_message`, acks nothing, and the session goes on.
fn assert_invalid(p: &mut Pair, actions: &[Action], what: &str) {
    assert!(acks(actions).is_empty(), "{what}: acked {actions:?}");
    assert_eq!(close_code(actions), None, "{what}: closed");
    let sent = sends(actions);
    assert_eq!(sent.len(), 1, "{what}: one error frame: {actions:?}");
    assert_eq!(
        error_kind_of(&mut p.agent, &sent[0]),
        "invalid_message",
        "{what}"
    );
}

#[test]
fn the_acked_id_is_the_sealed_one() {
    let mut p = registered(Profile::V2);
    let ack = p.agent.ack("cmd-1", p.ts()).unwrap();
    let actions = p.feed(&ack);
    assert_eq!(acks(&actions), ["cmd-1"]);
    assert_eq!(legacy(&actions), 0);
    assert!(actions.iter().any(|a| matches!(a, Action::Verified)));
}

#[test]
fn a_rewritten_headers_ack_acks_nothing() {
    // A genuine ack whose `headers.ack` was changed in flight: the signature and the AEAD
    // still hold (headers are outside both), so only the payload can tell. Before PROTOCOL
    // §7's rule this acked "cmd-other".
    let mut p = registered(Profile::V2);
    let genuine = p.agent.ack("cmd-1", p.ts()).unwrap();
    let forged = genuine.replacen(r#""ack":"cmd-1""#, r#""ack":"cmd-other""#, 1);
    assert_ne!(forged, genuine, "the header was rewritten");
    let actions = p.feed(&forged);
    assert!(
        actions.iter().any(|a| matches!(a, Action::Verified)),
        "the frame itself is authentic: {actions:?}"
    );
    assert_invalid(&mut p, &actions, "rewritten headers.ack");
    // It consumed its seq like any verified frame: the next ack is in sequence.
    let next = p.agent.ack("cmd-2", p.ts()).unwrap();
    assert_eq!(acks(&p.feed(&next)), ["cmd-2"]);
}

#[test]
fn a_headers_ack_that_differs_from_the_payload_is_invalid() {
    for profile in [Profile::V2, Profile::V1] {
        let mut p = registered(profile);
        let f = ack_frame(&mut p, MsgType::Ack, br#"{"ack":"cmd-1"}"#, Some("cmd-2"));
        let actions = p.feed(&f);
        assert_invalid(&mut p, &actions, &format!("{profile:?}"));
    }
}

#[test]
fn an_empty_payload_is_a_legacy_ack_taken_from_the_header() {
    let mut p = registered(Profile::V2);
    let old = p.agent.legacy_ack("cmd-7", p.ts()).unwrap();
    let actions = p.feed(&old);
    assert_eq!(acks(&actions), ["cmd-7"]);
    assert_eq!(legacy(&actions), 1);
    let at = |want: fn(&Action) -> bool| actions.iter().position(want);
    assert!(
        at(|a| matches!(a, Action::LegacyAck)) < at(|a| matches!(a, Action::Ack(_))),
        "the legacy mark comes before its ack: {actions:?}"
    );
    // `{ }` is the same empty object; a legacy ack still needs its header.
    let f = ack_frame(&mut p, MsgType::Ack, b" { }\n", Some("cmd-8"));
    assert_eq!(acks(&p.feed(&f)), ["cmd-8"]);
    let f = ack_frame(&mut p, MsgType::Ack, b"{}", None);
    let actions = p.feed(&f);
    assert_invalid(&mut p, &actions, "legacy ack without headers.ack");
}

#[test]
fn malformed_acks_are_invalid_and_ack_nothing() {
    let mut p = registered(Profile::V2);
    let cases: [(&str, MsgType, &[u8], Option<&str>); 7] = [
        ("no header", MsgType::Ack, br#"{"ack":"cmd-1"}"#, None),
        (
            "wrong type",
            MsgType::Event,
            br#"{"ack":"cmd-1"}"#,
            Some("cmd-1"),
        ),
        (
            "no ack member",
            MsgType::Ack,
            br#"{"id":"cmd-1"}"#,
            Some("cmd-1"),
        ),
        ("ack not a string", MsgType::Ack, br#"{"ack":1}"#, Some("1")),
        (
            "duplicate ack",
            MsgType::Ack,
            br#"{"ack":"cmd-1","ack":"cmd-1"}"#,
            Some("cmd-1"),
        ),
        ("not an object", MsgType::Ack, br#""cmd-1""#, Some("cmd-1")),
        ("not JSON", MsgType::Ack, b"cmd-1", Some("cmd-1")),
    ];
    for (what, msg_type, body, header) in cases {
        let f = ack_frame(&mut p, msg_type, body, header);
        let actions = p.feed(&f);
        assert_invalid(&mut p, &actions, what);
        assert_eq!(legacy(&actions), 0, "{what}");
        // The limit of §7 (the 5th invalid message in 60 s closes): step past its window.
        p.now += 61_000;
    }
    // Extra members are ignored, as in the envelope.
    let f = ack_frame(
        &mut p,
        MsgType::Ack,
        br#"{"v":2,"ack":"cmd-1"}"#,
        Some("cmd-1"),
    );
    assert_eq!(acks(&p.feed(&f)), ["cmd-1"]);
}
