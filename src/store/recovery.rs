//! Reopening a failed store (run by the committer thread, see `commit`).
//!
//! fjall cannot un-poison a database: the store closes it and opens the directory again, which
//! replays the journal. Steps, each a reason to give up and try again a second later:
//!
//! 1. the data directory has at least `max(min_free_bytes, RECOVERY_MIN_FREE)` free
//!    (reopening on a full disk would fail again at once);
//! 2. the engine is unpublished (operations now get [`StoreError::Unavailable`]) and the
//!    operations still running on it finish (bounded wait; on timeout it is published again);
//! 3. the old database is dropped: fjall flushes its journal buffer if it can, which may bring
//!    back the tail of a write that was refused, and releases its lock;
//! 4. the new database opens and replays the journal (a torn last batch is discarded);
//! 5. refused commands (`queue::withdraw`) are removed, and the database is synced
//!    (`SyncAll`): from here on everything it shows is durable;
//! 6. state derived from the old database is refreshed (queue depths and next seqs are recounted
//!    lazily and never go back, the event seq never goes back, the agent count is recounted);
//! 7. the new engine is published and the store is healthy again.

use super::{free_bytes, Engine, FjallContext, Inner, StoreError};
use fjall::PersistMode;
use std::{
    sync::{atomic::Ordering, Arc, PoisonError},
    time::{Duration, Instant},
};

/// Free bytes a failed store needs before it tries to reopen (journal replay, withdrawals and
/// the first writes), whatever the configured reserve.
pub const RECOVERY_MIN_FREE: u64 = 1 << 20;

/// Longest wait for the operations running on the old engine.
const DRAIN_WAIT: Duration = Duration::from_secs(10);

/// One reopen attempt; see the module docs.
pub(super) fn reopen(inner: &Inner) -> Result<(), StoreError> {
    let need = inner.options.min_free_bytes.max(RECOVERY_MIN_FREE);
    if let Ok(free) = free_bytes(&inner.dir) {
        if free < need {
            return Err(StoreError::DiskFull {
                free,
                reserve: need,
            });
        }
    }
    tracing::info!(dir = %inner.dir.display(), "reopening the failed store");
    let outcome = swap_engine(inner);
    let result = if outcome.is_ok() { "ok" } else { "error" };
    metrics::counter!(crate::metrics::STORE_RECOVERIES, "result" => result).increment(1);
    match &outcome {
        Ok(epoch) => {
            inner.health.clear();
            tracing::info!(epoch, "store reopened: accepting writes again");
        }
        Err(e) => tracing::warn!(error = %e, "store reopen failed; retrying"),
    }
    outcome.map(|_| ())
}

/// Steps 2–7; returns the new epoch.
fn swap_engine(inner: &Inner) -> Result<u64, StoreError> {
    let old = inner
        .engine
        .write()
        .unwrap_or_else(PoisonError::into_inner)
        .take();
    if let Some(old) = old {
        let deadline = Instant::now() + DRAIN_WAIT;
        while Arc::strong_count(&old) > 1 {
            if Instant::now() >= deadline {
                publish(inner, old);
                return Err(StoreError::Unavailable(super::Fault {
                    disk_full: false,
                    cause: "operations on the failed database did not finish".into(),
                }));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        drop(old);
    }
    let epoch = inner.epoch.load(Ordering::Acquire).saturating_add(1);
    let engine = Engine::open(&inner.dir, &inner.options, epoch)?;
    let withdrawn = inner.withdraw_on(&engine)?;
    engine
        .db
        .persist(PersistMode::SyncAll)
        .ctx("syncing the reopened database")?;
    inner.withdrawals.forget(&withdrawn);
    inner.queues.mark_stale();
    inner.events.resync(&engine.ks.events)?;
    let agents = engine.ks.agents.len().ctx("counting agents")? as u64;
    inner.agent_count.store(agents, Ordering::Relaxed);
    inner.epoch.store(epoch, Ordering::Release);
    publish(inner, Arc::new(engine));
    Ok(epoch)
}

fn publish(inner: &Inner, engine: Arc<Engine>) {
    *inner.engine.write().unwrap_or_else(PoisonError::into_inner) = Some(engine);
}
