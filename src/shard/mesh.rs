//! Messages between shards (glommio `channel_mesh`): socket hand-offs, presence pointers,
//! replacements, revocations and deliveries. A failed send hands the message back.

use super::control::DeliverReply;
use super::presence::Present;
use super::sys::OwnedSocket;
use crate::store::Command;
use std::net::SocketAddr;

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

/// The message inside a failed channel send, when glommio hands it back.
pub(super) fn returned<T>(e: glommio::GlommioError<T>) -> Option<T> {
    use glommio::{GlommioError, ResourceType};
    match e {
        GlommioError::WouldBlock(ResourceType::Channel(m))
        | GlommioError::Closed(ResourceType::Channel(m)) => Some(m),
        _ => None,
    }
}
