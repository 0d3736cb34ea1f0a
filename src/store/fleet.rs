//! The fleet state as one node sees it: the one interface the connection code (`shard`) and the
//! admin operations (`ops`) use, whatever holds the state.
//!
//! Two backends implement [`Fleet`]: the embedded fjall [`Store`](super::Store) of a single
//! node (the default), and the NATS JetStream state shared by the nodes of a cluster (`cluster`,
//! DESIGN §7). Besides the durable records (agents, pending registrations, the command queue and
//! delivery status, channels, the event log), the interface carries what a node must ask the
//! rest of the fleet: whether an agent is connected to another node, delivering to it there,
//! and closing it there. On a single node those answers are "nowhere" (the default methods).
//!
//! Methods return boxed futures so the trait is object-safe (`Arc<dyn Fleet>`); the embedded
//! store answers at once (its writes are buffered; durability comes from the group commit its
//! durable methods await), the cluster backend after a round trip to NATS.
//!
//! Durability contract, for both backends: [`Fleet::register_agent`], [`Fleet::revoke_agent`],
//! [`Fleet::enqueue`] and [`Fleet::enqueue_many`] resolve only once their writes are durable; the
//! others are durable eventually (a crash may lose the last ones: a `last_seen`, a delivery
//! status that is then retried).

use super::{
    AgentRecord, EventRecord, Fault, NewMessage, QueueError, QueuedMessage, Registration,
    StoreError, StoredEvent,
};
use crate::protocol::channel::BackendKind;
use crate::protocol::envelope::MsgType;
use std::future::Future;
use std::pin::Pin;

/// A boxed future borrowing the fleet (and its arguments) for `'a`.
pub type Fut<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// A future that is already resolved (the embedded store's answers).
pub fn ready<'a, T: 'a>(value: T) -> Fut<'a, T> {
    Box::pin(std::future::ready(value))
}

/// A backend command for one agent, as written to its connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The admin API's message id; the frame's `id` on every attempt.
    pub message_id: String,
    /// Backend channel kind.
    pub kind: BackendKind,
    /// `request` or `event`.
    pub msg_type: MsgType,
    /// The command's JSON text.
    pub message_json: Vec<u8>,
    /// Its durable queue seq for this agent; 0 for a command that is not in the queue.
    pub seq: u64,
}

impl Command {
    /// The command of a queue record (its payload included); `None` if the record's kind or
    /// type is not one the gateway writes (a damaged record).
    pub fn of_queued(q: &QueuedMessage) -> Option<Command> {
        Some(Command {
            message_id: q.message_id.clone(),
            kind: BackendKind::parse(&q.kind)?,
            msg_type: MsgType::parse(&q.message_type)?,
            message_json: q.payload.clone().into_bytes(),
            seq: q.seq,
        })
    }
}

/// Why a command could not be written to an agent now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DeliverError {
    /// No live connection for this agent.
    #[error("agent is not connected")]
    NotConnected,
    /// The connection closed before the command was written.
    #[error("connection closed before the command was written")]
    Closed,
    /// The gateway is shutting down.
    #[error("gateway is shutting down")]
    ShuttingDown,
    /// The queued command is no longer pending (delivered, expired, failed or revoked).
    #[error("command is no longer pending")]
    NotPending,
}

/// What the admin API shows of a live session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionInfo {
    /// 1 or 2.
    pub profile: u8,
    /// Unix seconds at which its session token expires.
    pub session_expires: i64,
}

/// The fleet state (see the module docs). Times are Unix seconds.
pub trait Fleet: Send + Sync + 'static {
    // ---- agents ---------------------------------------------------------------------------

    /// The registered agent `uid`, if any.
    fn get_agent<'a>(&'a self, uid: &'a str) -> Fut<'a, Result<Option<AgentRecord>, StoreError>>;

    /// The uids registered with `host_id` (at most [`super::MAX_UIDS_PER_HOST`]).
    fn uids_for_host<'a>(&'a self, host_id: &'a str) -> Fut<'a, Result<Vec<String>, StoreError>>;

    /// Registered agents in uid order, after `after` (exclusive), at most `limit`
    /// (≤ [`super::MAX_LIST_LIMIT`]).
    fn list_agents<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> Fut<'a, Result<Vec<AgentRecord>, StoreError>>;

    /// Stores a newly registered agent; resolves once it is durable (before R3 is sent).
    fn register_agent<'a>(&'a self, record: &'a AgentRecord) -> Fut<'a, Result<(), StoreError>>;

    /// Forgets agent `uid` and revokes its pending commands; resolves once durable. `false`
    /// when there was no such agent.
    fn revoke_agent<'a>(&'a self, uid: &'a str, now: i64) -> Fut<'a, Result<bool, StoreError>>;

    /// Records the agent's last activity (written at a bounded rate by the caller).
    fn set_last_seen<'a>(&'a self, uid: &'a str, now: i64) -> Fut<'a, Result<(), StoreError>>;

    // ---- pending registrations ------------------------------------------------------------

    /// Stores (or replaces) a pending registration.
    fn put_registration<'a>(&'a self, reg: &'a Registration) -> Fut<'a, Result<(), StoreError>>;

    /// Removes a pending registration; `false` if there was none.
    fn remove_registration<'a>(&'a self, id: &'a str) -> Fut<'a, Result<bool, StoreError>>;

    /// Removes and returns pending registration `id` if it was made over HTTP (PROTOCOL §9:
    /// bound to its key, not to a connection; [`Registration::HTTP`]), so it completes at most
    /// once. `None` for an unknown id and for a WebSocket connection's registration (left
    /// untouched). The caller still checks expiry.
    fn take_http_registration<'a>(
        &'a self,
        id: &'a str,
    ) -> Fut<'a, Result<Option<Registration>, StoreError>>;

    // ---- channels -------------------------------------------------------------------------

    /// Records that agent `uid` used `channel` (of `kind`).
    fn touch_channel<'a>(
        &'a self,
        uid: &'a str,
        channel: &'a str,
        kind: &'a str,
        now: i64,
    ) -> Fut<'a, Result<(), StoreError>>;

    /// The active channels of agent `uid`.
    fn channels_of<'a>(&'a self, uid: &'a str) -> Fut<'a, Result<Vec<String>, StoreError>>;

    // ---- the command queue ----------------------------------------------------------------

    /// Enqueues a command for `uid` (refused past `max_queue` pending); resolves once durable.
    /// A command refused here is never delivered.
    fn enqueue<'a>(
        &'a self,
        uid: &'a str,
        msg: &'a NewMessage,
        now: i64,
        max_queue: usize,
    ) -> Fut<'a, Result<QueuedMessage, QueueError>>;

    /// Enqueues one command for many agents (a broadcast); resolves once durable, with one
    /// result per item in order. The returned records carry no payload (the caller has it).
    fn enqueue_many<'a>(
        &'a self,
        items: &'a [(String, NewMessage)],
        now: i64,
        max_queue: usize,
    ) -> Fut<'a, Result<Vec<Result<QueuedMessage, QueueError>>, StoreError>>;

    /// The pending commands of `uid` in delivery order (priority, then FIFO), with payloads;
    /// expired ones are left out.
    fn pending<'a>(
        &'a self,
        uid: &'a str,
        now: i64,
    ) -> Fut<'a, Result<Vec<QueuedMessage>, StoreError>>;

    /// Records an attempt to write command `cmd` of `uid` on connection `conn`, before the
    /// write. The updated record, or `None` if the command is no longer pending.
    fn record_attempt<'a>(
        &'a self,
        uid: &'a str,
        cmd: &'a Command,
        conn: u64,
        now: i64,
    ) -> Fut<'a, Result<Option<QueuedMessage>, StoreError>>;

    /// Marks the pending command `message_id` of `uid` delivered; `false` if it was not pending.
    fn mark_delivered<'a>(
        &'a self,
        uid: &'a str,
        message_id: &'a str,
        now: i64,
    ) -> Fut<'a, Result<bool, StoreError>>;

    /// Marks command `cmd` of `uid` failed with `reason`; `false` if it was not pending.
    fn mark_failed<'a>(
        &'a self,
        uid: &'a str,
        cmd: &'a Command,
        reason: &'a str,
        now: i64,
    ) -> Fut<'a, Result<bool, StoreError>>;

    /// Puts a written, unconfirmed command back in the queue (its connection ended).
    fn requeue<'a>(
        &'a self,
        uid: &'a str,
        cmd: &'a Command,
        now: i64,
    ) -> Fut<'a, Result<bool, StoreError>>;

    /// Pending commands of `uid`.
    fn queue_depth<'a>(&'a self, uid: &'a str) -> Fut<'a, Result<usize, StoreError>>;

    /// Every delivery record of `message_id` (one per addressed agent).
    fn message_status<'a>(
        &'a self,
        message_id: &'a str,
    ) -> Fut<'a, Result<Vec<QueuedMessage>, StoreError>>;

    // ---- the event log --------------------------------------------------------------------

    /// Appends verified agent messages to the event log, in order.
    fn append_events(&self, events: Vec<EventRecord>) -> Fut<'_, Result<(), StoreError>>;

    /// Events with seq > `after`, in seq order, at most `limit`.
    fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Fut<'_, Result<Vec<StoredEvent>, StoreError>>;

    // ---- health and maintenance -----------------------------------------------------------

    /// Why the state refuses writes, if it does (`None` when healthy).
    fn fault(&self) -> Option<Fault>;

    /// Whether the state can be read at all (new agents can be authenticated): `/readyz`.
    /// Default: true (an embedded store keeps serving reads even when it refuses writes).
    fn reachable(&self) -> bool {
        true
    }

    /// Whether a new command may be written now (a cheap check before the work of a send).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::DiskFull`].
    fn check_writable(&self) -> Result<(), StoreError>;

    /// Periodic maintenance with bounded work per call (expiry of commands and registrations,
    /// retention): called about once a second by one task per node. Returns the number of
    /// commands it expired.
    fn sweep(&self, now: i64) -> Fut<'_, usize>;

    // ---- the rest of the fleet (single node: nothing is elsewhere) -------------------------

    /// Connection `conn` of this node authenticated as `identity`: claim it across the fleet,
    /// closing an older connection of it on another node.
    fn claim_presence(&self, identity: &str, conn: u64, info: SessionInfo) {
        let _ = (identity, conn, info);
    }

    /// Connection `conn` of `identity` on this node ended: drop its claim if it still holds it.
    fn release_presence(&self, identity: &str, conn: u64) {
        let _ = (identity, conn);
    }

    /// The sessions of agents connected to other nodes, in input order (`None`: not on
    /// another node).
    fn sessions_elsewhere<'a>(&'a self, uids: &'a [String]) -> Fut<'a, Vec<Option<SessionInfo>>> {
        ready(vec![None; uids.len()])
    }

    /// Writes `cmd` to agent `uid` on the node it is connected to.
    fn deliver_elsewhere<'a>(
        &'a self,
        uid: &'a str,
        cmd: &'a Command,
    ) -> Fut<'a, Result<(), DeliverError>> {
        let _ = (uid, cmd);
        ready(Err(DeliverError::NotConnected))
    }

    /// Closes agent `uid`'s connection on another node with 4001 (revoked); `true` if there was
    /// one.
    fn revoke_elsewhere<'a>(&'a self, uid: &'a str) -> Fut<'a, bool> {
        let _ = uid;
        ready(false)
    }
}
