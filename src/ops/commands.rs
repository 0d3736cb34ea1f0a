//! Commands in the admin API: `send` to one agent and `broadcast` to many. A command is answered
//! `queued` or `sent` only once the fleet state holds it durably; then it is written to the
//! agent's connection if it has one, wherever it is.

use super::{internal, now_s, store_error, GatewayBackend, NOT_QUEUED};
use crate::admin::api::{
    AgentFilter, ApiError, BroadcastFailure, BroadcastRequest, BroadcastResponse, ErrorKind,
    SendRequest, SendResponse,
};
use crate::protocol::channel::BackendKind;
use crate::protocol::envelope::MsgType;
use crate::store::{AgentRecord, Command, DeliverError, NewMessage, QueueError, QueuedMessage};

/// Records read per page while scanning agents for a broadcast.
const SCAN_PAGE: usize = 5_000;

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

impl GatewayBackend {
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

    /// `POST /api/v1/agents/{id}/send`.
    pub(super) async fn send_one(
        &self,
        id: &str,
        req: SendRequest,
    ) -> Result<SendResponse, ApiError> {
        self.send_command(id, req, None).await
    }

    /// A `send` whose message id the caller chose (AegisFlux's `id`): the same id sent twice
    /// to the same agent is one command, and the second answer is `duplicate`.
    pub async fn send_command(
        &self,
        id: &str,
        req: SendRequest,
        message_id: Option<String>,
    ) -> Result<SendResponse, ApiError> {
        let rec = self.resolve(id).await?;
        let uid = rec.agent_uid.clone();
        let (kind, msg_type) = (req.kind, req.message_type);
        if let Some(cid) = req.channel_id.as_deref() {
            if cid != uid && cid != id && !self.resolves_to(cid, &uid).await {
                return Err(ApiError::new(
                    ErrorKind::InvalidChannel,
                    format!("channel must be backend.{{kind}} or backend.{uid}.{{kind}}"),
                ));
            }
        }
        let payload = serde_json::to_string(&req.message).map_err(internal)?;
        let mut new = self.new_message(
            kind,
            msg_type,
            payload,
            req.priority,
            self.ttl_s(req.ttl_seconds),
        );
        if let Some(mid) = message_id {
            new.message_id = mid;
        }
        // Answered only once the command is durable; refused (and never delivered) otherwise.
        let queued = match self
            .fleet
            .enqueue(&uid, &new, now_s(), self.config.message_queue_size)
            .await
        {
            Ok(q) => q,
            Err(QueueError::Full { depth }) => {
                return Err(ApiError::new(
                    ErrorKind::QueueFull,
                    format!("agent {uid} already has {depth} queued commands (MESSAGE_QUEUE_SIZE)"),
                ))
            }
            Err(QueueError::Store(e)) => return Err(store_error(&*self.fleet, &e, NOT_QUEUED)),
            Err(QueueError::Duplicate) => {
                return Ok(SendResponse {
                    message_id: new.message_id,
                    status: "duplicate".to_string(),
                    error: None,
                })
            }
        };
        metrics::counter!(crate::metrics::ENQUEUES).increment(1);
        let status = match self
            .deliver(&uid, command(&queued, kind, msg_type, &new.payload))
            .await
        {
            Ok(()) | Err(DeliverError::NotPending) => "sent",
            Err(_) => "queued",
        };
        Ok(SendResponse {
            message_id: queued.message_id,
            status: status.to_string(),
            error: None,
        })
    }

    /// Whether `id` (a uid or host_id) names agent `uid`.
    async fn resolves_to(&self, id: &str, uid: &str) -> bool {
        self.resolve(id).await.is_ok_and(|r| r.agent_uid == uid)
    }

    /// `POST /api/v1/agents/broadcast`.
    pub(super) async fn send_all(
        &self,
        req: BroadcastRequest,
    ) -> Result<BroadcastResponse, ApiError> {
        let (kind, msg_type) = (req.kind, req.message_type);
        let payload = serde_json::to_string(&req.message).map_err(internal)?;
        let include_offline = req.include_offline;
        let targets = self.matching_agents(req.agent_filter.as_ref()).await?;
        let uids: Vec<String> = targets.into_iter().map(|r| r.agent_uid).collect();
        let live = self.sessions(&uids).await;
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
            .fleet
            .enqueue_many(&items, now_s(), self.config.message_queue_size)
            .await
            .map_err(|e| store_error(&*self.fleet, &e, "the broadcast was not queued"))?;
        let stored = results.iter().filter(|r| r.is_ok()).count();
        metrics::counter!(crate::metrics::ENQUEUES).increment(stored as u64);
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
                .map(|(uid, cmd)| self.deliver(uid, cmd.clone())),
        )
        .await;
        let mut sent_to = Vec::new();
        for ((uid, _), outcome) in deliveries.into_iter().zip(outcomes) {
            match outcome {
                Ok(()) | Err(DeliverError::NotPending) => sent_to.push(uid),
                Err(_) => queued.push(uid),
            }
        }
        Ok(BroadcastResponse::new(message_id, sent_to, queued, failed))
    }

    /// Every registered agent matching `filter` (ids, or platform/version fields).
    async fn matching_agents(
        &self,
        filter: Option<&AgentFilter>,
    ) -> Result<Vec<AgentRecord>, ApiError> {
        if let Some(uids) = filter.and_then(|f| f.agent_uids.as_ref()) {
            let mut out = Vec::with_capacity(uids.len());
            for uid in uids {
                let rec = self
                    .fleet
                    .get_agent(uid)
                    .await
                    .map_err(|e| self.read_error(e))?;
                if let Some(rec) = rec.filter(|r| matches_fields(r, filter)) {
                    out.push(rec);
                }
            }
            return Ok(out);
        }
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = self
                .fleet
                .list_agents(cursor.as_deref(), SCAN_PAGE)
                .await
                .map_err(|e| self.read_error(e))?;
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
