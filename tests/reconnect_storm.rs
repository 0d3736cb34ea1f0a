//! A reconnect storm: one registered uid reconnects 200 times in a row. Each new connection
//! replaces the previous one (4010), and the last one is the live one that gets commands.

mod common;
use common::*;

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
