//! A fake [`Backend`]: records every call, answers canned values, plays scripted event batches.

use crate::admin::api::*;
use crate::admin::Backend;
use serde_json::json;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A recorded backend call.
#[derive(Debug, Clone, PartialEq)]
pub enum Call {
    Status(String),
    List(ListQuery),
    Send(String, SendRequest),
    Broadcast(BroadcastRequest),
    Message(String),
    Revoke(String),
    Events {
        after: u64,
        pattern: String,
        limit: usize,
        wait: Duration,
    },
    /// A `next_events` future dropped before it completed.
    EventsCancelled,
}

/// What the fake does beyond canned answers.
#[derive(Default, Clone)]
pub struct Script {
    /// Event batches returned by successive `next_events` calls; when empty, the fake waits
    /// `wait` and returns no events.
    pub events: Vec<Vec<EventItem>>,
    /// `ready()`; true unless set.
    pub not_ready: Arc<AtomicBool>,
}

pub struct Fake {
    calls: Arc<Mutex<Vec<Call>>>,
    events: Mutex<VecDeque<Vec<EventItem>>>,
    not_ready: Arc<AtomicBool>,
}

impl Fake {
    pub fn new(calls: Arc<Mutex<Vec<Call>>>, script: Script) -> Fake {
        Fake {
            calls,
            events: Mutex::new(script.events.into()),
            not_ready: script.not_ready,
        }
    }

    fn record(&self, call: Call) {
        self.calls.lock().unwrap().push(call);
    }
}

pub fn status_of(id: &str) -> AgentStatus {
    AgentStatus {
        agent_id: id.to_owned(),
        host_id: "host-1".into(),
        connected: true,
        last_seen: "2025-01-02T03:04:05Z".into(),
        channels: vec!["agent.u-1.heartbeat".into()],
        session_expires: Some("2025-01-03T03:04:05Z".into()),
        protocol: Some("v2".into()),
        queue_depth: 3,
    }
}

pub fn event(seq: u64, message_type: &str) -> EventItem {
    EventItem {
        seq,
        channel: "agent.u-1.heartbeat".into(),
        agent_uid: "u-1".into(),
        message_type: message_type.into(),
        id: format!("e-{seq}"),
        body: json!({"n": seq, "text": "line1\nline2"}),
        at: "2025-01-02T03:04:05Z".into(),
    }
}

impl Backend for Fake {
    fn ready(&self) -> bool {
        !self.not_ready.load(Ordering::SeqCst)
    }

    fn metrics_text(&self) -> String {
        "# TYPE aegis_gateway_up gauge\naegis_gateway_up 1\n".into()
    }

    async fn agent_status(&self, id: &str) -> Result<AgentStatus, ApiError> {
        self.record(Call::Status(id.into()));
        match id {
            "missing" => Err(ApiError::agent_not_found("no such agent")),
            "shared-host" => Err(ApiError::new(
                ErrorKind::AmbiguousHostId,
                "host id held by several agents",
            )
            .with_extra(json!({"agent_uids": ["u-1", "u-2"], "error": "must not override"}))),
            _ => Ok(status_of(id)),
        }
    }

    async fn list_agents(&self, q: ListQuery) -> Result<AgentPage, ApiError> {
        self.record(Call::List(q));
        Ok(AgentPage {
            agents: vec![status_of("u-1")],
            next_cursor: Some("c-2".into()),
        })
    }

    async fn send(&self, id: &str, req: SendRequest) -> Result<SendResponse, ApiError> {
        self.record(Call::Send(id.into(), req));
        Ok(SendResponse {
            message_id: "m-1".into(),
            status: "queued".into(),
            error: None,
        })
    }

    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, ApiError> {
        self.record(Call::Broadcast(req));
        Ok(BroadcastResponse::new(
            "m-2".into(),
            vec!["u-1".into()],
            vec!["u-2".into(), "u-3".into()],
            vec![BroadcastFailure {
                agent_uid: "u-4".into(),
                error: "queue full".into(),
            }],
        ))
    }

    async fn message_status(&self, message_id: &str) -> Result<MessageStatusResponse, ApiError> {
        self.record(Call::Message(message_id.into()));
        Ok(MessageStatusResponse {
            message_id: message_id.into(),
            deliveries: vec![],
        })
    }

    async fn revoke(&self, id: &str) -> Result<RevokeResponse, ApiError> {
        self.record(Call::Revoke(id.into()));
        Err(ApiError::unavailable("draining"))
    }

    async fn next_events(
        &self,
        after: u64,
        pattern: &str,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<EventItem>, ApiError> {
        self.record(Call::Events {
            after,
            pattern: pattern.into(),
            limit,
            wait,
        });
        let next = self.events.lock().unwrap().pop_front();
        let mut pending = Pending(self, true);
        let out = match next {
            Some(batch) => Ok(batch),
            None => {
                crate::shard::rt::sleep(wait).await;
                Ok(Vec::new())
            }
        };
        pending.1 = false;
        out
    }
}

/// Records [`Call::EventsCancelled`] if dropped while still armed.
struct Pending<'a>(&'a Fake, bool);

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        if self.1 {
            self.0.record(Call::EventsCancelled);
        }
    }
}
