//! Restarts and upgrades against agents that reconnect like the deployed Go agent ([`GoAgent`]:
//! after a close, wait 2 s, dial once, give up for good if that dial fails; then an extra
//! reconnect that closes the next healthy connection):
//!
//! - `aegis-gateway serve --takeover` on the same data dir takes the running gateway's
//!   listening sockets: no dial is refused, every agent comes back, every command queued
//!   meanwhile arrives (v2: once), and a process not handed the sockets still cannot serve;
//! - in cluster mode the old process keeps its agents and closes them spread over
//!   `HANDOVER_DRAIN`, while the successor takes new ones and reaches the old one's agents;
//! - a plain stop/start leaves the port closed for a moment: the test shows the agents stranded.

mod common;
use common::*;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Dials `addr` every few ms until stopped; counts refused and accepted dials.
fn prober(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, usize)> {
    std::thread::spawn(move || {
        let (mut refused, mut accepted) = (0, 0);
        // Bounded: stops when told, or after 90 s.
        let deadline = Instant::now() + Duration::from_secs(90);
        while !stop.load(Ordering::Acquire) && Instant::now() < deadline {
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

/// `n` Go-like agents onboarded at `g`, v1 and v2 alternating.
fn fleet(g: &Child, n: usize, name: &str) -> Vec<GoAgent> {
    (0..n)
        .map(|i| {
            let profile = if i % 2 == 0 { V1 } else { V2 };
            let a = g.agent(&format!("{name}-{i}"), profile);
            GoAgent::onboard(g.agent_addr, a, &format!("host-{name}-{i}"))
        })
        .collect()
}

/// Sends one command to each agent through `g`'s admin API; the ids, per agent.
fn send_each(g: &Child, agents: &[GoAgent], n: u32) -> Vec<String> {
    agents
        .iter()
        .map(|a| {
            let (status, r) = g.send(&a.uid, n);
            assert_eq!(status, 200, "{r}");
            assert!(r["status"] == "queued" || r["status"] == "sent", "{r}");
            r["message_id"].as_str().unwrap().to_string()
        })
        .collect()
}

/// Runs every agent on a thread of its own until it reconnected and holds every id in `want`
/// (then one more extra-reconnect cycle, so the churn is exercised too), or until `limit`.
fn live_until_back(agents: &mut [GoAgent], want: &[Vec<String>], limit: Duration) {
    let until = Instant::now() + limit;
    std::thread::scope(|s| {
        for (a, want) in agents.iter_mut().zip(want) {
            s.spawn(move || {
                let cycle = GoReconnect::DELAY + GoReconnect::EXTRA_AFTER;
                a.run_until(until, |a| {
                    a.policy.reconnects >= 1 && want.iter().all(|id| a.received.contains(id))
                });
                // One more cycle of the agent's own reconnect loop: each of its dials lands.
                let more = a.policy.reconnects + 1;
                a.run_until((Instant::now() + cycle * 2).min(until), |a| {
                    a.policy.reconnects >= more
                });
            });
        }
    });
}

fn assert_all_back(agents: &[GoAgent], want: &[Vec<String>]) {
    for (a, want) in agents.iter().zip(want) {
        assert!(!a.policy.stranded(), "{} stranded", a.uid);
        assert!(a.policy.reconnects >= 2, "{}: {:?}", a.uid, a.policy);
        for id in want {
            assert!(a.received.contains(id), "{} missed {id}", a.uid);
        }
        if a.agent.profile() == V2 {
            let mut ids = a.received.clone();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), a.received.len(), "{}: a command twice", a.uid);
        }
    }
}

#[test]
fn a_takeover_upgrade_loses_no_go_like_agent_and_refuses_no_dial() {
    let dir = tempfile::tempdir().unwrap();
    let old = Child::spawn(dir.path(), &[]);
    let (agent_addr, admin_addr) = (old.agent_addr, old.admin_addr);
    let mut agents = fleet(&old, 12, "go-like");
    let stop = Arc::new(AtomicBool::new(false));
    let probe = prober(agent_addr, Arc::clone(&stop));

    // The upgrade: a new process takes the sockets over; the old one drains (1001) and exits.
    let new = Child::spawn_with(dir.path(), &[], &["--takeover"]);
    assert_eq!(new.agent_addr, agent_addr, "same agent socket");
    assert_eq!(new.admin_addr, admin_addr, "same admin socket");
    let mut old = old;
    assert_eq!(old.wait(Duration::from_secs(30)), Some(0), "{}", old.log());
    assert!(old.log().contains("handed over"), "{}", old.log());
    // Commands sent while the agents are away (or already back) all arrive.
    let want: Vec<Vec<String>> = send_each(&new, &agents, 1)
        .into_iter()
        .map(|id| vec![id])
        .collect();
    live_until_back(&mut agents, &want, Duration::from_secs(60));
    stop.store(true, Ordering::Release);
    let (refused, accepted) = probe.join().unwrap();
    assert_eq!(refused, 0, "dials refused ({accepted} accepted)");
    assert!(accepted > 0);
    assert_all_back(&agents, &want);
    assert!(agents.iter().all(|a| a.server_closes.contains(&1001)));

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
}

#[test]
fn a_plain_restart_strands_go_like_agents() {
    // Without a hand-over (or systemd's socket), the port is closed between the old process's
    // exit and the new one's bind. The agents' one dial lands in that gap: stranded for good.
    let dir = tempfile::tempdir().unwrap();
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let env = [("WEBSOCKET_ADDR", addr.as_str())];
    let mut old = Child::spawn(dir.path(), &env);
    let mut agents = fleet(&old, 6, "stranded");
    old.signal(libc::SIGTERM);
    assert_eq!(old.wait(Duration::from_secs(30)), Some(0), "{}", old.log());
    std::thread::scope(|s| {
        for a in agents.iter_mut() {
            // Bounded: one 2 s wait and one dial.
            s.spawn(move || {
                a.run_until(Instant::now() + Duration::from_secs(20), |a| {
                    a.policy.stranded()
                })
            });
        }
    });
    assert!(
        agents.iter().all(|a| a.policy.stranded()),
        "every dial was refused"
    );
    // The new process comes up, and the agents stay away: only their restart would help.
    let new = Child::spawn(dir.path(), &env);
    for a in &mut agents {
        a.run_until(Instant::now() + Duration::from_millis(200), |_| false);
        assert!(!a.connected());
        assert_eq!(new.agent_status(&a.uid).1["connected"], false);
    }
}

#[test]
fn a_cluster_takeover_keeps_the_agents_and_spreads_their_closes() {
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    const N: usize = 6;
    let spread = Duration::from_secs(6);
    // One shard, so the closes of one process come strictly one after the other.
    let env = [("HANDOVER_DRAIN", "6s"), ("SHARDS", "1")];
    let old = cluster_node(dir.path(), &nats.url(), "gw-a", None, &env);
    let mut agents = fleet(&old, N, "kept");

    let new = cluster_node_with(dir.path(), &nats.url(), "gw-a", None, &env, &["--takeover"]);
    assert_eq!(new.agent_addr, old.agent_addr);
    assert!(
        new.log().contains("took the listening sockets over"),
        "{}",
        new.log()
    );
    // The old process still holds every agent: the successor's admin API reaches them there.
    let want: Vec<Vec<String>> = send_each(&new, &agents, 1)
        .into_iter()
        .map(|id| vec![id])
        .collect();
    let mut closes = Vec::new();
    std::thread::scope(|s| {
        let handles: Vec<_> = agents
            .iter_mut()
            .zip(&want)
            .map(|(a, want)| {
                s.spawn(move || {
                    a.run_until(Instant::now() + Duration::from_secs(30), |a| {
                        !a.server_closes.is_empty()
                    });
                    let closed_at = Instant::now();
                    (closed_at, want.iter().all(|id| a.received.contains(id)))
                })
            })
            .collect();
        for h in handles {
            closes.push(h.join().unwrap());
        }
    });
    assert!(
        closes.iter().all(|(_, got)| *got),
        "a command did not reach the old process's agent before its close"
    );
    // Spread: one by one, at least a step apart (a lower bound: never earlier than planned).
    let mut at: Vec<Instant> = closes.iter().map(|(t, _)| *t).collect();
    at.sort();
    let step = spread / N as u32;
    for w in at.windows(2) {
        assert!(
            w[1] - w[0] >= step / 2,
            "closes {:?} apart, step {step:?}",
            w[1] - w[0]
        );
    }
    let mut old = old;
    assert_eq!(old.wait(Duration::from_secs(30)), Some(0), "{}", old.log());
    // Each came back to the successor, and commands sent there now arrive too.
    let more: Vec<Vec<String>> = want
        .iter()
        .zip(send_each(&new, &agents, 2))
        .map(|(w, id)| vec![w[0].clone(), id])
        .collect();
    live_until_back(&mut agents, &more, Duration::from_secs(60));
    assert_all_back(&agents, &more);
    for a in &agents {
        assert_eq!(a.server_closes.first(), Some(&1001));
        assert_eq!(new.agent_status(&a.uid).1["connected"], true);
    }
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
