//! The session's timers, on the monotonic clock (see [`Now`]): the authentication timeout, the
//! end of the handshake grace, the session-expiry close (PROTOCOL §3, §4), the gateway's pings
//! and the idle timeout (§1). The runtime tells the session when traffic arrived
//! ([`Session::on_traffic`]), asks [`Session::next_deadline`] when to wake, and then calls
//! [`Session::tick`], which returns what is due. No timer lives outside the session, so they
//! are all tested with virtual time.

use super::{Action, Env, Limits, Phase, Session};
use crate::protocol::close;
use crate::protocol::frame;
use crate::protocol::time::Now;
use crate::protocol::ErrorKind;

impl Session {
    /// The peer sent something (any frame, a pong included): the idle timeout starts again.
    pub fn on_traffic(&mut self, now: impl Into<Now>) {
        self.clock(now);
        self.last_inbound_mono = self.mono_ms;
    }

    /// Carries out the timers that are due: the idle close, a ping, the auth timeout, the end
    /// of the handshake grace, the session expiry.
    pub fn tick(&mut self, env: &Env<'_>, now: impl Into<Now>) -> Vec<Action> {
        let now_ms = self.clock(now);
        let mono = self.mono_ms;
        let mut out = Vec::new();
        if matches!(self.phase, Phase::Closed) {
            return out;
        }
        if mono.saturating_sub(self.last_inbound_mono) >= env.limits.idle_timeout_ms {
            self.phase = Phase::Closed;
            out.push(Action::Close(close::NORMAL, "idle timeout"));
            return out;
        }
        if mono >= self.next_ping_mono {
            out.push(Action::Ping);
            self.next_ping_mono = mono.saturating_add(env.limits.ping_interval_ms.max(1));
        }
        match self.phase {
            Phase::Closed => {}
            Phase::AwaitAuth => {
                if self.deferred.is_none()
                    && mono.saturating_sub(self.created_mono) >= env.limits.auth_timeout_ms
                {
                    self.phase = Phase::Closed;
                    let f = frame::error_before_auth(
                        env.key,
                        ErrorKind::AuthenticationFailed,
                        "no authentication message within the time allowed",
                        now_ms / 1000,
                    );
                    out.push(Action::Send(f.to_json()));
                    out.push(Action::Close(
                        ErrorKind::AuthenticationFailed.code(),
                        "auth timeout",
                    ));
                }
            }
            Phase::Authed => {
                if mono >= self.close_at_mono {
                    self.fatal(
                        env,
                        &mut out,
                        ErrorKind::SessionExpired,
                        "session expired, authenticate again",
                        now_ms,
                    );
                    return out;
                }
                if !self.handshake_over
                    && self.committing.is_none()
                    && mono.saturating_sub(self.last_reply_mono) >= env.limits.handshake_grace_ms
                {
                    self.end_handshake(&mut out);
                }
            }
        }
        out
    }

    /// The next monotonic instant (ms) at which [`Session::tick`] has something to do.
    pub fn next_deadline(&self, limits: &Limits) -> Option<i64> {
        let idle = self
            .last_inbound_mono
            .saturating_add(limits.idle_timeout_ms);
        let keepalive = idle.min(self.next_ping_mono);
        match self.phase {
            Phase::Closed => None,
            Phase::AwaitAuth => {
                Some(keepalive.min(self.created_mono.saturating_add(limits.auth_timeout_ms)))
            }
            Phase::Authed => {
                let mut d = keepalive.min(self.close_at_mono);
                if !self.handshake_over && self.committing.is_none() {
                    d = d.min(
                        self.last_reply_mono
                            .saturating_add(limits.handshake_grace_ms),
                    );
                }
                Some(d)
            }
        }
    }
}
