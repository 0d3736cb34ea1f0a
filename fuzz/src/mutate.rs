//! Structured mutations of envelope frames, chosen by the fuzzer: byte-level edits of the JSON
//! text, and field-level changes applied to the parsed envelope (re-serialized without any
//! validation, so the result may be an invalid envelope on purpose).

use aegis_gateway::protocol::envelope::{self, Envelope, MsgType};
use arbitrary::Arbitrary;
use base64::Engine as _;

/// Most bytes an edit may insert (keeps frames small and iterations fast).
const MAX_INSERT: usize = 64;

/// A byte-level edit of a frame's text. Positions wrap around the current length.
#[derive(Arbitrary, Debug, Clone)]
pub enum Edit {
    /// Flips bit `bit % 8` of the byte at `pos`.
    Flip {
        /// Byte position.
        pos: u16,
        /// Bit index.
        bit: u8,
    },
    /// Overwrites the byte at `pos`.
    Set {
        /// Byte position.
        pos: u16,
        /// New value.
        byte: u8,
    },
    /// Inserts bytes before `pos`.
    Insert {
        /// Byte position.
        pos: u16,
        /// Bytes to insert (at most 64 are used).
        bytes: Vec<u8>,
    },
    /// Removes up to `len` bytes from `pos`.
    Delete {
        /// Byte position.
        pos: u16,
        /// Bytes to remove.
        len: u8,
    },
    /// Cuts the frame at `pos`.
    Truncate {
        /// New length (wrapped).
        pos: u16,
    },
}

fn wrap(pos: u16, len: usize) -> usize {
    usize::from(pos) % len.max(1)
}

/// Applies `edits` in order to `frame`.
pub fn apply_edits(frame: &mut Vec<u8>, edits: &[Edit]) {
    for edit in edits.iter().take(16) {
        let len = frame.len();
        match edit {
            Edit::Flip { pos, bit } => {
                if let Some(b) = frame.get_mut(wrap(*pos, len)) {
                    *b ^= 1 << (bit % 8);
                }
            }
            Edit::Set { pos, byte } => {
                if let Some(b) = frame.get_mut(wrap(*pos, len)) {
                    *b = *byte;
                }
            }
            Edit::Insert { pos, bytes } => {
                let at = usize::from(*pos) % (len + 1);
                let take = bytes.len().min(MAX_INSERT);
                frame.splice(at..at, bytes.iter().take(take).copied());
            }
            Edit::Delete { pos, len: n } => {
                let at = wrap(*pos, len);
                let end = at.saturating_add(usize::from(*n)).min(len);
                if at < end {
                    frame.drain(at..end);
                }
            }
            Edit::Truncate { pos } => frame.truncate(usize::from(*pos) % (len + 1)),
        }
    }
}

/// A change of one envelope field.
#[derive(Arbitrary, Debug, Clone)]
pub enum FieldChange {
    /// Replaces `id`.
    Id(String),
    /// Changes one byte of `id` (kept in the id character set).
    IdByte(u8, u8),
    /// Replaces `type` with the n-th type (mod 6).
    Type(u8),
    /// Replaces `channel`.
    Channel(String),
    /// Changes one byte of `channel` (kept in the channel character set).
    ChannelByte(u8, u8),
    /// Replaces `payload` with text.
    Payload(String),
    /// Replaces `payload` with base64 of bytes.
    PayloadBytes(Vec<u8>),
    /// Flips a bit of the decoded payload (ciphertext or tag) and re-encodes it.
    PayloadBit(u16, u8),
    /// Replaces `timestamp`.
    Timestamp(i64),
    /// Adds to `timestamp`.
    TimestampDelta(i16),
    /// Replaces `nonce`.
    Nonce(Option<String>),
    /// Replaces `signature`.
    Signature(Option<String>),
    /// Flips a bit of the decoded signature and re-encodes it.
    SignatureBit(u8, u8),
    /// Sets `headers.seq` to this text.
    SeqText(String),
    /// Adds to the numeric `headers.seq`.
    SeqDelta(i8),
    /// Puts text before `headers.seq` (`+`, `0`, spaces: same number, other text).
    SeqPrefix(String),
    /// Adds or replaces a header.
    Header(String, String),
    /// Drops every header.
    ClearHeaders,
}

const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-";
const CHANNEL_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@-";

/// Replaces the byte at `pos` (wrapped) of `s` with `charset[c % len]`, keeping `s` in its
/// character set so the change reaches the checks behind the envelope shape.
fn set_byte(s: &mut String, pos: u8, c: u8, charset: &[u8]) {
    let mut bytes = std::mem::take(s).into_bytes();
    let n = bytes.len();
    if let Some(b) = bytes.get_mut(usize::from(pos) % n.max(1)) {
        *b = charset[usize::from(c) % charset.len()];
    }
    *s = String::from_utf8_lossy(&bytes).into_owned();
}

fn flip_b64(s: &str, pos: usize, bit: u8) -> Option<String> {
    let std = base64::engine::general_purpose::STANDARD;
    let mut raw = std.decode(s).ok()?;
    let n = raw.len();
    let b = raw.get_mut(pos % n.max(1))?;
    *b ^= 1 << (bit % 8);
    Some(std.encode(raw))
}

/// Applies `change` to `e`.
pub fn apply_field(e: &mut Envelope, change: &FieldChange) {
    let std = base64::engine::general_purpose::STANDARD;
    match change {
        FieldChange::Id(s) => e.id = s.clone(),
        FieldChange::IdByte(p, c) => set_byte(&mut e.id, *p, *c, ID_CHARS),
        FieldChange::Type(n) => e.msg_type = MsgType::ALL[usize::from(*n) % MsgType::ALL.len()],
        FieldChange::Channel(s) => e.channel = s.clone(),
        FieldChange::ChannelByte(p, c) => set_byte(&mut e.channel, *p, *c, CHANNEL_CHARS),
        FieldChange::Payload(s) => e.payload = s.clone(),
        FieldChange::PayloadBytes(b) => e.payload = std.encode(b),
        FieldChange::PayloadBit(p, bit) => {
            if let Some(s) = flip_b64(&e.payload, usize::from(*p), *bit) {
                e.payload = s;
            }
        }
        FieldChange::Timestamp(t) => e.timestamp = *t,
        FieldChange::TimestampDelta(d) => e.timestamp = e.timestamp.wrapping_add(i64::from(*d)),
        FieldChange::Nonce(n) => e.nonce = n.clone(),
        FieldChange::Signature(s) => e.signature = s.clone(),
        FieldChange::SignatureBit(p, bit) => {
            if let Some(s) = e
                .signature
                .as_deref()
                .and_then(|s| flip_b64(s, usize::from(*p), *bit))
            {
                e.signature = Some(s);
            }
        }
        FieldChange::SeqText(s) => e.set_header("seq", s.clone()),
        FieldChange::SeqDelta(d) => {
            let seq = e.header("seq").and_then(|s| s.parse::<i64>().ok());
            if let Some(seq) = seq {
                e.set_header("seq", seq.wrapping_add(i64::from(*d)).to_string());
            }
        }
        FieldChange::SeqPrefix(p) => {
            let seq = format!("{p}{}", e.header("seq").unwrap_or_default());
            e.set_header("seq", seq);
        }
        FieldChange::Header(k, v) => e.set_header(k, v.clone()),
        FieldChange::ClearHeaders => e.headers.clear(),
    }
}

/// How a frame is mutated.
#[derive(Arbitrary, Debug, Clone)]
pub enum Mutation {
    /// Byte edits of the text.
    Bytes(Vec<Edit>),
    /// Field changes of the parsed envelope.
    Fields(Vec<FieldChange>),
    /// Field changes, then byte edits.
    Both(Vec<FieldChange>, Vec<Edit>),
}

/// Parses a frame the way the gateway does (on a copy).
pub fn parse(frame: &[u8]) -> Option<Envelope> {
    envelope::parse(&mut frame.to_vec()).ok()
}

/// Returns the mutated copy of `frame`.
pub fn mutate(frame: &str, m: &Mutation) -> Vec<u8> {
    let fields = |changes: &[FieldChange]| -> Vec<u8> {
        match parse(frame.as_bytes()) {
            Some(mut e) => {
                for c in changes.iter().take(8) {
                    apply_field(&mut e, c);
                }
                e.to_json().into_bytes()
            }
            None => frame.as_bytes().to_vec(),
        }
    };
    match m {
        Mutation::Bytes(edits) => {
            let mut out = frame.as_bytes().to_vec();
            apply_edits(&mut out, edits);
            out
        }
        Mutation::Fields(changes) => fields(changes),
        Mutation::Both(changes, edits) => {
            let mut out = fields(changes);
            apply_edits(&mut out, edits);
            out
        }
    }
}
