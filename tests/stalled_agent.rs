//! A stalled agent that stops reading while the gateway keeps writing large commands to it:
//! the connection is cut off, later commands are persisted (`queued`) instead, and the gateway's
//! memory does not grow with what the agent failed to read.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn stalled_agent_is_cut_off_and_its_commands_stay_queued() {
    let gw = TestGateway::start_with(|c| {
        // The write deadline that cuts a slow consumer off is the ping interval (at most 10 s):
        // short, so the stall is detected soon. The idle timeout stays out of the way.
        c.ping_interval = Duration::from_millis(250);
        c.idle_timeout = Duration::from_secs(30);
    });
    let mut a = gw.agent("stalled", V2);
    let (c, uid, _) = onboard(&gw, &mut a, "host-stalled");
    // The agent stops reading; the gateway keeps writing 200 KB commands.
    let blob = "x".repeat(200 * 1024);
    let before = rss_bytes();
    let handle = gw.running.as_ref().unwrap().handle();
    let mut statuses = Vec::new();
    for _ in 0..60 {
        let (s, r) = gw.send(
            &uid,
            json!({"channel": "backend.policies", "message": {"blob": blob}}),
        );
        assert_eq!(s, 200, "{r}");
        statuses.push(r["status"].as_str().unwrap().to_string());
    }
    assert!(
        statuses.iter().any(|s| s == "sent"),
        "the first ones were written"
    );
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("queued"),
        "later ones are persisted instead: {statuses:?}"
    );
    assert!(
        !block_on(handle.is_connected(&uid)),
        "the stalled connection was closed"
    );
    let grown = rss_bytes().saturating_sub(before);
    // 12 MB of commands went through; the gateway held at most a socket's worth per connection.
    assert!(grown < 64 << 20, "RSS grew by {grown} bytes");
    drop(c);
}
