//! Whole-queue operations: revoke, expiry sweep, retention purge, status lookup.

use super::{keys, stage_final, state, MessageStatus, QueuedMessage, MAX_SWEEP, WHAT};
use crate::store::{
    codec::{self, valid_key_part},
    FjallContext, Store, StoreError,
};
use std::ops::Bound;

impl Store {
    /// Moves every pending command of the agent to `revoked` (one batch) and returns how many.
    /// An undecodable record is dropped from the queue (and not counted).
    ///
    /// # Errors
    /// Storage error.
    pub fn revoke_queue(&self, agent_uid: &str, now: i64) -> Result<usize, StoreError> {
        if !valid_key_part(agent_uid) {
            return Ok(0);
        }
        let engine = self.engine()?;
        let ks = &engine.ks;
        let mut stripe = self.inner.queues.lock(agent_uid);
        state::entry(&mut stripe, ks, agent_uid)?;
        let mut batch = engine.db.batch();
        let mut revoked = 0;
        for guard in ks.queue.prefix(keys::queue_prefix(agent_uid)) {
            let (key, value) = guard.into_inner().ctx("reading an agent's queue")?;
            match codec::decode::<QueuedMessage>(WHAT, &key, &value) {
                Ok(msg) => {
                    stage_final(&mut batch, ks, msg, MessageStatus::Revoked, None, now)?;
                    revoked += 1;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dropping an undecodable queued message");
                    batch.remove(&ks.queue, key);
                }
            }
        }
        batch.commit().ctx("revoking an agent's queue")?;
        if let Some(entry) = stripe.get_mut(agent_uid) {
            entry.depth = 0;
        }
        Ok(revoked)
    }

    /// Pending commands of every agent: the entries of the expiry index (one per pending
    /// command). A key-only scan, O(pending): for the queue-depth gauge, not for hot paths.
    ///
    /// # Errors
    /// Storage error.
    pub fn pending_total(&self) -> Result<usize, StoreError> {
        let engine = self.engine()?;
        let mut n = 0;
        for guard in engine.ks.queue.prefix([0u8]) {
            guard.key().ctx("counting pending commands")?;
            n += 1;
        }
        Ok(n)
    }

    /// Moves up to `limit` (at most [`MAX_SWEEP`]) pending commands whose TTL ran out at `now`
    /// to `expired`, across all agents, in one batch; returns how many. Work is bounded by
    /// `limit` (an expiry index is read in time order, never the whole queue). Call it
    /// periodically; [`Store::pending`] also expires an agent's due commands on its own.
    ///
    /// # Errors
    /// Storage error.
    pub fn expire_due(&self, now: i64, limit: usize) -> Result<usize, StoreError> {
        let engine = self.engine()?;
        let ks = &engine.ks;
        let range = (
            Bound::Included(vec![0u8]),
            Bound::Excluded(keys::expiry_end(now)),
        );
        let mut due = Vec::new();
        for guard in ks
            .queue
            .range::<Vec<u8>, _>(range)
            .take(limit.min(MAX_SWEEP))
        {
            let ekey = guard.key().ctx("reading the expiry index")?;
            let qkey = keys::queue_key_of_expiry(&ekey)?;
            // A corrupt index key is removed below (its uid is unknown: locks nothing).
            let uid = keys::parse_queue_key(qkey)
                .map(|(uid, _)| uid.to_owned())
                .ok();
            due.push((ekey.to_vec(), uid));
        }
        if due.is_empty() {
            return Ok(0);
        }
        let mut stripes = self
            .inner
            .queues
            .lock_many(due.iter().filter_map(|(_, uid)| uid.as_deref()));
        let mut batch = engine.db.batch();
        let mut gone = Vec::new();
        let mut expired = 0;
        for (ekey, uid) in &due {
            let (Some(uid), Ok(qkey)) = (uid, keys::queue_key_of_expiry(ekey)) else {
                batch.remove(&ks.queue, ekey.clone());
                continue;
            };
            let Some(value) = ks.queue.get(qkey).ctx("reading a queued message")? else {
                batch.remove(&ks.queue, ekey.clone()); // stale index entry
                continue;
            };
            match codec::decode::<QueuedMessage>(WHAT, qkey, &value) {
                Ok(msg) if msg.is_expired(now) => {
                    stage_final(&mut batch, ks, msg, MessageStatus::Expired, None, now)?;
                    expired += 1;
                }
                // Not the record's own index entry (that one would be due too).
                Ok(_) => {
                    batch.remove(&ks.queue, ekey.clone());
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "dropping an undecodable queued message");
                    batch.remove(&ks.queue, qkey.to_vec());
                    batch.remove(&ks.queue, ekey.clone());
                }
            }
            gone.push(uid.as_str());
        }
        batch.commit().ctx("expiring queued messages")?;
        for uid in gone {
            let stripe = stripes.get_mut(&state::QueueState::stripe_of(uid));
            if let Some(entry) = stripe.and_then(|s| s.get_mut(uid)) {
                entry.depth = entry.depth.saturating_sub(1);
            }
        }
        Ok(expired)
    }

    /// Deletes up to `limit` (at most [`MAX_SWEEP`]) final records last updated before
    /// `older_than` (Unix seconds; pass `now - retention`), oldest first, in one batch; returns
    /// how many. Pending records are never touched.
    ///
    /// # Errors
    /// Storage error.
    pub fn purge_terminal(&self, older_than: i64, limit: usize) -> Result<usize, StoreError> {
        let engine = self.engine()?;
        let ks = &engine.ks;
        let range = (
            Bound::Included(vec![0u8]),
            Bound::Excluded(keys::retention_end(older_than)),
        );
        let mut batch = engine.db.batch();
        let mut purged = 0;
        // No lock needed: a final record is never rewritten, and an enqueue only writes its
        // key when absent.
        for guard in ks
            .messages
            .range::<Vec<u8>, _>(range)
            .take(limit.min(MAX_SWEEP))
        {
            let rkey = guard.key().ctx("reading the retention index")?;
            if let Ok(mkey) = keys::message_key_of_retention(&rkey) {
                let value = ks.messages.get(mkey).ctx("reading a message")?;
                if value.is_some_and(|v| v.first() != Some(&keys::PENDING_TAG)) {
                    batch.remove(&ks.messages, mkey.to_vec());
                    purged += 1;
                }
            }
            batch.remove(&ks.messages, rkey);
        }
        batch.commit().ctx("purging final messages")?;
        Ok(purged)
    }

    /// Delivery status of `message_id`: one record per addressed agent, in uid order (a
    /// broadcast lists every agent). Pending records are read from the queue (with payload),
    /// final ones from `messages` (without). Empty for an unknown id.
    ///
    /// # Errors
    /// Storage error.
    pub fn message_status(&self, message_id: &str) -> Result<Vec<QueuedMessage>, StoreError> {
        self.message_status_page(message_id, None, usize::MAX)
    }

    /// One page of [`Store::message_status`]: the agents after `after_uid` (exclusive), at most
    /// `limit`; the last uid is the next cursor.
    ///
    /// # Errors
    /// Storage error.
    pub fn message_status_page(
        &self,
        message_id: &str,
        after_uid: Option<&str>,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        if !valid_key_part(message_id) {
            return Ok(Vec::new());
        }
        let engine = self.engine()?;
        let ks = &engine.ks;
        let start = match after_uid {
            Some(uid) => Bound::Excluded(keys::message_key(message_id, uid)),
            None => Bound::Included(keys::message_prefix(message_id)),
        };
        // Every key of the message is below `message_id ‖ 0x01`.
        let mut end = message_id.as_bytes().to_vec();
        end.push(1);
        let mut out = Vec::new();
        for guard in ks
            .messages
            .range::<Vec<u8>, _>((start, Bound::Excluded(end)))
            .take(limit)
        {
            let (key, value) = guard.into_inner().ctx("reading message status")?;
            let record = match value.split_first() {
                Some((&keys::PENDING_TAG, qkey)) => {
                    match ks.queue.get(qkey).ctx("reading a queued message")? {
                        Some(v) => codec::decode(WHAT, qkey, &v),
                        // Finished since the scan began: read the final record.
                        None => match ks.messages.get(&key).ctx("reading a message")? {
                            Some(v) if v.first() != Some(&keys::PENDING_TAG) => {
                                codec::decode(WHAT, &key, &v)
                            }
                            _ => continue,
                        },
                    }
                }
                _ => codec::decode(WHAT, &key, &value),
            };
            match record {
                Ok(record) => out.push(record),
                Err(e) => tracing::warn!(error = %e, "skipping an undecodable message status"),
            }
        }
        Ok(out)
    }
}
