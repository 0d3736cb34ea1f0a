//! The run's report: counts, rates, latency percentiles, errors by kind, the gateway's CPU and
//! memory over the measured window, derived per-message and per-connection figures; as JSON
//! (`--json`) and as a table on stdout. Child reports carry their raw histograms so the parent
//! merges them exactly.

use crate::hist::{Hist, Summary};
use crate::options::Options;
use crate::procfs::ProcSample;
use crate::stats::{Counts, Tally};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// Phase timings, seconds unless the name says otherwise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Start → every agent connected (the ramp).
    pub ramp_s: f64,
    /// The measured window (scenario-specific, see the README of the loadgen).
    pub window_s: f64,
    /// Reconnect storm: drop → every agent re-authenticated.
    pub storm_wall_s: Option<f64>,
    /// Broadcast: admin request → its HTTP answer.
    pub broadcast_http_ms: Option<f64>,
    /// Broadcast: admin request → the last agent opened it.
    pub broadcast_time_ms: Option<f64>,
}

/// The gateway process over the measured window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct GatewayReport {
    /// Its pid.
    pub pid: u32,
    /// Before the ramp.
    pub before_ramp: ProcSample,
    /// When the ramp was over.
    #[serde(default)]
    pub after_ramp: ProcSample,
    /// At the start of the measured window.
    pub start: ProcSample,
    /// At its end.
    pub end: ProcSample,
    /// Δ `aegis_gateway_messages_in_total{result="ok"}` over the window (when `--admin`).
    pub messages_in_delta: Option<f64>,
}

/// Rates over the phase they belong to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Rates {
    /// Authenticated agents per second of ramp.
    pub connects_per_s: f64,
    /// Agent messages written per second of window.
    pub messages_per_s: f64,
    /// Accepted messages per second of window.
    pub accepted_per_s: f64,
    /// Re-authentications per second of storm.
    pub storm_reconnects_per_s: f64,
}

/// Everything a run measured.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Scenario name.
    pub scenario: String,
    /// Agents simulated (all processes).
    pub agents: usize,
    /// `v1`, `v2` or `mix`.
    pub profile: String,
    /// Executors per process.
    pub threads: usize,
    /// Processes (1 unless split).
    pub procs: usize,
    /// The `--duration` cap.
    pub duration_s: f64,
    /// Totals.
    pub counts: Counts,
    /// Rates.
    pub rates: Rates,
    /// Phase timings.
    pub timing: Timing,
    /// Percentiles in µs by histogram name.
    pub latency_us: BTreeMap<String, Summary>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
    /// Sum of `errors`.
    pub errors_total: u64,
    /// Measurement problems that are not load errors (e.g. `/metrics` unreadable).
    #[serde(default)]
    pub warnings: BTreeMap<String, u64>,
    /// The gateway process, when its pid is known.
    pub gateway: Option<GatewayReport>,
    /// Gateway CPU over the window / accepted messages (µs); for `connect`, the hold (heartbeats,
    /// pings, timers of idle connections).
    pub gateway_cpu_us_per_msg: Option<f64>,
    /// Gateway CPU per handshake (µs): over the ramp for `connect` (first connections, with
    /// registration when asked), over the storm for `reconnect-storm`.
    pub gateway_cpu_us_per_handshake: Option<f64>,
    /// (RSS at the end − RSS before the ramp) / agents connected at the end, for `connect`.
    pub gateway_rss_bytes_per_conn: Option<f64>,
    /// `throughput`: the crypto floor per inbound v2 message (parse + batch verify of 64 + open,
    /// [`crate::floor`]), measured by this process right after the window (CPU µs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crypto_floor_us_per_msg: Option<f64>,
    /// `gateway_cpu_us_per_msg / crypto_floor_us_per_msg` (DESIGN §6 target: ≤ 1.25 for
    /// `throughput`, ≤ 2.5 for `fleet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_per_msg_over_floor: Option<f64>,
    /// Of `gateway_cpu_us_per_msg`, the kernel (system) part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_sys_us_per_msg: Option<f64>,
    /// Gateway CPU over the window per connected agent per second (µs): what a connection
    /// costs at the run's traffic; with `--heartbeat 0` and pings only, its idle cost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_cpu_us_per_conn_s: Option<f64>,
    /// CPU seconds the load generator itself used over the window (all its processes).
    #[serde(default)]
    pub loadgen_cpu_s: f64,
    /// Raw histograms, sparse `(value_us, count)` pairs, for merging.
    pub histograms: BTreeMap<String, Vec<(u64, u64)>>,
    /// The soak's samples of the gateway and their summary (`soak` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soak: Option<crate::soak::SoakReport>,
}

impl Report {
    /// A report from a tally and the options that produced it.
    pub fn from_tally(opts: &Options, tally: &Tally, timing: Timing) -> Report {
        let mut r = Report {
            scenario: opts.scenario.name().to_string(),
            agents: opts.agents,
            profile: format!("{:?}", opts.profile).to_lowercase(),
            threads: opts.threads,
            procs: 1,
            duration_s: opts.duration_s,
            counts: tally.counts,
            timing,
            errors: tally.errors.clone(),
            histograms: tally
                .hists
                .iter()
                .map(|(k, v)| (k.clone(), v.export()))
                .collect(),
            ..Report::default()
        };
        r.refresh();
        r
    }

    /// Adds a child's report (counts, errors, histograms; timings take the maximum).
    pub fn absorb(&mut self, o: &Report) {
        self.counts.add(&o.counts);
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        self.loadgen_cpu_s += o.loadgen_cpu_s;
        for (k, v) in &o.warnings {
            *self.warnings.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.histograms {
            let mut h = self
                .histograms
                .get(k)
                .map(|p| Hist::import(p))
                .unwrap_or_default();
            h.merge(&Hist::import(v));
            self.histograms.insert(k.clone(), h.export());
        }
        let t = &mut self.timing;
        t.ramp_s = t.ramp_s.max(o.timing.ramp_s);
        t.window_s = t.window_s.max(o.timing.window_s);
        t.storm_wall_s = max_opt(t.storm_wall_s, o.timing.storm_wall_s);
        t.broadcast_http_ms = max_opt(t.broadcast_http_ms, o.timing.broadcast_http_ms);
        t.broadcast_time_ms = max_opt(t.broadcast_time_ms, o.timing.broadcast_time_ms);
        self.refresh();
    }

    /// Recomputes summaries, totals, rates and derived gateway figures from the raw data.
    pub fn refresh(&mut self) {
        self.latency_us = self
            .histograms
            .iter()
            .map(|(k, v)| (k.clone(), Hist::import(v).summary()))
            .collect();
        self.errors_total = self.errors.values().sum();
        if let Some(b) = self.latency_us.get(crate::stats::h::BROADCAST) {
            if b.count > 0 {
                self.timing.broadcast_time_ms = Some(b.max as f64 / 1000.0);
            }
        }
        let c = &self.counts;
        let per = |n: u64, s: f64| if s > 0.0 { n as f64 / s } else { 0.0 };
        let first_auths = c.authenticated.saturating_sub(c.reconnected);
        self.rates = Rates {
            connects_per_s: per(first_auths, self.timing.ramp_s),
            messages_per_s: per(c.messages_sent, self.timing.window_s),
            accepted_per_s: per(c.messages_accepted, self.timing.window_s),
            storm_reconnects_per_s: per(c.reconnected, self.timing.storm_wall_s.unwrap_or(0.0)),
        };
        self.gateway_cpu_us_per_msg = None;
        self.gateway_sys_us_per_msg = None;
        self.gateway_cpu_us_per_conn_s = None;
        self.gateway_cpu_us_per_handshake = None;
        self.gateway_rss_bytes_per_conn = None;
        let Some(g) = self.gateway else { return };
        let cpu_us = (g.end.cpu_s - g.start.cpu_s).max(0.0) * 1e6;
        let sys_us = (g.end.sys_s - g.start.sys_s).max(0.0) * 1e6;
        if c.connected_end > 0 && self.timing.window_s > 0.0 {
            let conn_s = c.connected_end as f64 * self.timing.window_s;
            self.gateway_cpu_us_per_conn_s = Some(cpu_us / conn_s);
        }
        match self.scenario.as_str() {
            "connect" | "fleet" => {
                if first_auths > 0 {
                    let cpu = (g.after_ramp.cpu_s - g.before_ramp.cpu_s).max(0.0) * 1e6;
                    self.gateway_cpu_us_per_handshake = Some(cpu / first_auths as f64);
                }
                if c.connected_end > 0 {
                    let grown = g.end.rss_bytes as f64 - g.before_ramp.rss_bytes as f64;
                    self.gateway_rss_bytes_per_conn = Some(grown / c.connected_end as f64);
                }
            }
            "reconnect-storm" => {
                if c.reconnected > 0 {
                    self.gateway_cpu_us_per_handshake = Some(cpu_us / c.reconnected as f64);
                }
                return;
            }
            _ => {}
        }
        let msgs = g.messages_in_delta.unwrap_or(c.messages_accepted as f64);
        if msgs > 0.0 {
            self.gateway_cpu_us_per_msg = Some(cpu_us / msgs);
            self.gateway_sys_us_per_msg = Some(sys_us / msgs);
        }
        self.cpu_per_msg_over_floor =
            match (self.gateway_cpu_us_per_msg, self.crypto_floor_us_per_msg) {
                (Some(gw), Some(floor)) if floor > 0.0 => Some(gw / floor),
                _ => None,
            };
    }

    /// The summary table printed on stdout.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let c = &self.counts;
        let _ = writeln!(
            s,
            "scenario {}  agents {}  profile {}  procs {} × threads {}",
            self.scenario, self.agents, self.profile, self.procs, self.threads
        );
        let _ = writeln!(
            s,
            "ramp {:.2} s ({:.0} connects/s)   window {:.2} s",
            self.timing.ramp_s, self.rates.connects_per_s, self.timing.window_s
        );
        let _ = writeln!(
            s,
            "authenticated {}  registered {}  reconnected {}  connected at end {}",
            c.authenticated, c.registered, c.reconnected, c.connected_end
        );
        if self.scenario == "restart" {
            let _ = writeln!(
                s,
                "restart: back {} of {} registered  stranded {} (their one dial failed)",
                c.returned, c.registered, c.stranded
            );
        }
        let _ = writeln!(
            s,
            "messages sent {} ({:.0}/s)  accepted {} ({:.0}/s)",
            c.messages_sent,
            self.rates.messages_per_s,
            c.messages_accepted,
            self.rates.accepted_per_s
        );
        if c.commands_sent + c.broadcasts_sent > 0 {
            let _ = writeln!(
                s,
                "commands sent {} (sent {}, queued {}) received {}  duplicates {}",
                c.commands_sent,
                c.commands_status_sent,
                c.commands_status_queued,
                c.commands_received,
                c.duplicates
            );
            let _ = writeln!(
                s,
                "broadcasts {} to {} agents, received {}  http {:?} ms  all delivered {:?} ms",
                c.broadcasts_sent,
                c.broadcast_targets,
                c.broadcasts_received,
                self.timing.broadcast_http_ms.map(round2),
                self.timing.broadcast_time_ms.map(round2)
            );
        }
        if let Some(t) = self.timing.storm_wall_s {
            let _ = writeln!(
                s,
                "storm wall {:.3} s ({:.0} reconnects/s)",
                t, self.rates.storm_reconnects_per_s
            );
        }
        let _ = writeln!(
            s,
            "{:<16} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
            "latency (µs)", "count", "p50", "p90", "p99", "p99.9", "max"
        );
        for (name, l) in &self.latency_us {
            let _ = writeln!(
                s,
                "{:<16} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
                name, l.count, l.p50, l.p90, l.p99, l.p999, l.max
            );
        }
        let _ = writeln!(s, "errors {}", self.errors_total);
        for (k, v) in &self.errors {
            let _ = writeln!(s, "  {k:<30} {v}");
        }
        for (k, v) in &self.warnings {
            let _ = writeln!(s, "warning: {k} ({v}×)");
        }
        if let Some(g) = &self.gateway {
            let _ = writeln!(
                s,
                "gateway pid {}: cpu {:.2} s → {:.2} s, rss {} → {} KiB (before ramp {} KiB)",
                g.pid,
                g.start.cpu_s,
                g.end.cpu_s,
                g.start.rss_bytes / 1024,
                g.end.rss_bytes / 1024,
                g.before_ramp.rss_bytes / 1024
            );
        }
        if let Some(soak) = &self.soak {
            s.push_str(&soak.table());
        }
        let _ = writeln!(s, "loadgen cpu in window {:.2} s", self.loadgen_cpu_s);
        for (name, v) in [
            ("gateway cpu µs/msg", self.gateway_cpu_us_per_msg),
            ("  of which sys µs/msg", self.gateway_sys_us_per_msg),
            ("gateway cpu µs/conn/s", self.gateway_cpu_us_per_conn_s),
            (
                "gateway cpu µs/handshake",
                self.gateway_cpu_us_per_handshake,
            ),
            ("gateway rss bytes/conn", self.gateway_rss_bytes_per_conn),
            ("crypto floor µs/msg", self.crypto_floor_us_per_msg),
        ] {
            if let Some(v) = v {
                let _ = writeln!(s, "{name:<26} {v:.1}");
            }
        }
        if let Some(r) = self.cpu_per_msg_over_floor {
            let target = if self.scenario == "fleet" { 2.5 } else { 1.25 };
            let _ = writeln!(
                s,
                "{:<26} {r:.2} (target ≤ {target})",
                "gateway cpu / floor"
            );
        }
        s
    }
}

fn max_opt(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Scenario;
    use crate::stats::{h, Recorder};

    fn tally(auth: u64, lat: u64) -> Tally {
        let r = Recorder::new(Default::default());
        r.count(|c| {
            c.authenticated = auth;
            c.connected_end = auth;
            c.messages_accepted = 1000;
        });
        r.latency_us(h::HANDSHAKE, lat);
        r.error("timeout");
        let t = r.tally.borrow().clone();
        t
    }

    #[test]
    fn derives_gateway_figures_for_connect() {
        let opts = Options::new(Scenario::Connect);
        let timing = Timing {
            ramp_s: 2.0,
            window_s: 10.0,
            ..Timing::default()
        };
        let mut r = Report::from_tally(&opts, &tally(100, 500), timing);
        r.gateway = Some(GatewayReport {
            pid: 1,
            before_ramp: ProcSample {
                cpu_s: 1.0,
                rss_bytes: 1_000_000,
                ..ProcSample::default()
            },
            after_ramp: ProcSample {
                cpu_s: 1.25,
                rss_bytes: 2_000_000,
                ..ProcSample::default()
            },
            start: ProcSample {
                cpu_s: 1.5,
                rss_bytes: 2_000_000,
                ..ProcSample::default()
            },
            end: ProcSample {
                cpu_s: 2.0,
                rss_bytes: 1_400_000,
                ..ProcSample::default()
            },
            messages_in_delta: None,
        });
        r.refresh();
        assert_eq!(r.rates.connects_per_s, 50.0);
        assert_eq!(r.gateway_rss_bytes_per_conn, Some(4000.0));
        // Ramp only: (1.25 − 1.0) s over 100 handshakes.
        assert_eq!(r.gateway_cpu_us_per_handshake, Some(2_500.0));
        // Hold: (2.0 − 1.5) s over 1000 accepted messages.
        assert_eq!(r.gateway_cpu_us_per_msg, Some(500.0));
        assert!(r.table().contains("gateway rss bytes/conn"));
    }

    #[test]
    fn derives_cpu_per_message_from_metrics_delta_first() {
        let opts = Options::new(Scenario::Throughput);
        let mut r = Report::from_tally(&opts, &tally(4, 10), Timing::default());
        let mut g = GatewayReport {
            pid: 1,
            end: ProcSample {
                cpu_s: 0.02,
                rss_bytes: 0,
                ..ProcSample::default()
            },
            ..GatewayReport::default()
        };
        r.gateway = Some(g);
        r.refresh();
        assert_eq!(r.gateway_cpu_us_per_msg.map(|x| x.round()), Some(20.0));
        g.messages_in_delta = Some(2000.0);
        r.gateway = Some(g);
        r.refresh();
        assert_eq!(r.gateway_cpu_us_per_msg.map(|x| x.round()), Some(10.0));
    }

    #[test]
    fn absorb_merges_children_and_survives_json() {
        let opts = Options::new(Scenario::Connect);
        let a = Report::from_tally(
            &opts,
            &tally(10, 100),
            Timing {
                ramp_s: 1.0,
                ..Timing::default()
            },
        );
        let b = Report::from_tally(
            &opts,
            &tally(30, 900),
            Timing {
                ramp_s: 2.0,
                ..Timing::default()
            },
        );
        let b: Report = serde_json::from_str(&serde_json::to_string(&b).unwrap()).unwrap();
        let mut total = a.clone();
        total.absorb(&b);
        assert_eq!(total.counts.authenticated, 40);
        assert_eq!(total.errors_total, 2);
        assert_eq!(total.timing.ramp_s, 2.0);
        let l = total
            .latency_us
            .get(h::HANDSHAKE)
            .copied()
            .unwrap_or_default();
        assert_eq!(l.count, 2);
        assert!(l.max >= 899 && l.p50 <= 101, "{l:?}");
    }
}
