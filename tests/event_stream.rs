//! The admin event stream (`GET /api/v1/events`, Server-Sent Events) against the real gateway:
//! agent events filtered by a channel pattern, in order, and resumed after `Last-Event-ID`.

mod common;
use aegis_gateway::protocol::envelope::MsgType;
use common::*;

#[test]
fn event_stream_filters_by_channel_and_resumes() {
    let gw = TestGateway::start();
    let mut a = gw.agent("sse-agent", V1);
    let (mut c, uid, _) = onboard(&gw, &mut a, "host-sse");
    // The stream starts after seq 0: it carries these events whether they are stored before
    // or after it opens, so nothing needs to wait for it.
    let mut stream = open_events(&gw, "?channel=agent.*.threats", None);
    for (i, kind) in ["threats", "logs", "threats", "threats"].iter().enumerate() {
        let f = a
            .message(
                &format!("agent.{uid}.{kind}"),
                MsgType::Event,
                format!("{{\"n\":{i}}}").as_bytes(),
                now_s(),
                vec![],
            )
            .unwrap();
        c.send(&f);
    }
    let got = read_events(&mut stream, 3);
    let ns: Vec<i64> = got
        .iter()
        .map(|(_, d)| d["body"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, vec![0, 2, 3], "only threats, in order");
    assert!(got.iter().all(|(_, d)| d["agent_uid"] == uid.as_str()));
    // Resume after the first event: the two later ones come again, nothing before.
    let mut resumed = open_events(&gw, "?channel=agent.*.threats", Some(got[0].0));
    let again = read_events(&mut resumed, 2);
    let ns: Vec<i64> = again
        .iter()
        .map(|(_, d)| d["body"]["n"].as_i64().unwrap())
        .collect();
    assert_eq!(ns, vec![2, 3]);
}
