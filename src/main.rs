//! `aegis-gateway`: serve | keygen | check-config.

#![forbid(unsafe_code)]

use aegis_gateway::config::{Config, ConfigArgs};
use aegis_gateway::{crypto, handover, server, telemetry};
use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "aegis-gateway",
    version,
    about = "Gateway for Aegis security agents"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the gateway (configuration from env vars, overridden by flags).
    Serve {
        #[command(flatten)]
        args: ConfigArgs,
        /// Take the listening sockets over from the gateway running on the same DATA_DIR
        /// (an upgrade or restart that refuses no dial); it then drains and exits. Without a
        /// running gateway, start normally.
        #[arg(long)]
        takeover: bool,
    },
    /// Write an Ed25519 key pair (`private.pem`, `public.pem`) into a directory.
    Keygen {
        /// Output directory.
        #[arg(long, default_value = ".")]
        out: PathBuf,
    },
    /// Validate the effective configuration; exits non-zero listing every problem.
    CheckConfig(ConfigArgs),
    /// WebSocket echo on the production connection code, for Autobahn compliance runs.
    #[command(hide = true)]
    WsEcho {
        /// Listen address.
        #[arg(long, default_value = "127.0.0.1:9001")]
        addr: std::net::SocketAddr,
    },
}

fn load_config(args: &ConfigArgs) -> Result<Config, aegis_gateway::config::ConfigErrors> {
    Config::load(args.overrides())
}

/// How long a successor waits for its predecessor to drain and close the store.
const PREDECESSOR_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// The sockets to serve on: systemd's (socket activation), or the running gateway's with
/// `--takeover` (waiting until it closed the store), or none (bind them).
fn inherited_listeners(config: &Config, takeover: bool) -> anyhow::Result<handover::Listeners> {
    if let Some(l) = handover::from_systemd().context("taking systemd's sockets (LISTEN_FDS)")? {
        tracing::info!(
            agent = l.agent.len(),
            admin = l.admin.is_some(),
            "socket-activated"
        );
        return Ok(l);
    }
    if !takeover {
        return Ok(handover::Listeners::default());
    }
    match handover::take(&config.data_dir) {
        Ok((listeners, predecessor)) => {
            tracing::info!("took the listening sockets over; waiting for the predecessor to drain");
            predecessor
                .wait_released(PREDECESSOR_WAIT)
                .context("waiting for the predecessor to release the store")?;
            Ok(listeners)
        }
        Err(e) => {
            tracing::warn!(error = %e, "--takeover: nothing to take over; starting normally");
            Ok(handover::Listeners::default())
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Keygen { out } => {
            let key = crypto::keys::write_keypair(&out)
                .with_context(|| format!("writing keys into {}", out.display()))?;
            println!(
                "wrote {}/private.pem and public.pem (key id {})",
                out.display(),
                crypto::keys::key_id(&key.public())
            );
            Ok(())
        }
        Cmd::WsEcho { addr } => {
            telemetry::init(aegis_gateway::config::LogFormat::Pretty);
            let config = Config::load(Vec::new()).unwrap_or_default();
            aegis_gateway::shard::run_echo(addr, config).context("ws-echo")?;
            Ok(())
        }
        Cmd::CheckConfig(args) => match load_config(&args) {
            Ok(config) => {
                println!("configuration is valid\n{}", config.redacted_summary());
                Ok(())
            }
            Err(errors) => {
                eprintln!("invalid configuration:\n{errors}");
                std::process::exit(2);
            }
        },
        Cmd::Serve { args, takeover } => {
            let config = match load_config(&args) {
                Ok(c) => c,
                Err(errors) => {
                    eprintln!("invalid configuration:\n{errors}");
                    std::process::exit(2);
                }
            };
            telemetry::init(config.log_format);
            aegis_gateway::shard::block_termination_signals().context("blocking signals")?;
            let summary: Vec<String> = config
                .redacted_summary()
                .lines()
                .map(|l| l.split("  #").next().unwrap_or(l).trim().to_string())
                .collect();
            tracing::info!(config = %summary.join(" "), "effective configuration");
            let listeners = inherited_listeners(&config, takeover)?;
            let running =
                server::start_on(config.clone(), listeners).context("starting the gateway")?;
            let fds = running
                .listeners()
                .context("duplicating the listening sockets")?;
            let offer = handover::offer(&config.data_dir, move || {
                Ok(handover::Listeners {
                    agent: fds
                        .agent
                        .iter()
                        .map(|f| f.try_clone())
                        .collect::<Result<_, _>>()?,
                    admin: fds.admin.as_ref().map(|f| f.try_clone()).transpose()?,
                })
            })
            .context("offering the listening sockets for a hand-over")?;
            tracing::info!(
                agent_addr = %running.agent_addr,
                admin_addr = %running.admin_addr,
                data_dir = %config.data_dir.display(),
                shards = running.handle().shards(),
                public_key = %aegis_gateway::protocol::payloads::b64(&running.public_key),
                "aegis-gateway serving"
            );
            if config.tls_paths().is_none() {
                tracing::warn!(
                    "serving plain ws:// without TLS: v1 traffic is readable by anyone on the path \
                     (PROTOCOL §8); set TLS_CERT_PATH and TLS_KEY_PATH for wss://"
                );
            }
            loop {
                let sig =
                    aegis_gateway::shard::wait_for_termination().context("waiting for signals")?;
                if sig != aegis_gateway::shard::SIGHUP {
                    break;
                }
                match running.reload_tls() {
                    Ok(()) => tracing::info!("SIGHUP: TLS certificate reloaded"),
                    Err(e) => {
                        tracing::error!(error = %e, "SIGHUP: TLS reload failed; keeping the current certificate")
                    }
                }
            }
            if offer.taken() && config.nats.cluster() {
                // No embedded store to wait for: the successor starts now, while the agents
                // connected here stay until they leave or their turn in the spread drain.
                offer.release();
                tracing::info!(
                    spread = %aegis_gateway::config::format_duration(config.handover_drain),
                    "handed over to a successor: keeping the connected agents, closing them spread over the drain"
                );
                running.hand_over(config.handover_drain);
            } else {
                if offer.taken() {
                    tracing::info!("handed over to a successor: draining");
                } else {
                    tracing::info!("signal received: draining");
                }
                running.shutdown();
                // The embedded store belongs to one process and is closed now: a successor
                // may open it (its dials meanwhile waited in the sockets' backlog).
                offer.release();
            }
            tracing::info!("stopped");
            Ok(())
        }
    }
}
