//! The `restart` scenario's agent: lives like the deployed Go agent
//! ([`aegis_gateway::testkit::reconnect::GoReconnect`]) — heartbeats while connected; after a
//! close one dial 2 s later, stranded for good if it fails; then its extra reconnect loop.

use super::{Env, Sim};
use crate::stats::h;
use aegis_gateway::testkit::reconnect::{GoReconnect, Step};
use std::time::{Duration, Instant};

impl Sim {
    /// Until the run's deadline (or stranded): counts `returned` when the first dial after the
    /// gateway's first close succeeds (latency close → R1 in [`h::RESTART_BACK`]) and
    /// `stranded` when any dial fails (the first, or one of the extra reconnect loop's).
    pub async fn live_like_go(&mut self, env: &Env, heartbeat: Option<Duration>) {
        let mut policy = GoReconnect::connected();
        let mut first_close: Option<Instant> = None;
        while Instant::now() < env.deadline {
            let now = Instant::now();
            match policy.next(now) {
                Step::Stranded => return,
                Step::WaitToDial(at) => {
                    glommio::timer::sleep(at.min(env.deadline).saturating_duration_since(now))
                        .await;
                }
                Step::Dial => {
                    let result = self.connect(env, h::STORM_HANDSHAKE).await;
                    if let Err(e) = &result {
                        // The agent gives up for good here.
                        env.rec.error(&format!("restart_dial_{}", e.label()));
                        env.rec.count(|c| c.stranded += 1);
                        self.disconnect(env);
                        return;
                    } else if let Some(t) = first_close.filter(|_| policy.reconnects == 0) {
                        env.rec.latency(h::RESTART_BACK, t.elapsed());
                        env.rec.count(|c| c.returned += 1);
                    }
                    policy.dialled(result.is_ok(), Instant::now());
                }
                Step::CloseOwn => {
                    self.close(env).await;
                    policy.closed(Instant::now());
                }
                Step::Connected(look) => {
                    let until = look.unwrap_or(env.deadline).min(env.deadline);
                    let left = until.saturating_duration_since(now);
                    let ended = futures_lite::future::or(
                        async { Some(self.run_inner(env, heartbeat, None).await) },
                        async {
                            glommio::timer::sleep(left).await;
                            None
                        },
                    )
                    .await;
                    if let Some(r) = ended {
                        // The gateway closed (or the socket failed): as the agent's read loop.
                        if let Err(e) = r {
                            if !matches!(e, crate::ws::Fail::Closed(_) | crate::ws::Fail::Eof) {
                                env.rec.error(&e.label());
                            }
                        }
                        self.disconnect(env);
                        first_close.get_or_insert_with(Instant::now);
                        policy.closed(Instant::now());
                    }
                }
            }
        }
    }
}
