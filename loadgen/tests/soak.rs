//! The `soak` scenario end to end: the `aegis-loadgen` binary runs it against the real gateway
//! binary (`--spawn-gateway`), sampling the gateway every second, in one process and split over
//! two (where the parent samples). A few seconds each, 20 agents, loopback.

mod common;

use serde_json::Value;

const AGENTS: u64 = 20;

/// Runs a 5 s soak (with `extra` flags); returns the JSON report and the loadgen's stderr.
fn soak(extra: &[&str]) -> (Value, String) {
    let agents = AGENTS.to_string();
    let mut args = vec![
        "--agents",
        &agents,
        "--duration",
        "5",
        "--sample-every",
        "1",
    ];
    args.extend([
        "--heartbeat",
        "0.5",
        "--event-rate",
        "2",
        "--command-rate",
        "10",
    ]);
    args.extend(extra);
    let run = common::run_binary("soak", &args);
    assert!(
        run.stdout.contains("soak: "),
        "the table shows the soak:\n{}",
        run.stdout
    );
    (run.report, run.stderr)
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

fn check(r: &Value, stderr: &str) {
    assert_eq!(r["scenario"], "soak");
    assert_eq!(u(&r["errors_total"]), 0, "{r:#}");
    let c = &r["counts"];
    assert_eq!(u(&c["registered"]), AGENTS, "{c}");
    assert!(
        u(&c["heartbeats_sent"]) > 0 && u(&c["events_sent"]) > 0,
        "{c}"
    );
    assert!(u(&c["commands_sent"]) > 0, "{c}");
    assert_eq!(c["commands_received"], c["commands_sent"], "delivered: {c}");

    let samples = r["soak"]["samples"].as_array().expect("soak.samples");
    assert!(samples.len() >= 2, "{samples:?}");
    for s in samples {
        assert!(u(&s["rss_bytes"]) > 0, "{s}");
        assert!(
            u(&s["fds"]) >= AGENTS,
            "the gateway holds a socket per agent: {s}"
        );
        assert!(u(&s["threads"]) >= 1, "{s}");
        assert!(s["cpu_s"].as_f64().is_some_and(|x| x > 0.0), "{s}");
    }
    let t: Vec<f64> = samples.iter().map(|s| s["t_s"].as_f64().unwrap()).collect();
    assert!(t.windows(2).all(|w| w[0] < w[1]), "in time order: {t:?}");
    let last = samples.last().unwrap();
    assert_eq!(u(&last["connected"]), AGENTS, "{last}");
    assert!(
        samples[1..]
            .iter()
            .any(|s| s["msgs_per_s"].as_f64() > Some(0.0)),
        "{samples:?}"
    );
    let sum = &r["soak"]["summary"];
    assert_eq!(u(&sum["samples"]), samples.len() as u64);
    assert_eq!(sum["rss_first"], samples[0]["rss_bytes"]);
    assert_eq!(sum["fds_last"], last["fds"]);
    assert!(u(&sum["rss_max"]) >= u(&sum["rss_first"]));
    assert!(sum["rss_slope_bytes_per_min"].is_f64(), "{sum}");
    assert!(sum["fds_slope_per_min"].is_f64(), "{sum}");
    // Each sample was printed as it was taken.
    let lines = stderr.lines().filter(|l| l.contains("[soak ")).count();
    assert_eq!(lines, samples.len(), "{stderr}");
}

#[test]
fn soak_samples_the_gateway_over_time() {
    let (r, stderr) = soak(&[]);
    assert_eq!(u(&r["procs"]), 1);
    check(&r, &stderr);
}

#[test]
fn soak_split_over_two_processes_is_sampled_by_the_parent() {
    let (r, stderr) = soak(&["--procs", "2"]);
    assert_eq!(u(&r["procs"]), 2);
    check(&r, &stderr);
}
