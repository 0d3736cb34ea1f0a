//! Server-Sent Events for `GET /api/v1/events`: framing (sans-IO) and the stream loop.
//!
//! Each event is `id: {seq}\nevent: {message_type}\ndata: {EventItem JSON}\n\n`; when the backend
//! has nothing within the wait, a `: keepalive\n\n` comment keeps proxies and clients from timing
//! out. The stream ends when the client goes away (EOF or a write error) or the backend fails;
//! the connection is then closed, never reused.
//!
//! Slow consumers: events are pulled from the backend one batch at a time and a batch is only
//! fetched once the previous one is written, so a client holds at most one batch of frames
//! (≤ [`BATCH`] events and ≤ [`MAX_BUFFERED_BYTES`] bytes, or one event if that alone is
//! larger; events past the cap are fetched again later). A client whose socket takes no byte
//! for the stall time (default [`WRITE_STALL`]) has stopped reading: the frames it has not
//! started are dropped, the frame it is in the middle of is finished, and the stream ends with
//! `event: end` whose data is `{"error":"slow_consumer","message":…,"last_event_id":N}` (N:
//! the last event it received whole; resume with `Last-Event-ID: N`). The connection is closed
//! once that is written, or after a grace time (one more stall time).

use super::api::EventItem;
use super::http::Conn;
use super::query::EventsQuery;
use super::Backend;
use crate::shard::rt::with_deadline;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use std::time::{Duration, Instant};

/// Most events asked of the backend per call (and held for one client).
pub const BATCH: usize = 256;
/// Most bytes of frames held for one client (at least one event is always held).
pub const MAX_BUFFERED_BYTES: usize = 256 * 1024;
/// A socket that takes no byte for this long means the client stopped reading (less than the
/// admin socket write timeout, so that the end event is tried first).
pub const WRITE_STALL: Duration = Duration::from_secs(5);
/// The `error` of the end event of a client that stopped reading.
pub const SLOW_CONSUMER: &str = "slow_consumer";
/// The comment written when no event arrived within the wait.
pub const KEEPALIVE: &[u8] = b": keepalive\n\n";

/// The response head of an event stream (no length: the body ends when the connection closes).
pub const HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
Cache-Control: no-cache\r\nConnection: close\r\nX-Accel-Buffering: no\r\n\r\n";

/// Appends the frame of `ev` to `out`. Line breaks in `message_type` are dropped (they would end
/// the field); the JSON `data` never holds a raw line break.
pub fn frame(ev: &EventItem, out: &mut Vec<u8>) {
    out.extend_from_slice(format!("id: {}\n", ev.seq).as_bytes());
    let kind: String = ev
        .message_type
        .chars()
        .filter(|c| !matches!(c, '\r' | '\n'))
        .collect();
    if !kind.is_empty() {
        out.extend_from_slice(format!("event: {kind}\n").as_bytes());
    }
    out.extend_from_slice(b"data: ");
    if serde_json::to_writer(&mut *out, ev).is_err() {
        out.extend_from_slice(b"{}");
    }
    out.extend_from_slice(b"\n\n");
}

/// The frame of a backend error that ends the stream.
pub fn error_frame(err: &super::ApiError) -> Vec<u8> {
    let mut out = b"event: error\ndata: ".to_vec();
    out.extend_from_slice(err.body().to_string().as_bytes());
    out.extend_from_slice(b"\n\n");
    out
}

/// The tunables of an event stream.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long each backend call may wait for new events (15 s in production).
    pub wait: Duration,
    /// No progress writing for this long: a slow consumer. Default = [`WRITE_STALL`].
    pub stall: Duration,
    /// How long the end event of a slow consumer may take to write. Default = [`WRITE_STALL`].
    pub grace: Duration,
    /// Bytes of frames held at once. Default = [`MAX_BUFFERED_BYTES`].
    pub max_bytes: usize,
}

/// The frame that ends the stream of a client that stopped reading; `last` is the seq of the
/// last event it was sent whole.
pub fn end_frame(last: u64) -> Vec<u8> {
    let data = serde_json::json!({
        "error": SLOW_CONSUMER,
        "message": format!("the client stopped reading; the stream ends here. Reconnect with \
            Last-Event-ID: {last} to resume"),
        "last_event_id": last,
    });
    format!("event: end\ndata: {data}\n\n").into_bytes()
}

/// Streams events after `q.after` matching `q.pattern` until the client goes away.
pub async fn stream<B: Backend, S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    backend: &B,
    q: EventsQuery,
    limits: Limits,
) {
    if write(conn, HEAD, limits.stall).await.is_err() {
        return;
    }
    let mut after = q.after;
    let mut limit = BATCH;
    let mut out = Vec::new();
    // (end offset in `out`, seq) of each frame of the batch being written.
    let mut ends: Vec<(usize, u64)> = Vec::new();
    loop {
        let next = backend.next_events(after, &q.pattern, limit, limits.wait);
        let gone = client_gone(conn);
        let Some(result) = futures_lite::future::or(async { Some(next.await) }, async {
            gone.await;
            None
        })
        .await
        else {
            return;
        };
        let events = match result {
            Ok(events) => events,
            Err(e) => {
                let _ = write(conn, &error_frame(&e), limits.stall).await;
                return;
            }
        };
        out.clear();
        ends.clear();
        let before = after;
        for ev in &events {
            if !ends.is_empty() && out.len() >= limits.max_bytes {
                break;
            }
            frame(ev, &mut out);
            after = after.max(ev.seq);
            ends.push((out.len(), after));
        }
        // Ask for fewer events while they are large, more again once they fit.
        limit = if ends.len() < events.len() {
            ends.len().max(1)
        } else {
            (limit * 2).min(BATCH)
        };
        drop(events);
        if ends.is_empty() {
            out.extend_from_slice(KEEPALIVE);
        }
        match write(conn, &out, limits.stall).await {
            Ok(()) => {}
            Err(Stop::Gone) => return,
            Err(Stop::Stalled(written)) => {
                // Finish the frame the client is in (its start is on the wire), then end.
                let (rest_end, last) = resume_point(&ends, written, before, out.len());
                let mut tail = out.get(written..rest_end).unwrap_or_default().to_vec();
                tail.extend_from_slice(&end_frame(last));
                tracing::info!(last, "admin event stream: slow consumer dropped");
                let _ = write(conn, &tail, limits.grace).await;
                return;
            }
        }
    }
}

/// After `written` bytes of a batch framed as `ends` (end offset, seq; `before` is the seq the
/// batch follows): where the frame the client is in ends, and the last seq it will have whole.
fn resume_point(ends: &[(usize, u64)], written: usize, before: u64, len: usize) -> (usize, u64) {
    if ends.is_empty() {
        return (len, before); // a keepalive comment
    }
    let (mut start, mut last) = (0, before);
    for &(end, seq) in ends {
        if end > written {
            return if start < written {
                (end, seq)
            } else {
                (written, last)
            };
        }
        (start, last) = (end, seq);
    }
    (written, last)
}

/// Why writing stopped.
enum Stop {
    /// The client closed or the socket failed.
    Gone,
    /// No byte was taken for the stall time; this many bytes had been written.
    Stalled(usize),
}

/// Resolves when the client closes its side or the socket fails. Bytes a client sends on an
/// event stream are ignored.
async fn client_gone<S: AsyncRead + AsyncWrite + Unpin>(conn: &mut Conn<S>) {
    let mut scratch = [0u8; 512];
    while let Ok(n) = conn.stream.read(&mut scratch).await {
        if n == 0 {
            return;
        }
    }
}

/// Writes all of `bytes`, failing with [`Stop::Stalled`] when the socket takes nothing for
/// `stall`.
async fn write<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    bytes: &[u8],
    stall: Duration,
) -> Result<(), Stop> {
    let mut written = 0;
    while let Some(rest) = bytes.get(written..).filter(|r| !r.is_empty()) {
        match with_deadline(Instant::now() + stall, conn.stream.write(rest)).await {
            None => return Err(Stop::Stalled(written)),
            Some(Ok(0)) | Some(Err(_)) => return Err(Stop::Gone),
            Some(Ok(n)) => written += n,
        }
    }
    match with_deadline(Instant::now() + stall, conn.stream.flush()).await {
        Some(Ok(())) => Ok(()),
        None => Err(Stop::Stalled(written)),
        Some(Err(_)) => Err(Stop::Gone),
    }
}
