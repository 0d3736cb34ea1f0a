//! Persistence on fjall: agents, their host index, pending registrations, the durable command
//! queue with delivery status, channels, the event log, and group commit.
//!
//! One [`Store`] is opened per process and cloned into every shard (`Clone + Send + Sync`, an
//! `Arc` inside). Writes go to fjall's journal and OS buffers at once (cheap, no fsync);
//! durability comes from [`Store::sync`], which a dedicated committer thread serves for many
//! callers with one fsync (see [`SyncWaiter`]). Values are JSON, keys are the ids (see [`codec`]).
//!
//! Read-modify-write operations on one record (replace an agent, update `last_seen`, revoke,
//! take a registration) are serialized by a small array of striped mutexes held only across
//! the read and the buffered write, never across an fsync.

mod agents;
mod channels;
pub mod codec;
mod commit;
mod events;
mod queue;
mod registrations;

pub use agents::{AgentRecord, MAX_LIST_LIMIT, MAX_UIDS_PER_HOST};
pub use channels::{ChannelRecord, MAX_CHANNELS_LISTED, TOUCH_INTERVAL_S};
pub use commit::SyncWaiter;
pub use events::{channel_matches, EventScan, NewEvent, StoredEvent, MAX_EVENTS_PAGE};
pub use queue::{
    Attempt, MessageStatus, NewMessage, QueueError, QueuedMessage, MAX_ATTEMPTS_KEPT,
    MAX_BATCH_BYTES, MAX_ERROR_LEN, MAX_SWEEP,
};
pub use registrations::Registration;

/// Memtable size per keyspace: bounds the memory the store holds between flushes.
pub const MEMTABLE_BYTES: u64 = 16 << 20;

use commit::Committer;
use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use std::{
    path::{Path, PathBuf},
    sync::{atomic::AtomicU64, Arc, Mutex, MutexGuard, PoisonError},
};

/// Errors of the store. Who is at fault: `InvalidKey`/`TooLarge` are the caller's (input that
/// cannot be stored); `Decode`/`CorruptKey` mean damaged data on disk; the rest are local IO.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The IO error.
        source: std::io::Error,
    },
    /// fjall failed.
    #[error("storage error while {context}: {source}")]
    Fjall {
        /// What the store was doing.
        context: &'static str,
        /// fjall's error.
        source: fjall::Error,
    },
    /// A record could not be encoded as JSON.
    #[error("cannot encode {what}: {source}")]
    Encode {
        /// Record kind.
        what: &'static str,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// A stored record is not valid JSON for its type.
    #[error("corrupt {what} record under key {key:?}: {source}")]
    Decode {
        /// Record kind.
        what: &'static str,
        /// The key, printable and truncated.
        key: String,
        /// serde_json's error.
        source: serde_json::Error,
    },
    /// A stored key does not have the expected layout.
    #[error("corrupt key {key:?} in keyspace {keyspace}")]
    CorruptKey {
        /// Keyspace name.
        keyspace: &'static str,
        /// The key, printable and truncated.
        key: String,
    },
    /// A key part (uid, host_id, registration id) cannot be stored.
    #[error("invalid {field}: {reason}")]
    InvalidKey {
        /// Which field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// An encoded record exceeds [`codec::MAX_VALUE_LEN`].
    #[error("{what} record is {len} bytes, more than {max}")]
    TooLarge {
        /// Record kind.
        what: &'static str,
        /// Encoded size.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// The group-commit sync failed; writes since the last good sync may not be durable.
    #[error("sync to disk failed: {0}")]
    Sync(#[source] Arc<fjall::Error>),
    /// The committer thread is gone (store shutting down).
    #[error("the store's committer thread is gone")]
    CommitterGone,
    /// The committer thread could not be started.
    #[error("cannot start the store's committer thread: {0}")]
    SpawnCommitter(#[source] std::io::Error),
}

/// Adds context to fjall results.
pub(crate) trait FjallContext<T> {
    /// Maps a fjall error into [`StoreError::Fjall`] with `context`.
    fn ctx(self, context: &'static str) -> Result<T, StoreError>;
}

impl<T> FjallContext<T> for Result<T, fjall::Error> {
    fn ctx(self, context: &'static str) -> Result<T, StoreError> {
        self.map_err(|source| StoreError::Fjall { context, source })
    }
}

/// Tuning of the underlying fjall database.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// fjall background threads (flush and compaction share them). Default = 1: the shards
    /// are pinned to the cores; one worker is enough for our write rates. Values < 1 mean 1.
    pub worker_threads: usize,
    /// Block cache, in bytes. Default = 32 MiB.
    pub cache_bytes: u64,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            worker_threads: 1,
            cache_bytes: 32 * 1024 * 1024,
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

/// The gateway's persistent state. Cheap to clone; all clones share one database.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    db: Database,
    ks: Keyspaces,
    locks: KeyLocks,
    agent_count: AtomicU64,
    /// Per-agent queue state (next seq, depth) and the per-agent lock of queue and channels.
    queues: queue::QueueState,
    /// The global event seq.
    events: events::EventLog,
    /// Dropped last: joins the committer thread, which holds the last other database handle.
    committer: Committer,
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
        let agent_count = ks.agents.len().ctx("counting agents")? as u64;
        let events = events::EventLog::recover(&ks.events)?;
        let committer = Committer::spawn(db.clone(), dir, gate)?;
        Ok(Store {
            inner: Arc::new(Inner {
                db,
                ks,
                locks: KeyLocks::new(),
                agent_count: AtomicU64::new(agent_count),
                queues: queue::QueueState::new(),
                events,
                committer,
            }),
        })
    }

    /// Resolves once every write made before this call is durable (journal fsynced).
    /// Concurrent calls share one fsync, which runs on the committer thread, never on the
    /// caller's. The future is `Send` and may be awaited on any executor.
    pub fn sync(&self) -> SyncWaiter {
        self.inner.committer.request()
    }

    /// [`Store::sync`] for non-async callers: blocks the calling thread until durable.
    /// Never call it on an executor thread.
    ///
    /// # Errors
    /// [`StoreError::Sync`] if the fsync failed, [`StoreError::CommitterGone`] at shutdown.
    pub fn sync_blocking(&self) -> Result<(), StoreError> {
        futures_lite::future::block_on(self.sync())
    }

    /// `(fsyncs done, sync requests served)` by the committer since open.
    pub fn commit_stats(&self) -> (u64, u64) {
        self.inner.committer.stats()
    }

    /// Raw keyspace handles, for modules that build on the store.
    pub fn keyspaces(&self) -> &Keyspaces {
        &self.inner.ks
    }

    /// The fjall database (write batches across keyspaces).
    pub fn database(&self) -> &Database {
        &self.inner.db
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
mod tests;
