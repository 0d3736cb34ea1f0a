//! The fleet operations behind the admin API (DESIGN §4): send, broadcast, status, list, revoke,
//! message status and the event stream, over the fleet state ([`Fleet`]) and the running shards
//! ([`GatewayHandle`]); and the periodic maintenance of the fleet state. Runs on the admin
//! executor, never on a shard: state writes and the broadcast fan-out cost the shards one control
//! message each.
//!
//! An agent connected to this node is reached through the shards; one connected to another node
//! of a cluster through the fleet state ([`Fleet::deliver_elsewhere`] and friends, which say
//! "nowhere" on a single node). This module never asks which backend runs.
//!
//! | file | what it is |
//! |---|---|
//! | `mod.rs` | [`GatewayBackend`], `{id}` resolution, storage errors as API errors, live sessions |
//! | `commands.rs` | `send` and `broadcast` |
//! | `agents.rs` | status, listing, revocation |
//! | `events.rs` | message status, the event stream, maintenance |

mod agents;
mod commands;
mod events;

use crate::admin::api::{
    AgentPage, AgentStatus, ApiError, BroadcastRequest, BroadcastResponse, EventItem, ListQuery,
    MessageStatusResponse, RevokeResponse, SendRequest, SendResponse,
};
use crate::admin::Backend;
use crate::config::Config;
use crate::shard::{rt, GatewayHandle};
use crate::store::{AgentRecord, Command, DeliverError, Fleet, SessionInfo, StoreError};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The gateway side of the admin API.
pub struct GatewayBackend {
    /// Shards of this node.
    pub handle: GatewayHandle,
    /// The fleet state.
    pub fleet: Arc<dyn Fleet>,
    /// Configuration (TTL, retries, queue bound).
    pub config: Config,
    /// Cleared when the gateway starts draining.
    pub ready: Arc<AtomicBool>,
    /// Run once on the admin executor at start, beside the sweep: work that calls these
    /// operations from elsewhere (the AegisFlux command subscription).
    pub on_start: std::sync::Mutex<Option<StartHook>>,
}

/// A task started with the operations (see [`GatewayBackend::on_start`]).
pub type StartHook = Box<dyn FnOnce(Rc<GatewayBackend>) + Send>;

/// How often the maintenance sweep runs.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

fn now_s() -> i64 {
    crate::shard::now_ms() / 1000
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("storage error: {e}"))
}

/// What a refused send did not do.
const NOT_QUEUED: &str = "the command was not queued";
/// What a failed read did not do.
const NOT_READ: &str = "nothing was read";

/// The API error for a fleet-state error: `507 insufficient_storage` when the disk is full (the
/// error says so, or the state failed for that reason), `503 storage_unavailable` for other
/// storage faults (failed, reopening, unreachable), `500 internal` for the rest (damaged
/// records). `outcome` says what did not happen.
fn store_error(fleet: &dyn Fleet, e: &StoreError, outcome: &str) -> ApiError {
    let full = e.is_disk_full() || (e.is_fault() && fleet.fault().is_some_and(|f| f.disk_full));
    if full {
        ApiError::insufficient_storage(format!(
            "storage is full ({e}); {outcome}. The gateway accepts commands again by itself \
             once space is freed on its data directory"
        ))
    } else if e.is_fault() {
        ApiError::storage_unavailable(format!("storage unavailable ({e}); {outcome}. Retry later"))
    } else {
        internal(e)
    }
}

impl GatewayBackend {
    /// [`store_error`] for a failed read.
    fn read_error(&self, e: StoreError) -> ApiError {
        store_error(&*self.fleet, &e, NOT_READ)
    }

    /// Resolves `{id}`: an agent uid, or a host_id held by exactly one active uid.
    async fn resolve(&self, id: &str) -> Result<AgentRecord, ApiError> {
        let fleet = &*self.fleet;
        if let Some(rec) = fleet.get_agent(id).await.map_err(|e| self.read_error(e))? {
            return Ok(rec);
        }
        let uids = fleet
            .uids_for_host(id)
            .await
            .map_err(|e| self.read_error(e))?;
        match uids.as_slice() {
            [] => Err(ApiError::agent_not_found(format!(
                "no registered agent with uid or host_id {id:?}"
            ))),
            [uid] => fleet
                .get_agent(uid)
                .await
                .map_err(|e| self.read_error(e))?
                .ok_or_else(|| ApiError::agent_not_found("agent was just revoked")),
            many => Err(ApiError::ambiguous_host_id(
                format!(
                    "host_id {id:?} is held by {} agents; address one by uid",
                    many.len()
                ),
                many,
            )),
        }
    }

    /// The live sessions of `uids`, in order: on this node's shards, else on another node.
    async fn sessions(&self, uids: &[String]) -> Vec<Option<SessionInfo>> {
        let mut live = self.handle.sessions(uids).await;
        let missing: Vec<usize> = (0..uids.len()).filter(|&i| live[i].is_none()).collect();
        if missing.is_empty() {
            return live;
        }
        let ask: Vec<String> = missing.iter().map(|&i| uids[i].clone()).collect();
        let elsewhere = self.fleet.sessions_elsewhere(&ask).await;
        for (i, s) in missing.into_iter().zip(elsewhere) {
            live[i] = s;
        }
        live
    }

    /// Writes `cmd` to agent `uid` wherever it is connected.
    async fn deliver(&self, uid: &str, cmd: Command) -> Result<(), DeliverError> {
        match self.handle.deliver(uid, cmd.clone()).await {
            Err(DeliverError::NotConnected) => self.fleet.deliver_elsewhere(uid, &cmd).await,
            other => other,
        }
    }

    /// One maintenance pass of the fleet state (see [`Fleet::sweep`]).
    async fn sweep(&self) {
        let expired = self.fleet.sweep(now_s()).await;
        if expired > 0 {
            metrics::counter!(crate::metrics::DELIVERIES, "status" => "expired")
                .increment(expired as u64);
            tracing::debug!(expired, "expired queued commands");
        }
    }
}

impl Backend for GatewayBackend {
    fn on_start(self: &Rc<Self>) {
        let hook = self
            .on_start
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(hook) = hook {
            hook(Rc::clone(self));
        }
        let me = Rc::clone(self);
        rt::spawn(async move {
            loop {
                rt::sleep(SWEEP_EVERY).await;
                me.sweep().await;
            }
        });
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire) && self.fleet.reachable()
    }

    fn not_ready(&self) -> &'static str {
        if self.ready.load(Ordering::Acquire) {
            "storage_unavailable"
        } else {
            "draining"
        }
    }

    fn metrics_text(&self) -> String {
        crate::metrics::render()
    }

    async fn agent_status(&self, id: &str) -> Result<AgentStatus, ApiError> {
        self.status(id).await
    }

    async fn list_agents(&self, q: ListQuery) -> Result<AgentPage, ApiError> {
        self.list(q).await
    }

    async fn send(&self, id: &str, req: SendRequest) -> Result<SendResponse, ApiError> {
        self.send_one(id, req).await
    }

    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, ApiError> {
        self.send_all(req).await
    }

    async fn message_status(&self, message_id: &str) -> Result<MessageStatusResponse, ApiError> {
        self.status_of_message(message_id).await
    }

    async fn revoke(&self, id: &str) -> Result<RevokeResponse, ApiError> {
        self.revoke_agent(id).await
    }

    async fn next_events(
        &self,
        after: u64,
        pattern: &str,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<EventItem>, ApiError> {
        self.events(after, pattern, limit, wait).await
    }
}

#[cfg(test)]
mod tests;
