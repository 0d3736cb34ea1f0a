//! Waiting for something to happen: poll the condition, never sleep a guessed time.

use std::time::{Duration, Instant};

/// Generous bound for [`eventually`]: long enough for a loaded shared machine, short enough that
/// a condition that never holds fails the test instead of hanging it.
pub const WAIT: Duration = Duration::from_secs(20);

/// Time between two probes of a condition.
pub const POLL_EVERY: Duration = Duration::from_millis(10);

/// Polls `probe` every [`POLL_EVERY`] until it returns `Ok`, and returns that value. If it
/// still returns `Err` after `bound`, panics with the last `Err` (say there what was seen).
pub fn poll_until<T>(bound: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + bound;
    loop {
        match probe() {
            Ok(v) => return v,
            Err(why) if Instant::now() >= deadline => panic!("after {bound:?}: {why}"),
            Err(_) => std::thread::sleep(POLL_EVERY),
        }
    }
}

/// Polls `cond` every [`POLL_EVERY`] until it holds; panics with `what` if it does not hold
/// within `bound` (use [`WAIT`] unless the test has a reason for another bound).
pub fn eventually(what: &str, bound: Duration, mut cond: impl FnMut() -> bool) {
    poll_until(bound, || {
        if cond() {
            Ok(())
        } else {
            Err(format!("never happened: {what}"))
        }
    })
}
