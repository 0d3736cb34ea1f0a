//! Agent messages to AegisFlux (DESIGN §8): every verified agent message (and, when enabled,
//! every heartbeat as a presence update) published on core NATS subject
//! `aegis.agent.<id>.<kind>` as `{agent_uid, host_id, channel, type, id, timestamp, body}`.
//!
//! A shard never waits for this: it offers the message to a bounded buffer
//! ([`Northbound::offer_event`], a `try_send`) and a full buffer drops it, counted in
//! `aegis_gateway_aegisflux_dropped_total`. The publisher runs on the admin executor: it looks
//! up the agent's host_id (cached), encodes the JSON and hands it to the NATS client.
//! In cluster mode the event log itself is published with JetStream on the same subjects
//! (`crate::cluster::events`), so only heartbeats go through here.

use crate::cluster::events::AgentMessage;
pub use crate::router::northbound::{Northbound, Outgoing, Receiver, BUFFER};
use crate::store::Fleet;
use std::collections::HashMap;
use std::sync::Arc;

/// Host ids remembered by the publisher (cleared when full).
const HOST_CACHE: usize = 100_000;

/// The JSON published for `out`, and its subject; `None` for an event that does not decode.
fn message(out: Outgoing) -> Option<AgentMessage> {
    match out {
        Outgoing::Event(record) => match record.decode() {
            Ok(ev) => Some(AgentMessage::of(ev, String::new())),
            Err(e) => {
                tracing::debug!(error = %e, "undecodable event not published");
                None
            }
        },
        Outgoing::Heartbeat { uid, at } => Some(AgentMessage {
            channel: format!("agent.{uid}.heartbeat"),
            agent_uid: uid,
            host_id: String::new(),
            message_type: "heartbeat".to_string(),
            id: String::new(),
            timestamp: at,
            body: serde_json::json!({"status": "online"}),
        }),
    }
}

/// Publishes what the shards offer until every [`Northbound`] is dropped.
pub async fn publish(client: async_nats::Client, mut rx: Receiver, fleet: Arc<dyn Fleet>) {
    let mut hosts: HashMap<String, String> = HashMap::new();
    while let Some(out) = rx.recv().await {
        let Some(mut msg) = message(out) else {
            continue;
        };
        msg.host_id = match hosts.get(&msg.agent_uid) {
            Some(h) => h.clone(),
            None => {
                let host = match fleet.get_agent(&msg.agent_uid).await {
                    Ok(Some(rec)) => rec.host_id,
                    _ => String::new(),
                };
                if hosts.len() >= HOST_CACHE {
                    hosts.clear();
                }
                hosts.insert(msg.agent_uid.clone(), host.clone());
                host
            }
        };
        let subject = format!("aegis.{}", msg.channel);
        let Ok(json) = serde_json::to_vec(&msg) else {
            continue;
        };
        match client.publish(subject, json.into()).await {
            Ok(()) => metrics::counter!(crate::metrics::AEGISFLUX_PUBLISHED).increment(1),
            Err(e) => {
                tracing::debug!(error = %e, "agent message not published");
                metrics::counter!(crate::metrics::AEGISFLUX_DROPPED).increment(1);
            }
        }
    }
}
