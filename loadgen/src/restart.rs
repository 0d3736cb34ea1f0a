//! The `restart` scenario's coordinator: waits until the spawned gateway holds every agent,
//! restarts it ([`RestartMode`]), and says how long the new process took to serve.

use crate::admin::AdminClient;
use crate::gateway::{RestartMode, SpawnedGateway};
use std::time::{Duration, Instant};

/// How long the fleet holds before the restart, once all are connected.
const HOLD: Duration = Duration::from_secs(2);

/// Agents connected to the gateway now (its `aegis_gateway_connections` gauge, v1 + v2).
fn connected(admin: &mut AdminClient) -> f64 {
    ["v1", "v2"]
        .iter()
        .map(|p| {
            admin
                .metrics_sum(aegis_gateway::metrics::CONNECTIONS, "profile", p)
                .unwrap_or(0.0)
        })
        .sum()
}

/// Waits (at most `limit`) until `agents` are connected, holds [`HOLD`], restarts `gw`. Returns
/// it and a line for the report.
pub fn when_connected(
    mut gw: SpawnedGateway,
    agents: usize,
    mode: RestartMode,
    limit: Duration,
) -> (SpawnedGateway, String) {
    let ep = crate::url::Endpoint {
        addr: gw.admin_addr,
        host_header: gw.admin_addr.to_string(),
        path: "/".into(),
    };
    let mut admin = AdminClient::new(ep, Some(gw.admin_token.clone()));
    let until = Instant::now() + limit;
    let mut before = connected(&mut admin);
    while before < agents as f64 && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
        before = connected(&mut admin);
    }
    std::thread::sleep(HOLD);
    let line = match gw.restart(mode) {
        Ok(took) => format!(
            "restart ({mode:?}) with {before} agents connected: the new gateway logged serving {:.0} ms after the restart began",
            took.as_secs_f64() * 1e3
        ),
        Err(e) => format!("restart ({mode:?}) failed: {e:#}"),
    };
    eprintln!("aegis-loadgen: {line}");
    (gw, line)
}
