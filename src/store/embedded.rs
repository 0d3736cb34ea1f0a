//! The single-node backend of [`Fleet`]: the embedded fjall [`Store`]. Its operations are local
//! and answer at once; the durable ones await the group commit. Maintenance (expiry of queued
//! commands and pending registrations, retention of the event log and of final delivery
//! records) runs in [`Fleet::sweep`].

use super::fleet::{ready, Command, Fleet, Fut};
use super::{
    AgentRecord, EventRecord, Fault, NewMessage, QueueError, QueuedMessage, Registration, Store,
    StoreError, StoredEvent,
};

/// Agent messages kept in the event log.
pub const EVENTS_KEPT: u64 = 1_000_000;
/// How long final delivery records stay visible in `GET /api/v1/messages/{id}`, seconds.
pub const MESSAGE_RETENTION_S: i64 = 7 * 86_400;
/// Retention work runs when `now` is a multiple of this many seconds (about once a minute).
const RETENTION_EVERY_S: i64 = 60;
/// The queue-depth gauge is counted when `now` is a multiple of this many seconds.
const DEPTH_EVERY_S: i64 = 15;
/// Queued commands expired per sweep at most.
const EXPIRE_PER_SWEEP: usize = 1_000;
/// Final delivery records purged per retention pass at most.
const PURGE_PER_SWEEP: usize = 10_000;

impl Fleet for Store {
    fn get_agent<'a>(&'a self, uid: &'a str) -> Fut<'a, Result<Option<AgentRecord>, StoreError>> {
        ready(Store::get_agent(self, uid))
    }

    fn uids_for_host<'a>(&'a self, host_id: &'a str) -> Fut<'a, Result<Vec<String>, StoreError>> {
        ready(Store::uids_for_host(self, host_id))
    }

    fn list_agents<'a>(
        &'a self,
        after: Option<&'a str>,
        limit: usize,
    ) -> Fut<'a, Result<Vec<AgentRecord>, StoreError>> {
        ready(Store::list_agents(self, after, limit))
    }

    fn register_agent<'a>(&'a self, record: &'a AgentRecord) -> Fut<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.put_agent(record)?;
            self.sync().await
        })
    }

    fn revoke_agent<'a>(&'a self, uid: &'a str, now: i64) -> Fut<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let existed = self.remove_agent(uid)?.is_some();
            self.revoke_queue(uid, now)?;
            self.sync().await?;
            Ok(existed)
        })
    }

    fn set_last_seen<'a>(&'a self, uid: &'a str, now: i64) -> Fut<'a, Result<(), StoreError>> {
        ready(Store::set_last_seen(self, uid, now).map(drop))
    }

    fn put_registration<'a>(&'a self, reg: &'a Registration) -> Fut<'a, Result<(), StoreError>> {
        ready(Store::put_registration(self, reg))
    }

    fn remove_registration<'a>(&'a self, id: &'a str) -> Fut<'a, Result<bool, StoreError>> {
        ready(Store::remove_registration(self, id))
    }

    fn take_http_registration<'a>(
        &'a self,
        id: &'a str,
    ) -> Fut<'a, Result<Option<Registration>, StoreError>> {
        ready(Store::take_registration(self, id, Registration::HTTP))
    }

    fn touch_channel<'a>(
        &'a self,
        uid: &'a str,
        channel: &'a str,
        kind: &'a str,
        now: i64,
    ) -> Fut<'a, Result<(), StoreError>> {
        ready(Store::touch_channel(self, uid, channel, kind, now).map(drop))
    }

    fn channels_of<'a>(&'a self, uid: &'a str) -> Fut<'a, Result<Vec<String>, StoreError>> {
        ready(Store::channels_of(self, uid))
    }

    fn enqueue<'a>(
        &'a self,
        uid: &'a str,
        msg: &'a NewMessage,
        now: i64,
        max_queue: usize,
    ) -> Fut<'a, Result<QueuedMessage, QueueError>> {
        Box::pin(self.enqueue_durable(uid, msg, now, max_queue))
    }

    fn enqueue_many<'a>(
        &'a self,
        items: &'a [(String, NewMessage)],
        now: i64,
        max_queue: usize,
    ) -> Fut<'a, Result<Vec<Result<QueuedMessage, QueueError>>, StoreError>> {
        Box::pin(self.enqueue_many_durable(items, now, max_queue))
    }

    fn pending<'a>(
        &'a self,
        uid: &'a str,
        now: i64,
    ) -> Fut<'a, Result<Vec<QueuedMessage>, StoreError>> {
        ready(Store::pending(self, uid, now))
    }

    fn record_attempt<'a>(
        &'a self,
        uid: &'a str,
        cmd: &'a Command,
        conn: u64,
        now: i64,
    ) -> Fut<'a, Result<Option<QueuedMessage>, StoreError>> {
        ready(Store::record_attempt(self, uid, cmd.seq, conn, now))
    }

    fn mark_delivered<'a>(
        &'a self,
        uid: &'a str,
        message_id: &'a str,
        now: i64,
    ) -> Fut<'a, Result<bool, StoreError>> {
        ready(Store::mark_delivered(self, uid, message_id, now))
    }

    fn mark_failed<'a>(
        &'a self,
        uid: &'a str,
        cmd: &'a Command,
        reason: &'a str,
        now: i64,
    ) -> Fut<'a, Result<bool, StoreError>> {
        ready(Store::mark_failed(self, uid, cmd.seq, reason, now))
    }

    fn requeue<'a>(
        &'a self,
        uid: &'a str,
        cmd: &'a Command,
        now: i64,
    ) -> Fut<'a, Result<bool, StoreError>> {
        ready(Store::requeue(self, uid, cmd.seq, now))
    }

    fn queue_depth<'a>(&'a self, uid: &'a str) -> Fut<'a, Result<usize, StoreError>> {
        ready(Store::queue_depth(self, uid))
    }

    fn message_status<'a>(
        &'a self,
        message_id: &'a str,
    ) -> Fut<'a, Result<Vec<QueuedMessage>, StoreError>> {
        ready(Store::message_status(self, message_id))
    }

    fn append_events(&self, events: Vec<EventRecord>) -> Fut<'_, Result<(), StoreError>> {
        ready(self.append_records(events).map(drop))
    }

    fn events_after(
        &self,
        after: u64,
        limit: usize,
    ) -> Fut<'_, Result<Vec<StoredEvent>, StoreError>> {
        ready(Store::events_after(self, after, limit))
    }

    fn fault(&self) -> Option<Fault> {
        Store::fault(self)
    }

    fn check_writable(&self) -> Result<(), StoreError> {
        Store::check_writable(self)
    }

    fn sweep(&self, now: i64) -> Fut<'_, usize> {
        ready(sweep(self, now))
    }
}

/// One maintenance pass (see [`Fleet::sweep`]); logs what fails, never stops.
pub(super) fn sweep(store: &Store, now: i64) -> usize {
    if store.fault().is_some() {
        return 0; // a failed store refuses writes; it reopens by itself
    }
    if now % DEPTH_EVERY_S == 0 {
        match store.pending_total() {
            Ok(n) => metrics::gauge!(crate::metrics::QUEUE_DEPTH).set(n as f64),
            Err(e) => tracing::debug!(error = %e, "queue depth not counted"),
        }
    }
    if now % RETENTION_EVERY_S == 0 {
        if let Err(e) = store.trim_events(EVENTS_KEPT) {
            tracing::warn!(error = %e, "event retention failed");
        }
        if let Err(e) = store.purge_terminal(now - MESSAGE_RETENTION_S, PURGE_PER_SWEEP) {
            tracing::warn!(error = %e, "message retention failed");
        }
        // Registrations left pending by peers that never completed them (PROTOCOL §6: 300 s).
        if let Err(e) = store.purge_expired_registrations(now) {
            tracing::warn!(error = %e, "registration expiry failed");
        }
    }
    match store.expire_due(now, EXPIRE_PER_SWEEP) {
        Ok(n) => n,
        Err(e) => {
            tracing::warn!(error = %e, "expiry sweep failed");
            0
        }
    }
}
