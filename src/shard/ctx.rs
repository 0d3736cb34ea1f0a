//! The state one shard owns: its connections (by connection id), the presence of the
//! identities it owns ([`super::presence`]), its verify batcher, metrics and event batch, and
//! its end of the mesh to the other shards ([`super::mesh`]).
//!
//! A connection id carries its shard in its top 16 bits, so a presence entry is just a
//! connection id: local when its shard is this one, a presence pointer otherwise.

use super::batch::Batcher;
use super::control::DeliverReply;
use super::mesh::{returned, shard_of, MeshMsg};
use super::presence::Present;
use super::{owner_of, Shared};
use crate::store::Command;
use futures_channel::mpsc;
use glommio::channels::channel_mesh::Senders;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

/// Commands to a connection task.
pub(crate) enum ConnCmd {
    /// A newer connection of the same identity took over: close with 4010.
    Replace,
    /// Write this command (boxed: the channel's idle node is sized by the largest variant).
    Deliver(Box<(Command, DeliverReply)>),
    /// Graceful shutdown: close with 1001, after a random pause of up to ≈ 1 s when `jitter`
    /// (all connections drained at once), at once when the shard spaces the closes itself.
    Drain { jitter: bool },
    /// The agent was revoked: close with 4001.
    Revoke,
}

/// State owned by one shard.
pub(crate) struct ShardCtx {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub batcher: Rc<Batcher>,
    pub metrics: crate::metrics::ShardMetrics,
    pub(super) mesh: Rc<Senders<MeshMsg>>,
    pub(super) conns: RefCell<HashMap<u64, mpsc::UnboundedSender<ConnCmd>>>,
    pub(super) presence: RefCell<HashMap<String, Present>>,
    next_conn: Cell<u64>,
    pub draining: Cell<bool>,
    events: crate::router::EventBatch,
    events_scheduled: Cell<bool>,
    pub handoffs_in: Cell<u64>,
    pub handoffs_out: Cell<u64>,
}

impl ShardCtx {
    pub fn new(id: usize, shared: Arc<Shared>, mesh: Senders<MeshMsg>) -> Rc<Self> {
        let metrics = crate::metrics::ShardMetrics::new(id);
        Rc::new(ShardCtx {
            id,
            shared,
            batcher: Batcher::new(metrics.verify_batch.clone(), metrics.verify_seconds.clone()),
            metrics,
            mesh: Rc::new(mesh),
            conns: RefCell::new(HashMap::new()),
            presence: RefCell::new(HashMap::new()),
            next_conn: Cell::new(0),
            draining: Cell::new(false),
            events: crate::router::EventBatch::default(),
            events_scheduled: Cell::new(false),
            handoffs_in: Cell::new(0),
            handoffs_out: Cell::new(0),
        })
    }

    /// What a session needs from the shard.
    pub fn env(&self) -> crate::protocol::session::Env<'_> {
        crate::protocol::session::Env {
            key: &self.shared.key,
            limits: &self.shared.limits,
            nonces: &self.shared.nonces,
            registrations: None,
        }
    }

    /// Queues an event for the event stream; the batch is appended at the end of this scheduler
    /// round (or at once when full).
    pub fn record_event(self: &Rc<Self>, ev: crate::store::EventRecord) {
        if let Some(nb) = &self.shared.northbound {
            nb.offer_event(&ev);
        }
        if self.events.push(ev) {
            self.flush_events();
        } else if !self.events_scheduled.replace(true) {
            let me = Rc::clone(self);
            glommio::spawn_local(async move {
                futures_lite::future::yield_now().await;
                me.events_scheduled.set(false);
                me.flush_events();
            })
            .detach();
        }
    }

    /// Appends the events of this round to the fleet's event log (one write for the batch).
    fn flush_events(self: &Rc<Self>) {
        let evs = self.events.take();
        if evs.is_empty() {
            return;
        }
        let me = Rc::clone(self);
        glommio::spawn_local(async move {
            let n = evs.len();
            let fleet = &me.shared.fleet;
            if let Err(e) = fleet.append_events(evs).await {
                if fleet.fault().is_some() {
                    // Logged once when the store failed; not once per scheduler round.
                    tracing::debug!(error = %e, dropped = n, "events not recorded");
                } else {
                    tracing::warn!(error = %e, dropped = n, "events not recorded");
                }
            }
        })
        .detach();
    }

    /// Registers a hosted connection; returns its id.
    pub fn add_conn(&self, tx: mpsc::UnboundedSender<ConnCmd>) -> u64 {
        let n = self.next_conn.get() + 1;
        self.next_conn.set(n);
        let conn = ((self.id as u64) << 48) | (n & 0xffff_ffff_ffff);
        self.conns.borrow_mut().insert(conn, tx);
        conn
    }

    /// Forgets a hosted connection.
    pub fn remove_conn(&self, conn: u64) {
        self.conns.borrow_mut().remove(&conn);
    }

    /// Number of hosted connections.
    pub fn conn_count(&self) -> usize {
        self.conns.borrow().len()
    }

    /// Sends `msg` to shard `to` over the mesh; when its ring is full, a task waits for room.
    pub fn mesh_send(&self, to: usize, msg: MeshMsg) {
        let Err(e) = self.mesh.try_send_to(to, msg) else {
            return;
        };
        match returned(e) {
            Some(msg) => {
                let senders = Rc::clone(&self.mesh);
                glommio::spawn_local(async move {
                    if senders.send_to(to, msg).await.is_err() {
                        tracing::warn!(to, "mesh peer gone; message dropped");
                    }
                })
                .detach();
            }
            None => tracing::warn!(to, "mesh send failed; message dropped"),
        }
    }

    /// Sends a message and waits for room; on failure the message is handed back.
    pub async fn mesh_send_wait(&self, to: usize, msg: MeshMsg) -> Result<(), Option<MeshMsg>> {
        self.mesh.send_to(to, msg).await.map_err(returned)
    }

    pub(super) fn owner(&self, identity: &str) -> usize {
        owner_of(identity, self.shared.shards)
    }

    /// This shard's counters.
    pub fn stats(&self) -> super::ShardStats {
        let presence = self.presence.borrow();
        let (batches, signatures) = self.batcher.stats();
        super::ShardStats {
            shard: self.id,
            connections: self.conns.borrow().len(),
            present: presence.len(),
            pointers: presence
                .values()
                .filter(|p| shard_of(p.conn) != self.id)
                .count(),
            handoffs_in: self.handoffs_in.get(),
            handoffs_out: self.handoffs_out.get(),
            verify_batches: batches,
            verify_signatures: signatures,
        }
    }

    /// Tells every hosted connection to close with 1001.
    pub fn drain_all(&self) {
        for tx in self.conns.borrow().values() {
            let _ = tx.unbounded_send(ConnCmd::Drain { jitter: true });
        }
    }
}
