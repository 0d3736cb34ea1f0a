//! `commands --offline --command-concurrency K`: the agents register and disconnect, then K
//! admin connections send at once, so every send is a durable enqueue answered `queued` (the
//! enqueue rate the README's cluster figures quote), against the real gateway binary.

mod common;

#[test]
fn offline_sends_are_all_answered_queued_from_concurrent_connections() {
    let run = common::run_binary(
        "commands",
        &[
            "--agents",
            "20",
            "--commands",
            "200",
            "--command-rate",
            "0",
            "--command-concurrency",
            "8",
            "--offline",
            "--duration",
            "15",
        ],
    );
    let r = &run.report;
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
