//! Socket activation as systemd does it (`tuning/aegis-gateway.socket`): the test holds the
//! agent and admin listening sockets, and starts the gateway with them as fds 3 and 4
//! (`LISTEN_FDS=2`, `LISTEN_PID` = the gateway's pid, set by a `python3` exec shim as systemd
//! sets it). A restart that keeps the port closed longer than the deployed agent's 2 s
//! reconnect delay then loses no Go-like agent: their one dial waits in the backlog until the
//! new process accepts it.

mod common;
use common::*;
use std::net::TcpListener;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

/// Execs argv[1..] with `LISTEN_PID` set to its own pid (exec keeps the pid).
const SHIM: &str =
    "import os,sys; os.environ['LISTEN_PID']=str(os.getpid()); os.execv(sys.argv[1], sys.argv[1:])";

fn python() -> Option<&'static str> {
    std::process::Command::new("python3")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|_| "python3")
}

/// Starts the gateway on the held sockets, as systemd would.
fn activated(dir: &std::path::Path, agent: &TcpListener, admin: &TcpListener) -> Child {
    let (a, b) = (agent.as_raw_fd(), admin.as_raw_fd());
    let mut cmd = std::process::Command::new(python().unwrap());
    cmd.args(["-c", SHIM, env!("CARGO_BIN_EXE_aegis-gateway"), "serve"])
        .env("LISTEN_FDS", "2");
    // SAFETY: only fcntl and dup2, which are async-signal-safe, between fork and exec. The
    // sockets are first copied above fd 10 (they may already be 3 and 4, where a dup2 onto
    // itself would keep FD_CLOEXEC), then onto 3 and 4, which clears FD_CLOEXEC there.
    unsafe {
        cmd.pre_exec(move || {
            let (ta, tb) = (
                libc::fcntl(a, libc::F_DUPFD, 10),
                libc::fcntl(b, libc::F_DUPFD, 10),
            );
            if ta < 0 || tb < 0 || libc::dup2(ta, 3) < 0 || libc::dup2(tb, 4) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    Child::spawn_command(cmd, dir, &[])
}

#[test]
fn a_socket_activated_restart_slower_than_the_agents_delay_strands_nobody() {
    if python().is_none() {
        eprintln!("python3 not found: skipped (it stands in for systemd's exec)");
        return;
    }
    let agent = TcpListener::bind("127.0.0.1:0").unwrap();
    let admin = TcpListener::bind("127.0.0.1:0").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut old = activated(dir.path(), &agent, &admin);
    assert!(old.log().contains("socket-activated"), "{}", old.log());
    assert_eq!(old.agent_addr, agent.local_addr().unwrap());
    assert_eq!(old.admin_addr, admin.local_addr().unwrap());
    let mut agents: Vec<GoAgent> = (0..8)
        .map(|i| {
            let profile = if i % 2 == 0 { V1 } else { V2 };
            let a = old.agent(&format!("activated-{i}"), profile);
            GoAgent::onboard(old.agent_addr, a, &format!("host-activated-{i}"))
        })
        .collect();
    // `systemctl restart`: stop (drain, exit), then a start that takes longer than 2 s.
    old.signal(libc::SIGTERM);
    assert_eq!(old.wait(Duration::from_secs(30)), Some(0), "{}", old.log());
    let dialled = Instant::now();
    let new = std::thread::scope(|s| {
        for a in agents.iter_mut() {
            // Each reads its 1001, waits 2 s and dials once into the held socket's backlog.
            s.spawn(move || {
                a.run_until(Instant::now() + Duration::from_secs(40), |a| {
                    a.policy.reconnects >= 1 || a.policy.stranded()
                })
            });
        }
        // The port stays unserved for longer than the agents' delay (this wait is the
        // subject of the test: the dials must outlast it in the backlog).
        std::thread::sleep(GoReconnect::DELAY + Duration::from_secs(2));
        activated(dir.path(), &agent, &admin)
    });
    assert!(dialled.elapsed() > GoReconnect::DELAY);
    for a in &agents {
        assert!(!a.policy.stranded(), "{} stranded", a.uid);
        assert_eq!(a.policy.reconnects, 1, "{} is back", a.uid);
        assert_eq!(a.server_closes, vec![1001]);
        assert_eq!(new.agent_status(&a.uid).1["connected"], true);
    }
}
