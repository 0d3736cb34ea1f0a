//! Time as the sans-IO protocol code takes it: passed in, never read. Two clocks, because they
//! answer different questions: wall time (Unix milliseconds) for what the peer sees —
//! timestamps, token expiry, the ±300 s window — and a monotonic clock for the session's own
//! timers (authentication timeout, handshake grace, pings, idle timeout, the expiry close), so a
//! wall-clock step never fires or starves a timer.

/// The current time on both clocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Wall time, Unix milliseconds.
    pub unix_ms: i64,
    /// Monotonic milliseconds since an arbitrary origin (the runtime's start).
    pub mono_ms: i64,
}

impl Now {
    /// Wall time in Unix seconds.
    pub fn unix_s(self) -> i64 {
        self.unix_ms / 1000
    }

    /// `ms` milliseconds later on both clocks.
    pub fn plus(self, ms: i64) -> Now {
        Now {
            unix_ms: self.unix_ms.saturating_add(ms),
            mono_ms: self.mono_ms.saturating_add(ms),
        }
    }
}

/// Virtual time for tests and fuzz harnesses: the same value on both clocks.
impl From<i64> for Now {
    fn from(ms: i64) -> Now {
        Now {
            unix_ms: ms,
            mono_ms: ms,
        }
    }
}
