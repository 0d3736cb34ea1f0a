//! Unit tests of the fleet operations' error mapping.

use super::*;
use crate::admin::api::ErrorKind;
use crate::store::Store;

fn enospc() -> StoreError {
    StoreError::Fjall {
        context: "t",
        source: fjall::Error::Io(std::io::Error::from_raw_os_error(libc::ENOSPC)),
    }
}

fn poisoned() -> StoreError {
    StoreError::Fjall {
        context: "t",
        source: fjall::Error::Poisoned,
    }
}

#[test]
fn store_errors_map_to_507_503_or_500() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let full = store_error(&store as &dyn Fleet, &enospc(), NOT_QUEUED);
    assert_eq!(full.kind, ErrorKind::InsufficientStorage);
    assert!(full.message.contains(NOT_QUEUED), "{}", full.message);
    let reserve = StoreError::DiskFull {
        free: 0,
        reserve: 1,
    };
    assert_eq!(
        store_error(&store as &dyn Fleet, &reserve, NOT_QUEUED).status(),
        507
    );
    let other = store_error(&store as &dyn Fleet, &poisoned(), NOT_QUEUED);
    assert_eq!(other.kind, ErrorKind::StorageUnavailable);
    let damaged = StoreError::CorruptKey {
        keyspace: "queue",
        key: "k".into(),
    };
    assert_eq!(
        store_error(&store as &dyn Fleet, &damaged, NOT_READ).status(),
        500
    );
    // fjall's Poisoned does not say why: the store's recorded fault does.
    store.inject_fault(true);
    assert_eq!(
        store_error(&store as &dyn Fleet, &poisoned(), NOT_QUEUED).status(),
        507
    );
}
