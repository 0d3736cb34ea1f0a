//! A [`Backend`] that answers at once (its futures never wait, so [`now`] can poll a dispatch
//! once without a runtime) and asserts what the trait documents about its inputs: path ids
//! percent-decoded, non-empty and ≤ 256 bytes; bodies that passed `parse_send` /
//! `parse_broadcast`; list queries in range. Some ids answer errors, to reach those responses.

use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use aegis_gateway::admin::api::{
    DEFAULT_PRIORITY, MAX_CURSOR_LEN, MAX_FILTER_UIDS, MAX_LIST_LIMIT,
};
use aegis_gateway::admin::routes::MAX_PARAM_LEN;
use aegis_gateway::admin::{
    AgentPage, AgentStatus, ApiError, Backend, BroadcastFailure, BroadcastRequest,
    BroadcastResponse, Delivery, ErrorKind, EventItem, ListQuery, MessageStatusResponse,
    RevokeResponse, SendRequest, SendResponse,
};
use aegis_gateway::protocol::envelope::MsgType;
use aegis_gateway::protocol::payloads::is_agent_id;
use serde_json::json;

/// Polls `fut` once: the [`Mock`] never waits, so neither may a dispatch to it.
pub fn now<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    match fut.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(out) => out,
        Poll::Pending => panic!("a dispatch waited on a backend that never waits"),
    }
}

/// The fake gateway.
#[derive(Debug, Default)]
pub struct Mock {
    /// What `/readyz` says.
    pub ready: Cell<bool>,
    /// Backend calls made.
    pub calls: Cell<usize>,
}

/// A path id as the trait promises it.
fn check_id(id: &str) {
    assert!(!id.is_empty(), "empty path id reached the backend");
    assert!(id.len() <= MAX_PARAM_LEN, "path id of {} bytes", id.len());
}

/// What `parse_send` guarantees (asserted by the backend and by the direct calls).
pub fn check_send(req: &SendRequest) {
    assert!(!req.message.is_null(), "null message accepted");
    assert!(
        req.channel_id.as_deref().is_none_or(is_agent_id),
        "send channel id {:?} accepted",
        req.channel_id
    );
    assert!(matches!(
        req.message_type,
        MsgType::Request | MsgType::Event
    ));
    assert!(req.priority <= 9, "priority {}", req.priority);
    assert!(req.ttl_seconds.is_none_or(|t| (1..=604_800).contains(&t)));
}

/// What `parse_broadcast` guarantees.
pub fn check_broadcast(req: &BroadcastRequest) {
    assert!(!req.message.is_null(), "null message accepted");
    assert!(matches!(
        req.message_type,
        MsgType::Request | MsgType::Event
    ));
    assert_eq!(req.priority, DEFAULT_PRIORITY);
    let uids = req
        .agent_filter
        .as_ref()
        .and_then(|f| f.agent_uids.as_ref());
    assert!(uids.is_none_or(|u| u.len() <= MAX_FILTER_UIDS));
}

/// What `parse_list_query` guarantees.
pub fn check_list(q: &ListQuery) {
    assert!((1..=MAX_LIST_LIMIT).contains(&q.limit), "limit {}", q.limit);
    if let Some(c) = &q.cursor {
        assert!(
            !c.is_empty() && c.len() <= MAX_CURSOR_LEN,
            "cursor of {}",
            c.len()
        );
    }
}

fn status_of(id: &str) -> AgentStatus {
    AgentStatus {
        agent_id: id.to_owned(),
        host_id: "host-1".into(),
        connected: true,
        last_seen: "2025-01-02T03:04:05Z".into(),
        channels: vec!["agent.u-1.heartbeat".into()],
        session_expires: None,
        protocol: Some("v2".into()),
        queue_depth: 0,
    }
}

/// The error some ids answer.
fn scripted(id: &str) -> Result<(), ApiError> {
    match id {
        "missing" => Err(ApiError::agent_not_found("no such agent")),
        "shared-host" => Err(ApiError::ambiguous_host_id(
            "host id held by several agents",
            &["u-1".into(), "u-2".into()],
        )),
        "odd" => Err(
            ApiError::new(ErrorKind::AmbiguousHostId, "extra is not an object")
                .with_extra(json!([1])),
        ),
        "down" => Err(ApiError::unavailable("draining")),
        "boom" => Err(ApiError::internal("store failed")),
        _ => Ok(()),
    }
}

impl Mock {
    fn call(&self) {
        self.calls.set(self.calls.get() + 1);
    }
}

impl Backend for Mock {
    fn ready(&self) -> bool {
        self.ready.get()
    }

    fn metrics_text(&self) -> String {
        "# TYPE aegis_gateway_up gauge\naegis_gateway_up 1\n".into()
    }

    async fn agent_status(&self, id: &str) -> Result<AgentStatus, ApiError> {
        self.call();
        check_id(id);
        scripted(id)?;
        Ok(status_of(id))
    }

    async fn list_agents(&self, q: ListQuery) -> Result<AgentPage, ApiError> {
        self.call();
        check_list(&q);
        if let Some(c) = q.cursor.as_deref() {
            scripted(c)?;
        }
        Ok(AgentPage {
            agents: vec![status_of("u-1")],
            next_cursor: q.cursor.map(|c| format!("{c}+")),
        })
    }

    async fn send(&self, id: &str, req: SendRequest) -> Result<SendResponse, ApiError> {
        self.call();
        check_id(id);
        check_send(&req);
        scripted(id)?;
        Ok(SendResponse {
            message_id: "m-1".into(),
            status: "queued".into(),
            error: None,
        })
    }

    async fn broadcast(&self, req: BroadcastRequest) -> Result<BroadcastResponse, ApiError> {
        self.call();
        check_broadcast(&req);
        let failed = vec![BroadcastFailure {
            agent_uid: "u-2".into(),
            error: "queue full".into(),
        }];
        Ok(BroadcastResponse::new(
            "m-2".into(),
            vec!["u-1".into()],
            Vec::new(),
            failed,
        ))
    }

    async fn message_status(&self, message_id: &str) -> Result<MessageStatusResponse, ApiError> {
        self.call();
        check_id(message_id);
        scripted(message_id)?;
        Ok(MessageStatusResponse {
            message_id: message_id.to_owned(),
            deliveries: vec![Delivery {
                agent_uid: "u-1".into(),
                status: "sent".into(),
                retry_count: 0,
                max_retries: 3,
                attempts: vec!["2025-01-02T03:04:05Z".into()],
                created_at: "2025-01-02T03:04:05Z".into(),
                expires_at: "2025-01-03T03:04:05Z".into(),
                updated_at: "2025-01-02T03:04:05Z".into(),
                error: None,
            }],
        })
    }

    async fn revoke(&self, id: &str) -> Result<RevokeResponse, ApiError> {
        self.call();
        check_id(id);
        scripted(id)?;
        Ok(RevokeResponse {
            agent_uid: id.to_owned(),
            revoked: true,
            disconnected: false,
        })
    }

    async fn next_events(
        &self,
        _after: u64,
        _pattern: &str,
        _limit: usize,
        _wait: Duration,
    ) -> Result<Vec<EventItem>, ApiError> {
        panic!("dispatch never streams events itself")
    }
}
