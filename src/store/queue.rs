//! The durable command queue (`queue`) and delivery status (`messages`).
//!
//! Each backend→agent command is one [`QueuedMessage`] per addressed agent, stored under
//! `agent_uid ‖ 0x00 ‖ seq` while it is pending (`queued` or `sent`); a `messages` entry
//! `message_id ‖ 0x00 ‖ agent_uid` points at it. When it reaches a final status (delivered,
//! expired, failed, revoked) one atomic batch removes it from `queue` and stores the final record
//! in `messages` instead, where [`Store::purge_terminal`] drops it after the retention. Two time
//! indexes (expiry of pending records, age of final ones) let the sweeps do bounded work; see
//! [`keys`] for every layout.
//!
//! Writes are buffered, not synced: the caller awaits [`Store::sync`] before it answers
//! `queued`. Operations on one agent are serialized by a striped lock that also guards the
//! in-memory next-seq and pending count of the agent ([`state`]), so a depth check or a status
//! call is O(1) after the agent's first use.
//!
//! [`Store::purge_terminal`]: super::Store::purge_terminal
//! [`Store::sync`]: super::Store::sync

mod keys;
mod ops;
mod read;
mod state;
mod sweep;
#[cfg(test)]
mod tests;
mod withdraw;

pub(crate) use state::QueueState;
pub(crate) use withdraw::Withdrawals;

use super::{codec, Keyspaces, StoreError};
use fjall::OwnedWriteBatch as WriteBatch;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Most delivery attempts kept in a record (the oldest are dropped; `retry_count` still counts
/// them all).
pub const MAX_ATTEMPTS_KEPT: usize = 16;

/// Longest failure reason stored, in bytes (longer ones are cut at a char boundary).
pub const MAX_ERROR_LEN: usize = 1_024;

/// Most records one [`Store::expire_due`](super::Store::expire_due) or
/// [`Store::purge_terminal`](super::Store::purge_terminal) call handles.
pub const MAX_SWEEP: usize = 100_000;

/// Encoded bytes of records after which [`Store::enqueue_many`](super::Store::enqueue_many)
/// commits its batch and starts another (bounds the memory of a broadcast).
pub const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;

/// Record kind in errors.
const WHAT: &str = "queued message";

/// Delivery status of one command for one agent.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MessageStatus {
    /// Stored, not yet written to the agent (or written on a connection that died).
    Queued,
    /// Written to the agent at least once, waiting for its ack (v2) or confirmation (v1).
    Sent,
    /// Acked or confirmed. Final.
    Delivered,
    /// Its TTL ran out before delivery. Final.
    Expired,
    /// Every attempt went unacknowledged, or it was refused. Final.
    Failed,
    /// The agent was revoked with the command still pending. Final.
    Revoked,
}

impl MessageStatus {
    /// The snake_case name, as serialized.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Delivered => "delivered",
            Self::Expired => "expired",
            Self::Failed => "failed",
            Self::Revoked => "revoked",
        }
    }

    /// Whether the status is final (the record has left the queue).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Delivered | Self::Expired | Self::Failed | Self::Revoked
        )
    }
}

/// One write of a command to an agent.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attempt {
    /// When, Unix seconds.
    pub at: i64,
    /// The connection it was written on.
    pub conn: u64,
}

/// One command for one agent, as stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct QueuedMessage {
    /// The admin API's message id (shared by every agent of a broadcast).
    pub message_id: String,
    /// The addressed agent.
    pub agent_uid: String,
    /// Per-agent sequence number: increasing in enqueue order, never reused by the agent.
    pub seq: u64,
    /// Backend kind, e.g. `policies` (the channel is `backend.{uid}.{kind}`).
    pub kind: String,
    /// `request` or `event`.
    pub message_type: String,
    /// The command, JSON text. Empty in final records: status does not need it, and a
    /// broadcast would otherwise keep one copy per agent for the whole retention.
    pub payload: String,
    /// Higher is delivered first.
    pub priority: u8,
    /// Enqueue time, Unix seconds.
    pub created_at: i64,
    /// Expiry, Unix seconds: expired when `expires_at <= now`.
    pub expires_at: i64,
    /// Attempts made.
    pub retry_count: u32,
    /// Attempts allowed in all (at least 1).
    pub max_retries: u32,
    /// Current status.
    pub status: MessageStatus,
    /// The last [`MAX_ATTEMPTS_KEPT`] attempts, oldest first.
    pub attempts: Vec<Attempt>,
    /// Last status change, Unix seconds.
    pub updated_at: i64,
    /// Why it failed, if it did.
    pub error: Option<String>,
}

impl QueuedMessage {
    /// Whether its TTL has run out at `now`.
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at <= now
    }

    /// Attempts still allowed.
    pub fn attempts_left(&self) -> u32 {
        self.max_retries.saturating_sub(self.retry_count)
    }
}

/// A command to enqueue for one agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// The admin API's message id; a key part (non-empty, ≤ 512 bytes, no NUL), unique per agent.
    pub message_id: String,
    /// Backend kind, e.g. `policies`.
    pub kind: String,
    /// `request` or `event`.
    pub message_type: String,
    /// The command, JSON text.
    pub payload: String,
    /// Higher is delivered first.
    pub priority: u8,
    /// Time to live in seconds (`MESSAGE_TTL`); ≤ 0 expires at once.
    pub ttl_s: i64,
    /// Attempts allowed in all (`MESSAGE_RETRY_ATTEMPTS`); 0 is taken as 1.
    pub max_retries: u32,
}

/// Why an enqueue was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    /// The agent already has `depth` pending commands (`MESSAGE_QUEUE_SIZE`).
    #[error("the agent's queue is full ({depth} pending)")]
    Full {
        /// Pending commands of the agent.
        depth: usize,
    },
    /// This message id is already stored for this agent (pending or final).
    #[error("message id already used for this agent")]
    Duplicate,
    /// Invalid id, oversized record, or storage error. Shared (`Arc`) because one failed batch
    /// fails every item of an [`Store::enqueue_many`](super::Store::enqueue_many).
    #[error(transparent)]
    Store(Arc<StoreError>),
}

impl From<StoreError> for QueueError {
    fn from(e: StoreError) -> Self {
        Self::Store(Arc::new(e))
    }
}

/// Cuts `reason` to [`MAX_ERROR_LEN`] bytes at a char boundary.
pub(crate) fn clip_reason(reason: &str) -> String {
    let mut end = reason.len().min(MAX_ERROR_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason.get(..end).unwrap_or_default().to_owned()
}

/// Stages a new pending record: the record, its expiry index entry and its `messages` pointer.
/// Returns the record's encoded size.
fn stage_new(
    batch: &mut WriteBatch,
    ks: &Keyspaces,
    msg: &QueuedMessage,
) -> Result<usize, StoreError> {
    let value = codec::encode(WHAT, msg)?;
    let size = value.len();
    let qkey = keys::queue_key(&msg.agent_uid, msg.seq);
    batch.insert(
        &ks.messages,
        keys::message_key(&msg.message_id, &msg.agent_uid),
        keys::pending_value(&qkey),
    );
    batch.insert(
        &ks.queue,
        keys::expiry_key(msg.expires_at, &msg.agent_uid, msg.seq),
        Vec::<u8>::new(),
    );
    batch.insert(&ks.queue, qkey, value);
    Ok(size)
}

/// Stages the move of a pending record to the final `status`: removed from `queue` with its
/// expiry entry, stored in `messages` (without its payload) with a retention entry. Returns
/// the final record.
fn stage_final(
    batch: &mut WriteBatch,
    ks: &Keyspaces,
    mut msg: QueuedMessage,
    status: MessageStatus,
    error: Option<&str>,
    now: i64,
) -> Result<QueuedMessage, StoreError> {
    msg.status = status;
    msg.updated_at = now;
    if let Some(reason) = error {
        msg.error = Some(clip_reason(reason));
    }
    // The payload is not needed for status, and a broadcast would keep one copy per agent
    // for the whole retention.
    msg.payload = String::new();
    let value = codec::encode(WHAT, &msg)?;
    batch.remove(&ks.queue, keys::queue_key(&msg.agent_uid, msg.seq));
    batch.remove(
        &ks.queue,
        keys::expiry_key(msg.expires_at, &msg.agent_uid, msg.seq),
    );
    batch.insert(
        &ks.messages,
        keys::message_key(&msg.message_id, &msg.agent_uid),
        value,
    );
    batch.insert(
        &ks.messages,
        keys::retention_key(now, &msg.message_id, &msg.agent_uid),
        Vec::<u8>::new(),
    );
    Ok(msg)
}
