//! Request and response types of the admin API, the error type, and request validation.
//!
//! Every response time is an RFC 3339 UTC string. Request bodies are validated here before the
//! [`Backend`](super::Backend) sees them: a handler only ever receives a well-formed request.

use crate::protocol::channel::{self, Channel};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Default page size of `GET /api/v1/agents`.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// Largest page size of `GET /api/v1/agents`.
pub const MAX_LIST_LIMIT: usize = 1000;
/// Longest accepted `cursor` (bytes, after percent-decoding).
pub const MAX_CURSOR_LEN: usize = 1024;
/// Default `priority` of a send.
pub const DEFAULT_PRIORITY: u8 = 5;
/// Highest `priority`.
pub const MAX_PRIORITY: u8 = 9;
/// Longest `ttl_seconds` (7 days).
pub const MAX_TTL_SECONDS: u64 = 604_800;
/// Most `agent_filter.agent_uids` in one broadcast.
pub const MAX_FILTER_UIDS: usize = 100_000;

/// An error answered to an API client: `status` and the JSON body
/// `{"error": error, "message": message, ...extra}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {error}: {message}")]
pub struct ApiError {
    /// HTTP status code.
    pub status: u16,
    /// Stable machine-readable code (`agent_not_found`, `invalid_request`, …).
    pub error: &'static str,
    /// Human-readable explanation.
    pub message: String,
    /// Extra fields merged into the body (an object; e.g. `{"agent_uids": [..]}` for a 409).
    /// `error` and `message` are never overwritten; a non-object is put under `"details"`.
    pub extra: Option<Value>,
}

impl ApiError {
    /// An error with this status, code and message and no extra fields.
    pub fn new(status: u16, error: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error,
            message: message.into(),
            extra: None,
        }
    }

    /// `400` with this code.
    pub fn bad_request(error: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(400, error, message)
    }

    /// `404` with this code (e.g. `agent_not_found`, `message_not_found`).
    pub fn not_found(error: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(404, error, message)
    }

    /// `409` with this code and extra body fields (e.g. `ambiguous_host_id` + `agent_uids`).
    pub fn conflict(error: &'static str, message: impl Into<String>, extra: Value) -> ApiError {
        ApiError {
            extra: Some(extra),
            ..ApiError::new(409, error, message)
        }
    }

    /// `503` `unavailable` (e.g. the gateway is draining).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "unavailable", message)
    }

    /// `507` `insufficient_storage`: the data directory is full (or below `STORE_MIN_FREE`);
    /// nothing was queued. The gateway accepts commands again by itself once space is freed.
    pub fn insufficient_storage(message: impl Into<String>) -> ApiError {
        ApiError::new(507, "insufficient_storage", message)
    }

    /// `503` `storage_unavailable`: the store failed (an IO error) or is reopening; nothing
    /// was queued. Retry later.
    pub fn storage_unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(503, "storage_unavailable", message)
    }

    /// `500` `internal` (our fault: store errors and the like).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "internal", message)
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        let mut body = serde_json::Map::new();
        match &self.extra {
            Some(Value::Object(extra)) => {
                for (k, v) in extra {
                    body.insert(k.clone(), v.clone());
                }
            }
            Some(other) => {
                body.insert("details".into(), other.clone());
            }
            None => {}
        }
        body.insert("error".into(), Value::from(self.error));
        body.insert("message".into(), Value::from(self.message.as_str()));
        Value::Object(body)
    }
}

/// `GET /api/v1/agents/{id}/status`, and one entry of a page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent's uid (or its id before registration).
    pub agent_id: String,
    /// The host the agent runs on.
    pub host_id: String,
    /// Whether a session is live now.
    pub connected: bool,
    /// Last time the agent was seen (RFC 3339).
    pub last_seen: String,
    /// Its channels.
    pub channels: Vec<String>,
    /// When the live session expires (RFC 3339), if connected.
    pub session_expires: Option<String>,
    /// `"v1"` or `"v2"` when connected.
    pub protocol: Option<String>,
    /// Messages waiting in its durable queue.
    pub queue_depth: usize,
}

/// Query of `GET /api/v1/agents?connected=&limit=&cursor=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListQuery {
    /// Only connected (`true`) or disconnected (`false`) agents; all when absent.
    pub connected: Option<bool>,
    /// Page size, 1..=1000. Default = 100.
    pub limit: usize,
    /// Opaque cursor from a previous page's `next_cursor`.
    pub cursor: Option<String>,
}

impl Default for ListQuery {
    fn default() -> ListQuery {
        ListQuery {
            connected: None,
            limit: DEFAULT_LIST_LIMIT,
            cursor: None,
        }
    }
}

/// A page of agents.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentPage {
    /// Agents of this page.
    pub agents: Vec<AgentStatus>,
    /// Cursor of the next page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// Body of `POST /api/v1/agents/{id}/send`, validated: after [`parse_send`], `priority` and
/// `message_type` are always `Some` (defaults filled in) and `message` is not `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// `backend.{kind}` or `backend.{id}.{kind}` (`{id}` must name the path's agent).
    pub channel: String,
    /// The command, any JSON except `null`.
    pub message: Value,
    /// `request` (default) or `event`.
    #[serde(default)]
    pub message_type: Option<String>,
    /// 0..=9, default 5.
    #[serde(default)]
    pub priority: Option<u8>,
    /// Queue lifetime in seconds, 1..=604800 (default: the gateway's `MESSAGE_TTL`).
    #[serde(default)]
    pub ttl_seconds: Option<u64>,
}

/// `send` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SendResponse {
    /// Id of the message (for `GET /api/v1/messages/{message_id}`).
    pub message_id: String,
    /// `sent`, `queued` or `failed`.
    pub status: String,
    /// Why it failed; omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Which agents a broadcast addresses (all given fields must match).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFilter {
    /// Explicit agent uids (at most 100,000).
    #[serde(default)]
    pub agent_uids: Option<Vec<String>>,
    /// Platform OS.
    #[serde(default)]
    pub os: Option<String>,
    /// Platform architecture.
    #[serde(default)]
    pub arch: Option<String>,
    /// Agent version.
    #[serde(default)]
    pub agent_version: Option<String>,
}

/// Body of `POST /api/v1/agents/broadcast`, validated: after [`parse_broadcast`], `message_type`
/// is always `Some` and `channel` is `backend.{kind}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BroadcastRequest {
    /// `backend.{kind}` only.
    pub channel: String,
    /// The command, any JSON except `null`.
    pub message: Value,
    /// `request` (default) or `event`.
    #[serde(default)]
    pub message_type: Option<String>,
    /// Which agents; all registered agents when absent.
    #[serde(default)]
    pub agent_filter: Option<AgentFilter>,
    /// Queue for matching agents that are offline too.
    #[serde(default)]
    pub include_offline: Option<bool>,
}

/// One agent a broadcast could not reach.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastFailure {
    /// The agent.
    pub agent_uid: String,
    /// Why.
    pub error: String,
}

/// Sizes of the three lists of a [`BroadcastResponse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BroadcastCounts {
    /// `sent_to.len()`.
    pub sent: usize,
    /// `queued.len()`.
    pub queued: usize,
    /// `failed.len()`.
    pub failed: usize,
}

/// `broadcast` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BroadcastResponse {
    /// Id shared by every delivery of this broadcast.
    pub message_id: String,
    /// Written to a live connection.
    pub sent_to: Vec<String>,
    /// Queued durably.
    pub queued: Vec<String>,
    /// Could not be sent nor queued.
    pub failed: Vec<BroadcastFailure>,
    /// The three list sizes.
    pub counts: BroadcastCounts,
}

impl BroadcastResponse {
    /// A response whose `counts` match the lists.
    pub fn new(
        message_id: String,
        sent_to: Vec<String>,
        queued: Vec<String>,
        failed: Vec<BroadcastFailure>,
    ) -> BroadcastResponse {
        let counts = BroadcastCounts {
            sent: sent_to.len(),
            queued: queued.len(),
            failed: failed.len(),
        };
        BroadcastResponse {
            message_id,
            sent_to,
            queued,
            failed,
            counts,
        }
    }
}

/// Delivery state of a message to one agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// The agent.
    pub agent_uid: String,
    /// `queued`, `sent`, `acked`, `expired`, `failed`, …
    pub status: String,
    /// Attempts after the first.
    pub retry_count: u32,
    /// Retry budget (`MESSAGE_RETRY_ATTEMPTS`).
    pub max_retries: u32,
    /// Time of every attempt (RFC 3339).
    pub attempts: Vec<String>,
    /// When it was accepted (RFC 3339).
    pub created_at: String,
    /// When it expires (RFC 3339).
    pub expires_at: String,
    /// Last status change (RFC 3339).
    pub updated_at: String,
    /// Last error; omitted when `None`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /api/v1/messages/{message_id}` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageStatusResponse {
    /// The message.
    pub message_id: String,
    /// One entry per addressed agent.
    pub deliveries: Vec<Delivery>,
}

/// `DELETE /api/v1/agents/{id}` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RevokeResponse {
    /// The revoked agent.
    pub agent_uid: String,
    /// Whether a registration was forgotten.
    pub revoked: bool,
    /// Whether a live connection was closed.
    pub disconnected: bool,
}

/// One verified agent→backend message of the event stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventItem {
    /// Stream position (the SSE `id`); strictly increasing.
    pub seq: u64,
    /// Channel it arrived on.
    pub channel: String,
    /// Sending agent.
    pub agent_uid: String,
    /// Envelope type (the SSE `event`).
    pub message_type: String,
    /// Envelope id.
    pub id: String,
    /// Decrypted payload.
    pub body: Value,
    /// Arrival time (RFC 3339).
    pub at: String,
}

/// Validates a `send` body: `invalid_json`, `invalid_request` or `invalid_channel` (all 400).
pub fn parse_send(body: &[u8]) -> Result<SendRequest, ApiError> {
    let mut req: SendRequest = from_body(body)?;
    check_message(&req.message)?;
    match channel::parse(&req.channel) {
        Ok(Channel::Backend { .. }) => {}
        _ => {
            return Err(bad_channel(
                &req.channel,
                "backend.{kind} or backend.{id}.{kind}",
            ))
        }
    }
    req.message_type = Some(check_message_type(req.message_type.take())?);
    let priority = req.priority.unwrap_or(DEFAULT_PRIORITY);
    if priority > MAX_PRIORITY {
        return Err(invalid(format!(
            "priority must be 0..={MAX_PRIORITY}, got {priority}"
        )));
    }
    req.priority = Some(priority);
    if let Some(ttl) = req.ttl_seconds {
        if !(1..=MAX_TTL_SECONDS).contains(&ttl) {
            return Err(invalid(format!(
                "ttl_seconds must be 1..={MAX_TTL_SECONDS}, got {ttl}"
            )));
        }
    }
    Ok(req)
}

/// Validates a `broadcast` body: `invalid_json`, `invalid_request` or `invalid_channel` (all 400).
pub fn parse_broadcast(body: &[u8]) -> Result<BroadcastRequest, ApiError> {
    let mut req: BroadcastRequest = from_body(body)?;
    check_message(&req.message)?;
    match channel::parse(&req.channel) {
        Ok(Channel::Backend { id: None, .. }) => {}
        _ => return Err(bad_channel(&req.channel, "backend.{kind}")),
    }
    req.message_type = Some(check_message_type(req.message_type.take())?);
    let uids = req
        .agent_filter
        .as_ref()
        .and_then(|f| f.agent_uids.as_ref());
    if let Some(uids) = uids {
        if uids.len() > MAX_FILTER_UIDS {
            return Err(invalid(format!(
                "agent_filter.agent_uids holds {} uids, at most {MAX_FILTER_UIDS} allowed",
                uids.len()
            )));
        }
    }
    Ok(req)
}

/// Parses a JSON body: syntax errors are `invalid_json`, shape errors `invalid_request`.
fn from_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "invalid_json",
            "the request body must be a JSON object",
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request("invalid_json", format!("malformed JSON: {e}")))?;
    if !value.is_object() {
        return Err(invalid("the request body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
}

fn check_message(message: &Value) -> Result<(), ApiError> {
    if message.is_null() {
        return Err(invalid(
            "missing field `message` (any JSON value except null)",
        ));
    }
    Ok(())
}

fn check_message_type(t: Option<String>) -> Result<String, ApiError> {
    match t.as_deref() {
        None | Some("request") => Ok("request".into()),
        Some("event") => Ok("event".into()),
        Some(other) => Err(invalid(format!(
            "message_type must be \"request\" or \"event\", got {:?}",
            truncate(other)
        ))),
    }
}

fn invalid(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_request", message)
}

fn bad_channel(channel: &str, expected: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_channel",
        format!("channel {:?} is not {expected}", truncate(channel)),
    )
}

/// At most 64 chars of client input, for echoing it in an error message.
pub(crate) fn truncate(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
