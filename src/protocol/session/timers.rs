//! The session's timers: the authentication timeout, the end of the handshake grace, and the
//! session expiry (PROTOCOL §3, §4). The runtime asks [`Session::next_deadline`] when to call
//! [`Session::tick`].

use super::{Action, Env, Limits, Phase, Session};
use crate::protocol::frame;
use crate::protocol::ErrorKind;

impl Session {
    /// Advances timers: auth timeout, end of the handshake grace, session expiry.
    pub fn tick(&mut self, env: &Env<'_>, now_ms: i64) -> Vec<Action> {
        let mut out = Vec::new();
        match self.phase {
            Phase::Closed => {}
            Phase::AwaitAuth => {
                if self.deferred.is_none() && now_ms - self.created_ms >= env.limits.auth_timeout_ms
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
                if now_ms >= self.close_at_ms {
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
                    && now_ms - self.last_reply_ms >= env.limits.handshake_grace_ms
                {
                    self.end_handshake(&mut out);
                }
            }
        }
        out
    }

    /// The next instant (ms) at which [`Session::tick`] has something to do.
    pub fn next_deadline(&self, limits: &Limits) -> Option<i64> {
        match self.phase {
            Phase::Closed => None,
            Phase::AwaitAuth => Some(self.created_ms + limits.auth_timeout_ms),
            Phase::Authed => {
                let mut d = self.close_at_ms;
                if !self.handshake_over && self.committing.is_none() {
                    d = d.min(self.last_reply_ms + limits.handshake_grace_ms);
                }
                Some(d)
            }
        }
    }
}
