//! A failed store: refusing writes, reopening by itself, withdrawing refused commands, the
//! free-space reserve. A failure is injected (the real thing, ENOSPC on a full tmpfs, is
//! `tests/disk_full.rs`: it needs root to mount one).

use super::*;
use std::time::{Duration, Instant};

const NOW: i64 = 1_700_000_000;

fn msg(id: &str) -> NewMessage {
    NewMessage {
        message_id: id.into(),
        kind: "policies".into(),
        message_type: "request".into(),
        payload: format!(r#"{{"cmd":"{id}"}}"#),
        priority: 5,
        ttl_s: 3_600,
        max_retries: 3,
    }
}

fn options() -> StoreOptions {
    StoreOptions {
        min_free_bytes: 0,
        ..StoreOptions::default()
    }
}

fn open(dir: &Path) -> Store {
    Store::open_with(dir, &options()).unwrap()
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

/// Polls `done` every 10 ms for at most 15 s (the committer checks twice a second).
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn pending_ids(store: &Store, uid: &str) -> Vec<String> {
    store
        .pending(uid, NOW)
        .unwrap()
        .into_iter()
        .map(|m| m.message_id)
        .collect()
}

/// The store in `dir` with its committer held until the returned gate is dropped: nothing is
/// synced, probed or reopened before.
fn open_gated(dir: &Path) -> (Store, crossbeam_channel::Sender<()>) {
    let (gate, rx) = crossbeam_channel::bounded::<()>(0);
    (Store::open_inner(dir, &options(), Some(rx)).unwrap(), gate)
}

#[test]
fn a_failed_store_refuses_commands_then_reopens_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let a = {
        let store = open(dir.path());
        block_on(store.enqueue_durable("u1", &msg("a"), NOW, 100)).unwrap()
    };
    let (store, gate) = open_gated(dir.path());
    store.inject_fault(true);
    let refused = block_on(store.enqueue_durable("u1", &msg("b"), NOW, 100)).unwrap_err();
    let QueueError::Store(e) = refused else {
        panic!("{refused:?}")
    };
    assert!(
        matches!(*e, StoreError::Unavailable(_)) && e.is_disk_full(),
        "{e}"
    );
    assert!(matches!(
        store.check_writable(),
        Err(StoreError::Unavailable(_))
    ));
    // Reads keep working while failed.
    assert_eq!(pending_ids(&store, "u1"), ["a"]);
    drop(gate);
    wait_until("the reopen", || store.fault().is_none());
    assert_eq!(store.recoveries(), 1);
    let c = block_on(store.enqueue_durable("u1", &msg("c"), NOW, 100)).unwrap();
    assert!(c.seq > a.seq, "seqs never go back across a reopen");
    assert_eq!(pending_ids(&store, "u1"), ["a", "c"]);
    assert_eq!(store.queue_depth("u1").unwrap(), 2);
    drop(store);
    let store = open(dir.path());
    assert_eq!(pending_ids(&store, "u1"), ["a", "c"]);
}

#[test]
fn a_command_refused_after_its_write_is_hidden_then_removed_at_the_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path());
        block_on(store.enqueue_durable("u1", &msg("kept"), NOW, 100)).unwrap();
    }
    let (store, gate) = open_gated(dir.path());
    // As when the sync after a successful enqueue fails: the record is in the database (and
    // reaches the journal when the failed database closes).
    let refused = store.enqueue("u1", &msg("refused"), NOW, 100).unwrap();
    store.inject_fault(false);
    store.withdraw(std::slice::from_ref(&refused));
    assert_eq!(pending_ids(&store, "u1"), ["kept"], "hidden at once");
    drop(gate);
    wait_until("the reopen", || store.fault().is_none());
    assert_eq!(store.withdrawals_pending(), 0);
    assert_eq!(pending_ids(&store, "u1"), ["kept"]);
    assert!(store.message_status("refused").unwrap().is_empty());
    assert_eq!(store.queue_depth("u1").unwrap(), 1);
    drop(store);
    let store = open(dir.path());
    assert_eq!(pending_ids(&store, "u1"), ["kept"], "and stays removed");
    assert!(store.message_status("refused").unwrap().is_empty());
}

#[test]
fn a_withdrawal_never_removes_another_command_with_its_seq() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let kept = block_on(store.enqueue_durable("u1", &msg("kept"), NOW, 100)).unwrap();
    let mut other = kept.clone();
    other.message_id = "someone-else".into();
    store.withdraw(&[other]);
    // Healthy: the committer withdraws it by itself.
    wait_until("the withdrawal", || store.withdrawals_pending() == 0);
    assert_eq!(pending_ids(&store, "u1"), ["kept"]);
    assert_eq!(store.message_status("kept").unwrap().len(), 1);
}

#[test]
fn the_event_seq_continues_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let ev = NewEvent {
        channel: "agent.u1.heartbeat".into(),
        agent_uid: "u1".into(),
        message_type: "event".into(),
        id: "e".into(),
        body: "{}".into(),
        at: NOW,
    };
    let first = store.append_events(&[ev.clone(), ev.clone()]).unwrap();
    store.sync_blocking().unwrap();
    store.inject_fault(false);
    wait_until("the reopen", || store.fault().is_none());
    let next = store.append_event(&ev).unwrap();
    assert_eq!(next, first.end);
    assert_eq!(store.events_after(0, 10).unwrap().len(), 3);
}

#[test]
fn the_reserve_refuses_commands_without_writing_anything() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_with(
        dir.path(),
        &StoreOptions {
            min_free_bytes: u64::MAX,
            ..StoreOptions::default()
        },
    )
    .unwrap();
    let err = block_on(store.enqueue_durable("u1", &msg("a"), NOW, 100)).unwrap_err();
    let QueueError::Store(e) = err else {
        panic!("{err:?}")
    };
    assert!(
        matches!(*e, StoreError::DiskFull { .. }) && e.is_disk_full(),
        "{e}"
    );
    let items = vec![("u1".to_string(), msg("b"))];
    let err = block_on(store.enqueue_many_durable(&items, NOW, 100)).unwrap_err();
    assert!(err.is_disk_full(), "{err}");
    assert!(store.keyspaces().unwrap().queue.is_empty().unwrap());
    assert!(store.keyspaces().unwrap().messages.is_empty().unwrap());
    assert_eq!(store.fault(), None, "the reserve is not a failure");
}

#[test]
fn sync_while_failed_is_refused_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.inject_fault(true);
    let r = store.sync_blocking();
    assert!(matches!(r, Err(StoreError::Unavailable(_))), "{r:?}");
}

#[test]
fn fault_classification() {
    let full = StoreError::Fjall {
        context: "t",
        source: fjall::Error::Io(std::io::Error::from_raw_os_error(libc::ENOSPC)),
    };
    assert!(full.is_disk_full() && full.is_fault());
    let poisoned = StoreError::Fjall {
        context: "t",
        source: fjall::Error::Poisoned,
    };
    assert!(!poisoned.is_disk_full() && poisoned.is_fault());
    let bad = StoreError::InvalidKey {
        field: "agent_uid",
        reason: "is empty",
    };
    assert!(!bad.is_disk_full() && !bad.is_fault());
    assert!(StoreError::Reopened.is_fault());
}
