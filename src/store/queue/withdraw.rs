//! Refused commands that may still be in the store, and the durable enqueue that refuses them.
//!
//! A command is refused (never answered `queued`) when its enqueue or its sync fails. Its
//! records may still be there: in the poisoned database's memtable (the write succeeded, the
//! sync did not), or in the journal (fjall flushes its buffer when the database closes, so even a
//! failed write can come back at the reopen). Each refused command is kept as a [`Withdrawal`]:
//! hidden from delivery at once ([`Store::pending`](crate::store::Store::pending) skips it) and
//! removed from the store as soon as it accepts writes (by the committer, or during the reopen
//! before the new database is published). A withdrawal removes a queue record only if it still is
//! the refused command (same message id), so it can never take an accepted one.

use super::{keys, state, QueueError, QueuedMessage, WHAT};
use crate::store::{codec, Engine, FjallContext, Inner, NewMessage, Store, StoreError};
use std::{
    collections::HashSet,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex, PoisonError,
    },
};

/// One refused command of one agent.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Withdrawal {
    /// The agent.
    pub agent_uid: String,
    /// Its seq in the agent's queue.
    pub seq: u64,
    /// The command's message id.
    pub message_id: String,
    /// Its expiry (part of the expiry index key).
    pub expires_at: i64,
}

impl Withdrawal {
    fn of(record: &QueuedMessage) -> Withdrawal {
        Withdrawal {
            agent_uid: record.agent_uid.clone(),
            seq: record.seq,
            message_id: record.message_id.clone(),
            expires_at: record.expires_at,
        }
    }
}

/// The refused commands not yet removed from the store.
#[derive(Debug, Default)]
pub struct Withdrawals {
    /// Fast path: `false` when the list is empty (the usual case), no lock taken.
    any: AtomicBool,
    list: Mutex<Vec<Withdrawal>>,
}

impl Withdrawals {
    /// Adds refused records.
    pub fn add<'a>(&self, records: impl IntoIterator<Item = &'a QueuedMessage>) {
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.extend(records.into_iter().map(Withdrawal::of));
        self.any.store(!list.is_empty(), Ordering::Release);
    }

    /// Seqs of the agent's refused commands (empty almost always, without locking).
    pub fn seqs_of(&self, uid: &str) -> HashSet<u64> {
        if !self.any.load(Ordering::Acquire) {
            return HashSet::new();
        }
        let list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.iter()
            .filter(|w| w.agent_uid == uid)
            .map(|w| w.seq)
            .collect()
    }

    /// A copy of the list.
    fn snapshot(&self) -> Vec<Withdrawal> {
        if !self.any.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Drops `done` (removed from the store and synced) from the list.
    pub fn forget(&self, done: &[Withdrawal]) {
        if done.is_empty() {
            return;
        }
        let done: HashSet<&Withdrawal> = done.iter().collect();
        let mut list = self.list.lock().unwrap_or_else(PoisonError::into_inner);
        list.retain(|w| !done.contains(w));
        self.any.store(!list.is_empty(), Ordering::Release);
    }

    /// Number of refused commands still listed.
    pub fn len(&self) -> usize {
        self.list
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Inner {
    /// Removes every listed refused command from `engine` (not synced, not forgotten);
    /// returns the ones handled.
    pub(crate) fn withdraw_on(&self, engine: &Engine) -> Result<Vec<Withdrawal>, StoreError> {
        let todo = self.withdrawals.snapshot();
        if todo.is_empty() {
            return Ok(todo);
        }
        let ks = &engine.ks;
        let mut stripes = self
            .queues
            .lock_many(todo.iter().map(|w| w.agent_uid.as_str()));
        let mut batch = engine.db.batch();
        for w in &todo {
            let qkey = keys::queue_key(&w.agent_uid, w.seq);
            let current = ks.queue.get(&qkey).ctx("reading a refused command")?;
            let same = current
                .as_ref()
                .and_then(|v| codec::decode::<QueuedMessage>(WHAT, &qkey, v).ok())
                .is_some_and(|m| m.message_id == w.message_id);
            if same {
                batch.remove(&ks.queue, qkey);
                batch.remove(
                    &ks.queue,
                    keys::expiry_key(w.expires_at, &w.agent_uid, w.seq),
                );
            }
            // The message id was made for this one command: nothing else uses the key.
            batch.remove(&ks.messages, keys::message_key(&w.message_id, &w.agent_uid));
            if let Some(stripe) = stripes.get_mut(&super::QueueState::stripe_of(&w.agent_uid)) {
                state::mark_stale(stripe, &w.agent_uid);
            }
        }
        batch.commit().ctx("withdrawing refused commands")?;
        tracing::info!(
            commands = todo.len(),
            "refused commands withdrawn from the store"
        );
        Ok(todo)
    }

    /// [`Inner::withdraw_on`] on the current engine, synced, then forgotten.
    pub(crate) fn withdraw_pending(&self, engine: &Engine) -> Result<(), StoreError> {
        let done = self.withdraw_on(engine)?;
        if done.is_empty() {
            return Ok(());
        }
        engine
            .db
            .persist(fjall::PersistMode::SyncAll)
            .ctx("syncing withdrawals")?;
        self.withdrawals.forget(&done);
        Ok(())
    }
}

impl Store {
    /// Enqueues `msg` for `agent_uid` (as [`Store::enqueue`]) and waits until it is durable.
    /// Refuses it without writing when [`Store::check_writable`] does; a command whose write or
    /// sync fails is refused and withdrawn, so it is never delivered.
    ///
    /// # Errors
    /// As [`Store::enqueue`], and [`QueueError::Store`] with the store's error when it is not
    /// writable or the sync fails.
    pub async fn enqueue_durable(
        &self,
        agent_uid: &str,
        msg: &NewMessage,
        now: i64,
        max_queue: usize,
    ) -> Result<QueuedMessage, QueueError> {
        self.check_writable()?;
        let engine = self.engine()?;
        let record = self.enqueue_on(&engine, agent_uid, msg, now, max_queue)?;
        let epoch = engine.epoch;
        drop(engine);
        if let Err(e) = self.sync_epoch(epoch).await {
            self.withdraw(std::slice::from_ref(&record));
            return Err(e.into());
        }
        Ok(record)
    }

    /// [`Store::enqueue_many`] followed by one sync. The items' results are returned only if the
    /// sync succeeded; otherwise every item enqueued is refused and withdrawn.
    ///
    /// # Errors
    /// The store is not writable ([`Store::check_writable`]) or the sync failed.
    pub async fn enqueue_many_durable(
        &self,
        items: &[(String, NewMessage)],
        now: i64,
        max_queue: usize,
    ) -> Result<Vec<Result<QueuedMessage, QueueError>>, StoreError> {
        self.check_writable()?;
        let engine = self.engine()?;
        let results =
            self.enqueue_chunked_on(&engine, items, now, max_queue, super::MAX_BATCH_BYTES);
        let epoch = engine.epoch;
        drop(engine);
        if let Err(e) = self.sync_epoch(epoch).await {
            let enqueued: Vec<QueuedMessage> = results.into_iter().filter_map(Result::ok).collect();
            self.withdraw(&enqueued);
            return Err(e);
        }
        Ok(results)
    }

    /// Refuses `records` after their write: hidden from delivery now, removed from the store
    /// by the committer as soon as it accepts writes.
    pub(crate) fn withdraw(&self, records: &[QueuedMessage]) {
        if records.is_empty() {
            return;
        }
        tracing::warn!(
            commands = records.len(),
            "commands refused after their write; withdrawing them"
        );
        self.inner.withdrawals.add(records);
    }

    /// Refused commands not yet removed from the store.
    pub fn withdrawals_pending(&self) -> usize {
        self.inner.withdrawals.len()
    }
}
