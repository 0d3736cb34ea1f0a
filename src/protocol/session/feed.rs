//! The one way the runtime feeds received messages to a session: [`Session::feed`] each message
//! of a run (at most [`Session::parse_ahead`] of them, at least one), verify the signature checks
//! of the whole run in one batch, then [`Session::finish`] each in order with its verdict.
//!
//! An authenticated v2 session past its handshake parses ahead without changing its state (the
//! checks before the signature); every other message goes through the state machine at once
//! and, when it needs a signature, the session waits for that verdict (runs are then one
//! message long). The actions are the same as for one message after the other.

use super::steady::Parsed;
use super::{Action, Env, Session, Step, VerifyJob};
use crate::protocol::time::Now;

/// A message fed to the session, waiting for its verdict.
pub struct Fed(Kind);

// Transient (a read's worth at most): boxing the parsed variant would add an allocation per
// message.
#[allow(clippy::large_enum_variant)]
enum Kind {
    /// Parsed ahead; nothing changed in the session yet.
    Ahead(Parsed),
    /// Fed through the state machine: its actions so far, and whether it waits for a verdict.
    Stepped {
        actions: Vec<Action>,
        job: Option<VerifyJob>,
        waits: bool,
    },
}

impl Fed {
    /// The signature check this message needs, if any (once).
    pub fn take_job(&mut self) -> Option<VerifyJob> {
        match &mut self.0 {
            Kind::Ahead(p) => p.take_job(),
            Kind::Stepped { job, .. } => job.take(),
        }
    }
}

impl Session {
    /// Feeds one received message (a text or binary frame's contents). See the module docs.
    pub fn feed(&mut self, env: &Env<'_>, frame: &mut [u8], now: impl Into<Now>) -> Fed {
        let now = now.into();
        let now_ms = self.clock(now);
        if self.parse_ahead(env, now_ms) > 0 {
            return Fed(Kind::Ahead(self.parse_frame(env, frame, now_ms)));
        }
        let Step { actions, verify } = self.on_frame(env, frame, now);
        Fed(Kind::Stepped {
            actions,
            waits: verify.is_some(),
            job: verify,
        })
    }

    /// Finishes a fed message with the verdict of its signature check (`ok` is ignored when it
    /// needed none): the actions to carry out, in order.
    pub fn finish(
        &mut self,
        env: &Env<'_>,
        fed: Fed,
        ok: bool,
        now: impl Into<Now>,
    ) -> Vec<Action> {
        let now = now.into();
        let now_ms = self.clock(now);
        match fed.0 {
            Kind::Ahead(p) => self.finish_parsed(env, p, ok, now_ms),
            Kind::Stepped {
                mut actions, waits, ..
            } => {
                if waits {
                    actions.extend(self.on_verified(env, ok, now));
                }
                actions
            }
        }
    }
}
