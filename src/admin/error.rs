//! The errors the admin API answers: [`ErrorKind`] (each kind is one HTTP status and one stable
//! `error` code) and [`ApiError`] (a kind, a message and optional extra body fields).

use serde_json::Value;

/// Every error the admin API answers. Each kind has exactly one status ([`ErrorKind::status`])
/// and one machine-readable code ([`ErrorKind::code`]), the body's `error` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// `400 bad_request`: the request line or headers are malformed (HTTP level).
    BadRequest,
    /// `400 invalid_json`: the body is not JSON.
    InvalidJson,
    /// `400 invalid_request`: the body is JSON of the wrong shape or out of range.
    InvalidRequest,
    /// `400 invalid_channel`: the body's `channel` is not a channel this route accepts.
    InvalidChannel,
    /// `400 invalid_query`: a query parameter or `Last-Event-ID` is wrong.
    InvalidQuery,
    /// `400 invalid_path`: a path parameter is wrong (bad escape, too long, bad characters).
    InvalidPath,
    /// `401 unauthorized`: missing or wrong bearer token.
    Unauthorized,
    /// `404 not_found`: no route has this path.
    NotFound,
    /// `404 agent_not_found`: no registered agent has this uid or host id.
    AgentNotFound,
    /// `404 message_not_found`: no message has this id.
    MessageNotFound,
    /// `405 method_not_allowed`: the path exists, the method does not (with `Allow`).
    MethodNotAllowed,
    /// `408 request_timeout`: the request did not arrive in time.
    RequestTimeout,
    /// `409 ambiguous_host_id`: a host id held by several agents (with `agent_uids`).
    AmbiguousHostId,
    /// `411 length_required`: a chunked body (send `Content-Length`).
    LengthRequired,
    /// `413 payload_too_large`: the body is over the limit.
    PayloadTooLarge,
    /// `429 queue_full`: the agent's durable queue is at `MESSAGE_QUEUE_SIZE`.
    QueueFull,
    /// `429 too_many_connections`: this client IP holds its share of admin connections.
    TooManyConnections,
    /// `431 header_too_large`: the request head is over the limit.
    HeaderTooLarge,
    /// `500 internal`: our fault.
    Internal,
    /// `503 unavailable`: draining, or every admin connection slot is busy.
    Unavailable,
    /// `503 storage_unavailable`: the store failed or is reopening; nothing was done.
    StorageUnavailable,
    /// `507 insufficient_storage`: the data directory is full; nothing was queued.
    InsufficientStorage,
}

impl ErrorKind {
    /// Every kind.
    pub const ALL: [ErrorKind; 22] = [
        ErrorKind::BadRequest,
        ErrorKind::InvalidJson,
        ErrorKind::InvalidRequest,
        ErrorKind::InvalidChannel,
        ErrorKind::InvalidQuery,
        ErrorKind::InvalidPath,
        ErrorKind::Unauthorized,
        ErrorKind::NotFound,
        ErrorKind::AgentNotFound,
        ErrorKind::MessageNotFound,
        ErrorKind::MethodNotAllowed,
        ErrorKind::RequestTimeout,
        ErrorKind::AmbiguousHostId,
        ErrorKind::LengthRequired,
        ErrorKind::PayloadTooLarge,
        ErrorKind::QueueFull,
        ErrorKind::TooManyConnections,
        ErrorKind::HeaderTooLarge,
        ErrorKind::Internal,
        ErrorKind::Unavailable,
        ErrorKind::StorageUnavailable,
        ErrorKind::InsufficientStorage,
    ];

    /// The HTTP status of this kind.
    pub const fn status(self) -> u16 {
        use ErrorKind::*;
        match self {
            BadRequest | InvalidJson | InvalidRequest | InvalidChannel | InvalidQuery
            | InvalidPath => 400,
            Unauthorized => 401,
            NotFound | AgentNotFound | MessageNotFound => 404,
            MethodNotAllowed => 405,
            RequestTimeout => 408,
            AmbiguousHostId => 409,
            LengthRequired => 411,
            PayloadTooLarge => 413,
            QueueFull | TooManyConnections => 429,
            HeaderTooLarge => 431,
            Internal => 500,
            Unavailable | StorageUnavailable => 503,
            InsufficientStorage => 507,
        }
    }

    /// The stable `error` code of this kind.
    pub const fn code(self) -> &'static str {
        use ErrorKind::*;
        match self {
            BadRequest => "bad_request",
            InvalidJson => "invalid_json",
            InvalidRequest => "invalid_request",
            InvalidChannel => "invalid_channel",
            InvalidQuery => "invalid_query",
            InvalidPath => "invalid_path",
            Unauthorized => "unauthorized",
            NotFound => "not_found",
            AgentNotFound => "agent_not_found",
            MessageNotFound => "message_not_found",
            MethodNotAllowed => "method_not_allowed",
            RequestTimeout => "request_timeout",
            AmbiguousHostId => "ambiguous_host_id",
            LengthRequired => "length_required",
            PayloadTooLarge => "payload_too_large",
            QueueFull => "queue_full",
            TooManyConnections => "too_many_connections",
            HeaderTooLarge => "header_too_large",
            Internal => "internal",
            Unavailable => "unavailable",
            StorageUnavailable => "storage_unavailable",
            InsufficientStorage => "insufficient_storage",
        }
    }
}

/// An error answered to an API client: the status of its [`ErrorKind`] and the JSON body
/// `{"error": code, "message": message, ...extra}`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{} {}: {message}", .kind.status(), .kind.code())]
pub struct ApiError {
    /// What went wrong (status and code).
    pub kind: ErrorKind,
    /// Human-readable explanation.
    pub message: String,
    /// Extra fields merged into the body (an object; e.g. `{"agent_uids": [..]}` for a 409).
    /// `error` and `message` are never overwritten; a non-object is put under `"details"`.
    pub extra: Option<Value>,
}

impl ApiError {
    /// An error of this kind with this message and no extra fields.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ApiError {
        ApiError {
            kind,
            message: message.into(),
            extra: None,
        }
    }

    /// The same error with extra body fields.
    pub fn with_extra(mut self, extra: Value) -> ApiError {
        self.extra = Some(extra);
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The `error` code.
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// `400 invalid_request`.
    pub fn invalid_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::InvalidRequest, message)
    }

    /// `404 agent_not_found`.
    pub fn agent_not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::AgentNotFound, message)
    }

    /// `409 ambiguous_host_id` listing the uids that hold the host id.
    pub fn ambiguous_host_id(message: impl Into<String>, agent_uids: &[String]) -> ApiError {
        ApiError::new(ErrorKind::AmbiguousHostId, message)
            .with_extra(serde_json::json!({ "agent_uids": agent_uids }))
    }

    /// `503 unavailable` (e.g. the gateway is draining).
    pub fn unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Unavailable, message)
    }

    /// `507 insufficient_storage`: the data directory is full (or below `STORE_MIN_FREE`);
    /// nothing was queued. The gateway accepts commands again by itself once space is freed.
    pub fn insufficient_storage(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::InsufficientStorage, message)
    }

    /// `503 storage_unavailable`: the store failed (an IO error) or is reopening; nothing
    /// was queued. Retry later.
    pub fn storage_unavailable(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::StorageUnavailable, message)
    }

    /// `500 internal` (our fault: store errors and the like).
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorKind::Internal, message)
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
        body.insert("error".into(), Value::from(self.code()));
        body.insert("message".into(), Value::from(self.message.as_str()));
        Value::Object(body)
    }
}
