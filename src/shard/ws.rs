//! A WebSocket over any byte stream (plain TCP or TLS), with no buffer owned per connection.
//!
//! Reads go through one 64 KiB buffer per shard thread, borrowed only inside `poll_read` (never
//! across an await): the bytes read are decoded at once by [`Decoder`], which copies out whole
//! messages and keeps only the bytes of an incomplete frame. Writes build each frame in a `Vec`
//! that lives while it is written. An idle connection therefore holds its socket, the decoder's
//! empty state, and nothing else (DESIGN §1, the 4 KiB budget).
//!
//! Reading is cancel-safe: a read future dropped before it completes has read nothing, so the
//! connection task can race it against commands and timers.

use crate::protocol::ws::{self, Decoder, Incoming, WsError};
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use std::cell::RefCell;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;
use tungstenite::protocol::frame::coding::Control;

/// Size of the per-shard read buffer.
const READ_CHUNK: usize = 64 * 1024;

/// How long a close handshake may take before the socket is dropped anyway.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

thread_local! {
    /// The shard's read buffer (one executor per thread).
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; READ_CHUNK].into_boxed_slice());
}

/// What one read produced.
pub(super) enum Read {
    /// Messages and control frames decoded from the bytes read (maybe none: a partial frame),
    /// then `Err` if the peer broke the framing after them.
    Frames(Vec<Incoming>, Result<(), WsError>),
    /// The peer closed the TCP stream.
    Eof,
    /// The transport failed.
    Failed,
}

/// A server-side WebSocket over `S`.
pub(super) struct WsStream<S> {
    stream: S,
    decoder: Decoder,
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    /// Wraps an upgraded stream; `max_message` bounds frames and messages.
    pub(super) fn new(stream: S, max_message: usize) -> Self {
        WsStream {
            stream,
            decoder: Decoder::new(max_message),
        }
    }

    /// Decodes bytes already read past the upgrade request.
    pub(super) fn feed(&mut self, bytes: &[u8]) -> Read {
        let mut out = Vec::new();
        let r = self.decoder.feed(bytes, &mut out);
        Read::Frames(out, r)
    }

    /// Waits for bytes from the peer and decodes them.
    pub(super) async fn read(&mut self) -> Read {
        std::future::poll_fn(|cx| {
            SCRATCH.with(|scratch| {
                let mut scratch = scratch.borrow_mut();
                match Pin::new(&mut self.stream).poll_read(cx, &mut scratch) {
                    Poll::Pending => Poll::Pending,
                    Poll::Ready(Ok(0)) => Poll::Ready(Read::Eof),
                    Poll::Ready(Ok(n)) => {
                        let mut out = Vec::new();
                        let r = self.decoder.feed(&scratch[..n], &mut out);
                        Poll::Ready(Read::Frames(out, r))
                    }
                    Poll::Ready(Err(_)) => Poll::Ready(Read::Failed),
                }
            })
        })
        .await
    }

    /// Writes one already-encoded frame and flushes it (TLS needs the flush).
    pub(super) async fn write_frame(&mut self, frame: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(frame).await?;
        self.stream.flush().await
    }

    /// Answers the peer's close frame with the same code (RFC 6455 §5.5.1), then closes the
    /// stream.
    pub(super) async fn answer_close(&mut self, close: Option<(u16, String)>) {
        let frame = match close {
            Some((code, reason)) => ws::close_frame(code, &reason),
            None => ws::encode(
                tungstenite::protocol::frame::coding::OpCode::Control(Control::Close),
                &[],
            ),
        };
        self.finish(&frame, false).await;
    }

    /// Closes with `code`: sends the close frame, waits (briefly) for the peer's answer so
    /// the frame is read before the socket goes, then closes the stream. The answer ends the
    /// wait at once, also after a framing violation (the decoder still follows the framing to
    /// find it); a peer whose close was already read is not waited for.
    pub(super) async fn close(&mut self, code: u16, reason: &str) {
        self.finish(&ws::close_frame(code, reason), true).await;
    }

    async fn finish(&mut self, frame: &[u8], await_answer: bool) {
        let _ = futures_lite::future::or(
            async {
                if self.write_frame(frame).await.is_ok() && await_answer {
                    // Drain until the peer's close (or EOF): dropping a socket with unread
                    // bytes would reset it, and the peer might lose our close frame. What is
                    // read meanwhile is dropped: the connection is over.
                    while !self.decoder.is_closed() {
                        if !matches!(self.read().await, Read::Frames(..)) {
                            break;
                        }
                    }
                }
                let _ = self.stream.close().await;
            },
            glommio::timer::sleep(CLOSE_WAIT),
        )
        .await;
    }
}

#[cfg(test)]
#[path = "ws_tests.rs"]
mod tests;
