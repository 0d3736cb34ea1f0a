//! In-memory per-agent queue state (next seq, pending count), striped by uid.
//!
//! A stripe's mutex also serializes every read-modify-write of the queue records of the uids
//! that hash to it, so holding it across the read and the (buffered, unsynced) batch commit
//! keeps a record, its `messages` entry, its index entry and the counter in agreement.
//! Whoever needs several stripes takes them in ascending index order ([`QueueState::lock_many`]),
//! so two multi-stripe callers cannot deadlock; single-stripe callers hold one only.

use super::keys;
use crate::store::{FjallContext, Keyspaces, StoreError};
use std::{
    collections::{hash_map::Entry, BTreeMap, HashMap},
    sync::{Mutex, MutexGuard, PoisonError},
};

/// Number of stripes.
const STRIPES: usize = 64;

/// Seq floor granularity: the first enqueue of an agent after open uses at least
/// `now << SEQ_TIME_SHIFT`, so seqs keep growing across restarts even when the agent's queue was
/// empty (no key left to recover from). Overtaking the floor (2^20 seqs per second per agent)
/// is harmless: the seq is always `max(last + 1, floor)`. Values stay below 2^53 (exact in
/// JSON clients) until the year 2242.
const SEQ_TIME_SHIFT: u32 = 20;

/// What the store remembers of one agent's queue.
#[derive(Clone, Copy, Debug)]
pub struct AgentQueue {
    /// Seq of the next enqueue.
    pub next_seq: u64,
    /// Pending (non-final) records in `queue`.
    pub depth: usize,
    /// Whether the time floor was applied to `next_seq` since open.
    floored: bool,
    /// Set when the store reopened (or a refused command was withdrawn): `depth` and
    /// `next_seq` are recounted from disk at the next use, `next_seq` never going back.
    stale: bool,
}

impl AgentQueue {
    /// Takes the seq for a new record enqueued at `now`.
    pub fn take_seq(&mut self, now: i64) -> u64 {
        if !self.floored {
            let floor = u64::try_from(now).unwrap_or(0) << SEQ_TIME_SHIFT;
            self.next_seq = self.next_seq.max(floor);
            self.floored = true;
        }
        let seq = self.next_seq;
        self.next_seq = seq.saturating_add(1);
        seq
    }
}

/// The uid → [`AgentQueue`] map of one stripe.
pub type Stripe = HashMap<String, AgentQueue>;

/// Per-agent queue state for a [`Store`](crate::store::Store).
pub struct QueueState {
    stripes: [Mutex<Stripe>; STRIPES],
}

impl QueueState {
    /// Empty state; agents are recovered lazily on first use.
    pub fn new() -> Self {
        Self {
            stripes: std::array::from_fn(|_| Mutex::new(HashMap::new())),
        }
    }

    /// Stripe index of `uid` (FNV-1a).
    pub fn stripe_of(uid: &str) -> usize {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in uid.bytes() {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        (h % STRIPES as u64) as usize
    }

    fn lock_index(&self, index: usize) -> MutexGuard<'_, Stripe> {
        // A panic while holding a stripe leaves at worst a stale counter for one agent; the
        // records themselves are only changed by atomic batches.
        self.stripes[index % STRIPES]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Locks the stripe of `uid`.
    pub fn lock(&self, uid: &str) -> MutexGuard<'_, Stripe> {
        self.lock_index(Self::stripe_of(uid))
    }

    /// Marks every known agent's state stale (after a reopen: the records may differ).
    pub fn mark_stale(&self) {
        for i in 0..STRIPES {
            for q in self.lock_index(i).values_mut() {
                q.stale = true;
            }
        }
    }

    /// Locks the stripes of all `uids` in ascending order; the map is keyed by stripe index.
    pub fn lock_many<'a, I>(&self, uids: I) -> BTreeMap<usize, MutexGuard<'_, Stripe>>
    where
        I: IntoIterator<Item = &'a str>,
    {
        let mut wanted: Vec<usize> = uids.into_iter().map(Self::stripe_of).collect();
        wanted.sort_unstable();
        wanted.dedup();
        wanted
            .into_iter()
            .map(|i| (i, self.lock_index(i)))
            .collect()
    }
}

/// The state of `uid` in its (locked) stripe, recovering it from disk on first use: the
/// pending count is the number of the uid's keys in `queue` (O(k), once), the next seq is one
/// past the last key (and at least the time floor, see [`AgentQueue::take_seq`]). A stale
/// state is recounted the same way, keeping the larger next seq.
pub fn entry<'s>(
    stripe: &'s mut Stripe,
    ks: &Keyspaces,
    uid: &str,
) -> Result<&'s mut AgentQueue, StoreError> {
    match stripe.entry(uid.to_owned()) {
        Entry::Occupied(o) => {
            let q = o.into_mut();
            if q.stale {
                let fresh = recover(ks, uid)?;
                q.depth = fresh.depth;
                q.next_seq = q.next_seq.max(fresh.next_seq);
                q.stale = false;
            }
            Ok(q)
        }
        Entry::Vacant(v) => Ok(v.insert(recover(ks, uid)?)),
    }
}

/// Marks the state of `uid` in its (locked) stripe stale, if known.
pub fn mark_stale(stripe: &mut Stripe, uid: &str) {
    if let Some(q) = stripe.get_mut(uid) {
        q.stale = true;
    }
}

fn recover(ks: &Keyspaces, uid: &str) -> Result<AgentQueue, StoreError> {
    let prefix = keys::queue_prefix(uid);
    let mut depth = 0;
    for guard in ks.queue.prefix(&prefix) {
        guard.key().ctx("counting an agent's queue")?;
        depth += 1;
    }
    let last = match ks.queue.prefix(&prefix).next_back() {
        Some(guard) => {
            let key = guard.key().ctx("reading an agent's last seq")?;
            Some(keys::seq_of(&key, prefix.len())?)
        }
        None => None,
    };
    Ok(AgentQueue {
        next_seq: last.map_or(0, |s| s.saturating_add(1)),
        depth,
        floored: false,
        stale: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripes_are_in_range_and_lock_many_dedups_in_order() {
        let state = QueueState::new();
        for uid in ["a", "b", "uid-1", ""] {
            assert!(QueueState::stripe_of(uid) < STRIPES);
        }
        let uids: Vec<String> = (0..500).map(|i| format!("u{i}")).collect();
        let guards = state.lock_many(uids.iter().map(String::as_str));
        assert!(guards.len() <= STRIPES && guards.len() > 1);
        let keys: Vec<usize> = guards.keys().copied().collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn a_stale_state_is_recounted_and_its_seq_never_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::Store::open(dir.path()).unwrap();
        let ks = store.keyspaces().unwrap();
        let mut stripe = Stripe::new();
        let q = entry(&mut stripe, &ks, "u").unwrap();
        (q.next_seq, q.depth) = (500, 3);
        mark_stale(&mut stripe, "u");
        let q = entry(&mut stripe, &ks, "u").unwrap();
        assert_eq!((q.next_seq, q.depth, q.stale), (500, 0, false));
    }

    #[test]
    fn seq_floor_applies_once_and_never_goes_back() {
        let mut q = AgentQueue {
            next_seq: 7,
            depth: 0,
            floored: false,
            stale: false,
        };
        assert_eq!(q.take_seq(0), 7);
        assert_eq!(q.take_seq(1_000), 8, "floor only at the first take");
        let mut q = AgentQueue {
            next_seq: 7,
            depth: 0,
            floored: false,
            stale: false,
        };
        let first = q.take_seq(1_700_000_000);
        assert_eq!(first, 1_700_000_000 << SEQ_TIME_SHIFT);
        assert_eq!(q.take_seq(-5), first + 1);
        assert!(first < 1 << 53);
    }
}
