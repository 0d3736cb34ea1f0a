//! The HTTP/1.1 WebSocket upgrade request of PROTOCOL.md §1, parsed with httparse, and the
//! response bytes (101 or an HTTP error with a JSON body). No IO: the caller feeds the bytes
//! read so far and writes what it gets back.

use std::fmt;

use ring::digest;

use super::payloads::{b64, decode_b64_exact, is_agent_id, to_json};

/// The whole upgrade request (request line + headers) must fit in this many bytes.
pub const MAX_UPGRADE_BYTES: usize = 16 * 1024;
/// Most header lines accepted in the upgrade request.
pub const MAX_HEADERS: usize = 64;
/// Longest accepted `X-Bootstrap-Token`.
pub const MAX_BOOTSTRAP_TOKEN_LEN: usize = 256;
/// Required `User-Agent` prefix.
pub const USER_AGENT_PREFIX: &str = "Aegis-Agent/";
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// A valid upgrade request.
#[derive(Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// Request path without the query string.
    pub path: String,
    /// `Sec-WebSocket-Key` (base64 of 16 bytes).
    pub ws_key: String,
    /// `User-Agent` (starts with `Aegis-Agent/`).
    pub user_agent: String,
    /// `X-Agent-Id`.
    pub agent_id: String,
    /// `X-Agent-Public-Key`, decoded.
    pub public_key: [u8; 32],
    /// `X-Agent-Public-Key` as sent.
    pub public_key_b64: String,
    /// `X-Agent-Uid`: present on a reconnect (then equal to `agent_id`).
    pub agent_uid: Option<String>,
    /// `X-Bootstrap-Token`: present exactly when `agent_uid` is.
    pub bootstrap_token: Option<String>,
    /// `X-Aegis-Protocol` (1 or 2); `None` = decided by M1.
    pub protocol: Option<u8>,
}

impl UpgradeRequest {
    /// True when the request carries `X-Agent-Uid` (§1: a reconnect).
    pub fn is_reconnect(&self) -> bool {
        self.agent_uid.is_some()
    }
}

impl fmt::Debug for UpgradeRequest {
    /// Like a derived `Debug`, but the bootstrap token (a credential) is redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpgradeRequest")
            .field("path", &self.path)
            .field("ws_key", &self.ws_key)
            .field("user_agent", &self.user_agent)
            .field("agent_id", &self.agent_id)
            .field("public_key_b64", &self.public_key_b64)
            .field("agent_uid", &self.agent_uid)
            .field(
                "bootstrap_token",
                &self.bootstrap_token.as_ref().map(|_| "<redacted>"),
            )
            .field("protocol", &self.protocol)
            .finish()
    }
}

/// Result of feeding bytes to [`parse`].
// Built once per connection and matched at once: boxing the request would only add an
// allocation, so the size difference between the variants is accepted.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// The head is not complete yet: read more and call again with all bytes so far.
    Incomplete,
    /// A valid request; its head is `buf[..consumed]`, anything after it is WebSocket data.
    Complete {
        /// The request.
        request: UpgradeRequest,
        /// Length of the HTTP head in bytes.
        consumed: usize,
    },
}

/// A rejected upgrade: the HTTP status, the JSON `error` kind and a message
/// (send [`UpgradeError::response`] and close).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status} {kind}: {message}")]
pub struct UpgradeError {
    /// HTTP status (400, 404, 405, 413, 426, 429, 431, 503).
    pub status: u16,
    /// `error` field of the JSON body, e.g. `invalid_request`.
    pub kind: &'static str,
    /// Human-readable message.
    pub message: String,
}

impl UpgradeError {
    pub(crate) fn new(status: u16, kind: &'static str, message: impl Into<String>) -> Self {
        UpgradeError {
            status,
            kind,
            message: message.into(),
        }
    }

    /// 400 `invalid_request`: missing or malformed headers.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "invalid_request", message)
    }

    /// 429 `rate_limited`: the client IP exceeds its connect rate.
    pub fn rate_limited() -> Self {
        Self::new(429, "rate_limited", "too many connection attempts")
    }

    /// 503 `unavailable`: at the connection limit, or draining.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(503, "unavailable", message)
    }

    /// 431 `request_too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(431, "request_too_large", message)
    }

    /// The full HTTP response for this error (see [`error_response`]).
    pub fn response(&self) -> Vec<u8> {
        error_response(self.status, self.kind, &self.message)
    }
}

/// Parses a request head from `buf` (all bytes read so far) into `req`, within
/// [`MAX_UPGRADE_BYTES`]: `Some(head length)`, `None` while incomplete, 431 for a head that does
/// not complete within the bound or has too many lines, 400 for a malformed one. Shared by the
/// upgrade and the HTTP registration fallback (`register_http`).
pub(crate) fn parse_head<'b>(
    req: &mut httparse::Request<'_, 'b>,
    buf: &'b [u8],
    too_long: &'static str,
) -> Result<Option<usize>, UpgradeError> {
    let window = buf.get(..MAX_UPGRADE_BYTES).unwrap_or(buf);
    match req.parse(window) {
        Ok(httparse::Status::Complete(n)) => Ok(Some(n)),
        Ok(httparse::Status::Partial) if buf.len() < MAX_UPGRADE_BYTES => Ok(None),
        Ok(httparse::Status::Partial) => Err(UpgradeError::too_large(too_long)),
        Err(httparse::Error::TooManyHeaders) => {
            Err(UpgradeError::too_large("too many header lines"))
        }
        Err(e) => Err(UpgradeError::invalid(format!(
            "malformed HTTP request: {e}"
        ))),
    }
}

/// Parses the upgrade request in `buf` (all bytes read so far). `Incomplete` while the head is
/// not complete and `buf` is shorter than [`MAX_UPGRADE_BYTES`]; a head that does not complete
/// within that many bytes is a 431. Never panics.
pub fn parse(buf: &[u8], expected_path: &str) -> Result<Parsed, UpgradeError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let Some(consumed) = parse_head(&mut req, buf, "upgrade request exceeds 16 KiB")? else {
        return Ok(Parsed::Incomplete);
    };
    // Anything but the WebSocket path (and the registration routes, recognised before this
    // parser runs) is 404, whatever the method (PROTOCOL §9).
    let target = req.path.unwrap_or("");
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if path != expected_path {
        return Err(UpgradeError::new(404, "not_found", "unknown path"));
    }
    if req.method != Some("GET") {
        return Err(UpgradeError::new(
            405,
            "method_not_allowed",
            "only GET is allowed",
        ));
    }
    if req.version != Some(1) {
        return Err(UpgradeError::invalid("HTTP/1.1 is required"));
    }
    let request = check_headers(req.headers, path)?;
    Ok(Parsed::Complete { request, consumed })
}

/// The headers the gateway looks at, each at most once.
#[derive(Default)]
struct Seen<'b> {
    upgrade: bool,
    connection: bool,
    version: Option<&'b str>,
    key: Option<&'b str>,
    user_agent: Option<&'b str>,
    agent_id: Option<&'b str>,
    public_key: Option<&'b str>,
    agent_uid: Option<&'b str>,
    bootstrap_token: Option<&'b str>,
    protocol: Option<&'b str>,
}

fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

fn set_once<'b>(
    slot: &mut Option<&'b str>,
    value: &'b str,
    name: &str,
) -> Result<(), UpgradeError> {
    if slot.replace(value).is_some() {
        return Err(UpgradeError::invalid(format!("duplicate {name} header")));
    }
    Ok(())
}

fn check_headers<'b>(
    headers: &[httparse::Header<'b>],
    path: &str,
) -> Result<UpgradeRequest, UpgradeError> {
    let mut seen = Seen::default();
    for h in headers {
        let name = h.name;
        let is = |n: &str| name.eq_ignore_ascii_case(n);
        let tracked = [
            "Upgrade",
            "Connection",
            "Sec-WebSocket-Version",
            "Sec-WebSocket-Key",
        ]
        .iter()
        .chain(&AEGIS_HEADERS)
        .any(|n| is(n));
        if !tracked {
            continue;
        }
        let value = std::str::from_utf8(h.value)
            .map_err(|_| UpgradeError::invalid(format!("{name} is not valid UTF-8")))?;
        if is("Upgrade") {
            seen.upgrade |= has_token(value, "websocket");
        } else if is("Connection") {
            seen.connection |= has_token(value, "upgrade");
        } else if is("Sec-WebSocket-Version") {
            set_once(&mut seen.version, value, "Sec-WebSocket-Version")?;
        } else if is("Sec-WebSocket-Key") {
            set_once(&mut seen.key, value, "Sec-WebSocket-Key")?;
        } else if is("User-Agent") {
            set_once(&mut seen.user_agent, value, "User-Agent")?;
        } else if is("X-Agent-Id") {
            set_once(&mut seen.agent_id, value, "X-Agent-Id")?;
        } else if is("X-Agent-Public-Key") {
            set_once(&mut seen.public_key, value, "X-Agent-Public-Key")?;
        } else if is("X-Agent-Uid") {
            set_once(&mut seen.agent_uid, value, "X-Agent-Uid")?;
        } else if is("X-Bootstrap-Token") {
            set_once(&mut seen.bootstrap_token, value, "X-Bootstrap-Token")?;
        } else {
            set_once(&mut seen.protocol, value, "X-Aegis-Protocol")?;
        }
    }
    if !seen.upgrade || !seen.connection {
        return Err(UpgradeError::invalid("not a WebSocket upgrade request"));
    }
    if seen.version != Some("13") {
        return Err(UpgradeError::new(
            426,
            "upgrade_required",
            "Sec-WebSocket-Version 13 is required",
        ));
    }
    let ws_key = seen
        .key
        .filter(|k| decode_b64_exact::<16>(k).is_some())
        .ok_or_else(|| UpgradeError::invalid("missing or malformed Sec-WebSocket-Key"))?;
    aegis_headers(&seen, path, ws_key)
}

/// Names of the Aegis headers of the §1 table (duplicates of any of them are rejected).
const AEGIS_HEADERS: [&str; 6] = [
    "User-Agent",
    "X-Agent-Id",
    "X-Agent-Public-Key",
    "X-Agent-Uid",
    "X-Bootstrap-Token",
    "X-Aegis-Protocol",
];

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=')
}

fn aegis_headers(
    seen: &Seen<'_>,
    path: &str,
    ws_key: &str,
) -> Result<UpgradeRequest, UpgradeError> {
    let user_agent = seen
        .user_agent
        .filter(|ua| ua.starts_with(USER_AGENT_PREFIX))
        .ok_or_else(|| UpgradeError::invalid("User-Agent must start with Aegis-Agent/"))?;
    let agent_id = seen
        .agent_id
        .filter(|id| is_agent_id(id))
        .ok_or_else(|| UpgradeError::invalid("missing or malformed X-Agent-Id"))?;
    let public_key_b64 = seen
        .public_key
        .ok_or_else(|| UpgradeError::invalid("missing X-Agent-Public-Key"))?;
    let public_key = decode_b64_exact::<32>(public_key_b64).ok_or_else(|| {
        UpgradeError::invalid("X-Agent-Public-Key must be base64 of exactly 32 bytes")
    })?;
    match (seen.agent_uid, seen.bootstrap_token) {
        (Some(_), None) => {
            return Err(UpgradeError::invalid(
                "X-Agent-Uid without X-Bootstrap-Token",
            ))
        }
        (None, Some(_)) => {
            return Err(UpgradeError::invalid(
                "X-Bootstrap-Token without X-Agent-Uid",
            ))
        }
        _ => {}
    }
    if let Some(uid) = seen.agent_uid {
        if !is_agent_id(uid) {
            return Err(UpgradeError::invalid("malformed X-Agent-Uid"));
        }
        if uid != agent_id {
            return Err(UpgradeError::invalid("X-Agent-Id must equal X-Agent-Uid"));
        }
    }
    if let Some(token) = seen.bootstrap_token {
        let ok = !token.is_empty()
            && token.len() <= MAX_BOOTSTRAP_TOKEN_LEN
            && token.bytes().all(is_token_char);
        if !ok {
            return Err(UpgradeError::invalid("malformed X-Bootstrap-Token"));
        }
    }
    let protocol = match seen.protocol {
        None => None,
        Some("1") => Some(1),
        Some("2") => Some(2),
        Some(_) => return Err(UpgradeError::invalid("X-Aegis-Protocol must be 1 or 2")),
    };
    Ok(UpgradeRequest {
        path: path.to_owned(),
        ws_key: ws_key.to_owned(),
        user_agent: user_agent.to_owned(),
        agent_id: agent_id.to_owned(),
        public_key,
        public_key_b64: public_key_b64.to_owned(),
        agent_uid: seen.agent_uid.map(str::to_owned),
        bootstrap_token: seen.bootstrap_token.map(str::to_owned),
        protocol,
    })
}

/// `Sec-WebSocket-Accept` for `ws_key`: base64(SHA-1(key ‖ RFC 6455 GUID)).
pub fn accept_key(ws_key: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(ws_key.as_bytes());
    ctx.update(WS_GUID.as_bytes());
    b64(ctx.finish().as_ref())
}

/// The `101 Switching Protocols` response for `ws_key`.
pub fn accept_response(ws_key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(ws_key)
    )
    .into_bytes()
}

/// Reason phrase of the statuses the gateway sends.
fn reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// An HTTP error response with body `{"error":kind,"message":message}` and
/// `Connection: close`. A 426 also carries `Sec-WebSocket-Version: 13`; a 405 `Allow: GET`.
pub fn error_response(status: u16, kind: &str, message: &str) -> Vec<u8> {
    #[derive(serde::Serialize)]
    struct Body<'a> {
        error: &'a str,
        message: &'a str,
    }
    let body = to_json(&Body {
        error: kind,
        message,
    });
    let extra = match status {
        426 => "Sec-WebSocket-Version: 13\r\n",
        405 => "Allow: GET\r\n",
        _ => "",
    };
    format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         {extra}Connection: close\r\n\r\n{body}",
        reason(status),
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
#[path = "upgrade_tests.rs"]
mod tests;
