//! Presence: which connection holds each identity this shard owns, kept right across shards
//! (a newer connection replaces an older one with 4010, and the older one's cleanup never removes
//! the newer presence), and routing of commands, revocations and replacements to the connection
//! holding an identity. Across the nodes of a cluster, the fleet state carries the same claims
//! ([`crate::store::Fleet::claim_presence`]).

use super::control::DeliverReply;
use super::ctx::{ConnCmd, ShardCtx};
use super::mesh::{shard_of, MeshMsg};
use super::sys::OwnedSocket;
use crate::store::{Command, DeliverError, SessionInfo};
use std::net::SocketAddr;

/// A live identity as its owner shard knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Present {
    /// Connection id (its shard in the top bits).
    pub conn: u64,
    /// Session facts for the admin API.
    pub info: SessionInfo,
}

impl ShardCtx {
    /// `conn` (hosted here) authenticated as `identity`: record presence, replacing any older
    /// connection of that identity.
    pub fn claim(&self, identity: &str, conn: u64, info: SessionInfo) {
        self.shared.fleet.claim_presence(identity, conn, info);
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
        self.shared.fleet.release_presence(identity, conn);
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

    /// Closes connection `conn` of `identity` (owned here) with 4010 if it still holds the
    /// identity (a newer connection took it on another node).
    pub fn replace(&self, identity: &str, conn: u64) {
        let held = self.presence.borrow().get(identity).map(|p| p.conn) == Some(conn);
        if held {
            self.presence.borrow_mut().remove(identity);
            self.kick(conn, false);
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
}
