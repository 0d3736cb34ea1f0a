//! `commands --offline --command-concurrency K`: the agents register and disconnect, then K
//! admin connections send at once, so every send is a durable enqueue answered `queued` (the
//! enqueue rate the README's cluster figures quote), against the real gateway binary.

mod common;

use serde_json::Value;
use std::process::Command;

#[test]
fn offline_sends_are_all_answered_queued_from_concurrent_connections() {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("offline.json");
    let out = Command::new(env!("CARGO_BIN_EXE_aegis-loadgen"))
        .arg("commands")
        .arg("--spawn-gateway")
        .arg(common::gateway_binary())
        .args(["--agents", "20", "--commands", "200", "--command-rate", "0"])
        .args([
            "--command-concurrency",
            "8",
            "--offline",
            "--duration",
            "15",
        ])
        .args(["--quiet", "--json"])
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
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let c = &r["counts"];
    assert_eq!(r["errors_total"], 0, "{r:#}");
    assert_eq!(c["commands_sent"], 200, "{c}");
    assert_eq!(
        c["commands_status_queued"], 200,
        "every send found its agent offline: {c}"
    );
    assert_eq!(c["commands_received"], 0, "{c}");
    assert_eq!(r["latency_us"]["admin_http"]["count"], 200, "{r:#}");
}
