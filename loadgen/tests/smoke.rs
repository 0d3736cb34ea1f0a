//! Smoke test of the scenarios against a real gateway started in-process (127.0.0.1:0, temp
//! dir, 2 shards, no message-rate limit).

mod common;

use aegis_loadgen::{ProfileChoice, Scenario};
use common::{options, Gateway};

#[test]
fn connect_authenticates_and_registers_a_mixed_fleet() {
    let gw = Gateway::start();
    let mut o = options(&gw, Scenario::Connect);
    o.agents = 20;
    o.profile = ProfileChoice::Mix;
    o.register = true;
    o.duration_s = 2.0;
    let started = std::time::Instant::now();
    let r = aegis_loadgen::run(&o).expect("run");
    assert!(
        started.elapsed().as_secs_f64() < 10.0,
        "bounded by --duration"
    );
    assert_eq!(r.errors, Default::default(), "{}", r.table());
    assert_eq!(r.counts.authenticated, 20, "{}", r.table());
    assert_eq!(r.counts.registered, 20, "{}", r.table());
    assert_eq!(r.counts.connected_end, 20, "{}", r.table());
    let hs = r.latency_us.get("handshake").copied().unwrap_or_default();
    assert_eq!(hs.count, 20);
    assert!(hs.max > 0 && hs.p50 <= hs.max);
    assert!(r.timing.ramp_s > 0.0 && r.rates.connects_per_s > 0.0);
}

#[test]
fn throughput_blasts_presigned_frames_without_errors() {
    let gw = Gateway::start();
    let mut o = options(&gw, Scenario::Throughput);
    o.agents = 4;
    o.frames = 200;
    o.duration_s = 5.0;
    o.gateway_pid = Some(std::process::id());
    let r = aegis_loadgen::run(&o).expect("run");
    assert_eq!(r.errors, Default::default(), "{}", r.table());
    assert_eq!(r.counts.authenticated, 4);
    assert_eq!(r.counts.messages_sent, 800, "{}", r.table());
    assert_eq!(r.counts.messages_accepted, 800, "{}", r.table());
    assert!(r.rates.accepted_per_s > 0.0);
    assert!(
        r.gateway.is_some() && r.gateway_cpu_us_per_msg.is_some(),
        "{}",
        r.table()
    );
    // The crypto floor of the same run, and the ratio of DESIGN §6.
    assert!(
        r.crypto_floor_us_per_msg.is_some_and(|f| f > 0.0),
        "{}",
        r.table()
    );
    assert!(r.cpu_per_msg_over_floor.is_some(), "{}", r.table());
    assert!(r.table().contains("gateway cpu / floor"));
}

#[test]
fn reconnect_storm_reauthenticates_every_agent() {
    let gw = Gateway::start();
    let mut o = options(&gw, Scenario::ReconnectStorm);
    o.agents = 10;
    o.profile = ProfileChoice::Mix;
    o.duration_s = 5.0;
    let r = aegis_loadgen::run(&o).expect("run");
    assert_eq!(r.errors, Default::default(), "{}", r.table());
    assert_eq!(r.counts.registered, 10);
    assert_eq!(r.counts.reconnected, 10, "{}", r.table());
    assert_eq!(r.counts.connected_end, 10);
    assert!(r.timing.storm_wall_s.is_some_and(|s| s > 0.0));
    assert_eq!(
        r.latency_us.get("storm_handshake").map(|l| l.count),
        Some(10)
    );
}

#[test]
fn steady_sends_heartbeats_and_events() {
    let gw = Gateway::start();
    let mut o = options(&gw, Scenario::Steady);
    o.agents = 6;
    o.profile = ProfileChoice::Mix;
    o.heartbeat_s = 0.5;
    o.event_rate = 10.0;
    o.duration_s = 2.0;
    let r = aegis_loadgen::run(&o).expect("run");
    assert_eq!(r.errors, Default::default(), "{}", r.table());
    assert!(r.counts.heartbeats_sent >= 6, "{}", r.table());
    assert!(r.counts.events_sent >= 30, "{}", r.table());
    assert_eq!(
        r.counts.messages_accepted,
        r.counts.messages_sent,
        "{}",
        r.table()
    );
    assert!(r.rates.messages_per_s > 0.0);
}
