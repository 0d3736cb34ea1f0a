//! Per-agent queue reads: the pending commands in delivery order, and the queue depth.

use super::ops::undo_depth;
use super::{keys, stage_final, state, MessageStatus, QueuedMessage, WHAT};
use crate::store::{
    codec::{self, valid_key_part},
    FjallContext, Store, StoreError,
};
use std::{
    cmp::{Ordering, Reverse},
    collections::BinaryHeap,
};

impl Store {
    /// The agent's pending commands, priority DESC then seq ASC. Those expired at `now` are
    /// moved to `expired` (final) and not returned.
    ///
    /// # Errors
    /// Storage error.
    pub fn pending(&self, agent_uid: &str, now: i64) -> Result<Vec<QueuedMessage>, StoreError> {
        self.pending_limit(agent_uid, now, usize::MAX)
    }

    /// [`Store::pending`] keeping only the first `limit` in delivery order (memory is bounded by
    /// `limit`; the scan still reads every pending record of the agent, and expires the due ones).
    ///
    /// # Errors
    /// Storage error.
    pub fn pending_limit(
        &self,
        agent_uid: &str,
        now: i64,
        limit: usize,
    ) -> Result<Vec<QueuedMessage>, StoreError> {
        if !valid_key_part(agent_uid) || limit == 0 {
            return Ok(Vec::new());
        }
        let engine = self.engine()?;
        let ks = &engine.ks;
        let refused = self.inner.withdrawals.seqs_of(agent_uid);
        let mut stripe = self.inner.queues.lock(agent_uid);
        state::entry(&mut stripe, ks, agent_uid)?;
        let mut best: BinaryHeap<Ranked> = BinaryHeap::new();
        let mut batch = engine.db.batch();
        let mut expired = 0;
        for guard in ks.queue.prefix(keys::queue_prefix(agent_uid)) {
            let (key, value) = guard.into_inner().ctx("reading an agent's queue")?;
            let msg: QueuedMessage = match codec::decode(WHAT, &key, &value) {
                Ok(msg) => msg,
                Err(e) => {
                    tracing::warn!(error = %e, "skipping an undecodable queued message");
                    continue;
                }
            };
            if refused.contains(&msg.seq) {
                continue; // refused by the API: never delivered (see `withdraw`)
            }
            if msg.is_expired(now) {
                stage_final(&mut batch, ks, msg, MessageStatus::Expired, None, now)?;
                expired += 1;
                continue;
            }
            best.push(Ranked(msg));
            if best.len() > limit {
                best.pop();
            }
        }
        if expired > 0 {
            batch.commit().ctx("expiring queued messages")?;
            for _ in 0..expired {
                undo_depth(&mut stripe, agent_uid);
            }
        }
        Ok(best.into_sorted_vec().into_iter().map(|r| r.0).collect())
    }

    /// Pending commands of the agent (O(1) after the agent's first use since open).
    ///
    /// # Errors
    /// Storage error while recovering the count.
    pub fn queue_depth(&self, agent_uid: &str) -> Result<usize, StoreError> {
        if !valid_key_part(agent_uid) {
            return Ok(0);
        }
        let engine = self.engine()?;
        let mut stripe = self.inner.queues.lock(agent_uid);
        Ok(state::entry(&mut stripe, &engine.ks, agent_uid)?.depth)
    }
}

/// Delivery order: higher priority first, then lower seq. `Ord` is "worse is greater", so a
/// max-heap pops the worst and `into_sorted_vec` lists the best first.
struct Ranked(QueuedMessage);

impl Ranked {
    fn rank(&self) -> (Reverse<u8>, u64) {
        (Reverse(self.0.priority), self.0.seq)
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.rank() == other.rank()
    }
}

impl Eq for Ranked {}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> Ordering {
        self.rank().cmp(&other.rank())
    }
}
