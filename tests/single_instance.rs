//! One gateway per address: a second `aegis-gateway serve` on an agent or admin address that a
//! running gateway serves fails at start with a clear error and a non-zero exit, and the first
//! keeps serving (the shards of one process still share their port).

mod common;
use common::*;
use std::io::Read;
use std::time::{Duration, Instant};

/// Runs a second gateway on `agent_addr`/`admin_addr` (its own data dir); returns its exit code
/// and stderr, or panics if it is still running after 30 s (it started serving).
fn second_gateway(agent_addr: &str, admin_addr: &str) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_aegis-gateway"))
        .arg("serve")
        .env("DATA_DIR", dir.path())
        .env("WEBSOCKET_ADDR", agent_addr)
        .env("ADMIN_ADDR", admin_addr)
        .env("ADMIN_TOKEN", "second-instance-token")
        .env("SHARDS", "2")
        .env("NO_COLOR", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("a second gateway on {agent_addr} / {admin_addr} started serving");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code(), err)
}

#[test]
fn a_second_gateway_on_a_served_address_fails_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let first = Child::spawn(dir.path(), &[]);
    let (agent, admin) = (first.agent_addr.to_string(), first.admin_addr.to_string());

    let (code, err) = second_gateway(&agent, "127.0.0.1:0");
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}: {err}");
    assert!(err.contains(&agent), "names the address: {err}");
    assert!(
        err.contains("another process (a second aegis-gateway?)"),
        "says why: {err}"
    );

    let (code, err) = second_gateway("127.0.0.1:0", &admin);
    assert!(code.is_some_and(|c| c != 0), "exit {code:?}: {err}");
    assert!(err.contains(&admin), "names the address: {err}");

    // The first one still answers on both listeners: every admin request reaches it (not a
    // second instance with another token), and agents still connect.
    for _ in 0..20 {
        let (status, _) = first.agent_status("nobody");
        assert_eq!(status, 404);
    }
    let mut a = first.agent("still-served", V2);
    let mut c = connect(first.agent_addr, &a, None);
    authenticate(&mut c, &mut a);
}
