//! `aegis-gateway`: serve | keygen | check-config.

#![forbid(unsafe_code)]

use aegis_gateway::config::{Config, ConfigArgs};
use aegis_gateway::{crypto, server, telemetry};
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
    Serve(ConfigArgs),
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
        Cmd::Serve(args) => {
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
            let running = server::start(config.clone()).context("starting the gateway")?;
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
            tracing::info!("signal received: draining");
            running.shutdown();
            tracing::info!("stopped");
            Ok(())
        }
    }
}
