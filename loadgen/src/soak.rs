//! The soak scenario's sampler: while the window runs, a thread samples the gateway process every
//! `--sample-every` seconds — RSS, open descriptors, threads, CPU seconds — with the agents
//! connected and the messages per second since the previous sample, prints each sample on stderr
//! as it is taken, and at the end summarises first/last/max and the growth slopes (least squares
//! over the second half of the window, so the ramp and warm-up do not count as growth).
//!
//! The traffic itself is `mixed`'s (heartbeats, events, admin sends); in a split run the parent
//! samples (it alone knows the gateway pid) and the children only drive traffic.

use crate::procfs;
use serde::{Deserialize, Serialize};
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// One sample of the gateway during the soak.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SoakSample {
    /// Seconds since the window started.
    pub t_s: f64,
    /// VmRSS in bytes.
    pub rss_bytes: u64,
    /// Open file descriptors (`/proc/PID/fd` entries).
    pub fds: u64,
    /// Threads.
    pub threads: u64,
    /// User + system CPU seconds since the gateway started.
    pub cpu_s: f64,
    /// Agents connected (the load generator's count).
    pub connected: u64,
    /// Agent messages written per second since the previous sample (0 for the first).
    pub msgs_per_s: f64,
}

/// First, last and largest values, and growth per minute over the second half of the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SoakSummary {
    /// Samples taken.
    pub samples: usize,
    /// Seconds from the first to the last sample.
    pub span_s: f64,
    /// RSS of the first sample.
    pub rss_first: u64,
    /// RSS of the last sample.
    pub rss_last: u64,
    /// Largest RSS.
    pub rss_max: u64,
    /// Descriptors of the first sample.
    pub fds_first: u64,
    /// Descriptors of the last sample.
    pub fds_last: u64,
    /// Most descriptors.
    pub fds_max: u64,
    /// RSS growth, bytes per minute (least squares over the samples of the second half).
    pub rss_slope_bytes_per_min: Option<f64>,
    /// Descriptor growth per minute (same samples).
    pub fds_slope_per_min: Option<f64>,
    /// CPU seconds the gateway used from the first to the last sample.
    pub cpu_s: f64,
}

/// The soak part of the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SoakReport {
    /// Every sample, in time order.
    pub samples: Vec<SoakSample>,
    /// Their summary.
    pub summary: SoakSummary,
    /// Samples that could not be taken (the gateway's `/proc` entry unreadable).
    pub missed: u64,
}

impl SoakReport {
    /// A report of `samples`, summarised.
    pub fn new(samples: Vec<SoakSample>, missed: u64) -> SoakReport {
        SoakReport {
            summary: summarize(&samples),
            samples,
            missed,
        }
    }

    /// The lines of the summary table.
    pub fn table(&self) -> String {
        let s = &self.summary;
        let slope = |v: Option<f64>, unit: &str| {
            v.map_or_else(|| "n/a".to_string(), |x| format!("{x:+.1} {unit}/min"))
        };
        format!(
            "soak: {} samples over {:.1} s ({} missed), gateway cpu {:.2} s\n  \
             rss  first {:.1} MiB  last {:.1} MiB  max {:.1} MiB  growth (2nd half) {}\n  \
             fds  first {}  last {}  max {}  growth (2nd half) {}\n",
            s.samples,
            s.span_s,
            self.missed,
            s.cpu_s,
            mib(s.rss_first),
            mib(s.rss_last),
            mib(s.rss_max),
            slope(s.rss_slope_bytes_per_min.map(|b| b / 1024.0), "KiB"),
            s.fds_first,
            s.fds_last,
            s.fds_max,
            slope(s.fds_slope_per_min, "fds"),
        )
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

/// Summary of `samples` (in time order).
pub fn summarize(samples: &[SoakSample]) -> SoakSummary {
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return SoakSummary::default();
    };
    let half = first.t_s + (last.t_s - first.t_s) / 2.0;
    let second: Vec<&SoakSample> = samples.iter().filter(|s| s.t_s >= half).collect();
    let slope = |f: fn(&SoakSample) -> f64| {
        let points: Vec<(f64, f64)> = second.iter().map(|s| (s.t_s, f(s))).collect();
        slope_per_s(&points).map(|per_s| per_s * 60.0)
    };
    SoakSummary {
        samples: samples.len(),
        span_s: last.t_s - first.t_s,
        rss_first: first.rss_bytes,
        rss_last: last.rss_bytes,
        rss_max: samples.iter().map(|s| s.rss_bytes).max().unwrap_or(0),
        fds_first: first.fds,
        fds_last: last.fds,
        fds_max: samples.iter().map(|s| s.fds).max().unwrap_or(0),
        rss_slope_bytes_per_min: slope(|s| s.rss_bytes as f64),
        fds_slope_per_min: slope(|s| s.fds as f64),
        cpu_s: (last.cpu_s - first.cpu_s).max(0.0),
    }
}

/// Least-squares slope of `(t, y)` points, per unit of `t`; `None` with fewer than two distinct
/// `t`.
pub fn slope_per_s(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mt = points.iter().map(|p| p.0).sum::<f64>() / n;
    let my = points.iter().map(|p| p.1).sum::<f64>() / n;
    let var: f64 = points.iter().map(|p| (p.0 - mt).powi(2)).sum();
    if var <= f64::EPSILON {
        return None;
    }
    let cov: f64 = points.iter().map(|p| (p.0 - mt) * (p.1 - my)).sum();
    Some(cov / var)
}

/// The stderr line of one sample.
pub fn line(s: &SoakSample) -> String {
    format!(
        "[soak {:>6.1}s] rss {:.1} MiB  fds {}  threads {}  cpu {:.2} s  connected {}  msg/s {:.0}",
        s.t_s,
        mib(s.rss_bytes),
        s.fds,
        s.threads,
        s.cpu_s,
        s.connected,
        s.msgs_per_s
    )
}

/// A running sampler thread.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<(Vec<SoakSample>, u64)>>,
}

impl Sampler {
    /// Samples `pid` now and every `every` until [`Sampler::finish`]; `live` returns the load
    /// generator's `(connected, messages written)` counters.
    pub fn start<F>(pid: u32, every: Duration, live: F) -> Sampler
    where
        F: Fn() -> (i64, u64) + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let handle = std::thread::Builder::new()
            .name("soak-sampler".into())
            .spawn(move || run(pid, every.max(Duration::from_millis(100)), &live, &flag))
            .ok();
        Sampler { stop, handle }
    }

    /// Takes a last sample, stops, and returns the report.
    pub fn finish(mut self) -> SoakReport {
        self.stop.store(true, Ordering::Release);
        let (samples, missed) = self
            .handle
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        SoakReport::new(samples, missed)
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
    }
}

fn run(
    pid: u32,
    every: Duration,
    live: &dyn Fn() -> (i64, u64),
    stop: &AtomicBool,
) -> (Vec<SoakSample>, u64) {
    let start = Instant::now();
    let terminal = std::io::stderr().is_terminal();
    let mut samples: Vec<SoakSample> = Vec::new();
    let mut missed = 0;
    let mut prev: Option<(f64, u64)> = None;
    let mut next = start;
    loop {
        let stopping = stop.load(Ordering::Acquire);
        if stopping || Instant::now() >= next {
            next += every;
            let t_s = start.elapsed().as_secs_f64();
            let (connected, sent) = live();
            match procfs::detail(pid) {
                Some(d) => {
                    let msgs_per_s = match prev {
                        Some((t0, s0)) if t_s > t0 => sent.saturating_sub(s0) as f64 / (t_s - t0),
                        _ => 0.0,
                    };
                    prev = Some((t_s, sent));
                    let s = SoakSample {
                        t_s,
                        rss_bytes: d.sample.rss_bytes,
                        fds: d.fds,
                        threads: d.threads,
                        cpu_s: d.sample.cpu_s,
                        connected: u64::try_from(connected).unwrap_or(0),
                        msgs_per_s,
                    };
                    // `\r` + padding overwrite a progress line being rewritten on a terminal.
                    let text = if terminal {
                        format!("\r{:<100}\n", line(&s))
                    } else {
                        format!("{}\n", line(&s))
                    };
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(text.as_bytes());
                    let _ = err.flush();
                    samples.push(s);
                }
                None => missed += 1,
            }
        }
        if stopping {
            return (samples, missed);
        }
        let wait = next.saturating_duration_since(Instant::now());
        std::thread::sleep(wait.min(Duration::from_millis(50)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t_s: f64, rss_bytes: u64, fds: u64) -> SoakSample {
        SoakSample {
            t_s,
            rss_bytes,
            fds,
            cpu_s: t_s / 10.0,
            ..SoakSample::default()
        }
    }

    #[test]
    fn slope_is_least_squares() {
        assert_eq!(
            slope_per_s(&[(0.0, 1.0), (1.0, 3.0), (2.0, 5.0)]),
            Some(2.0)
        );
        let noisy = slope_per_s(&[(0.0, 0.0), (1.0, 2.0), (2.0, 1.0), (3.0, 3.0)]).unwrap();
        assert!((noisy - 0.8).abs() < 1e-9, "{noisy}");
        assert_eq!(slope_per_s(&[(1.0, 5.0)]), None);
        assert_eq!(slope_per_s(&[(1.0, 5.0), (1.0, 7.0)]), None);
    }

    #[test]
    fn summary_uses_the_second_half_for_growth() {
        // Growth during the first half (warm-up) only, flat afterwards.
        let samples: Vec<SoakSample> = (0..=10)
            .map(|i| {
                let t = f64::from(i) * 30.0;
                let rss = if i <= 5 {
                    (100 + i as u64) << 20
                } else {
                    105 << 20
                };
                sample(t, rss, if i == 0 { 40 } else { 5_040 })
            })
            .collect();
        let s = summarize(&samples);
        assert_eq!(s.samples, 11);
        assert_eq!(s.span_s, 300.0);
        assert_eq!(
            (s.rss_first, s.rss_last, s.rss_max),
            (100 << 20, 105 << 20, 105 << 20)
        );
        assert_eq!((s.fds_first, s.fds_last, s.fds_max), (40, 5_040, 5_040));
        assert_eq!(s.rss_slope_bytes_per_min.map(f64::round), Some(0.0));
        assert_eq!(s.fds_slope_per_min.map(f64::round), Some(0.0));
        assert!((s.cpu_s - 30.0).abs() < 1e-9);
        // Steady growth of 1 MiB per 30 s is 2 MiB per minute.
        let growing: Vec<SoakSample> = (0..=10)
            .map(|i| sample(f64::from(i) * 30.0, (100 + i as u64) << 20, 50 + i as u64))
            .collect();
        let g = summarize(&growing);
        assert_eq!(
            g.rss_slope_bytes_per_min.map(f64::round),
            Some(2.0 * 1048576.0)
        );
        assert_eq!(g.fds_slope_per_min.map(f64::round), Some(2.0));
        assert!(SoakReport::new(growing, 0)
            .table()
            .contains("+2048.0 KiB/min"));
        assert_eq!(summarize(&[]), SoakSummary::default());
    }

    #[test]
    fn sampler_samples_at_start_every_period_and_at_the_end() {
        let sampler = Sampler::start(std::process::id(), Duration::from_millis(100), || (7, 70));
        std::thread::sleep(Duration::from_millis(350));
        let r = sampler.finish();
        // At 0, 0.1, 0.2, 0.3 and the final one (a slow machine may take fewer periodic ones).
        assert!(r.samples.len() >= 2, "{:?}", r.samples);
        assert!(r.samples.windows(2).all(|w| w[0].t_s < w[1].t_s));
        let first = r.samples[0];
        assert!(first.rss_bytes > 0 && first.fds > 0 && first.threads > 0);
        assert_eq!((first.connected, first.msgs_per_s), (7, 0.0));
        assert_eq!(r.missed, 0);
        assert_eq!(r.summary.samples, r.samples.len());
    }
}
