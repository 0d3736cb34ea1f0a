//! The close handshake after a framing violation (1007, 1002, 1009): the gateway sends its
//! close, and the client's answering close ends the connection at once — the gateway closes
//! the stream (TLS `close_notify`, then FIN) instead of waiting out its close timer and
//! dropping the socket. The gateway then serves the next connection normally.

mod common;
use aegis_gateway::protocol::ws::apply_mask;
use common::*;
use std::io::{Read, Write};

const MASK: [u8; 4] = [0x11, 0x22, 0x33, 0x44];
/// The message limit of these gateways.
const LIMIT: usize = 1024;

/// A masked client frame: `first` is FIN/RSV/opcode.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    match payload.len() {
        n @ 0..=125 => out.push(0x80 | n as u8),
        n => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    out.extend_from_slice(&MASK);
    let at = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[at..], MASK);
    out
}

/// The violations and the close code each gets.
fn violations() -> Vec<(&'static str, Vec<u8>, u16)> {
    vec![
        (
            "invalid UTF-8",
            client_frame(0x81, &[b'{', 0xff, b'}']),
            1007,
        ),
        ("RSV1 set", client_frame(0x81 | 0x40, b"{}"), 1002),
        ("over the limit", client_frame(0x82, &[7; 2 * LIMIT]), 1009),
    ]
}

/// Sends `bad`, reads the gateway's close frame and answers it with a close of the same code;
/// returns that code and what the next read gives (`Ok(0)`: a clean end of stream).
fn violate_and_answer<S: Read + Write>(s: &mut S, bad: &[u8]) -> (u16, std::io::Result<usize>) {
    s.write_all(bad).unwrap();
    let mut head = [0u8; 2];
    s.read_exact(&mut head).unwrap();
    assert_eq!(head[0], 0x88, "a close frame, unfragmented");
    assert!(head[1] >= 2 && head[1] <= 125, "unmasked, with a code");
    let mut payload = vec![0u8; usize::from(head[1])];
    s.read_exact(&mut payload).unwrap();
    let code = u16::from_be_bytes([payload[0], payload[1]]);
    s.write_all(&client_frame(0x88, &code.to_be_bytes()))
        .unwrap();
    let mut rest = [0u8; 64];
    (code, s.read(&mut rest))
}

/// The gateway still serves: a fresh v2 agent authenticates and gets its heartbeat through.
fn serves_a_new_agent(gw: &TestGateway, name: &str) {
    let mut a = gw.agent(name, V2);
    let mut c = connect(gw.addr, &a, None);
    authenticate(&mut c, &mut a);
    c.send(&a.heartbeat(now_s()).unwrap());
    c.send(&a.m3(&registration_request(&a, name), now_s()).unwrap());
    let r2 = a.open(c.recv_text().as_bytes()).unwrap();
    assert_eq!(r2.envelope.channel, "agent.registration");
}

#[test]
fn the_clients_answer_to_an_error_close_ends_the_connection() {
    let gw = TestGateway::start_with(|c| c.max_message_size = LIMIT);
    for (i, (what, bad, want)) in violations().into_iter().enumerate() {
        let a = gw.agent(&format!("close-{i}"), V2);
        let req = go_upgrade_request(gw.addr, a.agent_id(), a.public_b64(), &[]);
        let mut c = connect_raw(gw.addr, req.as_bytes()).expect("upgrade");
        let (code, end) = violate_and_answer(c.ws.get_mut(), &bad);
        assert_eq!(code, want, "{what}");
        // The gateway closes the TCP stream (READ_TIMEOUT only guards against a hang).
        assert_eq!(
            end.map_err(|e| e.kind()),
            Ok(0),
            "{what}: no EOF after our close"
        );
        serves_a_new_agent(&gw, &format!("after-{i}"));
    }
}

#[test]
fn over_tls_the_gateway_closes_the_stream_cleanly_after_the_answer() {
    // Over TLS the difference is visible without a clock: closing the stream sends
    // `close_notify` before the FIN, while a socket dropped when the close timer fires (the old
    // behaviour, which ignored the answer after a violation) ends without it, which rustls
    // reports as an unexpected EOF.
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(certs.path(), "gw-close");
    let ca = std::fs::read(&cert).unwrap();
    let gw = TestGateway::start_with(move |c| {
        c.max_message_size = LIMIT;
        c.tls_cert_path = Some(cert);
        c.tls_key_path = Some(key);
    });
    for (i, (what, bad, want)) in violations().into_iter().enumerate() {
        let a = gw.agent(&format!("tls-close-{i}"), V2);
        let req = go_upgrade_request(gw.addr, a.agent_id(), a.public_b64(), &[]);
        let mut c = connect_tls(gw.addr, &ca, req.as_bytes()).expect("wss upgrade");
        let (code, end) = violate_and_answer(c.ws.get_mut(), &bad);
        assert_eq!(code, want, "{what}");
        assert_eq!(
            end.map_err(|e| e.kind()),
            Ok(0),
            "{what}: the stream did not end with close_notify"
        );
        let mut a = gw.agent(&format!("tls-after-{i}"), V2);
        let req = go_upgrade_request(gw.addr, a.agent_id(), a.public_b64(), &[]);
        let mut c = connect_tls(gw.addr, &ca, req.as_bytes()).expect("wss upgrade");
        authenticate(&mut c, &mut a);
    }
}
