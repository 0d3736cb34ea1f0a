//! The `ws_frames` target: [`Decoder`] (`protocol::ws`) on a byte stream built from pieces —
//! messages, control and close frames of the masking client encoder in [`client`] (fragmented at
//! chosen sizes, control frames interleaved), frame headers with arbitrary fields and length
//! forms, raw bytes — under one of a few message limits. Invariants:
//!
//! - nothing panics;
//! - the stream fed whole, split at points the input chooses, and byte by byte (streams of at
//!   most [`BYTEWISE_MAX`] bytes) gives the same messages and the same result;
//! - after an `Err` or a `Close`, further input yields nothing (and `Ok`); once
//!   [`Decoder::is_closed`], it stays so and nothing more is decoded; a decoded `Close` or a
//!   64-bit length with the top bit set closes it, a well-formed stream without a close does not;
//! - every `Text` is UTF-8; no message is longer than the limit, no ping payload longer than
//!   125 bytes; a `Close` is last, carries an allowed code and a reason of at most 123 bytes;
//! - the memory the decoder holds ([`Decoder::buffered`]) is bounded by the limit and the
//!   largest single feed, never by the length of the stream;
//! - round trip: the messages of the well-formed pieces before the first malformed one decode
//!   to exactly those messages (all of the stream when every piece is well formed, the decoder
//!   then idle unless it ended with a close);
//! - the server encoders (`text`, `encode`, `control`, `close_frame`) write strictly valid
//!   unmasked frames that, masked by a client, decode back to the message; `apply_mask` equals the
//!   bytewise XOR.

pub mod client;

use aegis_gateway::protocol::ws::{self, Decoder, Incoming, WsError};
use arbitrary::Arbitrary;
use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use client::LenForm;

/// The message limits a run picks from (`Decoder::new`).
pub const LIMITS: [usize; 10] = [0, 1, 2, 7, 64, 125, 126, 1000, 65_535, 1 << 20];
/// Streams at most this long are also fed one byte at a time.
pub const BYTEWISE_MAX: usize = 512;
/// Most pieces used from one input.
const MAX_PIECES: usize = 64;
/// Most split points used from one input.
const MAX_CUTS: usize = 16;
/// Largest frame header (2 + 8 length bytes + 4 mask bytes).
const MAX_HEADER: usize = 14;
/// Largest control frame payload.
const MAX_CONTROL: usize = 125;

/// One fuzz input.
#[derive(Arbitrary, Debug, Clone)]
pub struct Input {
    /// Index into [`LIMITS`].
    pub limit: u8,
    /// Split points of the stream (wrapped to its length).
    pub cuts: Vec<u16>,
    /// What the stream is made of, in order.
    pub pieces: Vec<Piece>,
}

/// A ping or a pong from the client.
#[derive(Arbitrary, Debug, Clone)]
pub enum Ctl {
    /// A ping (payload cut to the limit and 125 bytes).
    Ping(Vec<u8>, [u8; 4]),
    /// A pong (payload cut likewise).
    Pong(Vec<u8>, [u8; 4]),
}

/// Part of the stream.
#[derive(Arbitrary, Debug, Clone)]
pub enum Piece {
    /// A text message (cut to the limit at a character boundary), in fragments of `sizes`
    /// (cut anywhere, even inside a character), `between[i]` after fragment `i`.
    Text {
        /// The message.
        body: String,
        /// Fragment sizes.
        sizes: Vec<u8>,
        /// Control frames between fragments.
        between: Vec<Ctl>,
        /// Masking key.
        mask: [u8; 4],
    },
    /// A binary message (cut to the limit), fragmented likewise.
    Binary {
        /// The message.
        body: Vec<u8>,
        /// Fragment sizes.
        sizes: Vec<u8>,
        /// Control frames between fragments.
        between: Vec<Ctl>,
        /// Masking key.
        mask: [u8; 4],
    },
    /// A ping or pong on its own.
    Control(Ctl),
    /// A close frame with an allowed code (picked by `code`) and `reason` cut to what fits.
    Close {
        /// Picks the code.
        code: u16,
        /// Reason.
        reason: String,
        /// Masking key.
        mask: [u8; 4],
    },
    /// A close frame without a payload.
    EmptyClose([u8; 4]),
    /// A frame header with any bits, opcode, mask and length form, then payload bytes (masked
    /// with the header's key if it has one). Malformed as far as the model knows.
    Frame {
        /// FIN, RSV1-3 and opcode, as sent.
        first: u8,
        /// Masking key, if the mask bit is set.
        mask: Option<[u8; 4]>,
        /// Length form (0 minimal, 1 7-bit, 2 16-bit, 3 64-bit).
        form: u8,
        /// The declared length; `None`: the payload's.
        len: Option<u64>,
        /// Payload bytes that follow (whatever `len` says).
        payload: Vec<u8>,
    },
    /// Raw bytes (and a key to check `apply_mask` on them). Malformed as far as the model knows.
    Raw(Vec<u8>, [u8; 4]),
}

/// Close codes a client may send (RFC 6455 §7.4; 1012–1013 as registered with IANA).
fn allowed_code(pick: u16) -> u16 {
    const FIXED: [u16; 11] = [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
    ];
    let n = usize::from(pick) % (FIXED.len() + 2000);
    match FIXED.get(n) {
        Some(code) => *code,
        None => 3000 + (n - FIXED.len()) as u16,
    }
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut_str(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The stream and what the model expects of it.
#[derive(Debug, Default)]
pub struct Stream {
    /// The bytes.
    pub bytes: Vec<u8>,
    /// What the well-formed pieces before the first malformed one decode to.
    pub expected: Vec<Incoming>,
    /// Whether `expected` is everything: every piece was well formed, or a close came first.
    pub exact: bool,
}

/// Builds the stream of `pieces` under `limit`.
pub fn build(pieces: &[Piece], limit: usize) -> Stream {
    let mut s = Stream {
        exact: true,
        ..Stream::default()
    };
    let mut modelled = true;
    let mut closed = false;
    for piece in pieces.iter().take(MAX_PIECES) {
        let mut expected = Vec::new();
        let well_formed = push_piece(&mut s.bytes, &mut expected, piece, limit);
        if !modelled || closed {
            continue;
        }
        if !well_formed {
            modelled = false;
            s.exact = false;
            continue;
        }
        closed = expected.iter().any(|m| matches!(m, Incoming::Close(_)));
        s.expected.extend(expected);
    }
    s
}

fn push_ctl(out: &mut Vec<u8>, expected: &mut Vec<Incoming>, ctl: &Ctl, limit: usize) {
    let max = limit.min(MAX_CONTROL);
    match ctl {
        Ctl::Ping(p, mask) => {
            let p = p.get(..max).unwrap_or(p);
            client::frame(out, true, client::PING, *mask, p);
            expected.push(Incoming::Ping(p.to_vec()));
        }
        Ctl::Pong(p, mask) => {
            let p = p.get(..max).unwrap_or(p);
            client::frame(out, true, client::PONG, *mask, p);
            expected.push(Incoming::Pong);
        }
    }
}

/// Appends `piece`; pushes what it decodes to onto `expected` and returns whether it is well
/// formed (a malformed piece leaves `expected` meaningless).
fn push_piece(
    out: &mut Vec<u8>,
    expected: &mut Vec<Incoming>,
    piece: &Piece,
    limit: usize,
) -> bool {
    match piece {
        Piece::Text {
            body,
            sizes,
            between,
            mask,
        } => {
            let body = cut_str(body, limit).as_bytes();
            client::message(out, client::TEXT, *mask, body, sizes, |out, i| {
                if let Some(ctl) = between.get(i) {
                    push_ctl(out, expected, ctl, limit);
                }
            });
            expected.push(Incoming::Text(body.to_vec()));
        }
        Piece::Binary {
            body,
            sizes,
            between,
            mask,
        } => {
            let body = body.get(..limit).unwrap_or(body);
            client::message(out, client::BINARY, *mask, body, sizes, |out, i| {
                if let Some(ctl) = between.get(i) {
                    push_ctl(out, expected, ctl, limit);
                }
            });
            expected.push(Incoming::Binary(body.to_vec()));
        }
        Piece::Control(ctl) => push_ctl(out, expected, ctl, limit),
        Piece::Close { code, reason, mask } if limit >= 2 => {
            let code = allowed_code(*code);
            let reason = cut_str(reason, limit.min(MAX_CONTROL) - 2);
            let mut payload = code.to_be_bytes().to_vec();
            payload.extend_from_slice(reason.as_bytes());
            client::frame(out, true, client::CLOSE, *mask, &payload);
            expected.push(Incoming::Close(Some((code, reason.to_string()))));
        }
        Piece::Close { mask, .. } | Piece::EmptyClose(mask) => {
            client::frame(out, true, client::CLOSE, *mask, &[]);
            expected.push(Incoming::Close(None));
        }
        Piece::Frame {
            first,
            mask,
            form,
            len,
            payload,
        } => {
            out.push(*first);
            let form = [
                LenForm::Minimal,
                LenForm::Short,
                LenForm::Medium,
                LenForm::Long,
            ][usize::from(form % 4)];
            let len = len.unwrap_or(payload.len() as u64);
            client::push_len(out, if mask.is_some() { 0x80 } else { 0 }, len, form);
            match mask {
                Some(mask) => {
                    out.extend_from_slice(mask);
                    client::push_masked(out, *mask, payload);
                }
                None => out.extend_from_slice(payload),
            }
            return false;
        }
        Piece::Raw(bytes, _) => {
            out.extend_from_slice(bytes);
            return false;
        }
    }
    true
}

/// What one way of feeding the stream produced: every message, the first error, and the most
/// memory the decoder held after a feed.
#[derive(Debug, PartialEq, Eq)]
pub struct Fed {
    /// Messages in order.
    pub messages: Vec<Incoming>,
    /// The first error (every feed after it must return `Ok` and nothing).
    pub result: Result<(), WsError>,
    /// Whether the decoder ended closed (the peer's close read, or the framing lost).
    pub closed: bool,
}

/// Feeds `bytes` to a fresh decoder in the chunks between `cuts` (sorted, within the length),
/// checking after every feed that the memory held stays bounded and that nothing comes after
/// an error or a close.
pub fn feed_chunks(limit: usize, bytes: &[u8], cuts: &[usize]) -> (Fed, Decoder) {
    let mut d = Decoder::new(limit);
    let mut fed = Fed {
        messages: Vec::new(),
        result: Ok(()),
        closed: false,
    };
    let mut largest_feed = 0;
    let mut start = 0;
    for end in cuts.iter().copied().chain([bytes.len()]) {
        let chunk = bytes.get(start..end).unwrap_or_default();
        start = end;
        let closed = d.is_closed();
        let stopped = closed || fed.result.is_err() || ends_with_close(&fed.messages);
        assert_eq!(
            ends_with_close(&fed.messages),
            closed && fed.result.is_ok(),
            "a decoded close and the closed state disagree"
        );
        let mut out = Vec::new();
        let r = d.feed(chunk, &mut out);
        if stopped {
            assert!(
                out.is_empty() && r.is_ok(),
                "input after a stop: {out:?} {r:?}"
            );
        }
        if closed {
            assert!(d.is_closed(), "a closed decoder reopened");
            assert!(d.is_idle(), "a closed decoder holds memory");
        }
        if matches!(
            r,
            Err(WsError::Protocol("64-bit length with the top bit set"))
        ) {
            assert!(d.is_closed(), "the framing is lost but the decoder waits");
        }
        largest_feed = largest_feed.max(chunk.len());
        check_held(&d, limit, largest_feed);
        fed.messages.extend(out);
        if fed.result.is_ok() {
            fed.result = r;
        }
    }
    fed.closed = d.is_closed();
    assert_eq!(
        ends_with_close(&fed.messages),
        fed.closed && fed.result.is_ok(),
        "a decoded close and the closed state disagree"
    );
    (fed, d)
}

fn ends_with_close(messages: &[Incoming]) -> bool {
    matches!(messages.last(), Some(Incoming::Close(_)))
}

/// The memory bound: an incomplete frame (< header + limit bytes) in a buffer that may keep the
/// capacity of one feed plus what was pending (doubling growth: twice that), plus a message
/// being assembled (≤ limit bytes, doubling growth: twice that, at least the minimum capacity 8).
fn check_held(d: &Decoder, limit: usize, largest_feed: usize) {
    let pending = 2 * (MAX_HEADER + limit + largest_feed);
    let fragments = (2 * limit).max(8);
    assert!(
        d.buffered() <= pending + fragments,
        "decoder holds {} bytes (limit {limit}, largest feed {largest_feed})",
        d.buffered()
    );
    if d.is_idle() {
        assert_eq!(d.buffered(), 0, "an idle decoder holds memory");
    }
}

/// What every decoded sequence satisfies.
fn check_messages(fed: &Fed, limit: usize) {
    for (i, m) in fed.messages.iter().enumerate() {
        match m {
            Incoming::Text(t) => {
                assert!(std::str::from_utf8(t).is_ok(), "text is not UTF-8");
                assert!(t.len() <= limit, "text of {} bytes > {limit}", t.len());
            }
            Incoming::Binary(b) => assert!(b.len() <= limit, "binary of {} > {limit}", b.len()),
            Incoming::Ping(p) => assert!(p.len() <= MAX_CONTROL.min(limit), "ping of {}", p.len()),
            Incoming::Pong => {}
            Incoming::Close(close) => {
                assert_eq!(i + 1, fed.messages.len(), "a message after a close");
                assert_eq!(fed.result, Ok(()), "an error after a close");
                if let Some((code, reason)) = close {
                    assert!(reason.len() <= MAX_CONTROL - 2 && 2 + reason.len() <= limit);
                    assert!(
                        matches!(code, 1000..=1003 | 1007..=1013 | 3000..=4999),
                        "close code {code} accepted"
                    );
                }
            }
        }
    }
}

/// Runs one input.
pub fn run(input: &Input) {
    let limit = LIMITS[usize::from(input.limit) % LIMITS.len()];
    let stream = build(&input.pieces, limit);
    let bytes = &stream.bytes;

    let (whole, mut d) = feed_chunks(limit, bytes, &[]);
    check_messages(&whole, limit);
    if stream.exact {
        assert_eq!(whole.messages, stream.expected, "round trip");
        assert_eq!(whole.result, Ok(()), "round trip");
        if !ends_with_close(&whole.messages) {
            assert!(d.is_idle(), "complete frames leave the decoder idle");
            assert!(!whole.closed, "closed without a close frame");
        }
    } else {
        assert!(
            whole.messages.starts_with(&stream.expected),
            "the well-formed prefix decodes to {:?}, got {:?}",
            stream.expected,
            whole.messages
        );
    }
    if whole.result.is_err() || ends_with_close(&whole.messages) {
        let mut out = Vec::new();
        assert_eq!(d.feed(bytes, &mut out), Ok(()), "input after a stop");
        assert!(out.is_empty(), "input after a stop decoded to {out:?}");
    }

    let len = bytes.len();
    let mut cuts: Vec<usize> = input
        .cuts
        .iter()
        .take(MAX_CUTS)
        .map(|c| usize::from(*c) % (len + 1))
        .collect();
    cuts.sort_unstable();
    let (split, _) = feed_chunks(limit, bytes, &cuts);
    assert_eq!(split, whole, "split at {cuts:?}");
    if len <= BYTEWISE_MAX {
        let every: Vec<usize> = (1..len).collect();
        let (bytewise, _) = feed_chunks(limit, bytes, &every);
        assert_eq!(bytewise, whole, "fed byte by byte");
    }

    server_round_trip(&input.pieces);
    for piece in input.pieces.iter().take(MAX_PIECES) {
        if let Piece::Raw(raw, mask) = piece {
            check_apply_mask(raw, *mask);
        }
    }
}

/// The server encoders' frames, masked by a client, decode to what was encoded.
fn server_round_trip(pieces: &[Piece]) {
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    let mut add = |frame: Vec<u8>, mask: [u8; 4], want: Incoming| {
        let client = client::remask(&frame, mask)
            .unwrap_or_else(|e| panic!("server frame {frame:02x?} is not valid: {e}"));
        bytes.extend_from_slice(&client);
        expected.push(want);
    };
    for piece in pieces.iter().take(MAX_PIECES) {
        match piece {
            Piece::Text { body, mask, .. } => add(
                ws::text(body.as_bytes()),
                *mask,
                Incoming::Text(body.clone().into_bytes()),
            ),
            Piece::Binary { body, mask, .. } => add(
                ws::encode(OpCode::Data(Data::Binary), body),
                *mask,
                Incoming::Binary(body.clone()),
            ),
            Piece::Control(Ctl::Ping(p, mask)) => {
                let cut = p.get(..MAX_CONTROL).unwrap_or(p).to_vec();
                add(ws::control(Control::Ping, p), *mask, Incoming::Ping(cut));
            }
            Piece::Control(Ctl::Pong(p, mask)) => {
                add(ws::control(Control::Pong, p), *mask, Incoming::Pong);
            }
            Piece::Close { code, reason, mask } => {
                let code = allowed_code(*code);
                let frame = ws::close_frame(code, reason);
                let cut = cut_str(reason, MAX_CONTROL - 2);
                add(frame, *mask, Incoming::Close(Some((code, cut.to_string()))));
                break;
            }
            _ => {}
        }
    }
    let mut d = Decoder::new(1 << 20);
    let mut out = Vec::new();
    assert_eq!(d.feed(&bytes, &mut out), Ok(()), "server frames decode");
    assert_eq!(out, expected, "server frames round trip");
}

/// `apply_mask` is the bytewise XOR, at every length and starting phase, and its own inverse.
fn check_apply_mask(raw: &[u8], mask: [u8; 4]) {
    let mut fast = raw.to_vec();
    ws::apply_mask(&mut fast, mask);
    let mut slow = Vec::with_capacity(raw.len());
    client::push_masked(&mut slow, mask, raw);
    assert_eq!(fast, slow, "apply_mask differs from the bytewise XOR");
    ws::apply_mask(&mut fast, mask);
    assert_eq!(fast, raw, "apply_mask is not its own inverse");
}

#[cfg(test)]
mod tests;
