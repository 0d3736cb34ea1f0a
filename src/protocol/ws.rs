//! RFC 6455 framing for the server side, sans IO: client bytes in, whole messages and control
//! frames out; frames out as bytes.
//!
//! tungstenite parses and formats the frame headers ([`FrameHeader`]); this module owns what
//! tungstenite would otherwise keep per connection: the message assembly. It holds no buffer
//! while a connection is idle — bytes of an incomplete frame and the fragments of an incomplete
//! message are the only state, and both are bounded by the maximum message size — so the runtime
//! can read through one per-shard buffer and an idle connection costs no buffer memory
//! (DESIGN §1).
//!
//! What the peer gets wrong maps to one close code: [`WsError::Protocol`] 1002,
//! [`WsError::Utf8`] 1007, [`WsError::TooBig`] 1009.

use crate::protocol::close;
use std::io::Cursor;
use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};
use tungstenite::protocol::frame::FrameHeader;

/// Largest payload of a control frame (RFC 6455 §5.5).
const MAX_CONTROL: usize = 125;

/// One complete thing received from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// A text message (valid UTF-8, checked).
    Text(Vec<u8>),
    /// A binary message.
    Binary(Vec<u8>),
    /// A ping with its payload (answer with a pong carrying it).
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// A close frame: its code and reason, if it had any. Nothing after it is decoded.
    Close(Option<(u16, String)>),
}

/// A framing violation by the peer; the connection must be closed with [`WsError::close_code`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    /// A frame RFC 6455 forbids (reserved bits or opcodes, unmasked, fragmented or oversize
    /// control frame, stray continuation, invalid close code…).
    #[error("protocol violation: {0}")]
    Protocol(&'static str),
    /// A text message or close reason that is not UTF-8.
    #[error("invalid UTF-8")]
    Utf8,
    /// A frame or message larger than the limit.
    #[error("message too big")]
    TooBig,
}

impl WsError {
    /// The close code for this failure.
    pub fn close_code(self) -> u16 {
        match self {
            WsError::Protocol(_) => close::PROTOCOL_ERROR,
            WsError::Utf8 => close::INVALID_PAYLOAD,
            WsError::TooBig => close::TOO_BIG,
        }
    }

    /// A short reason for the close frame and the log.
    pub fn reason(self) -> &'static str {
        match self {
            WsError::Protocol(_) => "protocol error",
            WsError::Utf8 => "invalid UTF-8",
            WsError::TooBig => "message too big",
        }
    }
}

/// A fragmented data message being assembled.
struct Fragments {
    text: bool,
    data: Vec<u8>,
    /// Bytes of `data` known to be valid UTF-8 (text only), for failing fast.
    checked: usize,
}

/// What the decoder does with further input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Decoding messages.
    Open,
    /// After a violation: frames are only delimited (payloads skipped unread, nothing held but
    /// an incomplete header) until the peer's close frame, which ends the close handshake.
    /// `skip` payload bytes of the current frame are still to come; `close` when that frame is
    /// the peer's close.
    Draining { skip: u64, close: bool },
    /// The peer's close frame was read, or the stream can no longer be framed: nothing more is
    /// decoded.
    Closed,
}

/// A frame header read without judging it (for [`State::Draining`]).
enum RawHeader {
    /// More bytes are needed.
    Incomplete,
    /// A 64-bit length with the top bit set: the framing is lost.
    Lost,
    /// A header of `size` bytes announcing `len` payload bytes.
    Frame { close: bool, size: usize, len: u64 },
}

/// Reads the opcode and the length of the frame header at the start of `buf`, whatever its
/// bits, opcode or mask say.
fn raw_header(buf: &[u8]) -> RawHeader {
    let [first, second, rest @ ..] = buf else {
        return RawHeader::Incomplete;
    };
    let (len, extra) = match second & 0x7f {
        126 => match rest.first_chunk::<2>() {
            Some(b) => (u64::from(u16::from_be_bytes(*b)), 2),
            None => return RawHeader::Incomplete,
        },
        127 => match rest.first_chunk::<8>() {
            Some(b) if b[0] & 0x80 != 0 => return RawHeader::Lost,
            Some(b) => (u64::from_be_bytes(*b), 8),
            None => return RawHeader::Incomplete,
        },
        n => (u64::from(n), 0),
    };
    let size = 2 + extra + if second & 0x80 != 0 { 4 } else { 0 };
    if buf.len() < size {
        return RawHeader::Incomplete;
    }
    RawHeader::Frame {
        close: first & 0x0f == 0x8,
        size,
        len,
    }
}

/// Per-connection decoder state.
pub struct Decoder {
    max_message: usize,
    /// Bytes of an incomplete frame (an incomplete header while draining); empty (unallocated)
    /// between frames.
    pending: Vec<u8>,
    fragments: Option<Box<Fragments>>,
    state: State,
}

impl Decoder {
    /// A decoder accepting messages (and frames) of at most `max_message` bytes.
    pub fn new(max_message: usize) -> Self {
        Decoder {
            max_message,
            pending: Vec::new(),
            fragments: None,
            state: State::Open,
        }
    }

    /// Whether no incomplete frame or message is held (the connection owns no buffer).
    pub fn is_idle(&self) -> bool {
        self.pending.capacity() == 0 && self.fragments.is_none()
    }

    /// Whether the peer's close frame has been read — decoded as [`Incoming::Close`], or, after a
    /// violation, recognised while draining — or the stream can no longer be framed (a 64-bit
    /// length with the top bit set). Either way the close handshake is over on the peer's side:
    /// no answer to a close of ours is to be awaited.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes of memory the decoder holds: the capacity of the incomplete-frame buffer plus that of
    /// the message being assembled (0 when [`Decoder::is_idle`]). For tests and the fuzz harness.
    #[doc(hidden)]
    pub fn buffered(&self) -> usize {
        self.pending.capacity() + self.fragments.as_ref().map_or(0, |f| f.data.capacity())
    }

    /// Decodes `input` (the next bytes from the client), appending every complete message and
    /// control frame to `out` in order. On a violation, what came before it is in `out` and the
    /// error is returned. After a violation nothing more is decoded: the decoder only follows
    /// the framing (holding no payload) until the peer's close frame, then
    /// [`Decoder::is_closed`]; after a close frame it ignores all input.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<Incoming>) -> Result<(), WsError> {
        if self.state == State::Closed {
            return Ok(());
        }
        let owned;
        let buf: &[u8] = if self.pending.is_empty() {
            input
        } else {
            let mut b = std::mem::take(&mut self.pending);
            b.extend_from_slice(input);
            owned = b;
            &owned
        };
        if self.state != State::Open {
            self.drain(buf);
            return Ok(());
        }
        match self.decode(buf, out) {
            Ok(used) => {
                if self.state == State::Closed {
                    self.fragments = None;
                } else if used < buf.len() {
                    // The rest is copied out, so the buffer held is the partial frame, not the read.
                    self.pending = buf[used..].to_vec();
                }
                Ok(())
            }
            Err((e, at)) => {
                // The frame that broke the rules is skipped like any other while draining (a
                // close frame ends the handshake), so the framing stays in step with the peer.
                self.fragments = None;
                self.state = State::Draining {
                    skip: 0,
                    close: false,
                };
                self.drain(buf.get(at..).unwrap_or_default());
                Err(e)
            }
        }
    }

    /// Follows the framing of `buf` after a violation, without keeping any payload.
    fn drain(&mut self, mut buf: &[u8]) {
        while let State::Draining { skip, close } = &mut self.state {
            let n = usize::try_from(*skip).unwrap_or(usize::MAX).min(buf.len());
            buf = &buf[n..];
            *skip -= u64::try_from(n).unwrap_or(*skip);
            if *skip > 0 {
                return;
            }
            if *close {
                self.state = State::Closed;
                return;
            }
            match raw_header(buf) {
                RawHeader::Incomplete => {
                    if !buf.is_empty() {
                        self.pending = buf.to_vec();
                    }
                    return;
                }
                RawHeader::Lost => self.state = State::Closed,
                RawHeader::Frame {
                    close: is_close,
                    size,
                    len,
                } => {
                    buf = &buf[size..];
                    *skip = len;
                    *close = is_close;
                }
            }
        }
    }

    /// Decodes the complete frames at the start of `buf`; returns how many bytes they took, or
    /// the violation and where the frame that caused it starts.
    fn decode(&mut self, buf: &[u8], out: &mut Vec<Incoming>) -> Result<usize, (WsError, usize)> {
        let mut pos = 0;
        while self.state == State::Open {
            let rest = &buf[pos..];
            let mut cursor = Cursor::new(rest);
            let parsed = FrameHeader::parse(&mut cursor)
                .map_err(|_| (WsError::Protocol("invalid frame header"), pos))?;
            let Some((header, len)) = parsed else {
                break;
            };
            self.check_header(&header, len).map_err(|e| (e, pos))?;
            // Both fit: the header was read from `rest`, and `len` ≤ the message limit.
            let start = usize::try_from(cursor.position()).unwrap_or(usize::MAX);
            let len = usize::try_from(len).unwrap_or(usize::MAX);
            let Some(payload) = rest.get(start..).and_then(|p| p.get(..len)) else {
                break;
            };
            self.frame(&header, payload, out).map_err(|e| (e, pos))?;
            pos += start + len;
        }
        Ok(pos)
    }

    /// Every rule a frame's header alone can break, checked before any of its payload is
    /// buffered: a peer cannot make the gateway hold a frame it will refuse.
    fn check_header(&self, header: &FrameHeader, len: u64) -> Result<(), WsError> {
        let max = u64::try_from(self.max_message).unwrap_or(u64::MAX);
        if header.rsv1 || header.rsv2 || header.rsv3 {
            return Err(WsError::Protocol("reserved bits set"));
        }
        if header.mask.is_none() {
            return Err(WsError::Protocol("unmasked client frame"));
        }
        if len >> 63 != 0 {
            // RFC 6455 §5.2: the most significant bit of a 64-bit length must be 0.
            return Err(WsError::Protocol("64-bit length with the top bit set"));
        }
        match (header.opcode, self.fragments.as_ref()) {
            (OpCode::Control(_), _) if !header.is_final => {
                Err(WsError::Protocol("fragmented control frame"))
            }
            (OpCode::Control(_), _) if len > MAX_CONTROL as u64 => {
                Err(WsError::Protocol("control frame too long"))
            }
            (OpCode::Data(Data::Continue), None) => {
                Err(WsError::Protocol("continuation without a message"))
            }
            (OpCode::Data(Data::Continue), Some(f))
                if u64::try_from(f.data.len())
                    .map_or(true, |held| held.saturating_add(len) > max) =>
            {
                Err(WsError::TooBig)
            }
            (OpCode::Data(Data::Text | Data::Binary), Some(_)) => {
                Err(WsError::Protocol("new message inside a fragmented one"))
            }
            _ if len > max => Err(WsError::TooBig),
            _ => Ok(()),
        }
    }

    /// Handles one complete frame (its header passed [`Decoder::check_header`]) whose masked
    /// payload is `masked`.
    fn frame(
        &mut self,
        header: &FrameHeader,
        masked: &[u8],
        out: &mut Vec<Incoming>,
    ) -> Result<(), WsError> {
        let Some(mask) = header.mask else {
            return Err(WsError::Protocol("unmasked client frame"));
        };
        let unmasked = || {
            let mut v = masked.to_vec();
            apply_mask(&mut v, mask);
            v
        };
        let fin = header.is_final;
        match header.opcode {
            OpCode::Control(ctl) => match ctl {
                Control::Ping => out.push(Incoming::Ping(unmasked())),
                Control::Pong => out.push(Incoming::Pong),
                Control::Close => {
                    out.push(Incoming::Close(parse_close(&unmasked())?));
                    self.state = State::Closed;
                }
                Control::Reserved(_) => return Err(WsError::Protocol("reserved opcode")),
            },
            OpCode::Data(Data::Continue) => {
                let Some(f) = self.fragments.as_mut() else {
                    return Err(WsError::Protocol("continuation without a message"));
                };
                let at = f.data.len();
                f.data.extend_from_slice(masked);
                apply_mask(&mut f.data[at..], mask);
                if f.text {
                    check_utf8(f, fin)?;
                }
                if fin {
                    if let Some(f) = self.fragments.take() {
                        out.push(if f.text {
                            Incoming::Text(f.data)
                        } else {
                            Incoming::Binary(f.data)
                        });
                    }
                }
            }
            OpCode::Data(data @ (Data::Text | Data::Binary)) => {
                let text = data == Data::Text;
                let payload = unmasked();
                if fin {
                    if text && std::str::from_utf8(&payload).is_err() {
                        return Err(WsError::Utf8);
                    }
                    out.push(if text {
                        Incoming::Text(payload)
                    } else {
                        Incoming::Binary(payload)
                    });
                } else {
                    let mut f = Box::new(Fragments {
                        text,
                        data: payload,
                        checked: 0,
                    });
                    if text {
                        check_utf8(&mut f, false)?;
                    }
                    self.fragments = Some(f);
                }
            }
            OpCode::Data(Data::Reserved(_)) => return Err(WsError::Protocol("reserved opcode")),
        }
        Ok(())
    }
}

/// Checks the unchecked tail of a fragmented text message: an invalid sequence fails at once,
/// an incomplete one at the end is fine until the final fragment.
fn check_utf8(f: &mut Fragments, fin: bool) -> Result<(), WsError> {
    match std::str::from_utf8(&f.data[f.checked..]) {
        Ok(_) => {
            f.checked = f.data.len();
            Ok(())
        }
        Err(e) if e.error_len().is_none() && !fin => {
            f.checked += e.valid_up_to();
            Ok(())
        }
        Err(_) => Err(WsError::Utf8),
    }
}

/// The code and reason of a close frame's payload.
fn parse_close(payload: &[u8]) -> Result<Option<(u16, String)>, WsError> {
    match payload {
        [] => Ok(None),
        [_] => Err(WsError::Protocol("close frame of one byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !CloseCode::from(code).is_allowed() {
                return Err(WsError::Protocol("invalid close code"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| WsError::Utf8)?;
            Ok(Some((code, reason.to_string())))
        }
    }
}

/// XORs `buf` with the 4-byte client mask (RFC 6455 §5.3), eight bytes at a time.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for c in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        c.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i & 3];
    }
}

/// A complete unmasked server frame (header + payload).
pub fn encode(opcode: OpCode, payload: &[u8]) -> Vec<u8> {
    let header = FrameHeader {
        is_final: true,
        opcode,
        mask: None,
        ..FrameHeader::default()
    };
    let len = payload.len() as u64;
    let mut out = Vec::with_capacity(header.len(len) + payload.len());
    // Formatting into a Vec cannot fail.
    let _ = header.format(len, &mut out);
    out.extend_from_slice(payload);
    out
}

/// A text frame.
pub fn text(payload: &[u8]) -> Vec<u8> {
    encode(OpCode::Data(Data::Text), payload)
}

/// A close frame with `code` and `reason` (cut to the 123 bytes a control frame leaves, at a
/// character boundary).
pub fn close_frame(code: u16, reason: &str) -> Vec<u8> {
    let mut cut = reason.len().min(MAX_CONTROL - 2);
    while !reason.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut payload = Vec::with_capacity(2 + cut);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..cut]);
    encode(OpCode::Control(Control::Close), &payload)
}

/// A control frame (ping or pong) with `payload` (at most 125 bytes; longer is cut).
pub fn control(ctl: Control, payload: &[u8]) -> Vec<u8> {
    encode(
        OpCode::Control(ctl),
        &payload[..payload.len().min(MAX_CONTROL)],
    )
}

#[cfg(test)]
#[path = "ws_tests.rs"]
mod tests;
