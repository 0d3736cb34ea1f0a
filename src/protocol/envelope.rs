//! The JSON envelope of PROTOCOL.md §2: parsing (simd-json, in place) and serialization.
//!
//! [`parse`] walks the simd-json tape directly, so duplicate keys are detected and no
//! intermediate DOM is built; the parser's buffers are reused per thread (simd-json only beats
//! serde_json with reused buffers, see PITFALLS.md). [`Envelope::to_json`] always writes all eight
//! fields in wire order, which is what the v1 agent expects.

use std::cell::RefCell;
use std::fmt;

use serde::ser::{SerializeMap, SerializeStruct};
use serde::{Serialize, Serializer};
use simd_json::{Buffers, Node, StaticNode, Tape};

use super::error::ErrorKind;

/// Longest accepted `id` (bytes).
pub const MAX_ID_LEN: usize = 128;
/// Longest accepted `channel` (bytes).
pub const MAX_CHANNEL_LEN: usize = 256;
/// Most entries accepted in `headers`.
pub const MAX_HEADERS: usize = 32;
/// Longest accepted header name (bytes).
pub const MAX_HEADER_NAME_LEN: usize = 64;
/// Longest accepted header value (bytes).
pub const MAX_HEADER_VALUE_LEN: usize = 256;
/// Inputs larger than this do not keep their grown parser buffers afterwards, so one large
/// message does not pin a large allocation for the lifetime of the thread.
const KEEP_BUFFERS_UP_TO: usize = 64 * 1024;

/// The envelope `type` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgType {
    /// `request`
    Request,
    /// `response`
    Response,
    /// `event`
    Event,
    /// `heartbeat`
    Heartbeat,
    /// `ack`
    Ack,
    /// `error`
    Error,
}

impl MsgType {
    /// Every type.
    pub const ALL: [MsgType; 6] = [
        MsgType::Request,
        MsgType::Response,
        MsgType::Event,
        MsgType::Heartbeat,
        MsgType::Ack,
        MsgType::Error,
    ];

    /// The wire spelling.
    pub const fn as_str(self) -> &'static str {
        match self {
            MsgType::Request => "request",
            MsgType::Response => "response",
            MsgType::Event => "event",
            MsgType::Heartbeat => "heartbeat",
            MsgType::Ack => "ack",
            MsgType::Error => "error",
        }
    }

    /// The type spelled `s` (exact, lowercase), if any.
    pub fn parse(s: &str) -> Option<MsgType> {
        MsgType::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for MsgType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One message on the wire (PROTOCOL.md §2), owned.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    /// Message id, 1..128 chars of `[A-Za-z0-9._-]`.
    pub id: String,
    /// Message type.
    pub msg_type: MsgType,
    /// Channel, 1..256 chars of `[A-Za-z0-9._@-]`.
    pub channel: String,
    /// Payload text as sent (base64, raw JSON, or sealed base64 depending on context).
    pub payload: String,
    /// Unix seconds.
    pub timestamp: i64,
    /// Envelope nonce; `None` when absent, `null` or `""`.
    pub nonce: Option<String>,
    /// Envelope signature; `None` when absent, `null` or `""`.
    pub signature: Option<String>,
    /// Headers in wire order (no duplicate names).
    pub headers: Vec<(String, String)>,
}

impl Envelope {
    /// The value of header `name` (exact, case-sensitive match, as JSON keys are).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets header `name` to `value`, replacing an existing entry in place or appending.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.headers.iter_mut().find(|(k, _)| k == name) {
            Some(entry) => entry.1 = value,
            None => self.headers.push((name.to_owned(), value)),
        }
    }

    /// The JSON text of the envelope: all eight fields in the order
    /// `id,type,channel,payload,timestamp,nonce,signature,headers` (`None` as `""`, no headers as
    /// `{}`), no whitespace.
    pub fn to_json(&self) -> String {
        // Cannot fail: every field is a string, an integer or a map with string keys, and the
        // writer is a `Vec`. The fallback only exists to avoid an unreachable panic path.
        serde_json::to_string(self).unwrap_or_default()
    }
}

impl Serialize for Envelope {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut s = serializer.serialize_struct("Envelope", 8)?;
        s.serialize_field("id", &self.id)?;
        s.serialize_field("type", self.msg_type.as_str())?;
        s.serialize_field("channel", &self.channel)?;
        s.serialize_field("payload", &self.payload)?;
        s.serialize_field("timestamp", &self.timestamp)?;
        s.serialize_field("nonce", self.nonce.as_deref().unwrap_or(""))?;
        s.serialize_field("signature", self.signature.as_deref().unwrap_or(""))?;
        s.serialize_field("headers", &OrderedHeaders(&self.headers))?;
        s.end()
    }
}

/// Serializes a header list as a JSON object, keeping its order.
struct OrderedHeaders<'a>(&'a [(String, String)]);

impl Serialize for OrderedHeaders<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut m = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

/// Why a frame is not an envelope of §2. Every variant is the peer's fault and maps to
/// `invalid_message` ([`EnvelopeError::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not valid UTF-8 JSON (including trailing non-whitespace garbage).
    #[error("frame is not valid JSON")]
    NotJson,
    /// Valid JSON, but not an object.
    #[error("frame is not a JSON object")]
    NotObject,
    /// A required field is absent.
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong JSON type (or `timestamp` is not an integer in the i64 range).
    #[error("field `{0}` has the wrong type")]
    WrongType(&'static str),
    /// A known field appears twice.
    #[error("duplicate field `{0}`")]
    DuplicateField(&'static str),
    /// `id` is empty, too long, or has a character outside `[A-Za-z0-9._-]`.
    #[error("invalid `id`")]
    BadId,
    /// `type` is not one of the six types.
    #[error("invalid `type`")]
    BadType,
    /// `channel` is empty, too long, or has a character outside `[A-Za-z0-9._@-]`.
    #[error("invalid `channel`")]
    BadChannel,
    /// More than [`MAX_HEADERS`] headers.
    #[error("too many headers")]
    TooManyHeaders,
    /// A header name is empty or longer than [`MAX_HEADER_NAME_LEN`], or a value is longer than
    /// [`MAX_HEADER_VALUE_LEN`].
    #[error("header name or value has an invalid length")]
    BadHeader,
    /// The same header name appears twice.
    #[error("duplicate header")]
    DuplicateHeader,
}

impl EnvelopeError {
    /// The protocol error kind: always `invalid_message`.
    pub const fn kind(&self) -> ErrorKind {
        ErrorKind::InvalidMessage
    }

    /// A short, stable label for metrics and logs.
    pub const fn label(&self) -> &'static str {
        match self {
            EnvelopeError::NotJson => "not_json",
            EnvelopeError::NotObject => "not_object",
            EnvelopeError::MissingField(_) => "missing_field",
            EnvelopeError::WrongType(_) => "wrong_type",
            EnvelopeError::DuplicateField(_) => "duplicate_field",
            EnvelopeError::BadId => "bad_id",
            EnvelopeError::BadType => "bad_type",
            EnvelopeError::BadChannel => "bad_channel",
            EnvelopeError::TooManyHeaders => "too_many_headers",
            EnvelopeError::BadHeader => "bad_header",
            EnvelopeError::DuplicateHeader => "duplicate_header",
        }
    }
}

/// Per-thread parser state: simd-json buffers and the tape allocation, both reused.
struct ParserState {
    buffers: Buffers,
    tape: Option<Tape<'static>>,
}

impl ParserState {
    fn new() -> Self {
        ParserState {
            buffers: Buffers::new(1024),
            tape: None,
        }
    }

    fn parse(&mut self, buf: &mut [u8]) -> Result<Envelope, EnvelopeError> {
        let len = buf.len();
        let mut tape: Tape<'_> = self.tape.take().unwrap_or_else(Tape::null).reset();
        let result = match simd_json::fill_tape(buf, &mut self.buffers, &mut tape) {
            Ok(()) => from_nodes(&tape.0),
            Err(_) => Err(EnvelopeError::NotJson),
        };
        if len > KEEP_BUFFERS_UP_TO {
            *self = ParserState::new();
        } else {
            self.tape = Some(tape.reset());
        }
        result
    }
}

thread_local! {
    static PARSER: RefCell<ParserState> = RefCell::new(ParserState::new());
}

/// Parses one envelope from `buf` (the whole frame), in place: simd-json unescapes strings
/// inside `buf`, so its content is unspecified afterwards. Trailing ASCII whitespace (the Go
/// agent's newline) is accepted; anything else after the object is an error. Never panics.
pub fn parse(buf: &mut [u8]) -> Result<Envelope, EnvelopeError> {
    PARSER.with(|cell| match cell.try_borrow_mut() {
        Ok(mut state) => state.parse(buf),
        // Only reachable through re-entrancy, which `parse` never does; stay correct anyway.
        Err(_) => ParserState::new().parse(buf),
    })
}

/// Number of tape nodes the value starting with `node` occupies.
fn span(node: &Node<'_>) -> usize {
    match node {
        Node::Object { count, .. } | Node::Array { count, .. } => count.saturating_add(1),
        _ => 1,
    }
}

/// Iterates over the `(key, value nodes)` pairs of an object whose body (the nodes after the
/// object header) is `body`, with `len` pairs.
fn object_entries<'t, 'i>(
    body: &'t [Node<'i>],
    len: usize,
) -> impl Iterator<Item = Result<(&'i str, &'t [Node<'i>]), EnvelopeError>> + 't
where
    'i: 't,
{
    let mut rest = body;
    (0..len).map(move |_| {
        let (key, after) = rest.split_first().ok_or(EnvelopeError::NotJson)?;
        let Node::String(key) = *key else {
            return Err(EnvelopeError::NotJson);
        };
        let n = span(after.first().ok_or(EnvelopeError::NotJson)?);
        if n > after.len() {
            return Err(EnvelopeError::NotJson);
        }
        let (value, tail) = after.split_at(n);
        rest = tail;
        Ok((key, value))
    })
}

/// Fields seen so far, borrowed from the tape.
#[derive(Default)]
struct Raw<'i> {
    id: Option<&'i str>,
    msg_type: Option<&'i str>,
    channel: Option<&'i str>,
    payload: Option<&'i str>,
    timestamp: Option<i64>,
    nonce: Option<Option<&'i str>>,
    signature: Option<Option<&'i str>>,
    headers: Option<Vec<(String, String)>>,
}

/// Stores `value` into `slot`, or fails if the field was already seen.
fn once<T>(slot: &mut Option<T>, name: &'static str, value: T) -> Result<(), EnvelopeError> {
    if slot.is_some() {
        return Err(EnvelopeError::DuplicateField(name));
    }
    *slot = Some(value);
    Ok(())
}

fn string<'i>(value: &[Node<'i>], name: &'static str) -> Result<&'i str, EnvelopeError> {
    match value.first() {
        Some(Node::String(s)) => Ok(s),
        _ => Err(EnvelopeError::WrongType(name)),
    }
}

/// A string that may be `null`; `null` and `""` both mean absent.
fn optional_string<'i>(
    value: &[Node<'i>],
    name: &'static str,
) -> Result<Option<&'i str>, EnvelopeError> {
    match value.first() {
        Some(Node::String(s)) => Ok((!s.is_empty()).then_some(*s)),
        Some(Node::Static(StaticNode::Null)) => Ok(None),
        _ => Err(EnvelopeError::WrongType(name)),
    }
}

fn integer(value: &[Node<'_>]) -> Result<i64, EnvelopeError> {
    match value.first() {
        Some(Node::Static(StaticNode::I64(n))) => Ok(*n),
        Some(Node::Static(StaticNode::U64(n))) => {
            i64::try_from(*n).map_err(|_| EnvelopeError::WrongType("timestamp"))
        }
        _ => Err(EnvelopeError::WrongType("timestamp")),
    }
}

fn headers(value: &[Node<'_>]) -> Result<Vec<(String, String)>, EnvelopeError> {
    let (first, body) = value
        .split_first()
        .ok_or(EnvelopeError::WrongType("headers"))?;
    let len = match *first {
        Node::Static(StaticNode::Null) => return Ok(Vec::new()),
        Node::Object { len, .. } => len,
        _ => return Err(EnvelopeError::WrongType("headers")),
    };
    if len > MAX_HEADERS {
        return Err(EnvelopeError::TooManyHeaders);
    }
    let mut out: Vec<(String, String)> = Vec::with_capacity(len);
    for entry in object_entries(body, len) {
        let (key, value) = entry?;
        let Some(Node::String(value)) = value.first() else {
            return Err(EnvelopeError::WrongType("headers"));
        };
        if key.is_empty() || key.len() > MAX_HEADER_NAME_LEN || value.len() > MAX_HEADER_VALUE_LEN {
            return Err(EnvelopeError::BadHeader);
        }
        if out.iter().any(|(k, _)| k == key) {
            return Err(EnvelopeError::DuplicateHeader);
        }
        out.push((key.to_owned(), (*value).to_owned()));
    }
    Ok(out)
}

fn is_id_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')
}

fn is_channel_char(b: u8) -> bool {
    is_id_char(b) || b == b'@'
}

fn valid(s: &str, max: usize, ok: fn(u8) -> bool) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(ok)
}

fn from_nodes(nodes: &[Node<'_>]) -> Result<Envelope, EnvelopeError> {
    let (first, body) = nodes.split_first().ok_or(EnvelopeError::NotJson)?;
    let Node::Object { len, .. } = *first else {
        return Err(EnvelopeError::NotObject);
    };
    let mut raw = Raw::default();
    for entry in object_entries(body, len) {
        let (key, value) = entry?;
        match key {
            "id" => once(&mut raw.id, "id", string(value, "id")?)?,
            "type" => once(&mut raw.msg_type, "type", string(value, "type")?)?,
            "channel" => once(&mut raw.channel, "channel", string(value, "channel")?)?,
            "payload" => once(&mut raw.payload, "payload", string(value, "payload")?)?,
            "timestamp" => once(&mut raw.timestamp, "timestamp", integer(value)?)?,
            "nonce" => once(&mut raw.nonce, "nonce", optional_string(value, "nonce")?)?,
            "signature" => {
                let v = optional_string(value, "signature")?;
                once(&mut raw.signature, "signature", v)?
            }
            "headers" => {
                if raw.headers.is_some() {
                    return Err(EnvelopeError::DuplicateField("headers"));
                }
                raw.headers = Some(headers(value)?);
            }
            _ => {}
        }
    }
    let id = raw.id.ok_or(EnvelopeError::MissingField("id"))?;
    let msg_type = raw.msg_type.ok_or(EnvelopeError::MissingField("type"))?;
    let channel = raw.channel.ok_or(EnvelopeError::MissingField("channel"))?;
    let payload = raw.payload.ok_or(EnvelopeError::MissingField("payload"))?;
    let timestamp = raw
        .timestamp
        .ok_or(EnvelopeError::MissingField("timestamp"))?;
    if !valid(id, MAX_ID_LEN, is_id_char) {
        return Err(EnvelopeError::BadId);
    }
    let msg_type = MsgType::parse(msg_type).ok_or(EnvelopeError::BadType)?;
    if !valid(channel, MAX_CHANNEL_LEN, is_channel_char) {
        return Err(EnvelopeError::BadChannel);
    }
    Ok(Envelope {
        id: id.to_owned(),
        msg_type,
        channel: channel.to_owned(),
        payload: payload.to_owned(),
        timestamp,
        nonce: raw.nonce.flatten().map(str::to_owned),
        signature: raw.signature.flatten().map(str::to_owned),
        headers: raw.headers.unwrap_or_default(),
    })
}

#[cfg(test)]
#[path = "envelope_tests.rs"]
mod tests;
