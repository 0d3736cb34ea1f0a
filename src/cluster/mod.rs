//! Cluster mode (DESIGN §7): the fleet state in NATS JetStream, shared by every node behind a
//! plain TCP balancer. [`Cluster`] implements [`Fleet`], so the connection code and the admin
//! operations run unchanged; a node keeps only its live connections and sessions.
//!
//! | file | what it is |
//! |---|---|
//! | `bridge.rs` | the NATS client's own tokio thread, and jobs handed to it from the shards |
//! | `setup.rs` | connecting, the streams and buckets, server and settings checks |
//! | `names.rs` | stream, bucket, subject and key names; ids as tokens |
//! | `registry.rs` | agents, host index, pending registrations, channels (KV buckets) |
//! | `queue.rs` | the command queue (one subject per agent) and delivery status |
//! | `events.rs` | the event log northbound (`aegis.agent.<id>.<kind>`) |
//! | `presence.rs` | one connection per agent across nodes, node leases, node requests |
//! | `read.rs` | reads the gateway decides on, from the stream leader |
//! | `scan.rs` | reading many records in one pass of an ephemeral consumer |
//!
//! What survives what is in the README ("Cluster").

mod bridge;
pub mod events;
mod names;
mod presence;
mod queue;
mod read;
mod registry;
mod scan;
mod setup;

pub use bridge::Bridge;
pub use setup::{connect_client, SetupError};

use crate::config::Config;
use crate::shard::GatewayHandle;
use crate::store::fleet::{ready, Fut};
use crate::store::{
    AgentRecord, Command, DeliverError, EventRecord, Fault, Fleet, MessageStatus, NewMessage,
    QueueError, QueuedMessage, Registration, SessionInfo, StoreError, StoredEvent,
};
use presence::Local;
use setup::Nats;
use std::sync::Arc;

/// The fleet state of a cluster node.
pub struct Cluster {
    bridge: Bridge<Nats>,
    nats: Arc<Nats>,
    local: Arc<Local>,
    /// `MESSAGE_TTL` in seconds: the stream's max age, so the longest a command can live.
    max_ttl_s: i64,
}

impl Cluster {
    /// Connects to NATS and prepares the streams and buckets (see [`setup`]).
    ///
    /// # Errors
    /// No server reachable, JetStream disabled, or a stream or bucket refused.
    pub fn start(config: &Config) -> Result<Cluster, SetupError> {
        let cfg = config.clone();
        let (bridge, nats) = Bridge::start(move || async move { setup::open(&cfg).await })?;
        let local = Arc::new(Local::default());
        let l = Arc::clone(&local);
        bridge.spawn(move |n| presence::serve(n, l));
        tracing::info!(
            node = %nats.node_id,
            servers = %config.nats.urls.join(","),
            "cluster mode: fleet state in NATS JetStream"
        );
        Ok(Cluster {
            bridge,
            nats,
            local,
            max_ttl_s: i64::try_from(config.message_ttl.as_secs()).unwrap_or(i64::MAX),
        })
    }

    /// Hands the node's shards to the cluster (for requests from other nodes and notifications).
    pub fn attach(&self, handle: GatewayHandle) {
        let _ = self.local.handle.set(handle);
    }

    /// This node's id.
    pub fn node_id(&self) -> &str {
        &self.nats.node_id
    }

    /// Runs a job on the NATS thread (see [`Bridge::run`]).
    fn run<T, J, F>(&self, job: J) -> Fut<'static, Result<T, StoreError>>
    where
        T: Send + 'static,
        J: FnOnce(Arc<Nats>) -> F + Send + 'static,
        F: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        Box::pin(self.bridge.run(job))
    }
}

/// A registered uid (unregistered identities, `agent_id#key`, stay local to a node).
fn is_uid(identity: &str) -> bool {
    !identity.contains('#')
}

impl Fleet for Cluster {
    fn get_agent<'a>(&'a self, uid: &'a str) -> Fut<'a, Result<Option<AgentRecord>, StoreError>> {
        let uid = uid.to_string();
        self.run(move |n| async move { registry::get_agent(&n, &uid).await })
    }

    fn uids_for_host<'a>(&'a self, host_id: &'a str) -> Fut<'a, Result<Vec<String>, StoreError>> {
        let host = host_id.to_string();
        self.run(move |n| async move { registry::uids_for_host(&n, &host).await })
    }

    fn list_agents<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> Fut<'a, Result<Vec<AgentRecord>, StoreError>> {
        let after = after.map(str::to_string);
        self.run(move |n| async move { registry::list_agents(&n, after.as_deref(), limit).await })
    }

    fn register_agent<'a>(&'a self, record: &'a AgentRecord) -> Fut<'a, Result<(), StoreError>> {
        let record = record.clone();
        self.run(move |n| async move { registry::register_agent(&n, &record).await })
    }

    fn revoke_agent<'a>(&'a self, uid: &'a str, now: i64) -> Fut<'a, Result<bool, StoreError>> {
        let uid = uid.to_string();
        self.run(move |n| async move {
            let existed = registry::remove_agent(&n, &uid).await?;
            queue::revoke_all(&n, &uid, now).await?;
            Ok(existed)
        })
    }

    fn set_last_seen<'a>(&'a self, uid: &'a str, now: i64) -> Fut<'a, Result<(), StoreError>> {
        let uid = uid.to_string();
        self.run(move |n| async move { registry::set_last_seen(&n, &uid, now).await })
    }

    fn put_registration<'a>(&'a self, reg: &'a Registration) -> Fut<'a, Result<(), StoreError>> {
        let reg = reg.clone();
        self.run(move |n| async move { registry::put_registration(&n, &reg).await })
    }

    fn take_http_registration<'a>(
        &'a self,
        id: &'a str,
    ) -> Fut<'a, Result<Option<Registration>, StoreError>> {
        let id = id.to_string();
        self.run(move |n| async move { registry::take_http_registration(&n, &id).await })
    }

    fn remove_registration<'a>(&'a self, id: &'a str) -> Fut<'a, Result<bool, StoreError>> {
        let id = id.to_string();
        self.run(move |n| async move { registry::remove_registration(&n, &id).await })
    }

    fn touch_channel<'a>(
        &'a self,
        uid: &'a str,
        channel: &'a str,
        kind: &'a str,
        now: i64,
    ) -> Fut<'a, Result<(), StoreError>> {
        let (uid, channel, kind) = (uid.to_string(), channel.to_string(), kind.to_string());
        self.run(
            move |n| async move { registry::touch_channel(&n, &uid, &channel, &kind, now).await },
        )
    }

    fn channels_of<'a>(&'a self, uid: &'a str) -> Fut<'a, Result<Vec<String>, StoreError>> {
        let uid = uid.to_string();
        self.run(move |n| async move { registry::channels_of(&n, &uid).await })
    }

    fn enqueue<'a>(
        &'a self,
        uid: &'a str,
        msg: &'a NewMessage,
        now: i64,
        max_queue: usize,
    ) -> Fut<'a, Result<QueuedMessage, QueueError>> {
        let (uid, msg, ttl) = (uid.to_string(), msg.clone(), self.max_ttl_s);
        let job = self.bridge.run(move |n| async move {
            Ok(queue::enqueue(&n, &uid, &msg, now, max_queue, ttl).await)
        });
        Box::pin(async move { job.await.map_err(QueueError::from)? })
    }

    fn enqueue_many<'a>(
        &'a self,
        items: &'a [(String, NewMessage)],
        now: i64,
        max_queue: usize,
    ) -> Fut<'a, Result<Vec<Result<QueuedMessage, QueueError>>, StoreError>> {
        if let Err(e) = self.check_writable() {
            return ready(Err(e));
        }
        // One job per command, all in flight at once: the publishes are pipelined.
        let jobs: Vec<_> = items
            .iter()
            .map(|(uid, msg)| self.enqueue(uid, msg, now, max_queue))
            .collect();
        Box::pin(async move {
            let results = futures_util::future::join_all(jobs).await;
            Ok(results
                .into_iter()
                .map(|r| {
                    r.map(|q| QueuedMessage {
                        payload: String::new(),
                        ..q
                    })
                })
                .collect())
        })
    }

    fn pending<'a>(
        &'a self,
        uid: &'a str,
        now: i64,
    ) -> Fut<'a, Result<Vec<QueuedMessage>, StoreError>> {
        let uid = uid.to_string();
        self.run(move |n| async move { queue::pending(&n, &uid, now).await })
    }

    fn record_attempt<'a>(
        &'a self,
        uid: &'a str,
        cmd: &'a Command,
        conn: u64,
        now: i64,
    ) -> Fut<'a, Result<Option<QueuedMessage>, StoreError>> {
        let (uid, cmd) = (uid.to_string(), cmd.clone());
        self.run(move |n| async move { queue::record_attempt(&n, &uid, &cmd, conn, now).await })
    }

    fn mark_delivered<'a>(
        &'a self,
        uid: &'a str,
        message_id: &'a str,
        now: i64,
    ) -> Fut<'a, Result<bool, StoreError>> {
        let (uid, id) = (uid.to_string(), message_id.to_string());
        self.run(move |n| async move { queue::mark_delivered(&n, &uid, &id, now).await })
    }

    fn mark_failed<'a>(
        &'a self,
        uid: &'a str,
        cmd: &'a Command,
        reason: &'a str,
        now: i64,
    ) -> Fut<'a, Result<bool, StoreError>> {
        let (uid, cmd, reason) = (uid.to_string(), cmd.clone(), reason.to_string());
        self.run(move |n| async move {
            queue::finish(&n, &uid, &cmd, MessageStatus::Failed, Some(&reason), now).await
        })
    }

    fn requeue<'a>(
        &'a self,
        uid: &'a str,
        cmd: &'a Command,
        now: i64,
    ) -> Fut<'a, Result<bool, StoreError>> {
        let (uid, cmd) = (uid.to_string(), cmd.clone());
        self.run(move |n| async move { queue::requeue(&n, &uid, &cmd, now).await })
    }

    fn queue_depth<'a>(&'a self, uid: &'a str) -> Fut<'a, Result<usize, StoreError>> {
        let uid = uid.to_string();
        self.run(move |n| async move { queue::depth(&n, &uid).await })
    }

    fn message_status<'a>(
        &'a self,
        message_id: &'a str,
    ) -> Fut<'a, Result<Vec<QueuedMessage>, StoreError>> {
        let id = message_id.to_string();
        let now = crate::shard::now_ms() / 1000;
        self.run(move |n| async move { queue::status_of(&n, &id, now).await })
    }

    fn append_events(&self, events: Vec<EventRecord>) -> Fut<'_, Result<(), StoreError>> {
        self.run(move |n| async move { events::append(&n, events).await })
    }

    fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Fut<'_, Result<Vec<StoredEvent>, StoreError>> {
        self.run(move |n| async move { events::after(&n, after, limit).await })
    }

    fn fault(&self) -> Option<Fault> {
        (!self.nats.is_connected()).then(|| Fault {
            disk_full: false,
            cause: "NATS is unreachable".into(),
        })
    }

    fn reachable(&self) -> bool {
        self.nats.is_connected()
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        match self.fault() {
            Some(f) => Err(StoreError::Unavailable(f)),
            None => Ok(()),
        }
    }

    fn sweep(&self, _now: i64) -> Fut<'_, usize> {
        // JetStream expires commands (max age), registrations and leases (bucket max age).
        ready(0)
    }

    fn claim_presence(&self, identity: &str, conn: u64, info: SessionInfo) {
        if !is_uid(identity) {
            return;
        }
        self.local.arrived(identity, conn);
        let uid = identity.to_string();
        self.bridge.spawn(move |n| async move {
            if let Err(e) = presence::claim(&n, &uid, conn, info).await {
                tracing::warn!(error = %e, uid, "presence not claimed in the cluster");
            }
        });
    }

    fn release_presence(&self, identity: &str, conn: u64) {
        if !is_uid(identity) {
            return;
        }
        self.local.left(identity, conn);
        let uid = identity.to_string();
        self.bridge.spawn(move |n| async move {
            if let Err(e) = presence::release(&n, &uid, conn).await {
                tracing::debug!(error = %e, uid, "presence not released in the cluster");
            }
        });
    }

    fn sessions_elsewhere<'a>(&'a self, uids: &'a [String]) -> Fut<'a, Vec<Option<SessionInfo>>> {
        let len = uids.len();
        let uids = uids.to_vec();
        let job = self
            .bridge
            .run(move |n| async move { presence::sessions(&n, uids).await });
        Box::pin(async move { job.await.unwrap_or_else(|_| vec![None; len]) })
    }

    fn deliver_elsewhere<'a>(
        &'a self,
        uid: &'a str,
        cmd: &'a Command,
    ) -> Fut<'a, Result<(), DeliverError>> {
        let (uid, cmd) = (uid.to_string(), cmd.clone());
        let job = self
            .bridge
            .run(move |n| async move { Ok(presence::deliver(&n, &uid, &cmd).await) });
        Box::pin(async move { job.await.unwrap_or(Err(DeliverError::NotConnected)) })
    }

    fn revoke_elsewhere<'a>(&'a self, uid: &'a str) -> Fut<'a, bool> {
        let uid = uid.to_string();
        let job = self
            .bridge
            .run(move |n| async move { presence::revoke(&n, &uid).await });
        Box::pin(async move { job.await.unwrap_or(false) })
    }
}
