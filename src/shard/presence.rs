//! Per-shard state: hosted connections, presence of the identities this shard owns, and the
//! mesh messages that keep presence right across shards.
//!
//! A connection id carries its shard in its top 16 bits, so a presence entry is just a
//! connection id: local when its shard is this one, a presence pointer otherwise.

use super::batch::Batcher;
use super::control::{Command, DeliverError, DeliverReply, SessionInfo};
use super::sys::OwnedSocket;
use super::{owner_of, Shared};
use futures_channel::mpsc;
use glommio::channels::channel_mesh::Senders;
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;

/// Commands to a connection task.
pub(crate) enum ConnCmd {
    /// A newer connection of the same identity took over: close with 4010.
    Replace,
    /// Write this command (boxed: the channel's idle node is sized by the largest variant).
    Deliver(Box<(Command, DeliverReply)>),
    /// Graceful shutdown: close with 1001.
    Drain,
    /// The agent was revoked: close with 4001.
    Revoke,
}

/// A live identity as its owner shard knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Present {
    /// Connection id (its shard in the top bits).
    pub conn: u64,
    /// Session facts for the admin API.
    pub info: SessionInfo,
}

/// Messages between shards.
pub(crate) enum MeshMsg {
    /// A socket whose owner is the receiving shard, with the bytes already read from it.
    Handoff {
        socket: OwnedSocket,
        head: Vec<u8>,
        peer: SocketAddr,
    },
    /// `identity` (owned by the receiver) now lives on connection `conn`.
    Pointer { identity: String, present: Present },
    /// Connection `conn` of `identity` ended.
    Gone { identity: String, conn: u64 },
    /// Close connection `conn` (hosted by the receiver) with 4010.
    Replace { conn: u64 },
    /// Close connection `conn` (hosted by the receiver) with 4001: revoked.
    Revoke { conn: u64 },
    /// Deliver to connection `conn` (hosted by the receiver).
    Deliver {
        conn: u64,
        cmd: Command,
        reply: DeliverReply,
    },
}

/// The shard a connection id belongs to.
pub(crate) fn shard_of(conn: u64) -> usize {
    (conn >> 48) as usize
}

/// State owned by one shard.
pub(crate) struct ShardCtx {
    pub id: usize,
    pub shared: Arc<Shared>,
    pub batcher: Rc<Batcher>,
    pub metrics: crate::metrics::ShardMetrics,
    mesh: Rc<Senders<MeshMsg>>,
    conns: RefCell<HashMap<u64, mpsc::UnboundedSender<ConnCmd>>>,
    presence: RefCell<HashMap<String, Present>>,
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
        }
    }

    /// Queues an event for the event stream; the batch is appended at the end of this scheduler
    /// round (or at once when full).
    pub fn record_event(self: &Rc<Self>, ev: crate::store::EventRecord) {
        if self.events.push(ev) {
            self.events.flush(&self.shared.store);
        } else if !self.events_scheduled.replace(true) {
            let me = Rc::clone(self);
            glommio::spawn_local(async move {
                futures_lite::future::yield_now().await;
                me.events_scheduled.set(false);
                me.events.flush(&me.shared.store);
            })
            .detach();
        }
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

    fn owner(&self, identity: &str) -> usize {
        owner_of(identity, self.shared.shards)
    }

    /// `conn` (hosted here) authenticated as `identity`: record presence, replacing any older
    /// connection of that identity.
    pub fn claim(&self, identity: &str, conn: u64, info: SessionInfo) {
        let present = Present { conn, info };
        let owner = self.owner(identity);
        if owner == self.id {
            self.set_presence(identity, present);
        } else {
            self.mesh_send(
                owner,
                MeshMsg::Pointer {
                    identity: identity.to_string(),
                    present,
                },
            );
        }
    }

    /// `conn` of `identity` ended; presence is removed only if it still points to `conn`.
    pub fn release(&self, identity: &str, conn: u64) {
        let owner = self.owner(identity);
        if owner == self.id {
            let mut p = self.presence.borrow_mut();
            if p.get(identity).map(|x| x.conn) == Some(conn) {
                p.remove(identity);
            }
        } else {
            self.mesh_send(
                owner,
                MeshMsg::Gone {
                    identity: identity.to_string(),
                    conn,
                },
            );
        }
    }

    fn set_presence(&self, identity: &str, present: Present) {
        let old = self
            .presence
            .borrow_mut()
            .insert(identity.to_string(), present);
        if let Some(old) = old.filter(|o| o.conn != present.conn) {
            self.kick(old.conn, false);
        }
    }

    /// Closes connection `conn` wherever it is: 4010 (replaced) or 4001 (revoked).
    fn kick(&self, conn: u64, revoked: bool) {
        let shard = shard_of(conn);
        if shard == self.id {
            if let Some(tx) = self.conns.borrow().get(&conn) {
                let cmd = if revoked {
                    ConnCmd::Revoke
                } else {
                    ConnCmd::Replace
                };
                let _ = tx.unbounded_send(cmd);
            }
        } else if revoked {
            self.mesh_send(shard, MeshMsg::Revoke { conn });
        } else {
            self.mesh_send(shard, MeshMsg::Replace { conn });
        }
    }

    /// Session facts of `identity` (owned here) if it has a live connection.
    pub fn session_info(&self, identity: &str) -> Option<SessionInfo> {
        self.presence.borrow().get(identity).map(|p| p.info)
    }

    /// Closes the live connection of `identity` (owned here) with 4001; `true` if there was one.
    pub fn revoke(&self, identity: &str) -> bool {
        let present = self.presence.borrow_mut().remove(identity);
        match present {
            Some(p) => {
                self.kick(p.conn, true);
                true
            }
            None => false,
        }
    }

    /// Routes a command for `identity` (owned here) to the connection holding it.
    pub fn deliver(&self, identity: &str, cmd: Command, reply: DeliverReply) {
        let conn = self.presence.borrow().get(identity).map(|p| p.conn);
        match conn {
            None => {
                let _ = reply.send(Err(DeliverError::NotConnected));
            }
            Some(conn) => self.deliver_to_conn(conn, cmd, reply),
        }
    }

    fn deliver_to_conn(&self, conn: u64, cmd: Command, reply: DeliverReply) {
        let shard = shard_of(conn);
        if shard != self.id {
            self.mesh_send(shard, MeshMsg::Deliver { conn, cmd, reply });
            return;
        }
        let conns = self.conns.borrow();
        match conns.get(&conn) {
            Some(tx) => {
                if let Err(e) = tx.unbounded_send(ConnCmd::Deliver(Box::new((cmd, reply)))) {
                    if let ConnCmd::Deliver(d) = e.into_inner() {
                        let (_, reply) = *d;
                        let _ = reply.send(Err(DeliverError::Closed));
                    }
                }
            }
            None => {
                let _ = reply.send(Err(DeliverError::NotConnected));
            }
        }
    }

    /// Handles a message from another shard (hand-offs are handled by the listener).
    pub fn on_mesh(&self, msg: MeshMsg) -> Option<(OwnedSocket, Vec<u8>, SocketAddr)> {
        match msg {
            MeshMsg::Handoff { socket, head, peer } => return Some((socket, head, peer)),
            MeshMsg::Pointer { identity, present } => self.set_presence(&identity, present),
            MeshMsg::Gone { identity, conn } => {
                let mut p = self.presence.borrow_mut();
                if p.get(&identity).map(|x| x.conn) == Some(conn) {
                    p.remove(&identity);
                }
            }
            MeshMsg::Replace { conn } => self.kick(conn, false),
            MeshMsg::Revoke { conn } => self.kick(conn, true),
            MeshMsg::Deliver { conn, cmd, reply } => self.deliver_to_conn(conn, cmd, reply),
        }
        None
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
            let _ = tx.unbounded_send(ConnCmd::Drain);
        }
    }
}

/// The message inside a failed channel send, when glommio hands it back.
fn returned<T>(e: glommio::GlommioError<T>) -> Option<T> {
    use glommio::{GlommioError, ResourceType};
    match e {
        GlommioError::WouldBlock(ResourceType::Channel(m))
        | GlommioError::Closed(ResourceType::Channel(m)) => Some(m),
        _ => None,
    }
}
