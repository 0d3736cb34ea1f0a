//! Routing of verified agent messages to the backend: the event stream and its store.
//!
//! Agent→backend messages (events, status, anomalies, …) are appended to the `events` keyspace,
//! which the SSE stream of the admin API reads (resumable by event seq). A shard collects the
//! events of one scheduler round and appends them in one write batch ([`EventBatch`]), so the
//! store costs one journal write per round, not per message. Heartbeats only update
//! `last_seen`, at a bounded rate (see `shard::conn`).

pub mod northbound;

use crate::protocol::envelope::MsgType;
use crate::store::EventRecord;
use std::cell::RefCell;

/// Channels remembered per connection before `channels` writes stop being deduplicated.
pub const CHANNELS_PER_CONN: usize = 16;

/// Events appended at once at most.
pub const MAX_EVENT_BATCH: usize = 512;

/// A verified agent message for the event stream, encoded once; `None` (logged) if it is too
/// large to store (its body is near `MAX_MESSAGE_SIZE`): the message itself was accepted.
pub fn event(
    agent: &str,
    channel: &str,
    msg_type: MsgType,
    id: &str,
    body: &str,
    now_s: i64,
) -> Option<EventRecord> {
    match EventRecord::new(channel, agent, msg_type.as_str(), id, body, now_s) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, channel, "event not recorded");
            None
        }
    }
}

/// Events waiting for the end of the scheduler round (one per shard; not thread-safe).
#[derive(Default)]
pub struct EventBatch {
    pending: RefCell<Vec<EventRecord>>,
}

impl EventBatch {
    /// Adds an event; returns `true` when the batch is full and should be flushed now.
    pub fn push(&self, ev: EventRecord) -> bool {
        let mut p = self.pending.borrow_mut();
        p.push(ev);
        p.len() >= MAX_EVENT_BATCH
    }

    /// Takes everything pending (to append in one write).
    pub fn take(&self) -> Vec<EventRecord> {
        std::mem::take(&mut *self.pending.borrow_mut())
    }
}
