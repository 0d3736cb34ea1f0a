//! The connection loop: it races a read, a shard command and the next timer, and hands each
//! event to the code that handles it. The work an event starts runs in a boxed future, so the
//! long-lived task future of an idle connection stays small (the per-connection memory budget).
//! Every timer (pings, idle, authentication, grace, expiry) is the session's; the loop only
//! sleeps until the earliest deadline it reports, or the outbox's next ack deadline (a far one
//! moved up to a shared grid, [`coalesced`]).

use super::frames::on_read;
use super::{Conn, Reason};
use crate::protocol::close;
use crate::protocol::session::Action;
use crate::protocol::ErrorKind;
use crate::shard::ctx::ConnCmd;
use crate::shard::ws::Read;
use crate::shard::{now, now_ms};
use futures_lite::{AsyncRead, AsyncWrite, StreamExt};
use std::rc::Rc;
use std::time::Duration;

/// Deadlines at least [`COALESCE_FROM_MS`] away are moved up to the next multiple of this on
/// the process's monotonic clock, so the pings and idle checks of a shard's thousands of
/// connections fall due together and one wake-up serves them all (a fleet's connections would
/// otherwise each wake the shard on their own, DESIGN §9).
const TIMER_GRID_MS: i64 = 250;

/// Nearer deadlines (the handshake grace, an ack retry about to fall due) keep their precision.
const COALESCE_FROM_MS: i64 = 1_000;

/// `deadline` (monotonic ms) as the loop sleeps until it, seen at `now`.
fn coalesced(deadline: i64, now: i64) -> i64 {
    if deadline == i64::MAX || deadline.saturating_sub(now) < COALESCE_FROM_MS {
        return deadline;
    }
    // Non-negative here (a monotonic time since the process started), so this rounds up.
    deadline.saturating_add(TIMER_GRID_MS - 1) / TIMER_GRID_MS * TIMER_GRID_MS
}

enum Event {
    Read(Read),
    Cmd(Option<ConnCmd>),
    Tick,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Runs the connection until it ends; returns why.
    pub(super) async fn run(&mut self, early: Read) -> Reason {
        if let Some(reason) = Box::pin(on_read(self, early)).await {
            return reason;
        }
        loop {
            let clock = now();
            let deadlines = [
                self.session.next_deadline(&self.ctx.shared.limits),
                self.outbox.next_deadline(self.ack_timeout_ms()),
            ];
            let next = deadlines.into_iter().flatten().min().unwrap_or(i64::MAX);
            let next = coalesced(next, clock.mono_ms);
            let wait = Duration::from_millis(next.saturating_sub(clock.mono_ms).max(0) as u64);
            let ev = {
                let ws = &mut self.ws;
                let rx = &mut self.rx;
                futures_lite::future::or(
                    async { Event::Read(ws.read().await) },
                    futures_lite::future::or(async { Event::Cmd(rx.next().await) }, async {
                        glommio::timer::sleep(wait).await;
                        Event::Tick
                    }),
                )
                .await
            };
            let actions: Vec<Action> = match ev {
                Event::Read(r) => match Box::pin(on_read(self, r)).await {
                    Some(reason) => return reason,
                    None => continue,
                },
                Event::Cmd(None) => return "shard gone",
                Event::Cmd(Some(cmd)) => match Box::pin(self.on_command(cmd)).await {
                    Ok(actions) => actions,
                    Err(reason) => return reason,
                },
                Event::Tick => {
                    Box::pin(self.retry_overdue()).await;
                    let ctx = Rc::clone(&self.ctx);
                    self.session.tick(&ctx.env(), now())
                }
            };
            if let Some(reason) = Box::pin(self.perform(actions)).await {
                return reason;
            }
        }
    }

    /// A command from the shard: the actions it leads to, or `Err` when the connection ends.
    async fn on_command(&mut self, cmd: ConnCmd) -> Result<Vec<Action>, Reason> {
        let now = now_ms();
        let ctx = Rc::clone(&self.ctx);
        let env = ctx.env();
        Ok(match cmd {
            ConnCmd::Replace => self.session.terminate(&env, ErrorKind::Replaced, now),
            ConnCmd::Revoke => {
                // The agent no longer exists: close 4001. Its presence is already gone.
                self.claimed = false;
                self.session
                    .terminate(&env, ErrorKind::AuthenticationFailed, now)
            }
            ConnCmd::Drain { jitter } => {
                if jitter {
                    // Spread closes over a short window so agents do not reconnect at once.
                    let spread = u64::from(crate::crypto::random::bytes::<1>()[0]) * 4;
                    glommio::timer::sleep(Duration::from_millis(spread)).await;
                }
                self.ws
                    .close(close::GOING_AWAY, "gateway shutting down")
                    .await;
                return Err("drained");
            }
            ConnCmd::Deliver(d) => {
                let (cmd, reply) = *d;
                if self.session.handshake_over() {
                    self.write_command(cmd, Some(reply)).await;
                } else {
                    self.held.push((cmd, reply));
                }
                Vec::new()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn far_deadlines_fall_on_the_grid_and_near_ones_stay() {
        // Far: rounded up to the grid, never earlier, at most one step later.
        for d in [10_001, 10_249, 10_250, 31_337] {
            let c = coalesced(d, 0);
            assert!(
                c >= d && c - d < TIMER_GRID_MS && c % TIMER_GRID_MS == 0,
                "{d} → {c}"
            );
        }
        // Two connections' pings 100 ms apart share one wake-up.
        assert_eq!(coalesced(30_010, 0), coalesced(30_110, 0));
        // Near (the handshake grace, an ack retry), and "no deadline", are left alone.
        assert_eq!(coalesced(10_999, 10_000), 10_999);
        assert_eq!(coalesced(i64::MAX, 0), i64::MAX);
    }
}
