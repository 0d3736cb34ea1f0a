//! Graceful shutdown: on SIGTERM the gateway (as a child process) closes every agent with 1001
//! and exits 0, and the commands it had queued are still there after a restart.

mod common;
use common::*;
use std::time::Duration;

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
    child.wait_offline(&uid);
    let queued = child.send_queued(&uid, 7);
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
