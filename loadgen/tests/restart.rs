//! The `restart` scenario end to end: the `aegis-loadgen` binary spawns the real gateway
//! binary, connects agents that reconnect like the deployed Go agent, restarts the gateway
//! with `serve --takeover` once all are connected, and every agent comes back (20 agents,
//! 12 s, loopback).

mod common;

#[test]
fn a_takeover_restart_brings_every_go_like_agent_back() {
    let run = common::run_binary(
        "restart",
        &[
            "--agents",
            "20",
            "--profile",
            "mix",
            "--duration",
            "12",
            "--heartbeat",
            "1",
            "--restart-mode",
            "takeover",
        ],
    );
    assert!(
        run.stdout.contains(
            "restart (Takeover) with 20 agents connected: the new gateway logged serving"
        ),
        "{}",
        run.stdout
    );
    let r = &run.report;
    let c = &r["counts"];
    assert_eq!(r["errors_total"], 0, "{r:#}");
    assert_eq!(c["registered"], 20, "{c}");
    assert_eq!(c["returned"], 20, "every agent's one dial landed: {c}");
    assert_eq!(c["stranded"], 0, "{c}");
    // The Go agent's extra reconnect loop ran too: more reconnects than agents.
    assert!(c["reconnected"].as_u64().unwrap() > 20, "{c}");
    assert_eq!(r["latency_us"]["restart_back"]["count"], 20, "{r:#}");
}
