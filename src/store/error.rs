//! Errors of the fleet state, sorted by who is at fault.

use super::{health, Fault};
use std::path::PathBuf;
use std::sync::Arc;

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
    /// fjall's journal is not where the group commit expects it (fjall's layout changed).
    #[error("unsupported fjall journal layout: {source}")]
    JournalLayout {
        /// What was not found.
        source: std::io::Error,
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
    /// A stored binary record does not have its layout.
    #[error("corrupt {what} record under key {key:?}")]
    CorruptValue {
        /// Record kind.
        what: &'static str,
        /// The key, printable and truncated.
        key: String,
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
    /// The store is failed (a write or sync failed: full disk, IO error) and refuses writes
    /// until it has reopened, or it is reopening right now (reads refused too, briefly).
    #[error("storage unavailable: {0}")]
    Unavailable(Fault),
    /// The data directory has less free space than the configured reserve
    /// ([`StoreOptions::min_free_bytes`]); nothing was written.
    #[error("storage full: {free} bytes free on the data directory, {reserve} required")]
    DiskFull {
        /// Bytes available to the gateway.
        free: u64,
        /// The reserve.
        reserve: u64,
    },
    /// The store reopened between a write and its sync: the write may not have survived.
    #[error("the store reopened before the write was synced; it may be lost")]
    Reopened,
}

impl StoreError {
    /// Whether the error comes from a full file system (ENOSPC, EDQUOT, the free-space reserve,
    /// or a store failed for that reason).
    pub fn is_disk_full(&self) -> bool {
        match self {
            Self::DiskFull { .. } => true,
            Self::Unavailable(fault) => fault.disk_full,
            Self::Fjall { source, .. } => health::fjall_disk_full(source),
            Self::Sync(source) => health::fjall_disk_full(source),
            _ => false,
        }
    }

    /// Whether the error is a storage fault (IO, a poisoned or unavailable store, a lost sync)
    /// rather than bad input or damaged records: the operation may succeed later as is.
    pub fn is_fault(&self) -> bool {
        match self {
            Self::Fjall { source, .. } => health::fjall_is_fault(source),
            Self::Sync(_)
            | Self::CommitterGone
            | Self::Unavailable(_)
            | Self::DiskFull { .. }
            | Self::Reopened => true,
            _ => false,
        }
    }
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
