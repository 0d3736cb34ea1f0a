//! How the deployed Go agent reconnects, as a policy the tests and `aegis-loadgen` drive (sans
//! IO: they report what happened, it says what to do next).
//!
//! The agent's `internal/communication/websocket_manager.go` has two bugs this imitates:
//!
//! - **One dial, then stranded.** `reconnect()` sets `isReconnecting = true`, sleeps
//!   `reconnectDelay` (2 s at first) and dials once; the flag is reset only on success. If that
//!   dial fails (refused, handshake error), every later `reconnect()` returns at once ("Already
//!   reconnecting, skipping"): the agent never connects again until its process restarts.
//! - **An extra reconnect after any close.** When a connection ends, the read loop queues one
//!   more reconnect request, which later closes the new, healthy connection (≈ 5 s after it came
//!   up, so a cycle of ≈ 7 s); that close queues the next one, so the agent keeps cycling.

use std::time::{Duration, Instant};

/// What the agent does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Stay connected; look again at the given instant (`None`: until something happens).
    Connected(Option<Instant>),
    /// Wait until the instant, then dial.
    WaitToDial(Instant),
    /// Dial now (once).
    Dial,
    /// Close the healthy connection (the queued extra reconnect), then report [`GoReconnect::closed`].
    CloseOwn,
    /// Given up for good.
    Stranded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connected { extra_at: Option<Instant> },
    Waiting { dial_at: Instant },
    Stranded,
}

/// The deployed agent's reconnect behaviour (see the module docs).
#[derive(Debug, Clone)]
pub struct GoReconnect {
    state: State,
    /// Whether a connection ended before: the read loop then left a reconnect request queued.
    extra_queued: bool,
    /// Connections made after the first.
    pub reconnects: u32,
    /// Extra reconnects that closed a healthy connection.
    pub own_closes: u32,
}

impl GoReconnect {
    /// `reconnectDelay`: the wait before the one dial.
    pub const DELAY: Duration = Duration::from_secs(2);
    /// How long a new connection lives before the queued extra reconnect closes it.
    pub const EXTRA_AFTER: Duration = Duration::from_secs(5);

    /// An agent whose first connection is up.
    pub fn connected() -> GoReconnect {
        GoReconnect {
            state: State::Connected { extra_at: None },
            extra_queued: false,
            reconnects: 0,
            own_closes: 0,
        }
    }

    /// The connection ended (the gateway closed it, or [`Step::CloseOwn`] did).
    pub fn closed(&mut self, now: Instant) {
        if let State::Connected { .. } = self.state {
            self.state = State::Waiting {
                dial_at: now + Self::DELAY,
            };
            self.extra_queued = true;
        }
    }

    /// The outcome of the one dial (connected and authenticated, or not).
    pub fn dialled(&mut self, ok: bool, now: Instant) {
        if !matches!(self.state, State::Waiting { .. }) {
            return;
        }
        self.state = if ok {
            self.reconnects += 1;
            State::Connected {
                extra_at: self.extra_queued.then_some(now + Self::EXTRA_AFTER),
            }
        } else {
            State::Stranded
        };
    }

    /// What to do at `now`.
    pub fn next(&mut self, now: Instant) -> Step {
        match self.state {
            State::Connected { extra_at: Some(at) } if now >= at => {
                self.own_closes += 1;
                self.state = State::Connected { extra_at: None };
                Step::CloseOwn
            }
            State::Connected { extra_at } => Step::Connected(extra_at),
            State::Waiting { dial_at } if now >= dial_at => Step::Dial,
            State::Waiting { dial_at } => Step::WaitToDial(dial_at),
            State::Stranded => Step::Stranded,
        }
    }

    /// Whether the agent gave up for good.
    pub fn stranded(&self) -> bool {
        self.state == State::Stranded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_failed_dial_strands_the_agent_for_good() {
        let t = Instant::now();
        let mut r = GoReconnect::connected();
        assert_eq!(r.next(t), Step::Connected(None));
        r.closed(t);
        assert_eq!(r.next(t), Step::WaitToDial(t + GoReconnect::DELAY));
        assert_eq!(r.next(t + GoReconnect::DELAY), Step::Dial);
        r.dialled(false, t + GoReconnect::DELAY);
        assert!(r.stranded());
        // Nothing brings it back: later closes and dials are ignored.
        r.closed(t + Duration::from_secs(60));
        r.dialled(true, t + Duration::from_secs(61));
        assert_eq!(r.next(t + Duration::from_secs(3600)), Step::Stranded);
    }

    #[test]
    fn after_a_close_the_agent_closes_its_next_healthy_connection_and_keeps_cycling() {
        let t = Instant::now();
        let mut r = GoReconnect::connected();
        r.closed(t);
        let up = t + GoReconnect::DELAY;
        assert_eq!(r.next(up), Step::Dial);
        r.dialled(true, up);
        let extra = up + GoReconnect::EXTRA_AFTER;
        assert_eq!(r.next(up), Step::Connected(Some(extra)));
        assert_eq!(r.next(extra), Step::CloseOwn);
        r.closed(extra);
        assert_eq!(r.next(extra + GoReconnect::DELAY), Step::Dial);
        r.dialled(true, extra + GoReconnect::DELAY);
        assert_eq!(
            r.next(extra + GoReconnect::DELAY),
            Step::Connected(Some(extra + GoReconnect::DELAY + GoReconnect::EXTRA_AFTER))
        );
        assert_eq!((r.reconnects, r.own_closes), (2, 1));
    }
}
