//! Durable command delivery on one connection (PROTOCOL §7): the agent's queue is written when
//! the handshake ends, commands from the shard as they come, overdue v2 commands again after
//! `ACK_TIMEOUT`; every write of a queued command is recorded as an attempt first. Frames are
//! written within a deadline, so a peer that stops reading is cut off.

use super::{Conn, DeliverReply};
use crate::metrics::Delivery;
use crate::protocol::session::Profile;
use crate::protocol::ws;
use crate::shard::now_ms;
use crate::store::{Command, DeliverError};
use futures_lite::{AsyncRead, AsyncWrite};
use std::rc::Rc;
use std::time::Duration;

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// `ACK_TIMEOUT` in milliseconds.
    pub(super) fn ack_timeout_ms(&self) -> i64 {
        i64::try_from(self.ctx.shared.config.ack_timeout.as_millis()).unwrap_or(i64::MAX)
    }

    /// Writes every pending queued command of this (registered) agent, in queue order.
    pub(super) async fn flush_queue(&mut self) {
        if !self.session.is_registered() {
            return;
        }
        let ctx = Rc::clone(&self.ctx);
        let pending = ctx
            .shared
            .fleet
            .pending(self.session.ident(), now_ms() / 1000)
            .await;
        let pending = match pending {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "pending commands not read");
                return;
            }
        };
        for q in pending {
            if let Some(cmd) = Command::of_queued(&q) {
                self.write_command(cmd, None).await;
            }
        }
    }

    /// v2: writes again the commands whose ack is overdue; fails those out of attempts.
    pub(super) async fn retry_overdue(&mut self) {
        if self.outbox.is_empty() || self.session.profile() != Profile::V2 {
            return;
        }
        let ctx = Rc::clone(&self.ctx);
        let fleet = &*ctx.shared.fleet;
        let uid = self.session.ident();
        let (again, t) = self
            .outbox
            .overdue(fleet, uid, self.ack_timeout_ms(), crate::shard::now())
            .await;
        ctx.metrics.delivery(Delivery::Failed, t.failed);
        for cmd in again {
            ctx.metrics.delivery(Delivery::Retried, 1);
            self.write_command(cmd, None).await;
        }
    }

    /// Writes a command. A queued command (seq ≠ 0) of a registered agent is written once per
    /// connection unless retried, and each write is recorded as an attempt first.
    pub(super) async fn write_command(&mut self, cmd: Command, reply: Option<DeliverReply>) {
        let clock = crate::shard::now();
        let now = clock.unix_ms;
        let ctx = Rc::clone(&self.ctx);
        let durable = cmd.seq != 0 && self.session.is_registered();
        let mut attempt = None;
        if durable {
            // Already written on this connection and awaiting confirmation (a retry is taken
            // out of the outbox before it is written again).
            if self.outbox.contains(cmd.seq) {
                if let Some(r) = reply {
                    let _ = r.send(Ok(()));
                }
                return;
            }
            let fleet = &*ctx.shared.fleet;
            attempt = self
                .outbox
                .begin_attempt(fleet, self.session.ident(), &cmd, self.conn_id, now)
                .await;
            if attempt.is_none() {
                if let Some(r) = reply {
                    let _ = r.send(Err(DeliverError::NotPending));
                }
                return;
            }
        }
        let frame = self.session.command_frame(
            &ctx.env(),
            &cmd.message_id,
            cmd.kind,
            cmd.msg_type,
            &cmd.message_json,
            now,
        );
        let result = match frame {
            None => Err(DeliverError::NotConnected),
            Some(text) => match self.send(&ws::text(text.as_bytes())).await {
                Ok(()) => Ok(()),
                Err(()) => Err(DeliverError::Closed),
            },
        };
        ctx.metrics.message_out(cmd.kind, result.is_ok());
        if let (Ok(()), Some(a)) = (&result, attempt) {
            ctx.metrics.delivery(Delivery::Sent, 1);
            self.outbox.written(cmd, a, clock.mono_ms);
        }
        if let Some(r) = reply {
            let _ = r.send(result);
        }
    }

    /// Writes one frame within the write deadline. A peer that does not read (a full socket
    /// buffer for longer than the deadline) is a slow consumer: the write fails and the
    /// connection ends, so a stalled agent never pins memory or a task; its unconfirmed commands
    /// go back to the durable queue.
    pub(super) async fn send(&mut self, frame: &[u8]) -> Result<(), ()> {
        let deadline = write_deadline(&self.ctx.shared.config);
        let ws = &mut self.ws;
        let sent = futures_lite::future::or(async { Some(ws.write_frame(frame).await) }, async {
            glommio::timer::sleep(deadline).await;
            None
        })
        .await;
        match sent {
            Some(Ok(())) => Ok(()),
            Some(Err(_)) => Err(()),
            None => {
                tracing::warn!(
                    conn = self.conn_id,
                    "slow consumer: write deadline passed, closing"
                );
                Err(())
            }
        }
    }
}

/// How long one frame may take to write: the ping interval, at most 10 s.
fn write_deadline(cfg: &crate::config::Config) -> Duration {
    cfg.ping_interval.min(Duration::from_secs(10))
}
