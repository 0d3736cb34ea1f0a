//! The `restart` scenario end to end: the `aegis-loadgen` binary spawns the real gateway
//! binary, connects agents that reconnect like the deployed Go agent, restarts the gateway
//! with `serve --takeover` once all are connected, and every agent comes back (20 agents,
//! 12 s, loopback).

mod common;

use serde_json::Value;
use std::process::Command;

#[test]
fn a_takeover_restart_brings_every_go_like_agent_back() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("restart.json");
    let out = Command::new(env!("CARGO_BIN_EXE_aegis-loadgen"))
        .arg("restart")
        .arg("--spawn-gateway")
        .arg(common::gateway_binary())
        .args(["--agents", "20", "--profile", "mix", "--duration", "12"])
        .args(["--heartbeat", "1", "--restart-mode", "takeover", "--quiet"])
        .arg("--json")
        .arg(&json)
        .output()
        .expect("aegis-loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "exit {}\n{stdout}\n{stderr}",
        out.status
    );
    assert!(
        stdout.contains(
            "restart (Takeover) with 20 agents connected: the new gateway logged serving"
        ),
        "{stdout}"
    );
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let c = &r["counts"];
    assert_eq!(r["errors_total"], 0, "{r:#}");
    assert_eq!(c["registered"], 20, "{c}");
    assert_eq!(c["returned"], 20, "every agent's one dial landed: {c}");
    assert_eq!(c["stranded"], 0, "{c}");
    // The Go agent's extra reconnect loop ran too: more reconnects than agents.
    assert!(c["reconnected"].as_u64().unwrap() > 20, "{c}");
    assert_eq!(r["latency_us"]["restart_back"]["count"], 20, "{r:#}");
}
