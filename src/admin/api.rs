//! Request and response types of the admin API, the error type, and request validation.
//!
//! Every response time is an RFC 3339 UTC string. Request bodies are validated here before the
//! [`Backend`](super::Backend) sees them: a handler only ever receives a well-formed request.

pub use super::error::{ApiError, ErrorKind};
use crate::protocol::channel::{self, BackendKind, Channel};
use crate::protocol::envelope::MsgType;
use crate::protocol::payloads::MAX_AGENT_ID_LEN;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Default page size of `GET /api/v1/agents`.
pub const DEFAULT_LIST_LIMIT: usize = 100;
/// Largest page size of `GET /api/v1/agents`.
pub const MAX_LIST_LIMIT: usize = 1000;
/// Longest accepted `cursor` (bytes, after percent-decoding).
pub const MAX_CURSOR_LEN: usize = 1024;
/// Default `priority` of a send, and the priority of every broadcast (the one definition).
pub const DEFAULT_PRIORITY: u8 = 5;
/// Highest `priority`.
pub const MAX_PRIORITY: u8 = 9;
/// Longest `ttl_seconds` (7 days).
pub const MAX_TTL_SECONDS: u64 = 604_800;
/// Most `agent_filter.agent_uids` in one broadcast.
pub const MAX_FILTER_UIDS: usize = 100_000;
/// Longest `channel` of a send: `backend.` + a 128-byte id + `.` + the longest kind.
pub const MAX_CHANNEL_LEN: usize = "backend.".len() + MAX_AGENT_ID_LEN + 1 + longest_kind();

const fn longest_kind() -> usize {
    let mut i = 0;
    let mut max = 0;
    while i < BackendKind::ALL.len() {
        let n = BackendKind::ALL[i].as_str().len();
        if n > max {
            max = n;
        }
        i += 1;
    }
    max
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

/// The wire body of `POST /api/v1/agents/{id}/send`, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SendBody {
    channel: String,
    message: Value,
    #[serde(default, deserialize_with = "present")]
    message_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    priority: Option<u8>,
    #[serde(default, deserialize_with = "present")]
    ttl_seconds: Option<u64>,
}

/// A validated `POST /api/v1/agents/{id}/send` ([`parse_send`]): the body's
/// `{channel, message, message_type?, priority?, ttl_seconds?}` with defaults filled in.
#[derive(Debug, Clone, PartialEq)]
pub struct SendRequest {
    /// The `{kind}` of the channel `backend.{kind}` / `backend.{id}.{kind}`.
    pub kind: BackendKind,
    /// The channel's `{id}`, when given (the backend checks that it names the path's agent).
    pub channel_id: Option<String>,
    /// The command: any JSON except `null`.
    pub message: Value,
    /// [`MsgType::Request`] (default) or [`MsgType::Event`].
    pub message_type: MsgType,
    /// 0..=9, higher first. Default = [`DEFAULT_PRIORITY`].
    pub priority: u8,
    /// Queue lifetime in seconds, 1..=604800; `None`: the gateway's `MESSAGE_TTL`.
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
    #[serde(default, deserialize_with = "present")]
    pub agent_uids: Option<Vec<String>>,
    /// Platform OS.
    #[serde(default, deserialize_with = "present")]
    pub os: Option<String>,
    /// Platform architecture.
    #[serde(default, deserialize_with = "present")]
    pub arch: Option<String>,
    /// Agent version.
    #[serde(default, deserialize_with = "present")]
    pub agent_version: Option<String>,
}

/// The wire body of `POST /api/v1/agents/broadcast`, before validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct BroadcastBody {
    channel: String,
    message: Value,
    #[serde(default, deserialize_with = "present")]
    message_type: Option<String>,
    #[serde(default, deserialize_with = "present")]
    agent_filter: Option<AgentFilter>,
    #[serde(default, deserialize_with = "present")]
    include_offline: Option<bool>,
}

/// A validated `POST /api/v1/agents/broadcast` ([`parse_broadcast`]).
#[derive(Debug, Clone, PartialEq)]
pub struct BroadcastRequest {
    /// The `{kind}` of the channel `backend.{kind}`.
    pub kind: BackendKind,
    /// The command: any JSON except `null`.
    pub message: Value,
    /// [`MsgType::Request`] (default) or [`MsgType::Event`].
    pub message_type: MsgType,
    /// Always [`DEFAULT_PRIORITY`] (a broadcast body has no priority).
    pub priority: u8,
    /// Which agents; all registered agents when `None`.
    pub agent_filter: Option<AgentFilter>,
    /// Queue for matching agents that are offline too. Default = false.
    pub include_offline: bool,
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
    let b: SendBody = from_body(body)?;
    check_message(&b.message)?;
    let (kind, channel_id) = match channel::parse(&b.channel) {
        Ok(Channel::Backend { id, kind }) => (kind, id.map(str::to_owned)),
        _ => {
            return Err(bad_channel(
                &b.channel,
                "backend.{kind} or backend.{id}.{kind}",
            ))
        }
    };
    let message_type = check_message_type(b.message_type.as_deref())?;
    let priority = b.priority.unwrap_or(DEFAULT_PRIORITY);
    if priority > MAX_PRIORITY {
        return Err(ApiError::invalid_request(format!(
            "priority must be 0..={MAX_PRIORITY}, got {priority}"
        )));
    }
    if let Some(ttl) = b.ttl_seconds {
        if !(1..=MAX_TTL_SECONDS).contains(&ttl) {
            return Err(ApiError::invalid_request(format!(
                "ttl_seconds must be 1..={MAX_TTL_SECONDS}, got {ttl}"
            )));
        }
    }
    Ok(SendRequest {
        kind,
        channel_id,
        message: b.message,
        message_type,
        priority,
        ttl_seconds: b.ttl_seconds,
    })
}

/// Validates a `broadcast` body: `invalid_json`, `invalid_request` or `invalid_channel` (all 400).
pub fn parse_broadcast(body: &[u8]) -> Result<BroadcastRequest, ApiError> {
    let b: BroadcastBody = from_body(body)?;
    check_message(&b.message)?;
    let kind = match channel::parse(&b.channel) {
        Ok(Channel::Backend { id: None, kind }) => kind,
        _ => return Err(bad_channel(&b.channel, "backend.{kind}")),
    };
    let message_type = check_message_type(b.message_type.as_deref())?;
    let uids = b.agent_filter.as_ref().and_then(|f| f.agent_uids.as_ref());
    if let Some(uids) = uids {
        if uids.len() > MAX_FILTER_UIDS {
            return Err(ApiError::invalid_request(format!(
                "agent_filter.agent_uids holds {} uids, at most {MAX_FILTER_UIDS} allowed",
                uids.len()
            )));
        }
    }
    Ok(BroadcastRequest {
        kind,
        message: b.message,
        message_type,
        priority: DEFAULT_PRIORITY,
        agent_filter: b.agent_filter,
        include_offline: b.include_offline.unwrap_or(false),
    })
}

/// An optional field: absent is `None`, `null` is refused (the schema does not allow it).
fn present<'de, D: serde::Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Option<T>, D::Error> {
    T::deserialize(d).map(Some)
}

/// Parses a JSON body: syntax errors are `invalid_json`, shape errors `invalid_request`.
fn from_body<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let invalid_json = |m: String| ApiError::new(ErrorKind::InvalidJson, m);
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(invalid_json(
            "the request body must be a JSON object".into(),
        ));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| invalid_json(format!("malformed JSON: {e}")))?;
    if !value.is_object() {
        return Err(ApiError::invalid_request(
            "the request body must be a JSON object",
        ));
    }
    serde_json::from_value(value).map_err(|e| ApiError::invalid_request(e.to_string()))
}

fn check_message(message: &Value) -> Result<(), ApiError> {
    if message.is_null() {
        return Err(ApiError::invalid_request(
            "missing field `message` (any JSON value except null)",
        ));
    }
    Ok(())
}

fn check_message_type(t: Option<&str>) -> Result<MsgType, ApiError> {
    match t {
        None | Some("request") => Ok(MsgType::Request),
        Some("event") => Ok(MsgType::Event),
        Some(other) => Err(ApiError::invalid_request(format!(
            "message_type must be \"request\" or \"event\", got {:?}",
            truncate(other)
        ))),
    }
}

fn bad_channel(channel: &str, expected: &str) -> ApiError {
    ApiError::new(
        ErrorKind::InvalidChannel,
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
