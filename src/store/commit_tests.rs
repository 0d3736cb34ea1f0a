//! Tests of the group committer and the journal tracker.

use super::*;
use fjall::KeyspaceCreateOptions;

#[test]
fn tracker_starts_at_newest_journal_and_follows_rotations() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["1.jnl", "3.jnl", "lock", "10.txt"] {
        File::create(dir.path().join(name)).unwrap();
    }
    let mut sync = JournalSync::open(dir.path()).unwrap();
    assert_eq!(sync.active_id(), Some(3));
    File::create(dir.path().join("4.jnl")).unwrap();
    File::create(dir.path().join("5.jnl")).unwrap();
    sync.fsync_active().unwrap();
    assert_eq!(sync.active_id(), Some(5));
}

#[test]
fn a_directory_without_the_journal_fails_loudly() {
    // What a fjall that moved its journal looks like: no `<id>.jnl` where we look.
    let dir = tempfile::tempdir().unwrap();
    File::create(dir.path().join("journal.log")).unwrap();
    let err = JournalSync::open(dir.path()).err().expect("no journal");
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    let err = check_layout(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::JournalLayout { .. }), "{err}");
    assert!(err.to_string().contains("fjall 3.1"), "{err}");
    // A journal that disappears after open makes the next sync fail (never a silent
    // "durable"), and every one after it.
    File::create(dir.path().join("1.jnl")).unwrap();
    let mut sync = JournalSync::open(dir.path()).unwrap();
    sync.active = None;
    assert!(sync.fsync_active().is_err());
    // A real store opens: fjall 3.1 creates its journal where we look.
    let db = tempfile::tempdir().unwrap();
    crate::store::Store::open(db.path()).unwrap();
    check_layout(db.path()).unwrap();
}

#[test]
fn tracked_journal_is_the_file_fjall_writes() {
    // Guards the layout assumption: if fjall moves its journal, this fails.
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder(dir.path())
        .worker_threads(1)
        .open()
        .unwrap();
    let ks = db
        .keyspace("probe", KeyspaceCreateOptions::default)
        .unwrap();
    let mut sync = JournalSync::open(dir.path()).expect("fjall journal found");
    let id = sync.active_id().expect("fjall journal found");
    ks.insert("marker-7f3a9c", "value-e41b").unwrap();
    sync.sync(&db).unwrap();
    let bytes = std::fs::read(journal_path(dir.path(), id)).unwrap();
    let found = bytes.windows(13).any(|w| w == b"marker-7f3a9c");
    assert!(found, "written key not found in the tracked journal");
}

#[test]
fn waiters_queued_before_the_thread_runs_share_one_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let (open_gate, gate) = crossbeam_channel::bounded::<()>(0);
    let store = crate::store::Store::open_inner(
        dir.path(),
        &crate::store::StoreOptions::default(),
        Some(gate),
    )
    .unwrap();
    let waiters: Vec<SyncWaiter> = (0..200).map(|_| store.sync()).collect();
    assert_eq!(store.committer.queued(), 200);
    drop(open_gate);
    for w in waiters {
        futures_lite::future::block_on(w).unwrap();
    }
    let (fsyncs, requests) = store.commit_stats();
    assert_eq!(requests, 200);
    assert!(fsyncs < requests, "fsyncs={fsyncs} requests={requests}");
}

#[test]
fn request_after_thread_is_gone_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(dir.path()).unwrap();
    let mut committer = Committer::spawn(Arc::clone(&store.inner), None).unwrap();
    drop(committer.tx.take());
    let r = futures_lite::future::block_on(committer.request(None));
    assert!(matches!(r, Err(StoreError::CommitterGone)));
}

#[test]
fn a_sync_of_another_epoch_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let store = crate::store::Store::open(dir.path()).unwrap();
    futures_lite::future::block_on(store.sync_epoch(1)).unwrap();
    let r = futures_lite::future::block_on(store.sync_epoch(7));
    assert!(matches!(r, Err(StoreError::Reopened)), "{r:?}");
}
