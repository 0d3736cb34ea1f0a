//! The hand-off of verified agent messages to AegisFlux's publisher (`src/aegisflux/`): a
//! bounded buffer a shard offers to without waiting (`try_send`); a full buffer drops the
//! message, counted in `aegis_gateway_aegisflux_dropped_total`. Usable from any thread.

use crate::store::EventRecord;

/// Messages buffered between the shards and the publisher; past it they are dropped.
pub const BUFFER: usize = 16_384;

/// What a shard hands to the publisher.
#[derive(Debug)]
pub enum Outgoing {
    /// A verified agent message, as recorded for the event log.
    Event(EventRecord),
    /// A verified heartbeat of agent `uid` at `at` (Unix s).
    Heartbeat {
        /// The agent.
        uid: String,
        /// When it arrived.
        at: i64,
    },
}

/// The shards' side: cheap to clone, usable from any thread.
#[derive(Debug, Clone)]
pub struct Northbound {
    tx: tokio::sync::mpsc::Sender<Outgoing>,
    events: bool,
    heartbeats: bool,
}

/// The publisher's side, handed to [`publish`].
pub type Receiver = tokio::sync::mpsc::Receiver<Outgoing>;

impl Northbound {
    /// A buffer of `capacity` messages; `events`/`heartbeats` say what is offered.
    pub fn new(events: bool, heartbeats: bool, capacity: usize) -> (Northbound, Receiver) {
        let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
        (
            Northbound {
                tx,
                events,
                heartbeats,
            },
            rx,
        )
    }

    /// Offers a verified agent message (copied only when events are published).
    pub fn offer_event(&self, ev: &EventRecord) {
        if self.events {
            self.offer(Outgoing::Event(ev.clone()));
        }
    }

    /// Offers a heartbeat (when heartbeats are published).
    pub fn offer_heartbeat(&self, uid: &str, at: i64) {
        if self.heartbeats {
            self.offer(Outgoing::Heartbeat {
                uid: uid.to_string(),
                at,
            });
        }
    }

    fn offer(&self, out: Outgoing) {
        if self.tx.try_send(out).is_err() {
            metrics::counter!(crate::metrics::AEGISFLUX_DROPPED).increment(1);
        }
    }
}
