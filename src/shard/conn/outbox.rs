//! Per-connection delivery state of durable commands (PROTOCOL §7).
//!
//! A command written on this connection is *in flight* until it is confirmed: by its ack (v2), or
//! by any later verified frame on the same connection (v1). An unacked v2 command is written
//! again after `ACK_TIMEOUT`; when the connection ends, unconfirmed commands go back to the queue
//! and are sent again at once on the next connection. Every write is one attempt, bounded by the
//! command's `max_retries`; the write after the last attempt fails the command instead.

use crate::protocol::time::Now;
use crate::store::{Command, Fleet};

/// A written, unconfirmed command.
#[derive(Debug)]
pub struct InFlight {
    /// The command (to write it again).
    pub cmd: Command,
    /// When it was last written (monotonic ms).
    pub written_mono: i64,
    /// Attempts made so far (this write included).
    pub attempts: u32,
    /// Attempts allowed.
    pub max: u32,
}

/// Delivery bookkeeping of one connection of a registered agent.
#[derive(Debug, Default)]
pub struct Outbox {
    inflight: Vec<InFlight>,
}

/// Counts of what an outbox operation did (for metrics).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Confirmed.
    pub delivered: u32,
    /// Given up on.
    pub failed: u32,
    /// Returned to the queue.
    pub requeued: u32,
}

impl Outbox {
    /// Whether the command with queue seq `seq` is already in flight here.
    pub fn contains(&self, seq: u64) -> bool {
        self.inflight.iter().any(|f| f.cmd.seq == seq)
    }

    /// Whether nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.inflight.is_empty()
    }

    /// Records the attempt before a write. `None`: do not write (no longer pending, attempts
    /// exhausted — then it is marked failed — or the store refused).
    pub async fn begin_attempt(
        &mut self,
        store: &dyn Fleet,
        uid: &str,
        cmd: &Command,
        conn: u64,
        now_ms: i64,
    ) -> Option<(u32, u32)> {
        let now_s = now_ms / 1000;
        let rec = match store.record_attempt(uid, cmd, conn, now_s).await {
            Ok(Some(rec)) => rec,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(error = %e, uid, seq = cmd.seq, "attempt not recorded; command left queued");
                return None;
            }
        };
        if rec.retry_count > rec.max_retries {
            let _ = store
                .mark_failed(uid, cmd, "retry attempts exhausted", now_s)
                .await;
            return None;
        }
        Some((rec.retry_count, rec.max_retries))
    }

    /// The command was written as attempt `attempts` of `max`.
    pub fn written(&mut self, cmd: Command, (attempts, max): (u32, u32), now_mono: i64) {
        self.inflight.retain(|f| f.cmd.seq != cmd.seq);
        self.inflight.push(InFlight {
            cmd,
            written_mono: now_mono,
            attempts,
            max,
        });
    }

    /// A v2 ack for `message_id`: `true` if it confirmed a command in flight here.
    pub async fn ack(
        &mut self,
        store: &dyn Fleet,
        uid: &str,
        message_id: &str,
        now_ms: i64,
    ) -> bool {
        let Some(i) = self
            .inflight
            .iter()
            .position(|f| f.cmd.message_id == message_id)
        else {
            return false;
        };
        self.inflight.swap_remove(i);
        if let Err(e) = store.mark_delivered(uid, message_id, now_ms / 1000).await {
            tracing::warn!(error = %e, uid, message_id, "delivery not recorded");
        }
        true
    }

    /// v1: a verified frame arrived, confirming everything written before it.
    pub async fn confirm_all(&mut self, store: &dyn Fleet, uid: &str, now_ms: i64) -> Tally {
        let mut t = Tally::default();
        for f in self.inflight.drain(..) {
            if let Err(e) = store
                .mark_delivered(uid, &f.cmd.message_id, now_ms / 1000)
                .await
            {
                tracing::warn!(error = %e, uid, "delivery not recorded");
            }
            t.delivered += 1;
        }
        t
    }

    /// Earliest ack deadline (monotonic ms) of a command in flight.
    pub fn next_deadline(&self, ack_timeout_ms: i64) -> Option<i64> {
        self.inflight
            .iter()
            .map(|f| f.written_mono.saturating_add(ack_timeout_ms))
            .min()
    }

    /// v2: commands whose ack is overdue. Those with attempts left are returned to be written
    /// again; the others are marked failed.
    pub async fn overdue(
        &mut self,
        store: &dyn Fleet,
        uid: &str,
        ack_timeout_ms: i64,
        now: Now,
    ) -> (Vec<Command>, Tally) {
        let mut again = Vec::new();
        let mut t = Tally::default();
        let mut i = 0;
        while i < self.inflight.len() {
            if self.inflight[i].written_mono.saturating_add(ack_timeout_ms) > now.mono_ms {
                i += 1;
                continue;
            }
            let f = self.inflight.swap_remove(i);
            if f.attempts >= f.max {
                let _ = store
                    .mark_failed(uid, &f.cmd, "not acknowledged", now.unix_s())
                    .await;
                t.failed += 1;
            } else {
                again.push(f.cmd);
            }
        }
        (again, t)
    }

    /// The connection ended: unconfirmed commands go back to the queue (or fail when their
    /// attempts are used up).
    pub async fn close(&mut self, store: &dyn Fleet, uid: &str, now_ms: i64) -> Tally {
        let mut t = Tally::default();
        for f in self.inflight.drain(..) {
            let now_s = now_ms / 1000;
            let result = if f.attempts >= f.max {
                t.failed += 1;
                store
                    .mark_failed(
                        uid,
                        &f.cmd,
                        "connection closed after the last attempt",
                        now_s,
                    )
                    .await
                    .map(|_| ())
            } else {
                t.requeued += 1;
                store.requeue(uid, &f.cmd, now_s).await.map(|_| ())
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, uid, seq = f.cmd.seq, "requeue not recorded");
            }
        }
        t
    }
}
