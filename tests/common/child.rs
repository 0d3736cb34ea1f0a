//! The gateway binary as a child process (`aegis-gateway serve`), for crash, signal and
//! full-disk scenarios: it can be SIGKILLed and restarted on the same data dir.

use super::http::http_json;
use super::poll::{eventually, poll_until, POLL_EVERY, WAIT};
use aegis_gateway::crypto::SigningKey;
use aegis_gateway::protocol::session::Profile;
use aegis_gateway::testkit::agent::Agent;
use serde_json::{json, Value};
use std::io::BufRead;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Admin token used by child-process tests.
pub const CHILD_TOKEN: &str = "test-admin-token-0123456789";

/// The gateway binary running as a child process.
pub struct Child {
    pub child: std::process::Child,
    pub agent_addr: SocketAddr,
    pub admin_addr: SocketAddr,
    pub public_key: [u8; 32],
    log: Arc<Mutex<String>>,
}

impl Child {
    /// Starts `aegis-gateway serve` on `data_dir` with ephemeral ports; waits for its "serving" line.
    pub fn spawn(data_dir: &std::path::Path, extra_env: &[(&str, &str)]) -> Child {
        Self::spawn_with(data_dir, extra_env, &[])
    }

    /// [`Child::spawn`] with extra `serve` arguments (`--takeover`).
    pub fn spawn_with(
        data_dir: &std::path::Path,
        extra_env: &[(&str, &str)],
        args: &[&str],
    ) -> Child {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_aegis-gateway"));
        cmd.arg("serve").args(args);
        Self::spawn_command(cmd, data_dir, extra_env)
    }

    /// Runs `cmd` (which execs `aegis-gateway serve` in the end) with the child environment;
    /// waits for its "serving" line.
    pub fn spawn_command(
        mut cmd: std::process::Command,
        data_dir: &std::path::Path,
        extra_env: &[(&str, &str)],
    ) -> Child {
        cmd.env("DATA_DIR", data_dir)
            .env("WEBSOCKET_ADDR", "127.0.0.1:0")
            .env("ADMIN_ADDR", "127.0.0.1:0")
            .env("ADMIN_TOKEN", CHILD_TOKEN)
            .env("SHARDS", "2")
            .env("LOG_FORMAT", "pretty")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped());
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("gateway binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if line.contains("aegis-gateway serving") {
                    let _ = tx.send(line.clone());
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("gateway reports it is serving");
        let field = |name: &str| -> String {
            let start = line
                .find(&format!("{name}="))
                .unwrap_or_else(|| panic!("{name} in {line}"))
                + name.len()
                + 1;
            line[start..]
                .split_whitespace()
                .next()
                .unwrap()
                .trim_matches('"')
                .to_string()
        };
        let public_key =
            aegis_gateway::protocol::payloads::decode_b64_exact::<32>(&field("public_key"))
                .unwrap();
        Child {
            agent_addr: field("agent_addr").parse().unwrap(),
            admin_addr: field("admin_addr").parse().unwrap(),
            public_key,
            child,
            log,
        }
    }

    /// Everything it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends a signal.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for exit (bounded by `limit`, then kills it); returns the exit code, `None` when
    /// it ended by a signal or did not end in time.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(POLL_EVERY);
        }
        let _ = self.child.kill();
        None
    }

    /// A new agent that knows this gateway's key.
    pub fn agent(&self, agent_id: &str, profile: Profile) -> Agent {
        Agent::new(
            SigningKey::generate(),
            agent_id,
            profile,
            Some(self.public_key),
        )
    }

    /// `POST /api/v1/agents/{uid}/send` of `{"n": n}` on `backend.policies`; (status, JSON).
    pub fn send(&self, uid: &str, n: u32) -> (u16, Value) {
        http_json(
            self.admin_addr,
            "POST",
            &format!("/api/v1/agents/{uid}/send"),
            Some(CHILD_TOKEN),
            Some(&json!({"channel": "backend.policies", "message": {"n": n}}).to_string()),
        )
    }

    /// [`Child::send`] to an offline agent: asserts the answer is `queued`, returns the id.
    pub fn send_queued(&self, uid: &str, n: u32) -> String {
        let (status, r) = self.send(uid, n);
        assert_eq!(status, 200, "send {n}: {r}");
        assert_eq!(r["status"], "queued", "send {n}: {r}");
        r["message_id"].as_str().unwrap().to_string()
    }

    /// `GET /api/v1/agents/{uid}/status` with the token; (status, JSON).
    pub fn agent_status(&self, uid: &str) -> (u16, Value) {
        http_json(
            self.admin_addr,
            "GET",
            &format!("/api/v1/agents/{uid}/status"),
            Some(CHILD_TOKEN),
            None,
        )
    }

    /// Polls until the admin API shows `uid` offline (the gateway saw its connection end).
    pub fn wait_offline(&self, uid: &str) {
        eventually(&format!("agent {uid} shown offline"), WAIT, || {
            self.agent_status(uid).1["connected"] == false
        });
    }

    /// Polls until the first delivery of message `id` has `status`.
    pub fn wait_status(&self, id: &str, status: &str) {
        let path = format!("/api/v1/messages/{id}");
        poll_until(WAIT, || {
            let (_, m) = http_json(self.admin_addr, "GET", &path, Some(CHILD_TOKEN), None);
            if m["deliveries"][0]["status"] == status {
                Ok(())
            } else {
                Err(format!("message {id} never reached {status}: {m}"))
            }
        })
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
