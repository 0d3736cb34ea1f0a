//! Acks through a real gateway (PROTOCOL §7): the acked command is the one named in the sealed
//! payload; a `headers.ack` rewritten in flight acks nothing and gets `invalid_message`; an
//! older agent's ack with payload `{}` is taken from `headers.ack` and counted in
//! `aegis_gateway_legacy_acks_total`.

mod common;
use common::*;
use serde_json::json;

/// The value of the legacy-ack counter on the admin `/metrics` (0 before its first increment).
fn legacy_acks(gw: &TestGateway) -> u64 {
    let (status, text) = http(gw.admin, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    text.lines()
        .filter(|l| l.starts_with("aegis_gateway_legacy_acks_total"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn the_sealed_id_decides_what_is_acked() {
    let gw = TestGateway::start();
    let mut a = gw.agent("acker", V2);
    let (mut c, uid, _) = onboard(&gw, &mut a, "host-acker");
    let mut ids = Vec::new();
    for n in 0..2 {
        let (status, r) = gw.send(
            &uid,
            json!({"channel": "backend.policies", "message": {"n": n}}),
        );
        assert_eq!((status, r["status"].as_str()), (200, Some("sent")), "{r}");
        let id = r["message_id"].as_str().unwrap().to_string();
        assert_eq!(a.open(c.recv_text().as_bytes()).unwrap().envelope.id, id);
        ids.push(id);
    }
    let (first, second) = (&ids[0], &ids[1]);

    // A genuine ack of the first command with `headers.ack` rewritten to the second: refused,
    // and neither is acked (the error frame is written after the frame was fully handled).
    let genuine = a.ack(first, now_s()).unwrap();
    let forged = genuine.replacen(
        &format!(r#""ack":"{first}""#),
        &format!(r#""ack":"{second}""#),
        1,
    );
    assert_ne!(forged, genuine);
    c.send(&forged);
    assert_eq!(error_kind(&mut a, &c.recv_text()), "invalid_message");
    assert_eq!(gw.message_status(first), "sent");
    assert_eq!(gw.message_status(second), "sent");

    // An older agent's ack (`{}`) is taken from its header, once, and counted.
    let before = legacy_acks(&gw);
    c.send(&a.legacy_ack(second, now_s()).unwrap());
    gw.wait_status(second, "delivered");
    assert_eq!(legacy_acks(&gw), before + 1);
    assert_eq!(gw.message_status(first), "sent");

    // The ack the agent sends today acks the first command.
    c.send(&a.ack(first, now_s()).unwrap());
    gw.wait_status(first, "delivered");
    assert_eq!(legacy_acks(&gw), before + 1, "a current ack is not legacy");
}
