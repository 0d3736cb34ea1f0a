//! Routing of verified agent messages to the backend (the event stream and its store), and the
//! admin API's operations on the gateway ([`backend::GatewayBackend`]).
//!
//! Agent→backend messages (events, status, anomalies, …) are appended to the `events` keyspace,
//! which the SSE stream of the admin API reads (resumable by event seq). Heartbeats only update
//! `last_seen`, at a bounded rate (see `shard::conn`).

pub mod backend;

use crate::protocol::envelope::MsgType;
use crate::store::{NewEvent, Store, StoreError};

/// Channels remembered per connection before `channels` writes stop being deduplicated.
pub const CHANNELS_PER_CONN: usize = 16;

/// Records a verified agent message for the event stream; returns its event seq.
pub fn record_inbound(
    store: &Store,
    agent: &str,
    channel: &str,
    msg_type: MsgType,
    id: &str,
    body: &str,
    now_s: i64,
) -> Result<u64, StoreError> {
    store.append_event(&NewEvent {
        channel: channel.to_string(),
        agent_uid: agent.to_string(),
        message_type: msg_type.as_str().to_string(),
        id: id.to_string(),
        body: body.to_string(),
        at: now_s,
    })
}
