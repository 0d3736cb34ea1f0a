//! The gateway as a child process: commands answered `queued` survive SIGKILL (several cycles),
//! and SIGTERM drains (1001 to every agent, exit 0) without losing queued work.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

fn send(child: &Child, uid: &str, n: u32) -> String {
    let (status, r) = http_json(
        child.admin_addr,
        "POST",
        &format!("/api/v1/agents/{uid}/send"),
        Some(CHILD_TOKEN),
        Some(&json!({"channel": "backend.policies", "message": {"n": n}}).to_string()),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "queued");
    r["message_id"].as_str().unwrap().to_string()
}

#[test]
fn sigkill_loses_nothing_answered_queued() {
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(dir.path(), &[]);
    let mut a = child.agent("crashy", V2);
    let mut c = connect(child.agent_addr, &a, None);
    authenticate(&mut c, &mut a);
    let (uid, token) = register(&mut c, &mut a, "host-crashy");
    drop(c);
    drop(child); // SIGKILL
    let mut pending: Vec<String> = Vec::new();
    for cycle in 0..3u32 {
        let mut child = Child::spawn(dir.path(), &[]);
        for n in 0..10 {
            pending.push(send(&child, &uid, cycle * 100 + n));
        }
        child.signal(libc::SIGKILL);
        assert_eq!(
            child.wait(Duration::from_secs(10)),
            None,
            "killed, no exit code"
        );
    }
    let child = Child::spawn(dir.path(), &[]);
    a.reset_session();
    let mut c = connect(child.agent_addr, &a, Some((&uid, &token)));
    authenticate(&mut c, &mut a);
    let mut got = Vec::new();
    for _ in 0..pending.len() {
        let opened = a.open(c.recv_text().as_bytes()).unwrap();
        c.send(&a.ack(&opened.envelope.id, now_s()).unwrap());
        got.push(opened.envelope.id);
    }
    assert_eq!(got, pending, "every queued command arrives, in order");
    c.expect_silence(Duration::from_millis(300));
}

#[test]
fn sigterm_drains_agents_with_1001_and_keeps_queued_commands() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Child::spawn(dir.path(), &[]);
    // One registered agent goes offline and has a command queued.
    let mut off = child.agent("drain-offline", V1);
    let mut c = connect(child.agent_addr, &off, None);
    authenticate(&mut c, &mut off);
    let (uid, token) = register(&mut c, &mut off, "host-drain-off");
    drop(c);
    std::thread::sleep(Duration::from_millis(200));
    let queued = send(&child, &uid, 7);
    // Several connected agents.
    let mut live = Vec::new();
    for i in 0..6 {
        let mut a = child.agent(&format!("drain-{i}"), if i % 2 == 0 { V1 } else { V2 });
        let mut c = connect(child.agent_addr, &a, None);
        authenticate(&mut c, &mut a);
        live.push(c);
    }
    let (status, _) = http(child.admin_addr, "GET", "/readyz", None, None);
    assert_eq!(status, 200);
    child.signal(libc::SIGTERM);
    for c in live.iter_mut() {
        assert_eq!(c.recv_close(&mut Vec::new()), 1001);
    }
    assert_eq!(
        child.wait(Duration::from_secs(20)),
        Some(0),
        "exit 0 after drain\n{}",
        child.log()
    );
    // After a restart the queued command is still there and is delivered.
    let child = Child::spawn(dir.path(), &[]);
    off.reset_session();
    let mut c = connect(child.agent_addr, &off, Some((&uid, &token)));
    authenticate(&mut c, &mut off);
    let opened = off.open(c.recv_text().as_bytes()).unwrap();
    assert_eq!(opened.envelope.id, queued);
}
