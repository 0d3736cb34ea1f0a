//! `aegis-start-time`: how long the gateway takes from exec to serving on a full store.
//!
//! Fills a data directory with `--agents` registered agents and `--commands` queued commands
//! (spread over the agents, written through the gateway's own store and synced once), then
//! starts `aegis-gateway serve` on it `--runs` times and measures, per run, from the exec to
//! the first answered `GET /healthz` on the admin port and to the first WebSocket upgrade (101)
//! on the agent port (a dial every millisecond; dials before the listen are refused). Prints the
//! runs and their medians. Each run ends with SIGTERM (a clean stop flushes the store), or
//! with SIGKILL (`--kill`: the next start follows a crash).

use aegis_gateway::store::{AgentRecord, NewMessage, Store};
use anyhow::Context;
use clap::Parser;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longest wait for one start.
const START_LIMIT: Duration = Duration::from_secs(60);

#[derive(Parser)]
#[command(
    name = "aegis-start-time",
    about = "Gateway start time on a full store"
)]
struct Cli {
    /// The gateway binary.
    #[arg(long)]
    gateway: PathBuf,
    /// Registered agents in the store.
    #[arg(long, default_value_t = 100_000)]
    agents: usize,
    /// Queued commands in the store (spread over the agents).
    #[arg(long, default_value_t = 100_000)]
    commands: usize,
    /// Starts measured.
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// Data directory to fill (default: a temporary one). Reused as is if it has a store.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// End each run with SIGKILL instead of SIGTERM: every start then follows a crash.
    #[arg(long)]
    kill: bool,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let tmp = tempfile::tempdir()?;
    let dir = cli
        .data_dir
        .clone()
        .unwrap_or_else(|| tmp.path().to_path_buf());
    let t = Instant::now();
    fill(&dir, cli.agents, cli.commands).context("filling the store")?;
    eprintln!(
        "filled {} with {} agents and {} commands in {:.1} s",
        dir.display(),
        cli.agents,
        cli.commands,
        t.elapsed().as_secs_f64()
    );
    let (mut health, mut upgrade) = (Vec::new(), Vec::new());
    for run in 1..=cli.runs {
        let (h, u) = start_once(&cli.gateway, &dir, cli.kill)?;
        println!(
            "run {run}: exec → /healthz {:.1} ms, exec → agent upgrade {:.1} ms",
            ms(h),
            ms(u)
        );
        health.push(h);
        upgrade.push(u);
    }
    println!(
        "median of {} runs ({} agents, {} queued commands): exec → /healthz {:.1} ms, exec → agent upgrade {:.1} ms",
        cli.runs,
        cli.agents,
        cli.commands,
        ms(median(&mut health)),
        ms(median(&mut upgrade))
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

/// Registers `agents` agents and queues `commands` commands in the store at `dir`, unless it
/// already holds agents.
fn fill(dir: &Path, agents: usize, commands: usize) -> anyhow::Result<()> {
    let store = Store::open(dir)?;
    if store.agent_count() > 0 {
        eprintln!(
            "{} already holds {} agents: kept",
            dir.display(),
            store.agent_count()
        );
        return Ok(());
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs() as i64;
    let uid = |i: usize| format!("00000000-0000-4000-8000-{i:012}");
    for i in 0..agents {
        store.put_agent(&AgentRecord {
            agent_uid: uid(i),
            public_key: aegis_gateway::protocol::payloads::b64(&[7u8; 32]),
            host_id: format!("host-{i}"),
            agent_id: format!("agent-{i}"),
            org_id: "org".into(),
            platform: serde_json::json!({"os": "linux"}),
            version: "1.0.0".into(),
            capabilities: serde_json::json!({}),
            network: serde_json::json!({}),
            token_hash: "x".repeat(64),
            registered_at: now,
            last_seen: now,
            profile: 1,
        })?;
    }
    for n in 0..commands {
        let msg = NewMessage {
            message_id: format!("start-time-{n}"),
            kind: "policies".into(),
            message_type: "request".into(),
            payload: format!(r#"{{"policy":"p-{n}","rules":["deny egress 10.0.0.0/8"]}}"#),
            priority: 0,
            ttl_s: 7 * 86_400,
            max_retries: 3,
        };
        store
            .enqueue(&uid(n % agents.max(1)), &msg, now, usize::MAX)
            .map_err(|e| anyhow::anyhow!("enqueue: {e}"))?;
    }
    store.sync_blocking()?;
    Ok(())
}

fn free_addr() -> anyhow::Result<SocketAddr> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?)
}

/// The HTTP status of `request` on `addr`, if it connects and answers.
fn status(addr: SocketAddr, request: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request).ok()?;
    let mut head = [0u8; 32];
    let n = s.read(&mut head).ok()?;
    std::str::from_utf8(&head[..n])
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// One start: (exec → /healthz answered, exec → agent upgrade answered 101). Stops it after.
fn start_once(gateway: &Path, dir: &Path, kill: bool) -> anyhow::Result<(Duration, Duration)> {
    let (agent, admin) = (free_addr()?, free_addr()?);
    let upgrade = format!(
        "GET /ws/agent HTTP/1.1\r\nHost: {agent}\r\nUser-Agent: Aegis-Agent/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-Agent-Id: start-time\r\nX-Agent-Public-Key: {}\r\n\r\n",
        aegis_gateway::protocol::payloads::b64(&[9u8; 32])
    );
    let health = format!("GET /healthz HTTP/1.1\r\nHost: {admin}\r\n\r\n");
    let t0 = Instant::now();
    let mut child = Command::new(gateway)
        .arg("serve")
        .env("DATA_DIR", dir)
        .env("WEBSOCKET_ADDR", agent.to_string())
        .env("ADMIN_ADDR", admin.to_string())
        .env("ADMIN_TOKEN", "start-time-token-0123456789")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", gateway.display()))?;
    let (mut h, mut u) = (None, None);
    while (h.is_none() || u.is_none()) && t0.elapsed() < START_LIMIT {
        if h.is_none() && status(admin, health.as_bytes()) == Some(200) {
            h = Some(t0.elapsed());
        }
        if u.is_none() && status(agent, upgrade.as_bytes()) == Some(101) {
            u = Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    // SIGTERM (or SIGKILL), then wait: the next run opens the same store.
    let pid = libc::pid_t::try_from(child.id())?;
    let sig = if kill { libc::SIGKILL } else { libc::SIGTERM };
    // SAFETY: kill(2) on our own child's pid has no memory-safety preconditions.
    unsafe { libc::kill(pid, sig) };
    let _ = child.wait();
    match (h, u) {
        (Some(h), Some(u)) => Ok((h, u)),
        _ => anyhow::bail!("the gateway did not serve within {START_LIMIT:?}"),
    }
}
