//! One live connection per agent across the cluster, and reaching an agent on another node.
//!
//! - **Presence**: the [`names::PRESENCE`] bucket maps a uid to the node and connection holding
//!   it, written by compare-and-swap when a connection authenticates and deleted (only if it
//!   still names that connection) when it ends: a write on connect and on disconnect, never per
//!   heartbeat. A newer connection elsewhere wins the swap and tells the old node to close its
//!   connection with 4010; the old one's cleanup then finds the newer entry and leaves it.
//! - **Liveness**: each run of a node (a process: `NODE_ID` and a random run number) refreshes
//!   one lease in [`names::NODES`] (expiring after [`LEASE_TTL`]); presence naming a run without
//!   a lease is stale. Runs, not node names, are the unit: during a hand-over the predecessor
//!   keeps its agents while the successor (same `NODE_ID`) takes new ones.
//! - **Node requests** on `aegis.node.<node>.<run>.<op>` (core NATS request/reply): `deliver` a
//!   command, `revoke` an agent, `replace` a connection.
//! - **Notifications**: the command stream republishes every stored command on
//!   `aegis.notify.cmd.<uid>`; the node holding that agent writes it. So a command reaches a
//!   connected agent even when the node that took it dies before telling anyone.
//!
//! [`LEASE_TTL`]: super::setup::LEASE_TTL

use super::bridge::unavailable;
use super::names;
use super::read;
use super::setup::Nats;
use crate::protocol::channel::BackendKind;
use crate::protocol::envelope::MsgType;
use crate::shard::GatewayHandle;
use crate::store::{Command, DeliverError, QueuedMessage, SessionInfo, StoreError};
use async_nats::jetstream::kv;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

/// Attempts at a compare-and-swap.
const CAS_TRIES: usize = 8;
/// How long a request to another node may take.
const NODE_TIMEOUT: Duration = Duration::from_secs(3);
/// Presence reads a session lookup keeps in flight at once.
const READS_IN_FLIGHT: usize = 256;
/// How often a node refreshes its lease.
const LEASE_EVERY: Duration = Duration::from_secs(5);

/// Who holds an agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// The node.
    pub node: String,
    /// That node's run (random per start): a holder of an earlier run is stale.
    #[serde(default)]
    pub run: u64,
    /// The connection on it.
    pub conn: u64,
    /// Session facts for the admin API.
    pub profile: u8,
    /// Unix seconds.
    pub session_expires: i64,
}

/// What this node shares with its NATS tasks: the shards (once started) and the agents it holds.
#[derive(Default)]
pub struct Local {
    /// The shards of this node.
    pub handle: OnceLock<GatewayHandle>,
    /// Registered agents connected here, with their connection (so notifications for other
    /// agents cost nothing).
    pub held: Mutex<HashMap<String, u64>>,
}

impl Local {
    fn holds(&self, uid: &str) -> bool {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains_key(uid)
    }

    /// Notes that connection `conn` of `uid` authenticated here.
    pub fn arrived(&self, uid: &str, conn: u64) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        held.insert(uid.to_string(), conn);
    }

    /// Notes that connection `conn` of `uid` ended (a newer one here stays noted).
    pub fn left(&self, uid: &str, conn: u64) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        if held.get(uid) == Some(&conn) {
            held.remove(uid);
        }
    }
}

/// A command as sent between nodes.
#[derive(Debug, Serialize, Deserialize)]
struct WireCommand {
    uid: String,
    message_id: String,
    kind: String,
    message_type: String,
    message: String,
    seq: u64,
}

impl WireCommand {
    fn of(uid: &str, c: &Command) -> WireCommand {
        WireCommand {
            uid: uid.to_string(),
            message_id: c.message_id.clone(),
            kind: c.kind.as_str().to_string(),
            message_type: c.msg_type.as_str().to_string(),
            message: String::from_utf8_lossy(&c.message_json).into_owned(),
            seq: c.seq,
        }
    }

    fn command(self) -> Option<(String, Command)> {
        let cmd = Command {
            message_id: self.message_id,
            kind: BackendKind::parse(&self.kind)?,
            msg_type: MsgType::parse(&self.message_type)?,
            message_json: self.message.into_bytes(),
            seq: self.seq,
        };
        Some((self.uid, cmd))
    }
}

/// The answer to a `deliver` request.
#[derive(Debug, Serialize, Deserialize)]
struct Delivered {
    ok: bool,
    #[serde(default)]
    not_pending: bool,
}

impl Holder {
    /// Whether this run of this node holds it.
    fn is_mine(&self, n: &Nats) -> bool {
        self.node == n.node_id && self.run == n.run
    }
}

fn holder_of(value: &[u8]) -> Option<Holder> {
    serde_json::from_slice(value).ok()
}

fn encode(h: &Holder) -> bytes::Bytes {
    serde_json::to_vec(h).unwrap_or_default().into()
}

/// Claims `uid` for connection `conn` of this node; tells the previous holder elsewhere to close.
pub async fn claim(n: &Nats, uid: &str, conn: u64, info: SessionInfo) -> Result<(), StoreError> {
    let mine = Holder {
        node: n.node_id.clone(),
        run: n.run,
        conn,
        profile: info.profile,
        session_expires: info.session_expires,
    };
    for _ in 0..CAS_TRIES {
        let current = read::revision(&n.presence, uid).await?;
        let (previous, written) = match &current {
            Some((value, revision)) => (
                value.as_deref().and_then(holder_of),
                n.presence
                    .update(uid, encode(&mine), *revision)
                    .await
                    .map(drop)
                    .map_err(|e| {
                        (
                            e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                            e.to_string(),
                        )
                    }),
            ),
            None => (
                None,
                n.presence
                    .create(uid, encode(&mine))
                    .await
                    .map(drop)
                    .map_err(|e| {
                        (
                            e.kind() == kv::CreateErrorKind::AlreadyExists,
                            e.to_string(),
                        )
                    }),
            ),
        };
        match written {
            Ok(()) => {
                if let Some(old) = previous.filter(|o| !o.is_mine(n)) {
                    let body = serde_json::json!({ "uid": uid, "conn": old.conn }).to_string();
                    let subject = names::node_subject(&old.node, old.run, "replace");
                    n.client
                        .publish(subject, body.into())
                        .await
                        .map_err(unavailable)?;
                }
                return Ok(());
            }
            Err((true, _)) => continue,
            Err((false, e)) => return Err(unavailable(e)),
        }
    }
    Err(unavailable("too many concurrent claims of one agent"))
}

/// Drops the claim of connection `conn` of this node on `uid`, if it still holds it.
pub async fn release(n: &Nats, uid: &str, conn: u64) -> Result<(), StoreError> {
    let Some((value, revision)) = read::entry(&n.presence, uid).await? else {
        return Ok(());
    };
    match holder_of(&value) {
        Some(h) if h.is_mine(n) && h.conn == conn => n
            .presence
            .delete_expect_revision(uid, Some(revision))
            .await
            .map_err(unavailable),
        _ => Ok(()),
    }
}

/// The holder of `uid` on another live node run, if any (`alive` caches lease lookups).
async fn elsewhere(
    n: &Nats,
    uid: &str,
    alive: &mut HashMap<String, bool>,
) -> Result<Option<Holder>, StoreError> {
    match other_holder(n, uid).await? {
        Some(h) => Ok(is_alive(n, &h, alive).await?.then_some(h)),
        None => Ok(None),
    }
}

/// The holder of `uid` if it is another run than this one (alive or not).
async fn other_holder(n: &Nats, uid: &str) -> Result<Option<Holder>, StoreError> {
    if !names::is_plain(uid) {
        return Ok(None);
    }
    let h = read::entry(&n.presence, uid)
        .await?
        .and_then(|(v, _)| holder_of(&v));
    Ok(h.filter(|h| !h.is_mine(n)))
}

/// Whether the run holding `h` has a lease.
async fn is_alive(
    n: &Nats,
    h: &Holder,
    alive: &mut HashMap<String, bool>,
) -> Result<bool, StoreError> {
    let key = names::lease_key(&h.node, h.run);
    if let Some(a) = alive.get(&key) {
        return Ok(*a);
    }
    let a = read::entry(&n.nodes, &key).await?.is_some();
    alive.insert(key, a);
    Ok(a)
}

/// The sessions of agents on other live nodes, in input order.
pub async fn sessions(n: &Nats, uids: Vec<String>) -> Result<Vec<Option<SessionInfo>>, StoreError> {
    // The presence reads in flight together (a broadcast asks for every agent), the few lease
    // lookups after them, cached per node run.
    let reads: Vec<_> = uids.iter().map(|uid| other_holder(n, uid)).collect();
    let holders: Vec<Result<Option<Holder>, StoreError>> = futures_util::stream::iter(reads)
        .buffered(READS_IN_FLIGHT)
        .collect()
        .await;
    let mut alive = HashMap::new();
    let mut out = Vec::with_capacity(uids.len());
    for h in holders {
        let live = match h? {
            Some(h) if is_alive(n, &h, &mut alive).await? => Some(SessionInfo {
                profile: h.profile,
                session_expires: h.session_expires,
            }),
            _ => None,
        };
        out.push(live);
    }
    Ok(out)
}

/// Asks the node holding `uid` to write `cmd`.
pub async fn deliver(n: &Nats, uid: &str, cmd: &Command) -> Result<(), DeliverError> {
    let Ok(Some(h)) = elsewhere(n, uid, &mut HashMap::new()).await else {
        return Err(DeliverError::NotConnected);
    };
    let body = serde_json::to_vec(&WireCommand::of(uid, cmd)).unwrap_or_default();
    let subject = names::node_subject(&h.node, h.run, "deliver");
    let reply = tokio::time::timeout(NODE_TIMEOUT, n.client.request(subject, body.into())).await;
    match reply {
        Ok(Ok(m)) => match serde_json::from_slice::<Delivered>(&m.payload) {
            Ok(d) if d.ok => Ok(()),
            Ok(d) if d.not_pending => Err(DeliverError::NotPending),
            _ => Err(DeliverError::NotConnected),
        },
        _ => Err(DeliverError::NotConnected),
    }
}

/// Asks the node holding `uid` to close it with 4001, and forgets its presence.
pub async fn revoke(n: &Nats, uid: &str) -> Result<bool, StoreError> {
    let holder = elsewhere(n, uid, &mut HashMap::new()).await?;
    let mut closed = false;
    if let Some(h) = holder {
        let subject = names::node_subject(&h.node, h.run, "revoke");
        let body = serde_json::json!({ "uid": uid }).to_string();
        if let Ok(Ok(m)) =
            tokio::time::timeout(NODE_TIMEOUT, n.client.request(subject, body.into())).await
        {
            closed = m.payload.as_ref() == b"true";
        }
    }
    if names::is_plain(uid) {
        n.presence.delete(uid).await.map_err(unavailable)?;
    }
    Ok(closed)
}

/// Serves this node's requests, notifications and lease until the client closes.
pub async fn serve(n: Arc<Nats>, local: Arc<Local>) {
    let node = n.node_id.clone();
    tokio::spawn(lease(Arc::clone(&n)));
    let nn = Arc::clone(&n);
    tokio::spawn(async move {
        forget_stale(&nn).await;
        // A crashed run's lease outlives it by up to LEASE_TTL: look again once it expired.
        tokio::time::sleep(super::setup::LEASE_TTL + LEASE_EVERY).await;
        forget_stale(&nn).await;
    });
    let requests = n
        .client
        .subscribe(names::node_subject(&node, n.run, "*"))
        .await;
    let notices = n.client.subscribe(names::NOTIFY_SUBJECTS.to_string()).await;
    let (Ok(mut requests), Ok(mut notices)) = (requests, notices) else {
        tracing::error!("cannot subscribe to this node's NATS subjects; cross-node requests fail");
        return;
    };
    let l = Arc::clone(&local);
    let nn = Arc::clone(&n);
    tokio::spawn(async move {
        while let Some(m) = notices.next().await {
            let l = Arc::clone(&l);
            let _ = &nn;
            tokio::spawn(async move { on_notice(&l, m).await });
        }
    });
    while let Some(m) = requests.next().await {
        let (n, local) = (Arc::clone(&n), Arc::clone(&local));
        tokio::spawn(async move { on_request(&n, &local, m).await });
    }
}

/// A command was stored: write it if its agent is connected here.
async fn on_notice(local: &Local, m: async_nats::Message) {
    let Some(uid) = m.subject.rsplit('.').next().and_then(names::untoken) else {
        return;
    };
    if !local.holds(&uid) {
        return;
    }
    let seq = m
        .headers
        .as_ref()
        .and_then(|h| h.get("Nats-Sequence"))
        .and_then(|v| v.as_str().parse::<u64>().ok());
    let (Some(seq), Ok(mut rec)) = (seq, serde_json::from_slice::<QueuedMessage>(&m.payload))
    else {
        return;
    };
    rec.seq = seq;
    if let (Some(cmd), Some(handle)) = (Command::of_queued(&rec), local.handle.get()) {
        let _ = handle.deliver(&uid, cmd).await;
    }
}

/// A request from another node.
async fn on_request(n: &Nats, local: &Local, m: async_nats::Message) {
    let op = m.subject.rsplit('.').next().unwrap_or_default().to_string();
    let Some(handle) = local.handle.get() else {
        return;
    };
    let answer: Option<Vec<u8>> = match op.as_str() {
        "deliver" => {
            let parsed = serde_json::from_slice::<WireCommand>(&m.payload)
                .ok()
                .and_then(WireCommand::command);
            let result = match parsed {
                Some((uid, cmd)) => handle.deliver(&uid, cmd).await,
                None => Err(DeliverError::NotConnected),
            };
            let d = Delivered {
                ok: result.is_ok(),
                not_pending: result == Err(DeliverError::NotPending),
            };
            serde_json::to_vec(&d).ok()
        }
        "revoke" => {
            let uid = serde_json::from_slice::<serde_json::Value>(&m.payload)
                .ok()
                .and_then(|v| v.get("uid")?.as_str().map(str::to_string));
            let closed = match uid {
                Some(uid) => handle.revoke(&uid).await,
                None => false,
            };
            Some(if closed {
                b"true".to_vec()
            } else {
                b"false".to_vec()
            })
        }
        "replace" => {
            let v = serde_json::from_slice::<serde_json::Value>(&m.payload).ok();
            let uid = v.as_ref().and_then(|v| v.get("uid")?.as_str());
            let conn = v.as_ref().and_then(|v| v.get("conn")?.as_u64());
            if let (Some(uid), Some(conn)) = (uid, conn) {
                handle.replace(uid, conn);
            }
            None
        }
        _ => None,
    };
    if let (Some(reply), Some(body)) = (m.reply, answer) {
        let _ = n.client.publish(reply, body.into()).await;
    }
}

/// Keeps this node's lease alive.
async fn lease(n: Arc<Nats>) {
    loop {
        let value = serde_json::json!({ "node": n.node_id, "run": n.run }).to_string();
        let key = names::lease_key(&n.node_id, n.run);
        if let Err(e) = n.nodes.put(&key, value.into()).await {
            tracing::debug!(error = %e, "node lease not refreshed");
        }
        if let Ok(info) = n.cmd.get_info().await {
            metrics::gauge!(crate::metrics::QUEUE_DEPTH).set(info.state.messages as f64);
        }
        tokio::time::sleep(LEASE_EVERY).await;
    }
}

/// Deletes presence left by an earlier run of this node (a crash leaves it behind); a run still
/// holding a lease (a predecessor draining after a hand-over) keeps its agents.
async fn forget_stale(n: &Nats) {
    let Ok(found) = super::scan::bucket(&n.client, &n.presence, ">").await else {
        return;
    };
    let mut alive = HashMap::new();
    for (uid, value) in found {
        let Ok(h) = serde_json::from_slice::<Holder>(&value) else {
            continue;
        };
        if h.node != n.node_id || h.run == n.run {
            continue;
        }
        if is_alive(n, &h, &mut alive).await.unwrap_or(true) {
            continue;
        }
        if let Ok(Some((value, revision))) = read::entry(&n.presence, &uid).await {
            if holder_of(&value).as_ref() == Some(&h) {
                let _ = n
                    .presence
                    .delete_expect_revision(&uid, Some(revision))
                    .await;
            }
        }
    }
}
