//! The crypto floor of an inbound v2 message measured in the same run as the gateway's CPU per
//! message (DESIGN §6 sets the target as their ratio): `throughput` runs
//! [`aegis_gateway::testkit::floor::InboundFloor`] — parse, one batch verify of 64, open — on frames like
//! the ones it sends, timed in this thread's CPU time, once before the agents start and once
//! after the window when the gateway has gone idle (its flushes and compactions would otherwise
//! share the cores with the floor). The median of all rounds is the floor.

use aegis_gateway::testkit::floor::{InboundFloor, EVENT_BODY_LEN};
use std::time::{Duration, Instant};

/// Messages per floor round (the shard's batch size under load).
pub const BATCH: usize = 64;

/// Unrecorded rounds before the first measured one.
const WARMUP: usize = 200;

/// Rounds measured at each of the two points.
pub const ROUNDS: usize = 100;

/// Floor rounds of one run.
pub struct Measure {
    floor: InboundFloor,
    per_msg_us: Vec<f64>,
}

impl Measure {
    /// A floor on events of `body_len` bytes (the gateway default of 300 when 0).
    pub fn new(body_len: usize) -> Self {
        let len = if body_len == 0 {
            EVENT_BODY_LEN
        } else {
            body_len
        };
        let mut floor = InboundFloor::new(BATCH, len);
        // Warm up caches, the allocator and the core's clock (≈ 0.3 s), unrecorded.
        for _ in 0..WARMUP {
            let mut bufs = floor.inputs();
            std::hint::black_box(floor.run(&mut bufs));
        }
        Measure {
            floor,
            per_msg_us: Vec::new(),
        }
    }

    /// Measures `rounds` more rounds.
    pub fn sample(&mut self, rounds: usize) {
        for _ in 0..rounds {
            let mut bufs = self.floor.inputs();
            let start = crate::sys::thread_cpu();
            std::hint::black_box(self.floor.run(&mut bufs));
            let us = (crate::sys::thread_cpu() - start).as_secs_f64() * 1e6;
            self.per_msg_us.push(us / BATCH as f64);
        }
    }

    /// Median CPU µs per message of every round so far (`None` before any).
    pub fn median(&self) -> Option<f64> {
        let mut v = self.per_msg_us.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied()
    }
}

/// Waits (at most `limit`) until process `pid` uses under 5 % of a core over 200 ms.
pub fn wait_idle(pid: u32, limit: Duration) {
    let deadline = Instant::now() + limit;
    let step = Duration::from_millis(200);
    let mut last = crate::procfs::sample(pid).map(|s| s.cpu_s);
    while Instant::now() < deadline {
        std::thread::sleep(step);
        let now = crate::procfs::sample(pid).map(|s| s.cpu_s);
        match (last, now) {
            (Some(a), Some(b)) if b - a < 0.05 * step.as_secs_f64() => return,
            (_, None) => return,
            _ => last = now,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn floor_is_a_positive_time_per_message() {
        let mut m = super::Measure::new(100);
        assert_eq!(m.median(), None);
        m.sample(3);
        let us = m.median().unwrap();
        // Thread CPU time moved: the floor measured something.
        assert!(us > 0.0 && us.is_finite(), "{us}");
    }
}
