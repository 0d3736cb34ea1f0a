//! The connection loop: it races a read, a shard command and the next timer, and hands each
//! event to the code that handles it. The work an event starts runs in a boxed future, so the
//! long-lived task future of an idle connection stays small (the per-connection memory budget).
//! Every timer (pings, idle, authentication, grace, expiry) is the session's; the loop only
//! sleeps until the earliest deadline it reports, or the outbox's next ack deadline.

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
