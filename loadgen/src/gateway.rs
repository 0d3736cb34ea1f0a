//! `--spawn-gateway PATH`: starts the gateway binary on free loopback ports with a temporary data
//! directory and a generated admin token, learns its address and public key from its
//! `aegis-gateway serving` log line, and stops it with SIGTERM at the end.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the gateway may take to start.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of its log kept for error messages.
const TAIL: usize = 20;

/// A gateway process started by the load generator.
pub struct SpawnedGateway {
    child: Child,
    /// Its pid.
    pub pid: u32,
    /// Agent WebSocket address.
    pub agent_addr: SocketAddr,
    /// Admin API address.
    pub admin_addr: SocketAddr,
    /// The admin token it was given.
    pub admin_token: String,
    /// Its public key (base64), from the log line.
    pub public_key: Option<String>,
    tail: Arc<Mutex<VecDeque<String>>>,
    path: std::path::PathBuf,
    extra_env: Vec<(String, String)>,
    _dir: tempfile::TempDir,
}

/// What the `serving` log line says.
#[derive(Debug, PartialEq, Eq)]
pub struct ServingLine {
    /// `agent_addr=`.
    pub agent_addr: SocketAddr,
    /// `public_key=`, if present.
    pub public_key: Option<String>,
}

/// Parses the gateway's `aegis-gateway serving agent_addr=… public_key=…` line (pretty or JSON
/// log format; ANSI colour codes are ignored).
pub fn parse_serving_line(line: &str) -> Option<ServingLine> {
    let clean = strip_ansi(line);
    if !clean.contains("aegis-gateway serving") {
        return None;
    }
    let field = |name: &str| -> Option<String> {
        let pretty = format!("{name}=");
        let json = format!("\"{name}\":\"");
        if let Some(i) = clean.find(&json) {
            let rest = &clean[i + json.len()..];
            return rest.split('"').next().map(str::to_string);
        }
        let i = clean.find(&pretty)?;
        let rest = &clean[i + pretty.len()..];
        rest.split_whitespace()
            .next()
            .map(|s| s.trim_matches('"').to_string())
    };
    Some(ServingLine {
        agent_addr: field("agent_addr")?.parse().ok()?,
        public_key: field("public_key"),
    })
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How the `restart` scenario restarts the spawned gateway.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum RestartMode {
    /// `serve --takeover`: the new process takes the listening sockets over, the old drains.
    Takeover,
    /// SIGTERM, wait for the exit, start a new process on the same ports (the port is closed
    /// in between, as in a `systemctl restart` without the socket unit).
    StopStart,
}

/// What one process of the gateway was started with.
struct Launch<'a> {
    path: &'a Path,
    extra_env: &'a [(String, String)],
    dir: &'a Path,
    ws_port: u16,
    admin_addr: SocketAddr,
    token: &'a str,
    args: &'a [&'a str],
}

/// A started process, once it logged its serving line.
struct Started {
    child: Child,
    serving: Option<ServingLine>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

fn log_tail(tail: &Mutex<VecDeque<String>>) -> String {
    tail.lock()
        .map(|t| t.iter().cloned().collect::<Vec<_>>().join("\n"))
        .unwrap_or_default()
}

impl Launch<'_> {
    fn start(&self) -> anyhow::Result<Started> {
        let mut cmd = Command::new(self.path);
        cmd.arg("serve")
            .args(self.args)
            .env("WEBSOCKET_ADDR", "127.0.0.1")
            .env("WEBSOCKET_PORT", self.ws_port.to_string())
            .env("ADMIN_ADDR", self.admin_addr.to_string())
            .env("ADMIN_TOKEN", self.token)
            .env("DATA_DIR", self.dir)
            .env("MESSAGE_RATE", "0")
            .env("CONNECT_RATE", "0")
            .env("LOG_FORMAT", "pretty")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in self.extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| anyhow::anyhow!("starting {}: {e}", self.path.display()))?;
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL)));
        let (tx, rx) = mpsc::channel();
        if let Some(stderr) = child.stderr.take() {
            let tail = Arc::clone(&tail);
            std::thread::spawn(move || {
                let mut sent = false;
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if !sent {
                        if let Some(s) = parse_serving_line(&line) {
                            let _ = tx.send(s);
                            sent = true;
                        }
                    }
                    if let Ok(mut t) = tail.lock() {
                        if t.len() == TAIL {
                            t.pop_front();
                        }
                        t.push_back(line);
                    }
                }
            });
        }
        let agent_addr: SocketAddr = ([127, 0, 0, 1], self.ws_port).into();
        let until = Instant::now() + START_TIMEOUT;
        loop {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(s) => {
                    return Ok(Started {
                        child,
                        serving: Some(s),
                        tail,
                    })
                }
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < until => {
                    if let Ok(Some(status)) = child.try_wait() {
                        anyhow::bail!("gateway exited with {status}:\n{}", log_tail(&tail));
                    }
                }
                Err(_) => {
                    // No serving line (a quieter RUST_LOG, say): accept a listening port.
                    if std::net::TcpStream::connect_timeout(&agent_addr, Duration::from_secs(1))
                        .is_ok()
                    {
                        return Ok(Started {
                            child,
                            serving: None,
                            tail,
                        });
                    }
                    anyhow::bail!(
                        "gateway did not start in {START_TIMEOUT:?}:\n{}",
                        log_tail(&tail)
                    );
                }
            }
        }
    }
}

impl SpawnedGateway {
    /// Starts `path serve` with the loadgen's environment plus `extra_env` (`K=V`, applied last).
    pub fn spawn(path: &Path, extra_env: &[(String, String)]) -> anyhow::Result<SpawnedGateway> {
        let dir = tempfile::Builder::new()
            .prefix("aegis-loadgen-gw-")
            .tempdir()?;
        let ws_port = free_port()?;
        let admin_port = free_port()?;
        let admin_addr: SocketAddr = ([127, 0, 0, 1], admin_port).into();
        let token: String = aegis_gateway::crypto::random::bytes::<24>()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let started = Launch {
            path,
            extra_env,
            dir: dir.path(),
            ws_port,
            admin_addr,
            token: &token,
            args: &[],
        }
        .start()?;
        let mut gw = SpawnedGateway {
            pid: started.child.id(),
            child: started.child,
            agent_addr: ([127, 0, 0, 1], ws_port).into(),
            admin_addr,
            admin_token: token,
            public_key: None,
            tail: started.tail,
            path: path.to_path_buf(),
            extra_env: extra_env.to_vec(),
            _dir: dir,
        };
        if let Some(s) = started.serving {
            gw.agent_addr = s.agent_addr;
            gw.public_key = s.public_key;
        }
        Ok(gw)
    }

    /// Restarts it on the same ports and data directory; returns how long until the new
    /// process logged its serving line (the old one has exited by then, or exits draining).
    ///
    /// # Errors
    /// The new process did not start.
    pub fn restart(&mut self, mode: RestartMode) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        if mode == RestartMode::StopStart {
            let _ = crate::sys::sigterm(self.pid);
            self.child.wait()?;
        }
        let launch = Launch {
            path: &self.path,
            extra_env: &self.extra_env,
            dir: self._dir.path(),
            ws_port: self.agent_addr.port(),
            admin_addr: self.admin_addr,
            token: &self.admin_token,
            args: if mode == RestartMode::Takeover {
                &["--takeover"]
            } else {
                &[]
            },
        };
        let started = launch.start()?;
        let took = t0.elapsed();
        let mut old = std::mem::replace(&mut self.child, started.child);
        self.pid = self.child.id();
        self.tail = started.tail;
        // The predecessor of a takeover drains and exits by itself (in cluster mode over
        // HANDOVER_DRAIN): reaped on a thread of its own.
        std::thread::spawn(move || old.wait());
        Ok(took)
    }

    /// The last lines it logged.
    pub fn log_tail(&self) -> String {
        log_tail(&self.tail)
    }

    /// SIGTERM, then waits up to 20 s (SIGKILL after that).
    pub fn stop(mut self) -> anyhow::Result<std::process::ExitStatus> {
        let _ = crate::sys::sigterm(self.pid);
        let until = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() >= until {
                let _ = self.child.kill();
                return Ok(self.child.wait()?);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for SpawnedGateway {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = crate::sys::sigterm(self.pid);
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pretty_and_json_serving_lines() {
        let pretty = "2026-01-01T00:00:00.000000Z  INFO aegis_gateway: aegis-gateway serving agent_addr=127.0.0.1:41234 data_dir=/tmp/x shards=2 public_key=AAAA+bbb/=";
        assert_eq!(
            parse_serving_line(pretty),
            Some(ServingLine {
                agent_addr: "127.0.0.1:41234".parse().unwrap(),
                public_key: Some("AAAA+bbb/=".into())
            })
        );
        let ansi = "\u{1b}[32m INFO\u{1b}[0m aegis-gateway serving \u{1b}[3magent_addr\u{1b}[0m=127.0.0.1:9 shards=1";
        assert_eq!(
            parse_serving_line(ansi).map(|s| s.agent_addr),
            Some("127.0.0.1:9".parse().unwrap())
        );
        let json = r#"{"level":"INFO","message":"aegis-gateway serving","agent_addr":"127.0.0.1:5000","public_key":"KEY="}"#;
        let s = parse_serving_line(json).unwrap();
        assert_eq!(s.agent_addr, "127.0.0.1:5000".parse().unwrap());
        assert_eq!(s.public_key.as_deref(), Some("KEY="));
        assert_eq!(parse_serving_line("INFO effective configuration"), None);
        assert_eq!(
            parse_serving_line("aegis-gateway serving agent_addr=nonsense"),
            None
        );
    }
}
