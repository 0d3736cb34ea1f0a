//! Per-agent queue operations: enqueue, attempts and status changes (reads: `read.rs`).

use super::{
    keys, stage_final, stage_new,
    state::{self, QueueState, Stripe},
    Attempt, MessageStatus, NewMessage, QueueError, QueuedMessage, MAX_ATTEMPTS_KEPT,
    MAX_BATCH_BYTES, WHAT,
};
use crate::store::{
    codec::{self, check_key_part, valid_key_part},
    Engine, FjallContext, Store, StoreError,
};
use fjall::OwnedWriteBatch as WriteBatch;
use std::{
    collections::{BTreeMap, HashSet},
    sync::{Arc, MutexGuard},
};

impl Store {
    /// Enqueues `msg` for `agent_uid` at `now` and returns the stored record (status
    /// `queued`). Not durable until [`Store::sync`].
    ///
    /// # Errors
    /// [`QueueError::Full`] when the agent already has `max_queue` pending commands,
    /// [`QueueError::Duplicate`] when `message_id` is already stored for this agent,
    /// [`QueueError::Store`] for an invalid id, an oversized record or a storage error.
    pub fn enqueue(
        &self,
        agent_uid: &str,
        msg: &NewMessage,
        now: i64,
        max_queue: usize,
    ) -> Result<QueuedMessage, QueueError> {
        let engine = self.engine()?;
        self.enqueue_on(&engine, agent_uid, msg, now, max_queue)
    }

    /// [`Store::enqueue`] on `engine`. A failed commit marks the store failed and withdraws
    /// the record (its bytes may still reach the journal).
    pub(super) fn enqueue_on(
        &self,
        engine: &Engine,
        agent_uid: &str,
        msg: &NewMessage,
        now: i64,
        max_queue: usize,
    ) -> Result<QueuedMessage, QueueError> {
        let mut stripe = self.inner.queues.lock(agent_uid);
        let mut batch = engine.db.batch();
        let (record, _) = self.stage_enqueue(
            engine,
            &mut stripe,
            &mut batch,
            agent_uid,
            msg,
            now,
            max_queue,
        )?;
        if let Err(e) = batch.commit().ctx("enqueueing a message") {
            undo_depth(&mut stripe, agent_uid);
            drop(stripe);
            self.inner.note_failure(&e);
            self.withdraw(std::slice::from_ref(&record));
            return Err(e.into());
        }
        Ok(record)
    }

    /// Enqueues every `(agent_uid, message)` item in one write batch (a broadcast), each item
    /// checked as by [`Store::enqueue`]; the results are in item order. A repeated
    /// `(uid, message_id)` pair is [`QueueError::Duplicate`].
    ///
    /// Memory stays bounded whatever the fan-out: the batch is committed early whenever it
    /// holds [`MAX_BATCH_BYTES`] of records (so a broadcast of a large command is a few batches,
    /// not one per agent), and the returned records carry an **empty `payload`** (it is the
    /// item's, not repeated per agent). If a batch fails, each item it held gets the same
    /// [`QueueError::Store`]; items of batches already committed stay queued.
    pub fn enqueue_many(
        &self,
        items: &[(String, NewMessage)],
        now: i64,
        max_queue: usize,
    ) -> Vec<Result<QueuedMessage, QueueError>> {
        self.enqueue_chunked(items, now, max_queue, MAX_BATCH_BYTES)
    }

    /// [`Store::enqueue_many`] with the batch bound as a parameter.
    pub(super) fn enqueue_chunked(
        &self,
        items: &[(String, NewMessage)],
        now: i64,
        max_queue: usize,
        max_batch_bytes: usize,
    ) -> Vec<Result<QueuedMessage, QueueError>> {
        match self.engine() {
            Ok(engine) => self.enqueue_chunked_on(&engine, items, now, max_queue, max_batch_bytes),
            Err(e) => {
                let shared = Arc::new(e);
                items
                    .iter()
                    .map(|_| Err(QueueError::Store(Arc::clone(&shared))))
                    .collect()
            }
        }
    }

    /// [`Store::enqueue_chunked`] on `engine`.
    pub(super) fn enqueue_chunked_on(
        &self,
        engine: &Engine,
        items: &[(String, NewMessage)],
        now: i64,
        max_queue: usize,
        max_batch_bytes: usize,
    ) -> Vec<Result<QueuedMessage, QueueError>> {
        let mut stripes = self
            .inner
            .queues
            .lock_many(items.iter().map(|(uid, _)| uid.as_str()));
        let mut batch = engine.db.batch();
        let mut batch_bytes = 0;
        let mut chunk_start = 0;
        let mut seen = HashSet::with_capacity(items.len());
        let mut results = Vec::with_capacity(items.len());
        let mut refused = Vec::new();
        for (i, (uid, msg)) in items.iter().enumerate() {
            let result = match stripes.get_mut(&QueueState::stripe_of(uid)) {
                Some(stripe) => {
                    if valid_key_part(uid)
                        && valid_key_part(&msg.message_id)
                        && !seen.insert(keys::message_key(&msg.message_id, uid))
                    {
                        Err(QueueError::Duplicate)
                    } else {
                        self.stage_enqueue(engine, stripe, &mut batch, uid, msg, now, max_queue)
                    }
                }
                // Unreachable: lock_many locked the stripe of every item.
                None => Err(StoreError::InvalidKey {
                    field: "agent_uid",
                    reason: "its lock stripe was not taken",
                }
                .into()),
            };
            results.push(result.map(|(mut record, size)| {
                batch_bytes += size;
                record.payload = String::new();
                record
            }));
            if batch_bytes >= max_batch_bytes {
                let full = std::mem::replace(&mut batch, engine.db.batch());
                let done = i + 1;
                let chunk = results.get_mut(chunk_start..).unwrap_or_default();
                if let Err(failed) =
                    commit_chunk(full, chunk, items.get(chunk_start..done), &mut stripes)
                {
                    refused.push(failed);
                }
                (chunk_start, batch_bytes) = (done, 0);
            }
        }
        let chunk = results.get_mut(chunk_start..).unwrap_or_default();
        if let Err(failed) = commit_chunk(batch, chunk, items.get(chunk_start..), &mut stripes) {
            refused.push(failed);
        }
        drop(stripes);
        for (e, records) in refused {
            self.inner.note_failure(&e);
            self.withdraw(&records);
        }
        results
    }

    /// Checks and stages one enqueue; counts it in the agent's depth (undone by the caller if
    /// the batch fails). Returns the record and its encoded size.
    #[allow(clippy::too_many_arguments)]
    fn stage_enqueue(
        &self,
        engine: &Engine,
        stripe: &mut Stripe,
        batch: &mut WriteBatch,
        uid: &str,
        msg: &NewMessage,
        now: i64,
        max_queue: usize,
    ) -> Result<(QueuedMessage, usize), QueueError> {
        check_key_part("agent_uid", uid)?;
        check_key_part("message_id", &msg.message_id)?;
        let ks = &engine.ks;
        let entry = state::entry(stripe, ks, uid)?;
        if entry.depth >= max_queue {
            return Err(QueueError::Full { depth: entry.depth });
        }
        let mkey = keys::message_key(&msg.message_id, uid);
        if ks
            .messages
            .contains_key(mkey)
            .ctx("checking a message id")?
        {
            return Err(QueueError::Duplicate);
        }
        let seq = entry.take_seq(now);
        let record = QueuedMessage {
            message_id: msg.message_id.clone(),
            agent_uid: uid.to_owned(),
            seq,
            kind: msg.kind.clone(),
            message_type: msg.message_type.clone(),
            payload: msg.payload.clone(),
            priority: msg.priority,
            created_at: now,
            expires_at: now.saturating_add(msg.ttl_s.max(0)),
            retry_count: 0,
            max_retries: msg.max_retries.max(1),
            status: MessageStatus::Queued,
            attempts: Vec::new(),
            updated_at: now,
            error: None,
        };
        let size = stage_new(batch, ks, &record)?;
        entry.depth += 1;
        Ok((record, size))
    }

    /// Records one write of pending command `seq` to the agent on connection `conn`:
    /// `retry_count + 1`, status `sent`, attempt appended. Returns the updated record, or `None`
    /// if it is not pending. A command that cannot be sent any more is moved to a final status
    /// instead and `None` returned: `expired` past its TTL, `failed` ("retries exhausted") when
    /// `max_retries` attempts were already made.
    ///
    /// # Errors
    /// Storage error, or a corrupt stored record.
    pub fn record_attempt(
        &self,
        agent_uid: &str,
        seq: u64,
        conn: u64,
        now: i64,
    ) -> Result<Option<QueuedMessage>, StoreError> {
        self.update_pending(agent_uid, seq, now, |mut msg| {
            if msg.is_expired(now) {
                Change::Final(msg, MessageStatus::Expired, None)
            } else if msg.attempts_left() == 0 {
                Change::Final(msg, MessageStatus::Failed, Some("retries exhausted"))
            } else {
                msg.retry_count = msg.retry_count.saturating_add(1);
                msg.status = MessageStatus::Sent;
                msg.updated_at = now;
                msg.attempts.push(Attempt { at: now, conn });
                let excess = msg.attempts.len().saturating_sub(MAX_ATTEMPTS_KEPT);
                msg.attempts.drain(..excess);
                Change::Update(msg)
            }
        })
        .map(|done| match done {
            Some(msg) if msg.status == MessageStatus::Sent => Some(msg),
            _ => None,
        })
    }

    /// Marks the agent's pending command `message_id` delivered (acked or confirmed) and moves
    /// it out of the queue. `false` if it is not pending for this agent (unknown, or already
    /// final: a second ack changes nothing).
    ///
    /// # Errors
    /// Storage error, or a corrupt stored record.
    pub fn mark_delivered(
        &self,
        agent_uid: &str,
        message_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        if !valid_key_part(agent_uid) || !valid_key_part(message_id) {
            return Ok(false);
        }
        let mkey = keys::message_key(message_id, agent_uid);
        let engine = self.engine()?;
        let Some(value) = engine.ks.messages.get(&mkey).ctx("reading a message")? else {
            return Ok(false);
        };
        let Some((&keys::PENDING_TAG, qkey)) = value.split_first() else {
            return Ok(false);
        };
        let (_, seq) = keys::parse_queue_key(qkey)?;
        // The record may change before update_pending locks the agent: it re-reads it and
        // checks that it still is this message.
        drop(engine);
        let done = self.update_pending(agent_uid, seq, now, |msg| {
            if msg.message_id == message_id {
                Change::Final(msg, MessageStatus::Delivered, None)
            } else {
                Change::Keep
            }
        })?;
        Ok(done.is_some_and(|m| m.status == MessageStatus::Delivered))
    }

    /// Moves pending command `seq` to `failed` with `reason` (cut to
    /// [`MAX_ERROR_LEN`](super::MAX_ERROR_LEN)). `false` if it is not pending.
    ///
    /// # Errors
    /// Storage error, or a corrupt stored record.
    pub fn mark_failed(
        &self,
        agent_uid: &str,
        seq: u64,
        reason: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = self.update_pending(agent_uid, seq, now, |msg| {
            Change::Final(msg, MessageStatus::Failed, Some(reason))
        })?;
        Ok(done.is_some())
    }

    /// Puts a `sent` command back to `queued` (its connection died before the ack); attempts
    /// made still count. `false` if it is not pending or not `sent`.
    ///
    /// # Errors
    /// Storage error, or a corrupt stored record.
    pub fn requeue(&self, agent_uid: &str, seq: u64, now: i64) -> Result<bool, StoreError> {
        let done = self.update_pending(agent_uid, seq, now, |mut msg| {
            if msg.status != MessageStatus::Sent {
                return Change::Keep;
            }
            msg.status = MessageStatus::Queued;
            msg.updated_at = now;
            Change::Update(msg)
        })?;
        Ok(done.is_some())
    }

    /// Reads pending record `seq` of the agent under its lock and applies `change`. Returns the
    /// written record (`None` if not pending or unchanged).
    fn update_pending<'r>(
        &self,
        agent_uid: &str,
        seq: u64,
        now: i64,
        change: impl FnOnce(QueuedMessage) -> Change<'r>,
    ) -> Result<Option<QueuedMessage>, StoreError> {
        if !valid_key_part(agent_uid) {
            return Ok(None);
        }
        let engine = self.engine()?;
        let ks = &engine.ks;
        let qkey = keys::queue_key(agent_uid, seq);
        let mut stripe = self.inner.queues.lock(agent_uid);
        let Some(value) = ks.queue.get(&qkey).ctx("reading a queued message")? else {
            return Ok(None);
        };
        let msg: QueuedMessage = codec::decode(WHAT, &qkey, &value)?;
        match change(msg) {
            Change::Keep => Ok(None),
            Change::Update(msg) => {
                let value = codec::encode(WHAT, &msg)?;
                ks.queue
                    .insert(qkey, value)
                    .ctx("updating a queued message")?;
                Ok(Some(msg))
            }
            Change::Final(msg, status, error) => {
                state::entry(&mut stripe, ks, agent_uid)?;
                let mut batch = engine.db.batch();
                let done = stage_final(&mut batch, ks, msg, status, error, now)?;
                batch.commit().ctx("finishing a queued message")?;
                undo_depth(&mut stripe, agent_uid);
                Ok(Some(done))
            }
        }
    }
}

/// Commits one batch of [`Store::enqueue_many`]; on failure, every accepted item of the chunk
/// becomes the shared error and leaves its agent's depth, and its record is returned (to be
/// withdrawn: part of the batch may still reach the journal) with the error.
fn commit_chunk(
    batch: WriteBatch,
    results: &mut [Result<QueuedMessage, QueueError>],
    items: Option<&[(String, NewMessage)]>,
    stripes: &mut BTreeMap<usize, MutexGuard<'_, Stripe>>,
) -> Result<(), (Arc<StoreError>, Vec<QueuedMessage>)> {
    let Err(e) = batch.commit().ctx("enqueueing a broadcast") else {
        return Ok(());
    };
    let shared = Arc::new(e);
    let mut refused = Vec::new();
    for (result, (uid, _)) in results.iter_mut().zip(items.unwrap_or_default()) {
        if result.is_ok() {
            if let Some(stripe) = stripes.get_mut(&QueueState::stripe_of(uid)) {
                undo_depth(stripe, uid);
            }
            let failed = std::mem::replace(result, Err(QueueError::Store(Arc::clone(&shared))));
            refused.extend(failed.ok());
        }
    }
    Err((shared, refused))
}

/// What [`Store::update_pending`] does with a record.
enum Change<'r> {
    /// Nothing.
    Keep,
    /// Rewrite it in place (still pending).
    Update(QueuedMessage),
    /// Move it to a final status, with an optional failure reason.
    Final(QueuedMessage, MessageStatus, Option<&'r str>),
}

/// One pending record less for `uid` (saturating; the entry exists whenever this is called
/// after `state::entry` under the same lock).
pub(super) fn undo_depth(stripe: &mut Stripe, uid: &str) {
    if let Some(entry) = stripe.get_mut(uid) {
        entry.depth = entry.depth.saturating_sub(1);
    }
}
