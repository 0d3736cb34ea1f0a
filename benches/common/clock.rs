//! Bench configuration and the clock of the CPU-bound benches.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::Criterion;

/// Short runs: the machine has 2 cores and is shared. Wall time (for IO-bound benches).
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
}

/// As [`config`], measured with [`BenchClock`]: CPU-bound benches.
pub fn config_cpu() -> Criterion<BenchClock> {
    config().with_measurement(BenchClock::default())
}

/// The clock of CPU-bound benches: the calling thread's CPU time (user + system) by default,
/// so that other processes on this shared 2-core machine do not inflate the figures (DESIGN.md
/// §6 states its targets in CPU time per message); wall time with `AEGIS_BENCH_CLOCK=wall`.
/// Every bench here is single-threaded, so on an idle machine both clocks agree.
pub struct BenchClock {
    wall: WallTime,
}

impl Default for BenchClock {
    fn default() -> Self {
        BenchClock { wall: WallTime }
    }
}

/// Reads the clock [`BenchClock`] uses (for `iter_custom` loops), as time since an arbitrary
/// origin.
pub fn clock_now() -> Duration {
    static WALL: OnceLock<Option<Instant>> = OnceLock::new();
    let wall = WALL.get_or_init(|| {
        let wall = std::env::var("AEGIS_BENCH_CLOCK").is_ok_and(|v| v == "wall");
        eprintln!(
            "bench clock: {}",
            if wall {
                "wall time"
            } else {
                "thread CPU time (AEGIS_BENCH_CLOCK=wall for wall time)"
            }
        );
        wall.then(Instant::now)
    });
    match wall {
        Some(origin) => origin.elapsed(),
        None => thread_cpu_time(),
    }
}

/// `CLOCK_THREAD_CPUTIME_ID`: CPU time consumed by the calling thread.
fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable `timespec` for the duration of the call, and
    // CLOCK_THREAD_CPUTIME_ID is supported by Linux; the call writes only `ts`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0);
    Duration::new(secs, nanos)
}

impl Measurement for BenchClock {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        clock_now()
    }
    fn end(&self, start: Duration) -> Duration {
        clock_now().saturating_sub(start)
    }
    fn add(&self, v1: &Duration, v2: &Duration) -> Duration {
        *v1 + *v2
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        self.wall.formatter()
    }
}
