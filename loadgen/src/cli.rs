//! The command line: `aegis-loadgen <SCENARIO> [options]`.

use crate::options::{Options, ProfileChoice, Scenario};
use clap::Parser;
use std::net::Ipv4Addr;
use std::path::PathBuf;

/// Load generator for aegis-gateway. Targets loopback only (127.0.0.0/8, localhost).
///
/// Exit status: 0 when the run finished without errors, 3 when it finished with errors (see the
/// report), 1 when it could not run.
#[derive(Debug, Parser)]
#[command(name = "aegis-loadgen", version)]
pub struct Cli {
    /// What to measure.
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Agent endpoint (its path is kept with --spawn-gateway).
    #[arg(long, default_value = "ws://127.0.0.1:8080/ws/agent")]
    pub url: String,
    /// Simulated agents [default: 64 for throughput, else 100].
    #[arg(long)]
    pub agents: Option<usize>,
    /// Agent protocol profile; `mix` alternates v1 and v2.
    #[arg(long, value_enum, default_value = "v2")]
    pub profile: ProfileChoice,
    /// New connections per second over the whole run (0: as fast as possible).
    #[arg(long, default_value_t = 0.0)]
    pub ramp: f64,
    /// Seconds; a hard cap on the whole run (plus up to 15 s to finish handshakes and closes).
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Heartbeat period per agent in seconds (0: none).
    #[arg(long, default_value_t = 30.0)]
    pub heartbeat: f64,
    /// Events per agent per second [default: 1 for steady and mixed, 0.1 for soak, else 0].
    #[arg(long)]
    pub event_rate: Option<f64>,
    /// Seconds between two WebSocket pings per agent (0: none) [default: 20 for fleet, like
    /// the Go agent, else 0].
    #[arg(long)]
    pub ping: Option<f64>,
    /// Event body size in bytes.
    #[arg(long, default_value_t = 256)]
    pub payload: usize,
    /// Register (M3/M4) on the first connection (implied by reconnect-storm, commands, mixed,
    /// soak).
    #[arg(long)]
    pub register: bool,
    /// Frames pre-signed per agent in throughput.
    #[arg(long, default_value_t = 2000)]
    pub frames: usize,
    /// glommio executors [default: one per core].
    #[arg(long)]
    pub threads: Option<usize>,
    /// Handshakes in flight per executor. The default keeps one source address under the
    /// gateway's 256 pending registrations per client IP with two executors.
    #[arg(long, default_value_t = 100)]
    pub max_inflight: usize,
    /// Gateway pid whose CPU and RSS are sampled from /proc.
    #[arg(long, conflicts_with = "spawn_gateway")]
    pub gateway_pid: Option<u32>,
    /// Start this gateway binary on free loopback ports with a temporary DATA_DIR (SIGTERM at
    /// the end).
    #[arg(long)]
    pub spawn_gateway: Option<PathBuf>,
    /// Extra environment for --spawn-gateway, `K=V`, repeatable.
    #[arg(long = "gateway-env", value_parser = parse_kv)]
    pub gateway_env: Vec<(String, String)>,
    /// Admin API base URL, e.g. http://127.0.0.1:9090 (commands, mixed; /metrics).
    #[arg(long)]
    pub admin: Option<String>,
    /// Admin bearer token (the gateway writes a generated one to DATA_DIR/admin_token).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Write the JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Processes to split the agents over (raised to one per 19,000 agents).
    #[arg(long, default_value_t = 1)]
    pub procs: usize,
    /// Loopback source addresses, comma-separated; at most 19,000 agents each [default: the
    /// kernel's choice up to 19,000 agents, then 127.0.0.1, 127.0.0.2, …].
    #[arg(long, value_delimiter = ',')]
    pub source_ips: Vec<Ipv4Addr>,
    /// Gateway public key (base64) to verify its R1 and frame signatures.
    #[arg(long)]
    pub gateway_key: Option<String>,
    /// Admin sends in the commands scenario [default: one per agent].
    #[arg(long)]
    pub commands: Option<usize>,
    /// Admin sends per second (commands, mixed, soak) [default: 20 for soak, else 500].
    #[arg(long)]
    pub command_rate: Option<f64>,
    /// Admin sends in flight at once, each on its own connection (commands, mixed, soak).
    #[arg(long, default_value_t = 1)]
    pub command_concurrency: usize,
    /// commands: agents disconnect after registering; every send is an enqueue (`queued`).
    #[arg(long)]
    pub offline: bool,
    /// Seconds between two samples of the gateway (RSS, descriptors, threads, CPU) in soak.
    #[arg(long, default_value_t = 30.0)]
    pub sample_every: f64,
    /// How the restart scenario restarts the spawned gateway, once every agent is connected.
    #[arg(long, value_enum, default_value = "takeover")]
    pub restart_mode: crate::gateway::RestartMode,
    /// No progress line.
    #[arg(long)]
    pub quiet: bool,
    /// Internal: the options of a child process of a split run (JSON).
    #[arg(long, hide = true)]
    pub child_spec: Option<String>,
}

impl Cli {
    /// The run's options from the flags.
    pub fn options(&self) -> Options {
        let mut o = Options::new(self.scenario);
        o.url = self.url.clone();
        if let Some(n) = self.agents {
            o.agents = n;
        }
        o.profile = self.profile;
        o.ramp = self.ramp;
        o.duration_s = self.duration;
        o.heartbeat_s = self.heartbeat;
        if let Some(r) = self.event_rate {
            o.event_rate = r;
        }
        if let Some(p) = self.ping {
            o.ping_s = p;
        }
        o.payload = self.payload;
        o.register = self.register || self.scenario.needs_registration();
        o.frames = self.frames;
        if let Some(t) = self.threads {
            o.threads = t;
        }
        o.max_inflight = self.max_inflight;
        o.admin = self.admin.clone();
        o.admin_token = self.admin_token.clone();
        o.gateway_key = self.gateway_key.clone();
        o.gateway_pid = self.gateway_pid;
        o.source_ips = self.source_ips.clone();
        o.commands = self.commands;
        o.command_concurrency = self.command_concurrency;
        o.offline = self.offline;
        if let Some(r) = self.command_rate {
            o.command_rate = r;
        }
        o.sample_every_s = self.sample_every;
        o.progress = !self.quiet;
        o
    }
}

fn parse_kv(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected K=V, got {s:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_full_command_line() {
        let cli = Cli::try_parse_from([
            "aegis-loadgen",
            "reconnect-storm",
            "--agents",
            "2000",
            "--profile",
            "mix",
            "--ramp",
            "500",
            "--source-ips",
            "127.0.0.1,127.0.0.2",
            "--gateway-env",
            "SHARDS=2",
            "--gateway-env",
            "RUST_LOG=warn",
            "--quiet",
        ])
        .unwrap();
        let o = cli.options();
        assert_eq!(o.scenario, Scenario::ReconnectStorm);
        assert_eq!(o.agents, 2000);
        assert_eq!(o.profile, ProfileChoice::Mix);
        assert!(o.register && !o.progress);
        assert_eq!(o.source_ips.len(), 2);
        assert_eq!(
            cli.gateway_env,
            vec![
                ("SHARDS".into(), "2".into()),
                ("RUST_LOG".into(), "warn".into())
            ]
        );
        assert!(o.validate().is_ok());
    }

    #[test]
    fn scenario_defaults_and_refusals() {
        let o = Cli::try_parse_from(["aegis-loadgen", "throughput"])
            .unwrap()
            .options();
        assert_eq!((o.agents, o.profile), (64, ProfileChoice::V2));
        assert!(Cli::try_parse_from(["aegis-loadgen", "bogus"]).is_err());
        let soak = Cli::try_parse_from(["aegis-loadgen", "soak"])
            .unwrap()
            .options();
        assert_eq!(soak.scenario, Scenario::Soak);
        assert_eq!(
            (soak.event_rate, soak.command_rate, soak.sample_every_s),
            (0.1, 20.0, 30.0)
        );
        let soak = Cli::try_parse_from([
            "aegis-loadgen",
            "soak",
            "--sample-every",
            "5",
            "--command-rate",
            "2",
        ])
        .unwrap()
        .options();
        assert_eq!((soak.command_rate, soak.sample_every_s), (2.0, 5.0));
        let mixed = Cli::try_parse_from(["aegis-loadgen", "mixed"])
            .unwrap()
            .options();
        assert_eq!(mixed.command_rate, 500.0);
        assert!(
            Cli::try_parse_from(["aegis-loadgen", "connect", "--gateway-env", "novalue"]).is_err()
        );
        assert!(Cli::try_parse_from([
            "aegis-loadgen",
            "connect",
            "--gateway-pid",
            "1",
            "--spawn-gateway",
            "/x"
        ])
        .is_err());
    }
}
