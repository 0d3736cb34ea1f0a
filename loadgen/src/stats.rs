//! Counting: live atomics for the progress line ([`Live`]), and the per-executor tally of
//! counts, histograms and errors ([`Tally`]) that becomes the report.

use crate::hist::Hist;
use serde::{Deserialize, Serialize};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;

/// Histogram names.
pub mod h {
    /// Upgrade request written → R1 received (first connections of the ramp).
    pub const HANDSHAKE: &str = "handshake";
    /// M3 sent → R3 received.
    pub const REGISTRATION: &str = "registration";
    /// Upgrade → R1 of the reconnects of a storm.
    pub const STORM_HANDSHAKE: &str = "storm_handshake";
    /// Admin `send` → agent opened the command (CLOCK_REALTIME).
    pub const COMMAND: &str = "command";
    /// Admin `broadcast` → agent opened it.
    pub const BROADCAST: &str = "broadcast";
    /// `restart`: the gateway's close → the agent authenticated again (its one dial).
    pub const RESTART_BACK: &str = "restart_back";
    /// One admin HTTP request, written → response read.
    pub const ADMIN_HTTP: &str = "admin_http";
}

/// Counters the progress line reads while the run goes on (shared by all executors).
#[derive(Debug, Default)]
pub struct Live {
    /// Agents connected and authenticated right now.
    pub connected: AtomicI64,
    /// Messages written by agents (heartbeats, events, acks, frames).
    pub sent: AtomicU64,
    /// Errors of any kind.
    pub errors: AtomicU64,
    /// Commands opened by agents (not counting broadcasts).
    pub commands_received: AtomicU64,
    /// Broadcast commands opened by agents.
    pub broadcasts_received: AtomicU64,
}

impl Live {
    /// A snapshot `(connected, sent, errors)`.
    pub fn snapshot(&self) -> (i64, u64, u64) {
        (
            self.connected.load(Ordering::Relaxed),
            self.sent.load(Ordering::Relaxed),
            self.errors.load(Ordering::Relaxed),
        )
    }
}

/// Totals of a run; every field adds up across executors and processes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Counts {
    /// Successful M1→R1 handshakes (first connections and reconnects).
    pub authenticated: u64,
    /// Completed registrations (R3).
    pub registered: u64,
    /// Successful reconnects (storm).
    pub reconnected: u64,
    /// Agents still connected when the measured window ended.
    pub connected_end: u64,
    /// Agent messages written (heartbeats, events, acks, throughput frames).
    pub messages_sent: u64,
    /// Of those, accepted by the gateway (see the report's notes for how it is counted).
    pub messages_accepted: u64,
    /// Heartbeats written.
    pub heartbeats_sent: u64,
    /// WebSocket pings written by agents (`--ping`).
    #[serde(default)]
    pub pings_sent: u64,
    /// Pongs the gateway answered them with (read in the steady loop).
    #[serde(default)]
    pub pongs_received: u64,
    /// Events written.
    pub events_sent: u64,
    /// Acks written (v2 commands).
    pub acks_sent: u64,
    /// Admin `send` requests answered 2xx.
    pub commands_sent: u64,
    /// Of those, answered `status:"sent"`.
    pub commands_status_sent: u64,
    /// Of those, answered `status:"queued"`.
    pub commands_status_queued: u64,
    /// Distinct commands opened by agents (not broadcasts).
    pub commands_received: u64,
    /// Broadcasts requested (answered 2xx).
    pub broadcasts_sent: u64,
    /// Agents the broadcast answer listed in `sent_to`.
    pub broadcast_targets: u64,
    /// Broadcast copies opened by agents.
    pub broadcasts_received: u64,
    /// Commands opened again (same message id on the same agent).
    pub duplicates: u64,
    /// Agents that gave up for good (`restart`: their one dial after a close failed).
    #[serde(default)]
    pub stranded: u64,
    /// Agents whose one dial after the gateway's close succeeded (`restart`).
    #[serde(default)]
    pub returned: u64,
}

impl Counts {
    /// Adds `o` field by field.
    pub fn add(&mut self, o: &Counts) {
        self.authenticated += o.authenticated;
        self.registered += o.registered;
        self.reconnected += o.reconnected;
        self.connected_end += o.connected_end;
        self.messages_sent += o.messages_sent;
        self.messages_accepted += o.messages_accepted;
        self.heartbeats_sent += o.heartbeats_sent;
        self.pings_sent += o.pings_sent;
        self.pongs_received += o.pongs_received;
        self.events_sent += o.events_sent;
        self.acks_sent += o.acks_sent;
        self.commands_sent += o.commands_sent;
        self.commands_status_sent += o.commands_status_sent;
        self.commands_status_queued += o.commands_status_queued;
        self.commands_received += o.commands_received;
        self.broadcasts_sent += o.broadcasts_sent;
        self.broadcast_targets += o.broadcast_targets;
        self.broadcasts_received += o.broadcasts_received;
        self.duplicates += o.duplicates;
        self.stranded += o.stranded;
        self.returned += o.returned;
    }
}

/// What one executor (or the command driver) measured.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Totals.
    pub counts: Counts,
    /// Latency histograms by name ([`h`]).
    pub hists: BTreeMap<String, Hist>,
    /// Errors by kind.
    pub errors: BTreeMap<String, u64>,
}

impl Tally {
    /// Adds another tally.
    pub fn merge(&mut self, o: &Tally) {
        self.counts.add(&o.counts);
        for (k, v) in &o.hists {
            self.hists.entry(k.clone()).or_default().merge(v);
        }
        for (k, v) in &o.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
    }
}

/// An executor's recorder: its tally plus the shared live counters.
pub struct Recorder {
    /// This executor's tally.
    pub tally: RefCell<Tally>,
    /// Shared counters.
    pub live: Arc<Live>,
}

impl Recorder {
    /// A recorder feeding `live`.
    pub fn new(live: Arc<Live>) -> Recorder {
        Recorder {
            tally: RefCell::new(Tally::default()),
            live,
        }
    }

    /// Counts an error of kind `label`.
    pub fn error(&self, label: &str) {
        self.live.errors.fetch_add(1, Ordering::Relaxed);
        let mut t = self.tally.borrow_mut();
        match t.errors.get_mut(label) {
            Some(n) => *n += 1,
            None => {
                t.errors.insert(label.to_string(), 1);
            }
        }
    }

    /// Records a latency in microseconds into histogram `name`.
    pub fn latency_us(&self, name: &str, us: u64) {
        let mut t = self.tally.borrow_mut();
        match t.hists.get_mut(name) {
            Some(hist) => hist.record(us),
            None => {
                let mut hist = Hist::new();
                hist.record(us);
                t.hists.insert(name.to_string(), hist);
            }
        }
    }

    /// Records a duration into histogram `name`.
    pub fn latency(&self, name: &str, d: std::time::Duration) {
        self.latency_us(name, u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Updates the counts.
    pub fn count(&self, f: impl FnOnce(&mut Counts)) {
        f(&mut self.tally.borrow_mut().counts);
    }

    /// `n` messages written.
    pub fn sent(&self, n: u64) {
        self.live.sent.fetch_add(n, Ordering::Relaxed);
        self.tally.borrow_mut().counts.messages_sent += n;
    }

    /// An agent became (`+1`) or stopped being (`-1`) connected.
    pub fn connected(&self, delta: i64) {
        self.live.connected.fetch_add(delta, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recorder_counts_and_merges() {
        let live = Arc::new(Live::default());
        let r = Recorder::new(Arc::clone(&live));
        r.error("http_503");
        r.error("http_503");
        r.error("timeout");
        r.sent(5);
        r.latency_us(h::HANDSHAKE, 120);
        r.count(|c| c.authenticated += 1);
        assert_eq!(live.snapshot(), (0, 5, 3));
        let mut total = Tally::default();
        total.merge(&r.tally.borrow());
        total.merge(&r.tally.borrow());
        assert_eq!(total.errors.get("http_503"), Some(&4));
        assert_eq!(total.counts.messages_sent, 10);
        assert_eq!(total.counts.authenticated, 2);
        assert_eq!(total.hists.get(h::HANDSHAKE).map(Hist::count), Some(2));
    }
}
