//! The drop-in for AegisFlux's WebSocket gateway (DESIGN §8): with `NATS_URL` set, AegisFlux's
//! services keep talking to the gateway the way they talk to theirs.
//!
//! - **Commands in** ([`commands`]): core NATS subject `websocket.messages`
//!   (`NATS_COMMANDS_SUBJECT`) in queue group `NATS_COMMANDS_QUEUE`; each message
//!   ([`inbound`]) is an admin `send`, idempotent by its `id`, answered on its reply subject
//!   when it has one.
//! - **Agent messages out** ([`northbound`]): `aegis.agent.<id>.<kind>` JSON, heartbeats
//!   opt-in (`NATS_PUBLISH_HEARTBEATS`), from a bounded buffer that never blocks a shard.
//! - The HTTP registration fallback (PROTOCOL §9) is on the agent port (`crate::shard`).
//!
//! Works on one node (FLEET_STORE=fjall: NATS for the integration, fjall for the queue) and in
//! cluster mode. The integration has its own NATS connection, owned by a thread of its own
//! ([`Link::connect`]); its work runs on the admin executor beside the admin API's operations,
//! which it calls like the admin API does (async-nats' client and subscriptions are channels,
//! usable from any executor; only the connection needs tokio).

pub mod commands;
pub mod inbound;
pub mod northbound;

use crate::cluster::Bridge;
use crate::config::Config;
use crate::ops::GatewayBackend;
use std::rc::Rc;

pub use northbound::Northbound;

/// The integration's connection and what it serves, before it starts.
pub struct Link {
    client: async_nats::Client,
    /// Keeps the connection's thread alive.
    _bridge: Bridge<async_nats::Client>,
    northbound: Option<northbound::Receiver>,
    subject: String,
    queue: String,
}

impl Link {
    /// Connects (same servers, credentials and TLS as cluster mode). Returns the link and the
    /// shards' side of the northbound buffer: events are offered only on a single node (in a
    /// cluster the event log publishes them), heartbeats when enabled.
    ///
    /// # Errors
    /// No server reachable, bad credentials or TLS files.
    pub fn connect(config: &Config) -> Result<(Link, Northbound), crate::cluster::SetupError> {
        let n = config.nats.clone();
        let (bridge, client) =
            Bridge::start(
                move || async move { crate::cluster::connect_client(&n, "aegisflux").await },
            )?;
        let events = config.nats.publish_events && !config.nats.cluster();
        let (tx, rx) = Northbound::new(events, config.nats.publish_heartbeats, northbound::BUFFER);
        tracing::info!(
            subject = %config.nats.commands_subject,
            events,
            heartbeats = config.nats.publish_heartbeats,
            "AegisFlux integration connected"
        );
        let link = Link {
            client: (*client).clone(),
            _bridge: bridge,
            northbound: Some(rx),
            subject: config.nats.commands_subject.clone(),
            queue: config.nats.commands_queue.clone(),
        };
        Ok((link, tx))
    }

    /// Starts the command subscription and the northbound publisher on the current (admin)
    /// executor.
    pub fn start(mut self, ops: Rc<GatewayBackend>) {
        if let Some(rx) = self.northbound.take() {
            let fleet = std::sync::Arc::clone(&ops.fleet);
            crate::shard::rt::spawn(northbound::publish(self.client.clone(), rx, fleet));
        }
        let link = self;
        crate::shard::rt::spawn(async move {
            let Link {
                client,
                _bridge,
                subject,
                queue,
                ..
            } = link;
            commands::serve(client, subject, queue, ops).await;
            drop(_bridge);
        });
    }
}
