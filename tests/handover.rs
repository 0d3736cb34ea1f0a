//! An upgrade that refuses no dial: `aegis-gateway serve --takeover` on the same data dir takes
//! the running gateway's listening sockets; the old one drains and exits; agents that behave
//! like the deployed Go agent (after a server close: wait 2 s, dial once, give up for good if
//! that dial fails) all come back; a prober dialling throughout is never refused; and a process
//! that was not handed the sockets still cannot serve the address.

mod common;
use common::*;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The deployed agent's reconnect delay (`websocket_manager.go`).
const GO_RECONNECT_DELAY: Duration = Duration::from_secs(2);

/// Dials `addr` every few ms until stopped; counts refused and accepted dials.
fn prober(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let (mut refused, mut accepted) = (0, 0);
        // Bounded: stops when told, or after 60 s.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while !stop.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
            match TcpStream::connect_timeout(&addr, Duration::from_secs(5)) {
                Ok(_) => accepted += 1,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => refused += 1,
                Err(_) => {}
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        (refused, accepted)
    })
}

#[test]
fn a_takeover_upgrade_loses_no_go_like_agent_and_refuses_no_dial() {
    let dir = tempfile::tempdir().unwrap();
    let old = Child::spawn(dir.path(), &[]);
    let (agent_addr, admin_addr) = (old.agent_addr, old.admin_addr);

    const N: usize = 12;
    let mut agents = Vec::new();
    for i in 0..N {
        let profile = if i % 2 == 0 { V1 } else { V2 };
        let mut a = old.agent(&format!("go-like-{i}"), profile);
        let mut c = connect(agent_addr, &a, None);
        authenticate(&mut c, &mut a);
        let (uid, token) = register(&mut c, &mut a, &format!("host-go-like-{i}"));
        agents.push((a, c, uid, token));
    }

    let stop = Arc::new(AtomicBool::new(false));
    let probe = prober(agent_addr, Arc::clone(&stop));

    // The upgrade: a new process takes the sockets over; the old one drains and exits.
    let new = Child::spawn_with(dir.path(), &[], &["--takeover"]);
    assert_eq!(new.agent_addr, agent_addr, "same agent socket");
    assert_eq!(new.admin_addr, admin_addr, "same admin socket");
    let mut old = old;
    assert_eq!(old.wait(Duration::from_secs(30)), Some(0), "{}", old.log());
    assert!(old.log().contains("handed over"), "{}", old.log());

    // Every agent was closed by the drain and reconnects exactly like the Go agent: one dial.
    let back = AtomicUsize::new(0);
    let clients: Vec<Client> = std::thread::scope(|s| {
        let handles: Vec<_> = agents
            .iter_mut()
            .map(|(a, c, uid, token)| {
                let back = &back;
                s.spawn(move || {
                    let mut seen = Vec::new();
                    assert_eq!(c.recv_close(&mut seen), 1001, "drain close");
                    std::thread::sleep(GO_RECONNECT_DELAY);
                    a.reset_session();
                    // The one dial: `connect` panics if it is refused or the upgrade fails.
                    let mut c = connect(agent_addr, a, Some((uid, token)));
                    authenticate(&mut c, a);
                    back.fetch_add(1, Ordering::AcqRel);
                    c
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(back.load(Ordering::Acquire), N);
    stop.store(true, Ordering::Release);
    let (refused, accepted) = probe.join().unwrap();
    assert_eq!(
        refused, 0,
        "dials refused during the upgrade ({accepted} accepted)"
    );
    assert!(accepted > 0);

    // The new gateway serves the fleet: status of an agent registered with the old one.
    let uid = &agents[0].2;
    eventually("the new gateway shows the agent", WAIT, || {
        new.agent_status(uid).1["connected"] == true
    });

    // A third process not handed the sockets still cannot serve the address.
    let other = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aegis-gateway"))
        .arg("serve")
        .env("DATA_DIR", other.path())
        .env("WEBSOCKET_ADDR", agent_addr.to_string())
        .env("ADMIN_ADDR", "127.0.0.1:0")
        .env("ADMIN_TOKEN", "x")
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another process"));
    drop(clients);
}

#[test]
fn takeover_without_a_running_gateway_starts_normally() {
    let dir = tempfile::tempdir().unwrap();
    let g = Child::spawn_with(dir.path(), &[], &["--takeover"]);
    assert!(g.log().contains("nothing to take over"), "{}", g.log());
    let mut a = g.agent("plain-start", V2);
    let mut c = connect(g.agent_addr, &a, None);
    authenticate(&mut c, &mut a);
}
