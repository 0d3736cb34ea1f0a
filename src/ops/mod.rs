//! The fleet operations behind the admin API: send, broadcast, status, list, revoke, message
//! status and the event stream (DESIGN §4), over the fleet state and the running shards; and
//! the periodic maintenance of the fleet state (expiry, retention). Runs on the admin executor,
//! never on a shard: store writes and the broadcast fan-out cost the shards one control message
//! each.

use crate::admin::api::{
    AgentFilter, AgentPage, AgentStatus, ApiError, BroadcastFailure, BroadcastRequest,
    BroadcastResponse, Delivery, ErrorKind, EventItem, ListQuery, MessageStatusResponse,
    RevokeResponse, SendRequest, SendResponse,
};
use crate::admin::Backend;
use crate::config::Config;
use crate::protocol::channel::BackendKind;
use crate::protocol::envelope::MsgType;
use crate::protocol::payloads::server_time;
use crate::shard::{rt, Command, DeliverError, DeliveryOutcome, GatewayHandle};
use crate::store::{
    channel_matches, AgentRecord, NewMessage, QueueError, QueuedMessage, Store, StoreError,
};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Records read per page while scanning agents for a broadcast.
const SCAN_PAGE: usize = 5_000;

/// The gateway side of the admin API.
pub struct GatewayBackend {
    /// Shards.
    pub handle: GatewayHandle,
    /// Persistence.
    pub store: Store,
    /// Configuration (TTL, retries, queue bound).
    pub config: Config,
    /// Cleared when the gateway starts draining.
    pub ready: Arc<AtomicBool>,
}

fn now_s() -> i64 {
    crate::shard::now_ms() / 1000
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("storage error: {e}"))
}

/// The API error for a store error: `507 insufficient_storage` when the disk is full (the
/// error says so, or the store failed for that reason), `503 storage_unavailable` for other
/// storage faults (the store failed or is reopening), `500 internal` for the rest (damaged
/// records). `outcome` says what did not happen.
fn store_error(store: &Store, e: &StoreError, outcome: &str) -> ApiError {
    let full = e.is_disk_full() || (e.is_fault() && store.fault().is_some_and(|f| f.disk_full));
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

/// What a refused send did not do.
const NOT_QUEUED: &str = "the command was not queued";
/// What a failed read did not do.
const NOT_READ: &str = "nothing was read";

/// A command for the shards: the queue record's id and seq with the command's JSON (records
/// returned by a bulk enqueue carry no payload, so it is passed separately).
fn command(q: &QueuedMessage, kind: BackendKind, msg_type: MsgType, payload: &str) -> Command {
    Command {
        message_id: q.message_id.clone(),
        kind,
        msg_type,
        message_json: payload.as_bytes().to_vec(),
        seq: q.seq,
    }
}

impl GatewayBackend {
    /// Resolves `{id}`: an agent uid, or a host_id held by exactly one active uid.
    fn resolve(&self, id: &str) -> Result<AgentRecord, ApiError> {
        let read_error = |e: StoreError| store_error(&self.store, &e, NOT_READ);
        if let Some(rec) = self.store.get_agent(id).map_err(read_error)? {
            return Ok(rec);
        }
        let uids = self.store.uids_for_host(id).map_err(read_error)?;
        match uids.as_slice() {
            [] => Err(ApiError::agent_not_found(format!(
                "no registered agent with uid or host_id {id:?}"
            ))),
            [uid] => self
                .store
                .get_agent(uid)
                .map_err(read_error)?
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

    fn new_message(
        &self,
        kind: BackendKind,
        msg_type: MsgType,
        payload: String,
        priority: u8,
        ttl_s: i64,
    ) -> NewMessage {
        NewMessage {
            message_id: crate::crypto::random::uuid_v4(),
            kind: kind.as_str().to_string(),
            message_type: msg_type.as_str().to_string(),
            payload,
            priority,
            ttl_s,
            max_retries: self.config.message_retry_attempts,
        }
    }

    fn ttl_s(&self, requested: Option<u64>) -> i64 {
        requested
            .map(|t| i64::try_from(t).unwrap_or(i64::MAX))
            .unwrap_or_else(|| i64::try_from(self.config.message_ttl.as_secs()).unwrap_or(i64::MAX))
    }

    async fn status_of(
        &self,
        rec: AgentRecord,
        live: Option<crate::shard::SessionInfo>,
    ) -> AgentStatus {
        let channels = self.store.channels_of(&rec.agent_uid).unwrap_or_default();
        let queue_depth = self.store.queue_depth(&rec.agent_uid).unwrap_or(0);
        AgentStatus {
            agent_id: rec.agent_uid,
            host_id: rec.host_id,
            connected: live.is_some(),
            last_seen: server_time(rec.last_seen),
            channels,
            session_expires: live.map(|s| server_time(s.session_expires)),
            protocol: live.map(|s| format!("v{}", s.profile)),
            queue_depth,
        }
    }

    /// Every registered agent matching `filter` (ids, or platform/version fields).
    fn matching_agents(&self, filter: Option<&AgentFilter>) -> Result<Vec<AgentRecord>, ApiError> {
        let read_error = |e: StoreError| store_error(&self.store, &e, NOT_READ);
        if let Some(uids) = filter.and_then(|f| f.agent_uids.as_ref()) {
            let mut out = Vec::with_capacity(uids.len());
            for uid in uids {
                if let Some(rec) = self.store.get_agent(uid).map_err(read_error)? {
                    if matches_fields(&rec, filter) {
                        out.push(rec);
                    }
                }
            }
            return Ok(out);
        }
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .store
                .list_agents(cursor.as_deref(), SCAN_PAGE)
                .map_err(read_error)?;
            let last = page.last().map(|r| r.agent_uid.clone());
            out.extend(page.into_iter().filter(|r| matches_fields(r, filter)));
            match last {
                Some(l) => cursor = Some(l),
                None => break,
            }
        }
        Ok(out)
    }
}

fn field<'a>(v: &'a serde_json::Value, k: &str) -> Option<&'a str> {
    v.get(k).and_then(|x| x.as_str())
}

fn matches_fields(rec: &AgentRecord, filter: Option<&AgentFilter>) -> bool {
    let Some(f) = filter else { return true };
    let eq =
        |want: &Option<String>, have: Option<&str>| want.as_deref().is_none_or(|w| have == Some(w));
    eq(&f.os, field(&rec.platform, "os"))
        && eq(&f.arch, field(&rec.platform, "arch"))
        && eq(&f.agent_version, Some(rec.version.as_str()))
}

/// How often the maintenance sweep runs.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl Backend for GatewayBackend {
    fn on_start(self: &std::rc::Rc<Self>) {
        let me = std::rc::Rc::clone(self);
        rt::spawn(async move {
            loop {
                rt::sleep(SWEEP_EVERY).await;
                me.sweep();
            }
        });
    }

    fn ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    fn metrics_text(&self) -> String {
        crate::metrics::render()
    }

    async fn agent_status(&self, id: &str) -> Result<AgentStatus, ApiError> {
        let rec = self.resolve(id)?;
        let live = self.handle.session_info(&rec.agent_uid).await;
        Ok(self.status_of(rec, live).await)
    }

    async fn list_agents(&self, q: ListQuery) -> Result<AgentPage, ApiError> {
        let page = self
            .store
            .list_agents(q.cursor.as_deref(), q.limit)
            .map_err(|e| store_error(&self.store, &e, NOT_READ))?;
        let next_cursor = (page.len() == q.limit)
            .then(|| page.last().map(|r| r.agent_uid.clone()))
            .flatten();
        let uids: Vec<String> = page.iter().map(|r| r.agent_uid.clone()).collect();
        let live = self.handle.sessions(&uids).await;
        let mut agents = Vec::with_capacity(page.len());
        for (rec, live) in page.into_iter().zip(live) {
            if q.connected.is_some_and(|want| want != live.is_some()) {
                continue;
            }
            agents.push(self.status_of(rec, live).await);
        }
        Ok(AgentPage {
            agents,
            next_cursor,
        })
    }

    async fn send(&self, id: &str, req: SendRequest) -> Result<SendResponse, ApiError> {
        let rec = self.resolve(id)?;
        let uid = rec.agent_uid.clone();
        let (kind, msg_type) = (req.kind, req.message_type);
        let ours = |cid: &str| {
            cid == uid || cid == id || self.resolve(cid).is_ok_and(|r| r.agent_uid == uid)
        };
        if !req.channel_id.as_deref().is_none_or(ours) {
            return Err(ApiError::new(
                ErrorKind::InvalidChannel,
                format!("channel must be backend.{{kind}} or backend.{uid}.{{kind}}"),
            ));
        }
        let payload = serde_json::to_string(&req.message).map_err(internal)?;
        let new = self.new_message(
            kind,
            msg_type,
            payload,
            req.priority,
            self.ttl_s(req.ttl_seconds),
        );
        // Answered only once the command is on disk; refused (and never delivered) otherwise.
        let queued = match self
            .store
            .enqueue_durable(&uid, &new, now_s(), self.config.message_queue_size)
            .await
        {
            Ok(q) => q,
            Err(QueueError::Full { depth }) => {
                return Err(ApiError::new(
                    ErrorKind::QueueFull,
                    format!("agent {uid} already has {depth} queued commands (MESSAGE_QUEUE_SIZE)"),
                ))
            }
            Err(QueueError::Store(e)) => return Err(store_error(&self.store, &e, NOT_QUEUED)),
            Err(e) => return Err(internal(e)),
        };
        let status = match self
            .handle
            .deliver(&uid, command(&queued, kind, msg_type, &new.payload))
            .await
        {
            Ok(DeliveryOutcome::Written) | Err(DeliverError::NotPending) => "sent",
            Err(_) => "queued",
        };
        Ok(SendResponse {
            message_id: queued.message_id,
            status: status.to_string(),
            error: None,
        })
    }

    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, ApiError> {
        let (kind, msg_type) = (req.kind, req.message_type);
        let payload = serde_json::to_string(&req.message).map_err(internal)?;
        let include_offline = req.include_offline;
        let targets = self.matching_agents(req.agent_filter.as_ref())?;
        let uids: Vec<String> = targets.into_iter().map(|r| r.agent_uid).collect();
        let live = self.handle.sessions(&uids).await;
        let chosen: Vec<(String, bool)> = uids
            .into_iter()
            .zip(live)
            .map(|(u, l)| (u, l.is_some()))
            .filter(|(_, connected)| *connected || include_offline)
            .collect();
        let template = self.new_message(kind, msg_type, payload, req.priority, self.ttl_s(None));
        let message_id = template.message_id.clone();
        let items: Vec<(String, NewMessage)> = chosen
            .iter()
            .map(|(u, _)| (u.clone(), template.clone()))
            .collect();
        let results = self
            .store
            .enqueue_many_durable(&items, now_s(), self.config.message_queue_size)
            .await
            .map_err(|e| store_error(&self.store, &e, "the broadcast was not queued"))?;
        let mut failed = Vec::new();
        let mut deliveries = Vec::new();
        let mut queued = Vec::new();
        for ((uid, connected), result) in chosen.into_iter().zip(results) {
            match result {
                Ok(q) if connected => {
                    deliveries.push((uid, command(&q, kind, msg_type, &template.payload)))
                }
                Ok(_) => queued.push(uid),
                Err(QueueError::Full { .. }) => failed.push(BroadcastFailure {
                    agent_uid: uid,
                    error: "queue_full".into(),
                }),
                Err(e) => failed.push(BroadcastFailure {
                    agent_uid: uid,
                    error: e.to_string(),
                }),
            }
        }
        let outcomes = futures_util::future::join_all(
            deliveries
                .iter()
                .map(|(uid, cmd)| self.handle.deliver(uid, cmd.clone())),
        )
        .await;
        let mut sent_to = Vec::new();
        for ((uid, _), outcome) in deliveries.into_iter().zip(outcomes) {
            match outcome {
                Ok(_) | Err(DeliverError::NotPending) => sent_to.push(uid),
                Err(_) => queued.push(uid),
            }
        }
        Ok(BroadcastResponse::new(message_id, sent_to, queued, failed))
    }

    async fn message_status(&self, message_id: &str) -> Result<MessageStatusResponse, ApiError> {
        let records = self
            .store
            .message_status(message_id)
            .map_err(|e| store_error(&self.store, &e, NOT_READ))?;
        if records.is_empty() {
            return Err(ApiError::new(
                ErrorKind::MessageNotFound,
                format!("no message {message_id:?}"),
            ));
        }
        Ok(MessageStatusResponse {
            message_id: message_id.to_string(),
            deliveries: records
                .into_iter()
                .map(|q| Delivery {
                    agent_uid: q.agent_uid,
                    status: q.status.as_str().to_string(),
                    retry_count: q.retry_count,
                    max_retries: q.max_retries,
                    attempts: q.attempts.iter().map(|a| server_time(a.at)).collect(),
                    created_at: server_time(q.created_at),
                    expires_at: server_time(q.expires_at),
                    updated_at: server_time(q.updated_at),
                    error: q.error,
                })
                .collect(),
        })
    }

    async fn revoke(&self, id: &str) -> Result<RevokeResponse, ApiError> {
        let rec = self.resolve(id)?;
        let uid = rec.agent_uid;
        let not_revoked = |e: StoreError| {
            store_error(
                &self.store,
                &e,
                "the revocation is not durable (it may be partly applied); retry it",
            )
        };
        self.store.remove_agent(&uid).map_err(not_revoked)?;
        self.store
            .revoke_queue(&uid, now_s())
            .map_err(not_revoked)?;
        self.store.sync().await.map_err(not_revoked)?;
        let disconnected = self.handle.revoke(&uid).await;
        Ok(RevokeResponse {
            agent_uid: uid,
            revoked: true,
            disconnected,
        })
    }

    async fn next_events(
        &self,
        after: u64,
        pattern: &str,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<EventItem>, ApiError> {
        let deadline = std::time::Instant::now() + wait;
        let mut cursor = after;
        loop {
            let batch = self
                .store
                .events_after(cursor, limit.max(1) * 4)
                .map_err(|e| store_error(&self.store, &e, NOT_READ))?;
            let scanned_to = batch.last().map(|e| e.seq);
            let items: Vec<EventItem> = batch
                .into_iter()
                .filter(|e| channel_matches(pattern, &e.channel))
                .take(limit)
                .map(|e| EventItem {
                    seq: e.seq,
                    channel: e.channel,
                    agent_uid: e.agent_uid,
                    message_type: e.message_type,
                    id: e.id,
                    body: serde_json::from_str(&e.body)
                        .unwrap_or(serde_json::Value::String(e.body)),
                    at: server_time(e.at),
                })
                .collect();
            if !items.is_empty() {
                return Ok(items);
            }
            if let Some(s) = scanned_to {
                cursor = s;
                continue;
            }
            if std::time::Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            rt::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// Agent messages kept for the event stream.
pub const EVENTS_KEPT: u64 = 1_000_000;
/// How long final delivery records stay visible in `GET /api/v1/messages/{id}`.
pub const MESSAGE_RETENTION_S: i64 = 7 * 86_400;

impl GatewayBackend {
    /// Maintenance, bounded work per call: expiry of queued commands every call, retention of
    /// the event log and of final delivery records once a minute.
    pub fn sweep(&self) {
        if self.store.fault().is_some() {
            return; // a failed store refuses writes; it reopens by itself
        }
        // Retention, once a minute: bounded event log and delivery history.
        if now_s() % 60 == 0 {
            if let Err(e) = self.store.trim_events(EVENTS_KEPT) {
                tracing::warn!(error = %e, "event retention failed");
            }
            if let Err(e) = self
                .store
                .purge_terminal(now_s() - MESSAGE_RETENTION_S, 10_000)
            {
                tracing::warn!(error = %e, "message retention failed");
            }
        }
        match self.store.expire_due(now_s(), 1_000) {
            Ok(0) => {}
            Ok(n) => {
                metrics::counter!(crate::metrics::DELIVERIES, "status" => "expired")
                    .increment(n as u64);
                tracing::debug!(expired = n, "expired queued commands");
            }
            Err(e) => tracing::warn!(error = %e, "expiry sweep failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enospc() -> StoreError {
        StoreError::Fjall {
            context: "t",
            source: fjall::Error::Io(std::io::Error::from_raw_os_error(libc::ENOSPC)),
        }
    }

    fn poisoned() -> StoreError {
        StoreError::Fjall {
            context: "t",
            source: fjall::Error::Poisoned,
        }
    }

    #[test]
    fn store_errors_map_to_507_503_or_500() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let full = store_error(&store, &enospc(), NOT_QUEUED);
        assert_eq!(full.kind, ErrorKind::InsufficientStorage);
        assert!(full.message.contains(NOT_QUEUED), "{}", full.message);
        let reserve = StoreError::DiskFull {
            free: 0,
            reserve: 1,
        };
        assert_eq!(store_error(&store, &reserve, NOT_QUEUED).status(), 507);
        let other = store_error(&store, &poisoned(), NOT_QUEUED);
        assert_eq!(other.kind, ErrorKind::StorageUnavailable);
        let damaged = StoreError::CorruptKey {
            keyspace: "queue",
            key: "k".into(),
        };
        assert_eq!(store_error(&store, &damaged, NOT_READ).status(), 500);
        // fjall's Poisoned does not say why: the store's recorded fault does.
        store.inject_fault(true);
        assert_eq!(store_error(&store, &poisoned(), NOT_QUEUED).status(), 507);
    }
}
