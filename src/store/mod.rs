//! The fleet state: the interface every other module uses ([`Fleet`], in [`fleet`]) and its
//! single-node backend, the embedded fjall [`Store`] (this module and its files): agents, their
//! host index, pending registrations, the durable command queue with delivery status, channels,
//! the event log, and group commit. The cluster backend (NATS JetStream) is `src/cluster/`.
//!
//! One [`Store`] is opened per process and cloned into every shard (`Clone + Send + Sync`, an
//! `Arc` inside). Writes go to fjall's journal and OS buffers at once (cheap, no fsync);
//! durability comes from [`Store::sync`], which a dedicated committer thread serves for many
//! callers with one fsync (see [`SyncWaiter`]). Values are JSON, keys are the ids (see [`codec`]).
//!
//! Read-modify-write operations on one record (replace an agent, update `last_seen`, revoke,
//! take a registration) are serialized by a small array of striped mutexes held only across
//! the read and the buffered write, never across an fsync.
//!
//! **Failures** (see [`health`] and [`recovery`]). fjall poisons its database on the first
//! failed journal write, flush or compaction (a full disk, an IO error): every later write is
//! refused, for good, while reads keep working. The store then reports itself failed
//! ([`Store::fault`], [`StoreError::Unavailable`]), keeps serving reads from the poisoned
//! database, and its committer thread reopens the database once the data directory has space
//! again: the old database is closed, the journal replayed, commands whose enqueue was refused
//! are withdrawn (a refused write can still reach the journal when fjall closes), and the new
//! database replaces the old one. An enqueue that fails, or whose sync fails, is refused and never
//! delivered; one answered durable stays durable across the reopen.

mod agents;
mod channels;
pub mod codec;
mod commit;
mod embedded;
mod error;
mod events;
pub mod fleet;
pub mod health;
mod queue;
mod recovery;
mod registrations;

pub use agents::{AgentRecord, MAX_LIST_LIMIT, MAX_UIDS_PER_HOST};
pub use channels::{ChannelRecord, MAX_CHANNELS_LISTED, TOUCH_INTERVAL_S};
pub use commit::SyncWaiter;
pub use embedded::{EVENTS_KEPT, MESSAGE_RETENTION_S};
pub(crate) use error::FjallContext;
pub use error::StoreError;
pub use events::{channel_matches, EventRecord, EventScan, NewEvent, StoredEvent, MAX_EVENTS_PAGE};
pub use fleet::{Command, DeliverError, Fleet, SessionInfo};
pub use health::{free_bytes, Fault};
pub(crate) use queue::clip_reason;
pub use queue::{
    Attempt, MessageStatus, NewMessage, QueueError, QueuedMessage, MAX_ATTEMPTS_KEPT,
    MAX_BATCH_BYTES, MAX_ERROR_LEN, MAX_SWEEP,
};
pub use recovery::RECOVERY_MIN_FREE;
pub use registrations::Registration;

/// Memtable size per keyspace: bounds the memory the store holds between flushes.
pub const MEMTABLE_BYTES: u64 = 16 << 20;

use commit::Committer;
use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, MutexGuard, PoisonError, RwLock,
    },
};

/// Tuning of the underlying fjall database.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// fjall background threads (flush and compaction share them). Default = 1: the shards
    /// are pinned to the cores; one worker is enough for our write rates. Values < 1 mean 1.
    pub worker_threads: usize,
    /// Block cache, in bytes. Default = 32 MiB.
    pub cache_bytes: u64,
    /// Free space the data directory keeps (bytes, `STORE_MIN_FREE`): below it
    /// [`Store::check_writable`] refuses new commands with [`StoreError::DiskFull`] before
    /// anything is written, so fjall keeps room for its journal, flushes and the agents' own
    /// writes; and a failed store reopens only once this much (at least [`RECOVERY_MIN_FREE`])
    /// is free. 0 turns the admission check off. Default = 64 MiB.
    pub min_free_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            worker_threads: 1,
            cache_bytes: 32 * 1024 * 1024,
            min_free_bytes: 64 << 20,
        }
    }
}

/// Raw keyspace handles, for the modules that build on the store (queue, messages, channels,
/// events are created empty here and filled by later modules).
#[derive(Clone)]
pub struct Keyspaces {
    /// `agent_uid` → [`AgentRecord`] JSON.
    pub agents: Keyspace,
    /// `host_id ‖ 0x00 ‖ agent_uid` → empty.
    pub agents_by_host: Keyspace,
    /// `registration_id` → [`Registration`] JSON.
    pub registrations: Keyspace,
    /// Durable command queue (`agent_uid ‖ 0x00 ‖ seq BE`) and its expiry index (keys
    /// starting with 0x00); see `store::queue`.
    pub queue: Keyspace,
    /// `message_id ‖ 0x00 ‖ agent_uid` → queue key or final record, and a retention index.
    pub messages: Keyspace,
    /// `agent_uid ‖ 0x00 ‖ channel` → [`ChannelRecord`].
    pub channels: Keyspace,
    /// Global event seq (u64 BE) → [`StoredEvent`].
    pub events: Keyspace,
}

/// One open fjall database and its keyspaces. Replaced as a whole when the store reopens after a
/// failure; an operation takes one engine at its start and works on it to the end, so it never
/// mixes two databases.
pub(crate) struct Engine {
    /// Generation: 1 at open, one more per reopen.
    pub(crate) epoch: u64,
    /// The database (write batches across keyspaces).
    pub(crate) db: Database,
    /// Its keyspaces.
    pub(crate) ks: Keyspaces,
}

impl Engine {
    /// Opens (creating if needed) the database in `dir` and its keyspaces.
    fn open(dir: &Path, options: &StoreOptions, epoch: u64) -> Result<Engine, StoreError> {
        let db = Database::builder(dir)
            .worker_threads(options.worker_threads.max(1))
            .cache_size(options.cache_bytes)
            .open()
            .ctx("opening the database")?;
        let open = |name: &str| {
            db.keyspace(name, || {
                KeyspaceCreateOptions::default().max_memtable_size(MEMTABLE_BYTES)
            })
            .ctx("opening a keyspace")
        };
        let ks = Keyspaces {
            agents: open("agents")?,
            agents_by_host: open("agents_by_host")?,
            registrations: open("registrations")?,
            queue: open("queue")?,
            messages: open("messages")?,
            channels: open("channels")?,
            events: open("events")?,
        };
        Ok(Engine { epoch, db, ks })
    }
}

/// The gateway's persistent state. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
    /// Dropped after `inner`: its `Drop` joins the committer thread, which holds the other
    /// reference to `inner` and so, at the end, the last database handle.
    committer: Arc<Committer>,
}

/// The state shared by every clone and by the committer thread.
pub(crate) struct Inner {
    dir: PathBuf,
    options: StoreOptions,
    /// The open database; `None` while the store reopens.
    engine: RwLock<Option<Arc<Engine>>>,
    /// Epoch of the last engine opened.
    epoch: AtomicU64,
    /// Failed or not, and why.
    health: health::Health,
    /// Commands refused after (part of) their write reached fjall: hidden from delivery and
    /// removed from the store as soon as it accepts writes (see `queue::withdraw`).
    withdrawals: queue::Withdrawals,
    locks: KeyLocks,
    agent_count: AtomicU64,
    /// Per-agent queue state (next seq, depth) and the per-agent lock of queue and channels.
    queues: queue::QueueState,
    /// The global event seq.
    events: events::EventLog,
}

impl Inner {
    /// The current engine, or [`StoreError::Unavailable`] while the store reopens.
    pub(crate) fn engine(&self) -> Result<Arc<Engine>, StoreError> {
        let slot = self.engine.read().unwrap_or_else(PoisonError::into_inner);
        match slot.as_ref() {
            Some(engine) => Ok(Arc::clone(engine)),
            None => Err(StoreError::Unavailable(
                self.health.fault().unwrap_or_else(Fault::reopening),
            )),
        }
    }

    /// Marks the store failed when `err` is a storage fault (not one of its consequences:
    /// an unavailable store, the reserve, a reopen race). Returns whether it was.
    pub(crate) fn note_failure(&self, err: &StoreError) -> bool {
        let consequence = matches!(
            err,
            StoreError::Unavailable(_)
                | StoreError::DiskFull { .. }
                | StoreError::Reopened
                | StoreError::CommitterGone
        );
        if consequence || !err.is_fault() {
            return false;
        }
        let low_space = free_bytes(&self.dir)
            .is_ok_and(|free| free < self.options.min_free_bytes.max(RECOVERY_MIN_FREE));
        self.health.fail(Fault {
            disk_full: err.is_disk_full() || low_space,
            cause: err.to_string(),
        });
        true
    }
}

impl Store {
    /// Opens (creating if needed) the store in `dir` with default [`StoreOptions`].
    ///
    /// # Errors
    /// The directory cannot be created, fjall cannot open or recover it (e.g. another process
    /// holds it), or the committer thread cannot start.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        Self::open_with(dir, &StoreOptions::default())
    }

    /// Opens (creating if needed) the store in `dir` with explicit options.
    ///
    /// # Errors
    /// As [`Store::open`].
    pub fn open_with(dir: &Path, options: &StoreOptions) -> Result<Store, StoreError> {
        Self::open_inner(dir, options, None)
    }

    fn open_inner(
        dir: &Path,
        options: &StoreOptions,
        gate: Option<crossbeam_channel::Receiver<()>>,
    ) -> Result<Store, StoreError> {
        std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let engine = Engine::open(dir, options, 1)?;
        let agent_count = engine.ks.agents.len().ctx("counting agents")? as u64;
        let events = events::EventLog::recover(&engine.ks.events)?;
        let inner = Arc::new(Inner {
            dir: dir.to_path_buf(),
            options: options.clone(),
            engine: RwLock::new(Some(Arc::new(engine))),
            epoch: AtomicU64::new(1),
            health: health::Health::default(),
            withdrawals: queue::Withdrawals::default(),
            locks: KeyLocks::new(),
            agent_count: AtomicU64::new(agent_count),
            queues: queue::QueueState::new(),
            events,
        });
        commit::check_layout(&inner.dir)?;
        let committer = Committer::spawn(Arc::clone(&inner), gate)?;
        metrics::gauge!(crate::metrics::STORE_AVAILABLE).set(1.0);
        Ok(Store {
            inner,
            committer: Arc::new(committer),
        })
    }

    /// The current engine (see [`Inner::engine`]).
    fn engine(&self) -> Result<Arc<Engine>, StoreError> {
        self.inner.engine()
    }

    /// Resolves once every write made before this call is durable (journal fsynced).
    /// Concurrent calls share one fsync, which runs on the committer thread, never on the
    /// caller's. The future is `Send` and may be awaited on any executor. It fails if the
    /// store is failed, or reopens before the sync is served (writes may then be lost).
    pub fn sync(&self) -> SyncWaiter {
        match self.engine() {
            Ok(engine) => self.committer.request(Some(engine.epoch)),
            Err(e) => SyncWaiter::failed(e),
        }
    }

    /// [`Store::sync`] for writes made on the engine of `epoch`.
    pub(crate) fn sync_epoch(&self, epoch: u64) -> SyncWaiter {
        self.committer.request(Some(epoch))
    }

    /// [`Store::sync`] for non-async callers: blocks the calling thread until durable.
    /// Never call it on an executor thread.
    ///
    /// # Errors
    /// [`StoreError::Sync`] if the fsync failed, [`StoreError::CommitterGone`] at shutdown,
    /// [`StoreError::Unavailable`] / [`StoreError::Reopened`] around a failure.
    pub fn sync_blocking(&self) -> Result<(), StoreError> {
        futures_lite::future::block_on(self.sync())
    }

    /// Makes everything written durable, then writes every keyspace's memtable out to tables
    /// (at a clean shutdown): the next open then rebuilds no memtable from the journal (it
    /// still reads the active journal, up to the 64 MB at which fjall rotates it, and skips
    /// what the tables hold). With 100,000 agents and 100,000 queued commands here: start
    /// ≈ 0.54 s after a flushed stop, ≈ 1.4 s when all of it is still only in the journal (a
    /// crash right after writing it).
    ///
    /// # Errors
    /// The sync or a flush failed (the journal still holds everything: nothing is lost).
    pub fn flush_blocking(&self) -> Result<(), StoreError> {
        self.sync_blocking()?;
        let engine = self.engine()?;
        let ks = &engine.ks;
        for k in [
            &ks.agents,
            &ks.agents_by_host,
            &ks.registrations,
            &ks.queue,
            &ks.messages,
            &ks.channels,
            &ks.events,
        ] {
            // fjall 3.1.13 (pinned): rotates the active memtable and waits for its flush.
            k.rotate_memtable_and_wait().ctx("flushing a keyspace")?;
        }
        Ok(())
    }

    /// `(fsyncs done, sync requests served)` by the committer since open.
    pub fn commit_stats(&self) -> (u64, u64) {
        self.committer.stats()
    }

    /// Why the store refuses writes, if it does (a failed write or sync it has not recovered
    /// from yet). `None` when healthy.
    pub fn fault(&self) -> Option<Fault> {
        self.inner.health.fault()
    }

    /// Times the store reopened after a failure since it was opened.
    pub fn recoveries(&self) -> u64 {
        self.inner.epoch.load(Ordering::Acquire).saturating_sub(1)
    }

    /// Whether a new command may be written now: the store is not failed, and the data
    /// directory has at least [`StoreOptions::min_free_bytes`] free (not checked when 0 or when
    /// the free space cannot be read).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] when failed, [`StoreError::DiskFull`] below the reserve.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        if let Some(fault) = self.inner.health.fault() {
            return Err(StoreError::Unavailable(fault));
        }
        let reserve = self.inner.options.min_free_bytes;
        if reserve > 0 {
            if let Ok(free) = free_bytes(&self.inner.dir) {
                if free < reserve {
                    return Err(StoreError::DiskFull { free, reserve });
                }
            }
        }
        Ok(())
    }

    /// Marks the store failed as a failed write would (test support).
    #[cfg(test)]
    pub(crate) fn inject_fault(&self, disk_full: bool) {
        self.inner.health.fail(Fault {
            disk_full,
            cause: "injected by a test".into(),
        });
    }

    /// Raw keyspace handles of the current engine, for tests and tools. Holding them across
    /// a reopen delays it (fjall keeps the old database open while a handle lives).
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] while the store reopens.
    pub fn keyspaces(&self) -> Result<Keyspaces, StoreError> {
        Ok(self.engine()?.ks.clone())
    }
}

/// Striped mutexes serializing read-modify-write of one key. 64 stripes keep contention
/// negligible; a stripe is held for a point read and a buffered write, never across IO waits.
struct KeyLocks {
    stripes: [Mutex<()>; 64],
}

/// Lock domains, so equal keys of different record kinds do not share a stripe needlessly.
#[derive(Clone, Copy)]
enum LockDomain {
    Agent = 1,
    Registration = 2,
}

impl KeyLocks {
    fn new() -> Self {
        Self {
            stripes: std::array::from_fn(|_| Mutex::new(())),
        }
    }

    fn lock(&self, domain: LockDomain, key: &str) -> MutexGuard<'_, ()> {
        // FNV-1a over the domain tag and the key.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in std::iter::once(domain as u8).chain(key.bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        let stripe = &self.stripes[(h % 64) as usize];
        // The guarded data is `()`: a panic elsewhere cannot leave it inconsistent.
        stripe.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub use crate::crypto::{hash_token, token_matches};

#[cfg(test)]
mod recovery_tests;
#[cfg(test)]
mod tests;
