//! Frames that arrive together (one TCP write, so one read on the gateway) are parsed ahead and
//! verified in one batch, and still processed strictly in order: an invalid frame gets its error
//! where it stands, a replayed seq closes 4006, and nothing after it is routed.

mod common;
use aegis_gateway::protocol::envelope::MsgType;
use common::*;
use std::io::Write;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use tungstenite::protocol::frame::Frame;

/// A masked client text frame.
fn masked(text: &str) -> Vec<u8> {
    let mut f = Frame::message(text.as_bytes().to_vec(), OpCode::Data(Data::Text), true);
    f.header_mut().mask = Some([0x11, 0x22, 0x33, 0x44]);
    let mut out = Vec::new();
    f.format(&mut out).unwrap();
    out
}

#[test]
fn a_burst_is_processed_in_order_and_stops_at_a_replay() {
    let gw = TestGateway::start();
    let mut a = gw.agent("burst-agent", V2);
    let (mut c, uid, _) = onboard(&gw, &mut a, "host-burst");
    let channel = format!("agent.{uid}.logs");
    let mut event = |n: i64| {
        a.message(
            &channel,
            MsgType::Event,
            format!("{{\"n\":{n}}}").as_bytes(),
            now_s(),
            vec![],
        )
        .unwrap()
    };
    let (e0, e1, e2) = (event(0), event(1), event(2));
    let e3 = event(3);
    let frames = [
        e0.as_str(),
        e1.as_str(),
        "{not an envelope",
        e2.as_str(),
        e2.as_str(),
        e3.as_str(),
    ];
    let burst: Vec<u8> = frames.iter().flat_map(|f| masked(f)).collect();
    c.ws.get_mut().write_all(&burst).unwrap();
    let mut seen = Vec::new();
    assert_eq!(c.recv_close(&mut seen), 4006);
    let kinds: Vec<String> = seen.iter().map(|f| error_kind(&mut a, f)).collect();
    assert_eq!(kinds, ["invalid_message", "replay_detected"]);
    // Exactly the events before the replay were routed, in order.
    let mut stream = open_events(&gw, &format!("?channel={channel}"), Some(0));
    let got = read_events(&mut stream, 3);
    let ns: Vec<i64> = got
        .iter()
        .map(|(_, d)| d["body"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, [0, 1, 2]);
    // "Nothing more arrives" is the assertion: a short, deliberate window (the burst was
    // processed in one go, so a routed e3 would already be in the stream).
    stream
        .set_read_timeout(Some(std::time::Duration::from_millis(500)))
        .unwrap();
    let mut more = [0u8; 4096];
    let extra = std::io::Read::read(&mut stream, &mut more).unwrap_or(0);
    let text = String::from_utf8_lossy(&more[..extra]);
    assert!(
        !text.contains("\"n\":3"),
        "nothing after the replay: {text}"
    );
}
