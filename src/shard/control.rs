//! The thread-safe control handle: backend command delivery into the shards, and shutdown.
//! Usable from any thread (the admin API, tests); completions wake the caller's executor.

use crate::store::{Command, DeliverError, SessionInfo};
use futures_channel::{mpsc, oneshot};
use std::time::Duration;

/// A reply slot for a delivery.
pub(crate) type DeliverReply = oneshot::Sender<Result<(), DeliverError>>;

/// Messages from outside into a shard.
pub(crate) enum Control {
    Deliver {
        identity: String,
        cmd: Command,
        reply: DeliverReply,
    },
    Info {
        identities: Vec<String>,
        reply: oneshot::Sender<Vec<Option<SessionInfo>>>,
    },
    Revoke {
        identity: String,
        reply: oneshot::Sender<bool>,
    },
    Replace {
        identity: String,
        conn: u64,
    },
    Stats {
        reply: oneshot::Sender<ShardStats>,
    },
    /// Stop accepting, then close the connections with 1001: all at once (`spread` zero) or
    /// one by one over `spread`.
    Shutdown {
        spread: Duration,
    },
}

/// Counters of one shard, for tests and the closing figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Shard index.
    pub shard: usize,
    /// Connections hosted (sockets on this shard).
    pub connections: usize,
    /// Identities owned by this shard with a live connection (local or via pointer).
    pub present: usize,
    /// Of those, how many live on another shard (presence pointers).
    pub pointers: usize,
    /// Sockets received from other shards.
    pub handoffs_in: u64,
    /// Sockets sent to their owner shard.
    pub handoffs_out: u64,
    /// Signature batches verified.
    pub verify_batches: u64,
    /// Signatures verified in those batches.
    pub verify_signatures: u64,
}

/// A cloneable, `Send` handle to the running shards.
#[derive(Clone)]
pub struct GatewayHandle {
    senders: Vec<mpsc::UnboundedSender<Control>>,
}

pub(crate) fn channels(n: usize) -> (GatewayHandle, Vec<mpsc::UnboundedReceiver<Control>>) {
    let (senders, receivers) = (0..n).map(|_| mpsc::unbounded()).unzip();
    (GatewayHandle { senders }, receivers)
}

impl GatewayHandle {
    fn owner(&self, identity: &str) -> &mpsc::UnboundedSender<Control> {
        &self.senders[super::owner_of(identity, self.senders.len())]
    }

    /// Number of shards.
    pub fn shards(&self) -> usize {
        self.senders.len()
    }

    /// Writes `cmd` to the live connection of `identity` (a uid, or `agent_id#public_key`),
    /// sealed or encrypted for its profile. Waits for the handshake to end if it is in progress.
    pub async fn deliver(&self, identity: &str, cmd: Command) -> Result<(), DeliverError> {
        let (reply, rx) = oneshot::channel();
        self.owner(identity)
            .unbounded_send(Control::Deliver {
                identity: identity.to_string(),
                cmd,
                reply,
            })
            .map_err(|_| DeliverError::ShuttingDown)?;
        rx.await.unwrap_or(Err(DeliverError::Closed))
    }

    /// Whether `identity` has a live authenticated connection.
    pub async fn is_connected(&self, identity: &str) -> bool {
        self.session_info(identity).await.is_some()
    }

    /// The live session of `identity`, if any.
    pub async fn session_info(&self, identity: &str) -> Option<SessionInfo> {
        self.sessions(&[identity.to_string()]).await.pop().flatten()
    }

    /// The live sessions of many identities at once (one message per shard), in input order.
    pub async fn sessions(&self, identities: &[String]) -> Vec<Option<SessionInfo>> {
        let n = self.senders.len();
        let mut per_shard: Vec<(Vec<usize>, Vec<String>)> = vec![(Vec::new(), Vec::new()); n];
        for (i, id) in identities.iter().enumerate() {
            let s = super::owner_of(id, n);
            per_shard[s].0.push(i);
            per_shard[s].1.push(id.clone());
        }
        let mut out = vec![None; identities.len()];
        let mut waits = Vec::new();
        for (shard, (idx, ids)) in per_shard.into_iter().enumerate() {
            if ids.is_empty() {
                continue;
            }
            let (reply, rx) = oneshot::channel();
            if self.senders[shard]
                .unbounded_send(Control::Info {
                    identities: ids,
                    reply,
                })
                .is_ok()
            {
                waits.push((idx, rx));
            }
        }
        for (idx, rx) in waits {
            if let Ok(infos) = rx.await {
                for (i, info) in idx.into_iter().zip(infos) {
                    if let Some(slot) = out.get_mut(i) {
                        *slot = info;
                    }
                }
            }
        }
        out
    }

    /// Closes the live connection of `identity` with 4001 (revocation); `true` if there was one.
    pub async fn revoke(&self, identity: &str) -> bool {
        let (reply, rx) = oneshot::channel();
        if self
            .owner(identity)
            .unbounded_send(Control::Revoke {
                identity: identity.to_string(),
                reply,
            })
            .is_err()
        {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Closes connection `conn` of `identity` with 4010 if it still holds the identity here (a
    /// newer connection took it on another node).
    pub fn replace(&self, identity: &str, conn: u64) {
        let _ = self.owner(identity).unbounded_send(Control::Replace {
            identity: identity.to_string(),
            conn,
        });
    }

    /// Counters of every shard.
    pub async fn stats(&self) -> Vec<ShardStats> {
        let mut out = Vec::with_capacity(self.senders.len());
        for s in &self.senders {
            let (reply, rx) = oneshot::channel();
            if s.unbounded_send(Control::Stats { reply }).is_ok() {
                if let Ok(st) = rx.await {
                    out.push(st);
                }
            }
        }
        out
    }

    /// Asks every shard to drain: stop accepting, close agents with 1001, exit.
    pub fn shutdown(&self) {
        self.shutdown_spread(Duration::ZERO);
    }

    /// Asks every shard to stop accepting and keep its connections until they close by
    /// themselves, closing those left one by one, evenly over `spread` (after a hand-over the
    /// successor accepts meanwhile), then exit.
    pub fn shutdown_spread(&self, spread: Duration) {
        for s in &self.senders {
            let _ = s.unbounded_send(Control::Shutdown { spread });
        }
    }
}
