//! Throughput traffic and the ping barrier: pre-signed frames written back to back, then a
//! ping whose pong proves the gateway processed everything before it.

use super::{now_s, Env, Sim};
use crate::ws::{next_incoming, Fail, Incoming};
use aegis_gateway::protocol::envelope::MsgType;
use async_tungstenite::tungstenite::Message;
use futures_util::SinkExt;
use std::time::{Duration, Instant};

/// Payload of the ping whose pong proves every earlier frame was processed.
pub const BARRIER: &[u8] = b"aegis-loadgen-barrier";
/// How long past the deadline a barrier may still be waited for.
const SETTLE_GRACE: Duration = Duration::from_secs(5);

impl Sim {
    /// `n` events sealed/signed now, for [`Sim::blast`].
    pub fn presign(&mut self, n: usize, payload: usize) -> Result<Vec<Message>, Fail> {
        let channel = format!("agent.{}.logs", self.agent.ident());
        let ts = now_s();
        let mut frames = Vec::with_capacity(n);
        for _ in 0..n {
            self.events += 1;
            let body = event_body(self.events, ts, payload);
            let frame = self
                .agent
                .message(&channel, MsgType::Event, &body, ts, Vec::new())?;
            frames.push(Message::text(frame));
        }
        Ok(frames)
    }

    /// Writes `frames` as fast as the socket takes them, then [`Sim::settle`]s.
    pub async fn blast(&mut self, env: &Env, frames: Vec<Message>) {
        let write = async {
            let ws = self.ws.as_mut().ok_or(Fail::Eof)?;
            for m in frames {
                ws.feed(m).await?;
                self.unsettled_sent += 1;
                env.rec.sent(1);
            }
            Ok::<(), Fail>(())
        };
        match crate::ws::with_timeout(settle_timeout(env), "blast", write).await {
            Ok(Ok(())) => self.settle(env).await,
            Ok(Err(e)) | Err(e) => {
                env.rec.error(&e.label());
                self.disconnect(env);
            }
        }
    }

    /// Pings and waits (up to the deadline plus 5 s) for the pong: the gateway handles a connection's
    /// frames in order, so the pong proves it processed everything written before. Then the
    /// messages written since the last barrier, less the error frames received, count as
    /// accepted. Without the pong none of them count and the agent is dropped.
    pub async fn settle(&mut self, env: &Env) {
        if self.ws.is_none() {
            return;
        }
        match crate::ws::with_timeout(settle_timeout(env), "barrier", self.settle_inner(env)).await
        {
            Ok(Ok(())) => {
                let accepted = self.unsettled_sent.saturating_sub(self.unsettled_errors);
                env.rec.count(|c| c.messages_accepted += accepted);
            }
            Ok(Err(e)) | Err(e) => {
                env.rec.error(&e.label());
                self.disconnect(env);
            }
        }
        self.unsettled_sent = 0;
        self.unsettled_errors = 0;
    }

    async fn settle_inner(&mut self, env: &Env) -> Result<(), Fail> {
        let ws = self.ws.as_mut().ok_or(Fail::Eof)?;
        ws.send(Message::Ping(BARRIER.to_vec().into())).await?;
        loop {
            let ws = self.ws.as_mut().ok_or(Fail::Eof)?;
            match next_incoming(ws).await? {
                Incoming::Pong(p) if p == BARRIER => return Ok(()),
                Incoming::Pong(_) => {}
                Incoming::Text(t) => self.on_text(env, &t).await?,
            }
        }
    }
}

/// An event body of about `payload` bytes of JSON.
pub fn event_body(seq: u64, ts: i64, payload: usize) -> Vec<u8> {
    let head = format!("{{\"source\":\"aegis-loadgen\",\"seq\":{seq},\"ts\":{ts},\"pad\":\"");
    let pad = payload.saturating_sub(head.len() + 2);
    let mut body = Vec::with_capacity(head.len() + pad + 2);
    body.extend_from_slice(head.as_bytes());
    body.resize(head.len() + pad, b'x');
    body.extend_from_slice(b"\"}");
    body
}

/// How long a barrier may be waited for: until the deadline plus a grace.
fn settle_timeout(env: &Env) -> Duration {
    env.deadline.saturating_duration_since(Instant::now()) + SETTLE_GRACE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_body_has_requested_size_and_is_json() {
        for size in [0, 10, 256, 4096] {
            let b = event_body(7, 1_700_000_000, size);
            let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
            assert_eq!(v["seq"], 7);
            if size > 80 {
                assert_eq!(b.len(), size);
            }
        }
    }
}
