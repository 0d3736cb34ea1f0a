//! `aegis-loadgen`: see `aegis_loadgen::cli::Cli` or `--help`.

use aegis_loadgen::cli::Cli;
use aegis_loadgen::gateway::SpawnedGateway;
use aegis_loadgen::options::{Options, Scenario};
use aegis_loadgen::restart;
use aegis_loadgen::{driver, multiproc, sys, url, Report};
use clap::Parser;
use std::path::Path;

fn main() {
    match real_main() {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("aegis-loadgen: {e:#}");
            std::process::exit(1);
        }
    }
}

fn real_main() -> anyhow::Result<i32> {
    let cli = Cli::parse();
    if let Err(e) = sys::raise_nofile_limit() {
        eprintln!("aegis-loadgen: cannot raise RLIMIT_NOFILE: {e}");
    }
    if let Some(spec) = &cli.child_spec {
        let opts: Options = serde_json::from_str(spec)?;
        let report = driver::run(&opts)?;
        if let Some(path) = &cli.json {
            write_json(path, &report)?;
        }
        return Ok(0);
    }
    let mut opts = cli.options();
    let gateway = match &cli.spawn_gateway {
        Some(path) => {
            let path_in_url = url::parse_ws(&opts.url)?.path;
            let gw = SpawnedGateway::spawn(path, &cli.gateway_env)?;
            eprintln!(
                "aegis-loadgen: gateway pid {} on {} (admin {})",
                gw.pid, gw.agent_addr, gw.admin_addr
            );
            opts.url = format!("ws://{}{}", gw.agent_addr, path_in_url);
            opts.admin = Some(format!("http://{}", gw.admin_addr));
            opts.admin_token = Some(gw.admin_token.clone());
            opts.gateway_pid = Some(gw.pid);
            Some(gw)
        }
        None => None,
    };
    if opts.source_ips.is_empty() {
        opts.source_ips = multiproc::default_source_ips(opts.agents);
    }
    let procs = multiproc::processes_for(opts.agents, cli.procs);
    let mut gateway = gateway;
    let restarter = if opts.scenario == Scenario::Restart {
        let gw = gateway
            .take()
            .ok_or_else(|| anyhow::anyhow!("the restart scenario needs --spawn-gateway"))?;
        let (agents, mode) = (opts.agents, cli.restart_mode);
        let limit = std::time::Duration::from_secs_f64(opts.duration_s / 2.0);
        Some(std::thread::spawn(move || {
            restart::when_connected(gw, agents, mode, limit)
        }))
    } else {
        None
    };
    let result = if procs > 1 {
        std::env::current_exe()
            .map_err(anyhow::Error::from)
            .and_then(|exe| multiproc::run_parent(&opts, procs, &exe))
    } else {
        driver::run(&opts)
    };
    let mut restarted = None;
    if let Some(t) = restarter {
        let (gw, outcome) = t
            .join()
            .map_err(|_| anyhow::anyhow!("the restart thread panicked"))?;
        restarted = Some(outcome);
        gateway = Some(gw);
    }
    if let Some(gw) = gateway {
        match gw.stop() {
            Ok(status) if !status.success() => {
                eprintln!("aegis-loadgen: gateway exited with {status}")
            }
            Ok(_) => {}
            Err(e) => eprintln!("aegis-loadgen: stopping the gateway: {e}"),
        }
    }
    let report = result?;
    print!("{}", report.table());
    if let Some(outcome) = restarted {
        println!("{outcome}");
    }
    if let Some(path) = &cli.json {
        write_json(path, &report)?;
    }
    Ok(if report.errors_total > 0 { 3 } else { 0 })
}

fn write_json(path: &Path, report: &Report) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(report)?;
    std::fs::write(path, text + "\n")
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))
}
