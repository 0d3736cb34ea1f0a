//! The `fleet` scenario end to end against the real gateway binary (`--spawn-gateway`):
//! registered agents of both profiles with heartbeats and Go-like pings, and the figures the
//! scenario exists for — the gateway's CPU per message (user and sys), per connection-second,
//! per handshake, and the heartbeat crypto floor of the same run. A few seconds, loopback.

mod common;

use serde_json::Value;

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn a_fleet_run_reports_cpu_per_heartbeat_per_connection_and_its_floor() {
    let run = common::run_binary(
        "fleet",
        &[
            "--agents",
            "30",
            "--profile",
            "mix",
            "--heartbeat",
            "1",
            "--ping",
            "0.5",
            "--duration",
            "6",
        ],
    );
    let r = &run.report;
    assert_eq!(r["scenario"], "fleet");
    assert_eq!(r["errors_total"], 0, "{r:#}");
    let c = &r["counts"];
    assert_eq!(c["registered"], 30, "a fleet's agents are registered: {c}");
    assert_eq!(c["connected_end"], 30, "{c}");
    assert!(f(&c["heartbeats_sent"]) >= 30.0, "{c}");
    assert!(f(&c["pings_sent"]) >= 30.0, "{c}");
    assert!(
        f(&c["pongs_received"]) > 0.0,
        "the gateway answers the agents' pings: {c}"
    );
    assert_eq!(c["events_sent"], 0, "no events unless asked: {c}");

    let cpu = f(&r["gateway_cpu_us_per_msg"]);
    let sys = f(&r["gateway_sys_us_per_msg"]);
    assert!(cpu > 0.0 && (0.0..=cpu).contains(&sys), "{cpu} {sys}");
    assert!(f(&r["gateway_cpu_us_per_conn_s"]) > 0.0, "{r:#}");
    assert!(f(&r["gateway_cpu_us_per_handshake"]) > 0.0, "{r:#}");
    let floor = f(&r["crypto_floor_us_per_msg"]);
    assert!(floor > 0.0, "{r:#}");
    let ratio = f(&r["cpu_per_msg_over_floor"]);
    assert!(
        (ratio - cpu / floor).abs() < 1e-6 * ratio.max(1.0),
        "{ratio}"
    );
    assert!(
        run.stdout.contains("of which sys") && run.stdout.contains("(target ≤ 2.5)"),
        "{}",
        run.stdout
    );
}
