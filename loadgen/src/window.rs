//! The measured window as the coordinating thread sees it: barrier instants, gateway `/proc`
//! samples and `/metrics` readings at the barriers.

use crate::admin::AdminClient;
use crate::exec::{B_END, B_RAMPED, B_READY, B_START};
use crate::options::Scenario;
use crate::procfs::{self, ProcSample};
use crate::report::{GatewayReport, Timing};
use std::time::Instant;

/// The accepted-message counter of the gateway.
pub const MESSAGES_IN: &str = "aegis_gateway_messages_in_total";

const SLOTS: usize = B_END + 1;

/// Barrier instants and samples.
pub struct Window {
    pid: Option<u32>,
    metrics: Option<AdminClient>,
    arrived: [Option<Instant>; SLOTS],
    released: [Option<Instant>; SLOTS],
    samples: [Option<ProcSample>; SLOTS],
    messages_in: [Option<f64>; SLOTS],
    own_cpu: [Option<f64>; SLOTS],
    /// Problems reading samples (reported as warnings).
    pub problems: Vec<String>,
}

impl Window {
    /// A window sampling `pid` (if any) and reading `/metrics` through `metrics` (if any).
    pub fn new(pid: Option<u32>, metrics: Option<AdminClient>) -> Window {
        Window {
            pid,
            metrics,
            arrived: [None; SLOTS],
            released: [None; SLOTS],
            samples: [None; SLOTS],
            messages_in: [None; SLOTS],
            own_cpu: [None; SLOTS],
            problems: Vec::new(),
        }
    }

    /// Everybody arrived at barrier `n`.
    pub fn arrived(&mut self, n: usize) {
        if let Some(slot) = self.arrived.get_mut(n) {
            *slot = Some(Instant::now());
        }
        if let Some(slot) = self.own_cpu.get_mut(n) {
            *slot = procfs::sample(std::process::id()).map(|s| s.cpu_s);
        }
        if let Some(pid) = self.pid {
            match procfs::sample(pid) {
                Some(s) => {
                    if let Some(slot) = self.samples.get_mut(n) {
                        *slot = Some(s);
                    }
                }
                None => self.problems.push("gateway_proc_unreadable".into()),
            }
        }
        if n >= B_READY {
            if let Some(client) = self.metrics.as_mut() {
                match client.metrics_sum(MESSAGES_IN, "result", "ok") {
                    Ok(v) => {
                        if let Some(slot) = self.messages_in.get_mut(n) {
                            *slot = Some(v);
                        }
                    }
                    Err(_) => self.problems.push("metrics_unreadable".into()),
                }
            }
        }
    }

    /// Barrier `n` was released.
    pub fn released(&mut self, n: usize) {
        if let Some(slot) = self.released.get_mut(n) {
            *slot = Some(Instant::now());
        }
    }

    fn span(&self, from_release: usize, to_arrival: usize) -> f64 {
        match (
            self.released.get(from_release).copied().flatten(),
            self.arrived.get(to_arrival).copied().flatten(),
        ) {
            (Some(a), Some(b)) => b.saturating_duration_since(a).as_secs_f64(),
            _ => 0.0,
        }
    }

    /// Ramp and window lengths.
    pub fn timing(&self, scenario: Scenario) -> Timing {
        let window_s = self.span(B_READY, B_END);
        Timing {
            ramp_s: self.span(B_START, B_RAMPED),
            window_s,
            storm_wall_s: (scenario == Scenario::ReconnectStorm && window_s > 0.0)
                .then_some(window_s),
            ..Timing::default()
        }
    }

    /// This process's CPU seconds over the window (`B_READY` → `B_END`).
    pub fn own_cpu_s(&self) -> f64 {
        match (self.own_cpu[B_READY], self.own_cpu[B_END]) {
            (Some(a), Some(b)) => (b - a).max(0.0),
            _ => 0.0,
        }
    }

    /// The gateway figures, when a pid was sampled at the window's ends.
    pub fn gateway(&self) -> Option<GatewayReport> {
        let pid = self.pid?;
        let start = self.samples[B_READY]?;
        let end = self.samples[B_END]?;
        let delta = match (self.messages_in[B_READY], self.messages_in[B_END]) {
            (Some(a), Some(b)) => Some(b - a),
            _ => None,
        };
        Some(GatewayReport {
            pid,
            before_ramp: self.samples[B_START].unwrap_or(start),
            after_ramp: self.samples[B_RAMPED].unwrap_or(start),
            start,
            end,
            messages_in_delta: delta,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_samples_of_this_process() {
        let mut w = Window::new(Some(std::process::id()), None);
        for n in [B_START, B_RAMPED, B_READY] {
            w.arrived(n);
            w.released(n);
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        w.arrived(B_END);
        let t = w.timing(Scenario::ReconnectStorm);
        assert!(t.window_s >= 0.015, "{t:?}");
        assert_eq!(t.storm_wall_s, Some(t.window_s));
        let g = w.gateway().expect("samples");
        assert!(g.end.cpu_s >= g.start.cpu_s);
        assert!(w.problems.is_empty());
        assert!(Window::new(None, None).gateway().is_none());
    }
}
