//! The event log in cluster mode: every verified agent message is published with JetStream on
//! `aegis.<channel>` (`aegis.agent.<id>.<kind>`) into the [`names::EVENTS_STREAM`] stream, so it
//! is northbound for AegisFlux's services (core subscribers see it at once, consumers replay it)
//! and the admin API's event stream of every node reads it back by stream sequence.

use super::bridge::unavailable;
use super::names;
use super::scan;
use super::setup::Nats;
use crate::store::{EventRecord, StoreError, StoredEvent};
use async_nats::jetstream::consumer::DeliverPolicy;
use serde::{Deserialize, Serialize};

/// One agent message as published northbound (DESIGN §8).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentMessage {
    /// The agent's uid (its `agent_id` before registration).
    pub agent_uid: String,
    /// The host it registered with (empty when unknown).
    #[serde(default)]
    pub host_id: String,
    /// The channel as sent, `agent.<id>.<kind>`.
    pub channel: String,
    /// The envelope type (`event`, `request`, `heartbeat`, …).
    #[serde(rename = "type")]
    pub message_type: String,
    /// The envelope id.
    pub id: String,
    /// When the gateway received it, Unix seconds.
    pub timestamp: i64,
    /// The decrypted body: its JSON, or a string when it is not JSON.
    pub body: serde_json::Value,
}

impl AgentMessage {
    /// The northbound form of a stored event.
    pub fn of(ev: StoredEvent, host_id: String) -> AgentMessage {
        let body = serde_json::from_str(&ev.body).unwrap_or(serde_json::Value::String(ev.body));
        AgentMessage {
            agent_uid: ev.agent_uid,
            host_id,
            channel: ev.channel,
            message_type: ev.message_type,
            id: ev.id,
            timestamp: ev.at,
            body,
        }
    }

    /// The stored-event form of a northbound message with stream sequence `seq`.
    fn into_stored(self, seq: u64) -> StoredEvent {
        let body = match self.body {
            serde_json::Value::String(s) => s,
            other => other.to_string(),
        };
        StoredEvent {
            seq,
            channel: self.channel,
            agent_uid: self.agent_uid,
            message_type: self.message_type,
            id: self.id,
            body,
            at: self.timestamp,
        }
    }
}

/// Host ids remembered (the map is cleared when it reaches this size).
const HOST_CACHE: usize = 100_000;

/// The host_id of agent `uid` (empty when it has none): one read of the agents bucket per uid,
/// then remembered (a host_id does not change while the uid lives).
async fn host_id(n: &Nats, uid: &str) -> String {
    let cached = n
        .host_ids
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(uid)
        .cloned();
    if let Some(h) = cached {
        return h;
    }
    let host = match super::registry::get_agent(n, uid).await {
        Ok(Some(rec)) => rec.host_id,
        Ok(None) => String::new(),
        // Not remembered: the next event asks again.
        Err(_) => return String::new(),
    };
    let mut cache = n
        .host_ids
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if cache.len() >= HOST_CACHE {
        cache.clear();
    }
    cache.insert(uid.to_string(), host.clone());
    host
}

/// Publishes events (all in flight at once) and waits for their acknowledgements.
pub async fn append(n: &Nats, events: Vec<EventRecord>) -> Result<(), StoreError> {
    let mut acks = Vec::with_capacity(events.len());
    for record in events {
        let ev = record.decode()?;
        let subject = names::event_subject(&ev.channel);
        let host = host_id(n, &ev.agent_uid).await;
        let msg = AgentMessage::of(ev, host);
        let payload = serde_json::to_vec(&msg).map_err(|source| StoreError::Encode {
            what: "event",
            source,
        })?;
        acks.push(
            n.js.publish(subject, payload.into())
                .await
                .map_err(unavailable)?,
        );
    }
    for ack in acks {
        ack.await.map_err(unavailable)?;
    }
    Ok(())
}

/// Events with stream sequence > `after`, at most `limit`.
pub async fn after(n: &Nats, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
    let last = n
        .events
        .get_info()
        .await
        .map_err(unavailable)?
        .state
        .last_sequence;
    if last <= after || limit == 0 {
        return Ok(Vec::new());
    }
    let found = scan::scan(
        &n.client,
        &n.events,
        names::EVENTS_SUBJECTS.to_string(),
        DeliverPolicy::ByStartSequence {
            start_sequence: after + 1,
        },
        limit,
    )
    .await?;
    Ok(found
        .into_iter()
        .filter_map(|f| {
            let msg: AgentMessage = serde_json::from_slice(&f.payload).ok()?;
            Some(msg.into_stored(f.seq))
        })
        .collect())
}
