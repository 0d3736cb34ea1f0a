//! Whether the store accepts writes, why not, and the free space of its directory.
//!
//! What fjall 3.1 does on a failed write (measured on a full tmpfs, see `tests/disk_full.rs`):
//! the first journal write, flush or compaction that fails (ENOSPC, EIO) **poisons** the
//! database: every later write and `persist` returns `Error::Poisoned`, even once space is back;
//! reads keep working; a background worker that failed exits. Only a new `Database` (drop every
//! handle, open the directory again, which replays the journal) accepts writes again. The journal
//! file is preallocated with `set_len` (sparse), so on a full disk the journal itself runs out.

use std::io;
use std::path::Path;
use std::sync::{
    atomic::{AtomicBool, Ordering},
    Mutex, PoisonError,
};

/// Why the store refuses writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fault {
    /// The file system was full (ENOSPC, EDQUOT), or had less than the reserve free when the
    /// failure was seen (fjall's `Poisoned` does not say why).
    pub disk_full: bool,
    /// What failed, for logs and API messages.
    pub cause: String,
}

impl Fault {
    /// The fault reported while the store reopens after a failure.
    pub(crate) fn reopening() -> Fault {
        Fault {
            disk_full: false,
            cause: "the store is reopening after a storage failure".into(),
        }
    }
}

impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.disk_full {
            write!(f, "disk full: {}", self.cause)
        } else {
            f.write_str(&self.cause)
        }
    }
}

/// Healthy, or failed with a [`Fault`] until the store has reopened.
#[derive(Debug, Default)]
pub(crate) struct Health {
    /// Fast path for the healthy case: no lock.
    failed: AtomicBool,
    fault: Mutex<Option<Fault>>,
}

impl Health {
    /// Records a failure. The first one is kept (later ones are mostly its consequences);
    /// returns whether this call changed the state.
    pub(crate) fn fail(&self, fault: Fault) -> bool {
        let mut slot = self.fault.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_some() {
            return false;
        }
        tracing::error!(
            disk_full = fault.disk_full,
            cause = %fault.cause,
            "store failed: refusing writes until it has reopened"
        );
        *slot = Some(fault);
        self.failed.store(true, Ordering::Release);
        metrics::gauge!(crate::metrics::STORE_AVAILABLE).set(0.0);
        true
    }

    /// Back to healthy (after a reopen).
    pub(crate) fn clear(&self) {
        let mut slot = self.fault.lock().unwrap_or_else(PoisonError::into_inner);
        *slot = None;
        self.failed.store(false, Ordering::Release);
        metrics::gauge!(crate::metrics::STORE_AVAILABLE).set(1.0);
    }

    /// Whether a failure is recorded.
    pub(crate) fn is_failed(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The recorded failure, if any.
    pub(crate) fn fault(&self) -> Option<Fault> {
        if !self.is_failed() {
            return None;
        }
        self.fault
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Bytes available to unprivileged writers on the file system holding `dir` (statvfs
/// `f_bavail × f_frsize`).
///
/// # Errors
/// statvfs failed (e.g. `dir` does not exist).
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    let st = rustix::fs::statvfs(dir)?;
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// Whether an IO error means "no space" (ENOSPC) or "quota exceeded" (EDQUOT).
pub(crate) fn io_disk_full(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
        || matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
        )
}

/// [`io_disk_full`] for a fjall error (its own IO, or the LSM tree's).
pub(crate) fn fjall_disk_full(e: &fjall::Error) -> bool {
    match e {
        fjall::Error::Io(io) => io_disk_full(io),
        fjall::Error::Storage(fjall::LsmError::Io(io)) => io_disk_full(io),
        _ => false,
    }
}

/// Whether a fjall error is a storage fault (IO, poisoned, locked) rather than damaged data.
pub(crate) fn fjall_is_fault(e: &fjall::Error) -> bool {
    matches!(
        e,
        fjall::Error::Io(_)
            | fjall::Error::Poisoned
            | fjall::Error::Locked
            | fjall::Error::Storage(fjall::LsmError::Io(_))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fault_is_kept_until_cleared() {
        let h = Health::default();
        assert!(!h.is_failed());
        assert_eq!(h.fault(), None);
        let full = Fault {
            disk_full: true,
            cause: "journal write: ENOSPC".into(),
        };
        assert!(h.fail(full.clone()));
        assert!(!h.fail(Fault {
            disk_full: false,
            cause: "later".into()
        }));
        assert_eq!(h.fault(), Some(full));
        h.clear();
        assert_eq!(h.fault(), None);
        assert!(!h.is_failed());
    }

    #[test]
    fn enospc_and_edquot_are_disk_full_other_errors_are_not() {
        let enospc = io::Error::from_raw_os_error(libc::ENOSPC);
        let edquot = io::Error::from_raw_os_error(libc::EDQUOT);
        let eio = io::Error::from_raw_os_error(libc::EIO);
        assert!(io_disk_full(&enospc) && io_disk_full(&edquot));
        assert!(!io_disk_full(&eio));
        assert!(fjall_disk_full(&fjall::Error::Io(enospc)));
        assert!(!fjall_disk_full(&fjall::Error::Poisoned));
        assert!(fjall_is_fault(&fjall::Error::Poisoned));
        assert!(fjall_is_fault(&fjall::Error::Io(eio)));
        assert!(!fjall_is_fault(&fjall::Error::InvalidTrailer));
    }

    #[test]
    fn free_bytes_of_a_directory_and_of_nothing() {
        let dir = tempfile::tempdir().unwrap();
        assert!(free_bytes(dir.path()).is_ok());
        assert!(free_bytes(&dir.path().join("missing")).is_err());
    }
}
