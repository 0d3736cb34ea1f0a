//! Server-Sent Events for `GET /api/v1/events`: framing (sans-IO) and the stream loop.
//!
//! Each event is `id: {seq}\nevent: {message_type}\ndata: {EventItem JSON}\n\n`; when the backend
//! has nothing within the wait, a `: keepalive\n\n` comment keeps proxies and clients from timing
//! out. The stream ends when the client goes away (EOF, a write error or a stalled write) or the
//! backend fails; the connection is then closed, never reused.

use super::api::EventItem;
use super::http::Conn;
use super::query::EventsQuery;
use super::Backend;
use crate::shard::rt::with_deadline;
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite};
use std::time::{Duration, Instant};

/// Events asked of the backend per call.
pub const BATCH: usize = 256;
/// A write that does not complete in this time means the client stopped reading.
pub const WRITE_STALL: Duration = Duration::from_secs(10);
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

/// Streams events after `q.after` matching `q.pattern` until the client goes away; `wait` is how
/// long each backend call may wait for new events (15 s in production).
pub async fn stream<B: Backend, S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    backend: &B,
    q: EventsQuery,
    wait: Duration,
) {
    if write(conn, HEAD).await.is_err() {
        return;
    }
    let mut after = q.after;
    let mut out = Vec::new();
    loop {
        let next = backend.next_events(after, &q.pattern, BATCH, wait);
        let gone = client_gone(conn);
        let Some(result) = futures_lite::future::or(async { Some(next.await) }, async {
            gone.await;
            None
        })
        .await
        else {
            return;
        };
        out.clear();
        let events = match result {
            Ok(events) => events,
            Err(e) => {
                let _ = write(conn, &error_frame(&e)).await;
                return;
            }
        };
        if events.is_empty() {
            out.extend_from_slice(KEEPALIVE);
        }
        for ev in &events {
            frame(ev, &mut out);
            after = after.max(ev.seq);
        }
        if write(conn, &out).await.is_err() {
            return;
        }
    }
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

async fn write<S: AsyncRead + AsyncWrite + Unpin>(
    conn: &mut Conn<S>,
    bytes: &[u8],
) -> Result<(), ()> {
    match with_deadline(Instant::now() + WRITE_STALL, conn.write_all(bytes)).await {
        Some(Ok(())) => Ok(()),
        _ => Err(()),
    }
}
