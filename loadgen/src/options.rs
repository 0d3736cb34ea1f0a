//! What a run does: the scenario and its parameters, as plain data (the CLI builds it; tests and
//! child processes build or deserialize it directly).

use crate::url::{self, Endpoint};
use aegis_gateway::protocol::session::Profile;
use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

/// Sockets one process, or one source address, may open (RLIMIT_NOFILE here is 20,000).
pub const SOCKETS_PER_SLOT: usize = 19_000;

/// The scenarios of `aegis-loadgen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// Ramp to N authenticated agents and hold.
    Connect,
    /// Connect N registered agents, drop them all, reconnect all at once.
    ReconnectStorm,
    /// Heartbeats and events at a steady rate.
    Steady,
    /// Pre-signed frames blasted as fast as possible; gateway CPU per message.
    Throughput,
    /// Admin API sends and one broadcast; send→receive latency.
    Commands,
    /// Steady traffic plus periodic commands.
    Mixed,
    /// `mixed` held for `--duration`, the gateway's RSS, descriptors, threads and CPU sampled
    /// every `--sample-every` seconds (growth over time).
    Soak,
    /// The shape of a real fleet: registered agents, each with a heartbeat every
    /// `--heartbeat` s (and optional events), pinging every `--ping` s like the Go agent; the
    /// gateway's CPU per inbound message (user and sys), per connection per second, per
    /// handshake, and the crypto floor of the same heartbeats measured in the same run.
    Fleet,
    /// Registered agents that reconnect like the deployed Go agent (one dial 2 s after a
    /// close, stranded if it fails, then its extra reconnect loop) while the spawned gateway
    /// is restarted (`--restart-mode`): how many come back, how fast.
    Restart,
}

impl Scenario {
    /// The name used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Connect => "connect",
            Scenario::ReconnectStorm => "reconnect-storm",
            Scenario::Steady => "steady",
            Scenario::Throughput => "throughput",
            Scenario::Commands => "commands",
            Scenario::Mixed => "mixed",
            Scenario::Soak => "soak",
            Scenario::Restart => "restart",
            Scenario::Fleet => "fleet",
        }
    }

    /// Whether agents must register (M3/M4) whatever `--register` says.
    pub fn needs_registration(self) -> bool {
        matches!(
            self,
            Scenario::ReconnectStorm
                | Scenario::Commands
                | Scenario::Mixed
                | Scenario::Soak
                | Scenario::Restart
                | Scenario::Fleet
        )
    }

    /// Whether the admin API is required.
    pub fn needs_admin(self) -> bool {
        matches!(self, Scenario::Commands | Scenario::Mixed | Scenario::Soak)
    }

    /// Whether agents send heartbeats and events through the window (and, with the admin
    /// API, get periodic commands).
    pub fn steady_traffic(self) -> bool {
        matches!(
            self,
            Scenario::Steady | Scenario::Mixed | Scenario::Soak | Scenario::Fleet
        )
    }
}

/// Which protocol profile the agents speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ProfileChoice {
    /// All legacy (Go agent) v1.
    V1,
    /// All secure v2.
    V2,
    /// Alternating: even agent indexes v1, odd v2.
    Mix,
}

impl ProfileChoice {
    /// The profile of the agent with global index `i`.
    pub fn for_agent(self, i: usize) -> Profile {
        match self {
            ProfileChoice::V1 => Profile::V1,
            ProfileChoice::V2 => Profile::V2,
            ProfileChoice::Mix if i.is_multiple_of(2) => Profile::V1,
            ProfileChoice::Mix => Profile::V2,
        }
    }
}

/// This process's place among the processes of a split run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChildRole {
    /// 0-based index; child 0 sends the broadcast of the `commands` scenario.
    pub index: usize,
    /// Number of child processes.
    pub count: usize,
}

/// Every parameter of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    /// The scenario.
    pub scenario: Scenario,
    /// Agent endpoint, `ws://` on loopback.
    pub url: String,
    /// Agents simulated by this process.
    pub agents: usize,
    /// Global index of this process's first agent (its ids and source address follow from it).
    pub agent_offset: usize,
    /// Profile choice.
    pub profile: ProfileChoice,
    /// New connections per second of this process (0: as fast as possible).
    pub ramp: f64,
    /// Hard cap on the run, in seconds.
    pub duration_s: f64,
    /// Heartbeat period in seconds (0: none).
    pub heartbeat_s: f64,
    /// Events per agent per second.
    pub event_rate: f64,
    /// Seconds between two WebSocket pings of each agent (0: none; the Go agent's is 20).
    #[serde(default)]
    pub ping_s: f64,
    /// Size of an event's JSON body in bytes (at least its fixed fields).
    pub payload: usize,
    /// Register (M3/M4) on the first connection.
    pub register: bool,
    /// Frames pre-signed per agent for `throughput`.
    pub frames: usize,
    /// glommio executors (threads).
    pub threads: usize,
    /// Handshakes in flight per executor.
    pub max_inflight: usize,
    /// Admin API base URL (`http://` on loopback).
    pub admin: Option<String>,
    /// Admin bearer token.
    pub admin_token: Option<String>,
    /// Gateway public key (base64) to verify R1 and frame signatures.
    pub gateway_key: Option<String>,
    /// Gateway process to sample in `/proc` (not in child processes: the parent samples).
    pub gateway_pid: Option<u32>,
    /// Source addresses; agent `g` uses `source_ips[g % len]`. Empty: the kernel's choice.
    pub source_ips: Vec<Ipv4Addr>,
    /// Admin sends of the `commands` scenario (default: one per agent).
    pub commands: Option<usize>,
    /// Admin sends per second (`commands`, `mixed`, `soak`; 0: as fast as answered).
    pub command_rate: f64,
    /// Admin requests in flight at once (one connection and thread each).
    #[serde(default = "one")]
    pub command_concurrency: usize,
    /// `commands`: the agents disconnect after registering, so every send is a durable enqueue
    /// (`queued`) and nothing is delivered in the run (no broadcast, no delivery wait).
    #[serde(default)]
    pub offline: bool,
    /// Seconds between two samples of the gateway in `soak`.
    pub sample_every_s: f64,
    /// Print the progress line.
    pub progress: bool,
    /// Set in a child process of a split run.
    pub child: Option<ChildRole>,
    /// Tag in agent ids, unique per run.
    pub run_id: String,
}

fn one() -> usize {
    1
}

/// An invalid combination of options.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum OptionsError {
    /// URL problems.
    #[error(transparent)]
    Url(#[from] url::UrlError),
    /// Numbers out of range.
    #[error("{0}")]
    Range(String),
    /// A scenario needs something not given.
    #[error("{0}")]
    Missing(String),
}

impl Options {
    /// Defaults for `scenario` (URL `ws://127.0.0.1:8080/ws/agent`, v2, 30 s).
    pub fn new(scenario: Scenario) -> Options {
        Options {
            scenario,
            url: "ws://127.0.0.1:8080/ws/agent".into(),
            agents: if scenario == Scenario::Throughput {
                64
            } else {
                100
            },
            agent_offset: 0,
            profile: ProfileChoice::V2,
            ramp: 0.0,
            duration_s: 30.0,
            heartbeat_s: 30.0,
            event_rate: match scenario {
                Scenario::Steady | Scenario::Mixed => 1.0,
                Scenario::Soak => 0.1,
                _ => 0.0,
            },
            ping_s: if scenario == Scenario::Fleet {
                20.0
            } else {
                0.0
            },
            payload: 256,
            register: scenario.needs_registration(),
            frames: 2000,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            // Two executors × 100 stay under the gateway's 256 pending registrations per IP.
            max_inflight: 100,
            admin: None,
            admin_token: None,
            gateway_key: None,
            gateway_pid: None,
            source_ips: Vec::new(),
            commands: None,
            command_rate: if scenario == Scenario::Soak {
                20.0
            } else {
                500.0
            },
            command_concurrency: 1,
            offline: false,
            sample_every_s: 30.0,
            progress: true,
            child: None,
            run_id: run_id(),
        }
    }

    /// Checks the options of one process; returns the agent endpoint and the admin endpoint.
    pub fn validate(&self) -> Result<(Endpoint, Option<Endpoint>), OptionsError> {
        if self.agents > SOCKETS_PER_SLOT {
            return Err(OptionsError::Range(
                "more than 19000 agents in one process: use --procs".into(),
            ));
        }
        self.validate_split()
    }

    /// The agent endpoints: `url` is one, or several comma-separated (cluster nodes; agent `g`
    /// connects to the `g % n`-th).
    ///
    /// # Errors
    /// A URL that is not `ws://` on loopback.
    pub fn agent_endpoints(&self) -> Result<Vec<Endpoint>, url::UrlError> {
        self.url
            .split(',')
            .map(|u| url::parse_ws(u.trim()))
            .collect()
    }

    /// The admin endpoints (none, one, or several comma-separated: cluster nodes).
    ///
    /// # Errors
    /// A URL that is not `http://` on loopback.
    pub fn admin_endpoints(&self) -> Result<Vec<Endpoint>, url::UrlError> {
        self.admin
            .iter()
            .flat_map(|a| a.split(','))
            .map(|u| url::parse_http(u.trim()))
            .collect()
    }

    /// Checks the options of a run that may be split over several processes.
    pub fn validate_split(&self) -> Result<(Endpoint, Option<Endpoint>), OptionsError> {
        let agent = self.agent_endpoints()?.swap_remove(0);
        let admin = self.admin_endpoints()?.into_iter().next();
        let range = |m: &str| Err(OptionsError::Range(m.to_string()));
        if self.agents == 0 {
            return range("--agents must be at least 1");
        }
        if !(1..=256).contains(&self.command_concurrency) {
            return range("--command-concurrency must be in 1..=256");
        }
        if self.agents > 10_000_000 {
            return range("--agents is at most 10000000");
        }
        if self.source_ips.is_empty() && self.agents > SOCKETS_PER_SLOT {
            return range("more than 19000 agents need --source-ips (one per 19000)");
        }
        if !(self.duration_s > 0.0 && self.duration_s <= 86_400.0) {
            return range("--duration must be in (0, 86400] seconds");
        }
        for (name, v) in [
            ("--ramp", self.ramp),
            ("--heartbeat", self.heartbeat_s),
            ("--event-rate", self.event_rate),
            ("--ping", self.ping_s),
            ("--command-rate", self.command_rate),
            ("--sample-every", self.sample_every_s),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return range(&format!("{name} must be a finite number ≥ 0"));
            }
        }
        if self.sample_every_s < 0.1 {
            return range("--sample-every is at least 0.1 s");
        }
        if self.scenario == Scenario::Soak && self.gateway_pid.is_none() && self.child.is_none() {
            return Err(OptionsError::Missing(
                "the soak scenario samples the gateway: give --gateway-pid (or --spawn-gateway)"
                    .into(),
            ));
        }
        if self.threads == 0 || self.threads > 256 || self.max_inflight == 0 {
            return range("--threads must be 1..=256 and --max-inflight ≥ 1");
        }
        if self.scenario == Scenario::Throughput && !(1..=1_000_000).contains(&self.frames) {
            return range("--frames must be 1..=1000000");
        }
        if self.payload > 1 << 20 {
            return range("--payload is at most 1 MiB");
        }
        if self.source_ips.iter().any(|ip| !ip.is_loopback()) {
            return range("--source-ips must be loopback addresses (127.0.0.0/8)");
        }
        if !self.source_ips.is_empty() {
            let per_ip = self.agents.div_ceil(self.source_ips.len());
            if per_ip > SOCKETS_PER_SLOT {
                return range("more than 19000 sockets per source address: add --source-ips");
            }
        }
        if self.scenario.needs_admin() && (admin.is_none() || self.admin_token.is_none()) {
            return Err(OptionsError::Missing(format!(
                "the {} scenario needs --admin and --admin-token (or --spawn-gateway)",
                self.scenario.name()
            )));
        }
        if let Some(k) = &self.gateway_key {
            if self.gateway_public().is_none() {
                return Err(OptionsError::Range(format!(
                    "--gateway-key {k:?} is not base64 of 32 bytes"
                )));
            }
        }
        Ok((agent, admin))
    }

    /// The decoded gateway key, if given and valid.
    pub fn gateway_public(&self) -> Option<[u8; 32]> {
        self.gateway_key
            .as_deref()
            .and_then(aegis_gateway::protocol::payloads::decode_b64_exact::<32>)
    }

    /// Whether agents register on their first connection.
    pub fn registers(&self) -> bool {
        self.register || self.scenario.needs_registration()
    }
}

fn run_id() -> String {
    let b = aegis_gateway::crypto::random::bytes::<4>();
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {

    #[test]
    fn several_comma_separated_urls_are_cluster_nodes() {
        let mut o = Options::new(Scenario::Commands);
        o.url = "ws://127.0.0.1:8081/ws/agent, ws://127.0.0.2:8082/ws/agent".into();
        o.admin = Some("http://127.0.0.1:9091,http://127.0.0.1:9092".into());
        let agents = o.agent_endpoints().unwrap();
        assert_eq!(agents.len(), 2);
        assert_eq!(agents[1].addr, "127.0.0.2:8082".parse().unwrap());
        assert_eq!(o.admin_endpoints().unwrap().len(), 2);
        o.url = "ws://127.0.0.1:8081/,ws://8.8.8.8:80/".into();
        assert!(
            o.agent_endpoints().is_err(),
            "every node must be on loopback"
        );
        o.url = "ws://127.0.0.1:8081/".into();
        o.admin_token = Some("t".into());
        o.command_concurrency = 0;
        assert!(matches!(o.validate(), Err(OptionsError::Range(_))));
    }

    use super::*;

    #[test]
    fn defaults_validate() {
        let o = Options::new(Scenario::Connect);
        let (agent, admin) = o.validate().unwrap();
        assert_eq!(agent.path, "/ws/agent");
        assert!(admin.is_none());
        assert_eq!(Options::new(Scenario::Throughput).agents, 64);
    }

    #[test]
    fn refuses_bad_combinations() {
        let mut o = Options::new(Scenario::Connect);
        o.url = "ws://8.8.8.8:80/".into();
        assert!(matches!(o.validate(), Err(OptionsError::Url(_))));
        let mut o = Options::new(Scenario::Connect);
        o.agents = 20_000;
        assert!(matches!(o.validate(), Err(OptionsError::Range(_))));
        let mut o = Options::new(Scenario::Connect);
        o.ramp = f64::NAN;
        assert!(matches!(o.validate(), Err(OptionsError::Range(_))));
        let o = Options::new(Scenario::Commands);
        assert!(matches!(o.validate(), Err(OptionsError::Missing(_))));
        let mut o = Options::new(Scenario::Connect);
        o.source_ips = vec![Ipv4Addr::new(10, 0, 0, 1)];
        assert!(matches!(o.validate(), Err(OptionsError::Range(_))));
        let mut o = Options::new(Scenario::Connect);
        o.gateway_key = Some("nope".into());
        assert!(matches!(o.validate(), Err(OptionsError::Range(_))));
    }

    #[test]
    fn soak_needs_the_gateway_pid_and_a_sane_period() {
        let mut o = Options::new(Scenario::Soak);
        o.admin = Some("http://127.0.0.1:9090".into());
        o.admin_token = Some("t".into());
        assert!(o.registers());
        assert!(matches!(o.validate(), Err(OptionsError::Missing(_))));
        o.gateway_pid = Some(1);
        assert!(o.validate().is_ok());
        o.sample_every_s = 0.01;
        assert!(matches!(o.validate(), Err(OptionsError::Range(_))));
        // A child of a split run does not sample (the parent does).
        let mut child = Options::new(Scenario::Soak);
        child.admin = o.admin.clone();
        child.admin_token = o.admin_token.clone();
        child.child = Some(ChildRole { index: 0, count: 2 });
        assert!(child.validate().is_ok());
    }

    #[test]
    fn mix_alternates_profiles() {
        assert_eq!(ProfileChoice::Mix.for_agent(0), Profile::V1);
        assert_eq!(ProfileChoice::Mix.for_agent(1), Profile::V2);
        assert_eq!(ProfileChoice::V2.for_agent(0), Profile::V2);
        assert!(Options::new(Scenario::Commands).registers());
        assert!(!Options::new(Scenario::Connect).registers());
    }
}
