//! What one read produced, handled the same way for every WebSocket endpoint (agent connections
//! and the `ws-echo` compliance endpoint): consecutive data messages are handed over in runs,
//! pings are answered, a close is answered and ends the connection, and a framing violation
//! after them closes with its code (1002, 1007, 1009).

use super::Reason;
use crate::protocol::ws::{self, Incoming};
use crate::shard::ws::{Read, WsStream};
use futures_lite::{AsyncRead, AsyncWrite};
use tungstenite::protocol::frame::coding::Control;

/// A WebSocket endpoint: where data messages go, and how frames are written.
#[allow(async_fn_in_trait)]
pub(crate) trait Endpoint {
    /// The byte stream under the WebSocket.
    type Stream: AsyncRead + AsyncWrite + Unpin;

    /// The WebSocket.
    fn ws(&mut self) -> &mut WsStream<Self::Stream>;

    /// How many data messages may be handed over in one run now (at least 1 is).
    fn ahead(&mut self) -> usize {
        1
    }

    /// Consecutive data messages (`Text`/`Binary` only), in order. `Some` ends the connection.
    async fn messages(&mut self, run: Vec<Incoming>) -> Option<Reason>;

    /// Noted when a read produced at least one message (for the idle timeout).
    fn saw_traffic(&mut self) {}

    /// Writes one frame; `Err` ends the connection.
    async fn send(&mut self, frame: &[u8]) -> Result<(), ()> {
        self.ws().write_frame(frame).await.map_err(drop)
    }
}

/// Handles one read, in order. `Some(reason)` when the connection ends.
pub(crate) async fn on_read<E: Endpoint>(e: &mut E, read: Read) -> Option<Reason> {
    let (msgs, result) = match read {
        Read::Frames(msgs, result) => (msgs, result),
        Read::Eof => return Some("peer closed"),
        Read::Failed => return Some("read failed"),
    };
    if !msgs.is_empty() {
        e.saw_traffic();
    }
    let mut msgs = msgs.into_iter().peekable();
    while let Some(m) = msgs.next() {
        match m {
            data @ (Incoming::Text(_) | Incoming::Binary(_)) => {
                let ahead = e.ahead().max(1);
                let mut run = vec![data];
                while run.len() < ahead {
                    match msgs.next_if(|m| matches!(m, Incoming::Text(_) | Incoming::Binary(_))) {
                        Some(m) => run.push(m),
                        None => break,
                    }
                }
                if let Some(reason) = e.messages(run).await {
                    return Some(reason);
                }
            }
            Incoming::Ping(payload) => {
                if e.send(&ws::control(Control::Pong, &payload)).await.is_err() {
                    return Some("write failed");
                }
            }
            Incoming::Pong => {}
            Incoming::Close(close) => {
                e.ws().answer_close(close).await;
                return Some("peer closed");
            }
        }
    }
    if let Err(err) = result {
        e.ws().close(err.close_code(), err.reason()).await;
        return Some(err.reason());
    }
    None
}
