//! Shared test helpers: a real gateway started in-process (127.0.0.1:0, temp dir, 2 shards, no
//! rate limits) and loadgen options pointed at it.
#![allow(dead_code)]

use aegis_gateway::config::Config;
use aegis_gateway::protocol::payloads::b64;
use aegis_gateway::server::{self, Running};
use aegis_loadgen::{Options, Scenario};

pub struct Gateway {
    pub running: Option<Running>,
    _dir: tempfile::TempDir,
    pub url: String,
    pub key: String,
}

impl Gateway {
    pub fn start() -> Gateway {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config {
            websocket_addr: "127.0.0.1:0".parse().expect("addr"),
            // Each test gateway its own admin port: gateways run in parallel.
            admin_addr: "127.0.0.1:0".parse().expect("addr"),
            data_dir: dir.path().to_path_buf(),
            shards: Some(2),
            message_rate: 0,
            connect_rate: 0,
            ..Config::default()
        };
        let running = server::start(config).expect("gateway starts");
        Gateway {
            url: format!("ws://{}/ws/agent", running.agent_addr),
            key: b64(&running.public_key),
            running: Some(running),
            _dir: dir,
        }
    }

    pub fn handle(&self) -> aegis_gateway::shard::GatewayHandle {
        self.running.as_ref().expect("running").handle()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

/// Options for `scenario` against `gw`: 2 executors, gateway signatures verified, no progress.
pub fn options(gw: &Gateway, scenario: Scenario) -> Options {
    let mut o = Options::new(scenario);
    o.url = gw.url.clone();
    o.gateway_key = Some(gw.key.clone());
    o.threads = 2;
    o.progress = false;
    o
}

/// The gateway binary for `--spawn-gateway`: `aegis-gateway` of this test's build profile
/// (`target/<profile>/`, next to the `deps/` directory holding the test), else of the other one.
/// `cargo test --workspace` builds it; alone, build it first (`cargo build -p aegis-gateway`).
pub fn gateway_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>/deps/<test>");
    let mut candidates = vec![profile_dir.join("aegis-gateway")];
    if let Some(target) = profile_dir.parent() {
        for other in ["debug", "release"] {
            candidates.push(target.join(other).join("aegis-gateway"));
        }
    }
    candidates
        .iter()
        .find(|p| p.is_file())
        .cloned()
        .unwrap_or_else(|| {
            panic!(
                "no aegis-gateway binary in {candidates:?}: build it first \
                 (cargo build -p aegis-gateway)"
            )
        })
}

/// What one run of the `aegis-loadgen` binary printed and reported.
pub struct BinaryRun {
    /// The JSON report (`--json`).
    pub report: serde_json::Value,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `aegis-loadgen SCENARIO --spawn-gateway <gateway> ARGS… --quiet --json FILE`; asserts
/// it exited 0 and returns its report and output.
pub fn run_binary(scenario: &str, args: &[&str]) -> BinaryRun {
    let dir = tempfile::tempdir().expect("temp dir");
    let json = dir.path().join("report.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_aegis-loadgen"))
        .arg(scenario)
        .arg("--spawn-gateway")
        .arg(gateway_binary())
        .args(args)
        .args(["--quiet", "--json"])
        .arg(&json)
        .output()
        .expect("aegis-loadgen runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "exit {}\n{stdout}\n{stderr}",
        out.status
    );
    let text = std::fs::read_to_string(&json).expect("JSON report written");
    let report = serde_json::from_str(&text).expect("JSON report parses");
    BinaryRun {
        report,
        stdout,
        stderr,
    }
}
