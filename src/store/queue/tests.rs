//! Queue tests on temporary directories.

use super::*;
use crate::store::Store;

const NOW: i64 = 1_700_000_000;
const MAX: usize = 10_000;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

fn msg(id: &str, priority: u8) -> NewMessage {
    NewMessage {
        message_id: id.into(),
        kind: "policies".into(),
        message_type: "request".into(),
        payload: format!(r#"{{"cmd":"{id}"}}"#),
        priority,
        ttl_s: 3_600,
        max_retries: 3,
    }
}

fn ids(list: &[QueuedMessage]) -> Vec<&str> {
    list.iter().map(|m| m.message_id.as_str()).collect()
}

fn status_of(store: &Store, id: &str) -> Vec<(String, MessageStatus)> {
    let list = store.message_status(id).unwrap();
    list.into_iter().map(|m| (m.agent_uid, m.status)).collect()
}

#[test]
fn pending_is_priority_desc_then_fifo() {
    let (_dir, store) = open();
    for (id, prio) in [("a", 5), ("b", 5), ("c", 9), ("d", 1), ("e", 9), ("f", 5)] {
        store.enqueue("u1", &msg(id, prio), NOW, MAX).unwrap();
    }
    store.enqueue("u10", &msg("other", 9), NOW, MAX).unwrap();
    let pending = store.pending("u1", NOW).unwrap();
    assert_eq!(ids(&pending), ["c", "e", "a", "b", "f", "d"]);
    assert!(pending.iter().all(|m| m.status == MessageStatus::Queued));
    let first = store.pending_limit("u1", NOW, 2).unwrap();
    assert_eq!(ids(&first), ["c", "e"]);
    assert!(store.pending_limit("u1", NOW, 0).unwrap().is_empty());
    // Seqs grow in enqueue order.
    let mut seqs: Vec<(u64, &str)> = pending
        .iter()
        .map(|m| (m.seq, m.message_id.as_str()))
        .collect();
    seqs.sort();
    let order: Vec<&str> = seqs.iter().map(|s| s.1).collect();
    assert_eq!(order, ["a", "b", "c", "d", "e", "f"]);
}

#[test]
fn full_at_the_bound_reports_depth() {
    let (_dir, store) = open();
    for i in 0..3 {
        store
            .enqueue("u1", &msg(&format!("m{i}"), 5), NOW, 3)
            .unwrap();
    }
    assert!(matches!(
        store.enqueue("u1", &msg("m3", 5), NOW, 3),
        Err(QueueError::Full { depth: 3 })
    ));
    assert_eq!(store.queue_depth("u1").unwrap(), 3);
    // Other agents are not affected; a delivery frees a slot.
    store.enqueue("u2", &msg("m3", 5), NOW, 3).unwrap();
    assert!(store.mark_delivered("u1", "m0", NOW).unwrap());
    assert_eq!(store.queue_depth("u1").unwrap(), 2);
    store.enqueue("u1", &msg("m3", 5), NOW, 3).unwrap();
}

#[test]
fn duplicate_and_invalid_ids_are_refused() {
    let (_dir, store) = open();
    store.enqueue("u1", &msg("m1", 5), NOW, MAX).unwrap();
    assert!(matches!(
        store.enqueue("u1", &msg("m1", 5), NOW, MAX),
        Err(QueueError::Duplicate)
    ));
    store.mark_delivered("u1", "m1", NOW).unwrap();
    assert!(matches!(
        store.enqueue("u1", &msg("m1", 5), NOW, MAX),
        Err(QueueError::Duplicate)
    ));
    let bad = store.enqueue("u\0x", &msg("m2", 5), NOW, MAX);
    assert!(
        matches!(bad, Err(QueueError::Store(e)) if matches!(*e, StoreError::InvalidKey { .. }))
    );
    assert!(store.enqueue("u1", &msg("", 5), NOW, MAX).is_err());
    assert_eq!(store.queue_depth("u1").unwrap(), 0);
    assert!(store.pending("", NOW).unwrap().is_empty());
    assert!(!store.mark_delivered("u\0", "m1", NOW).unwrap());
    assert!(store.message_status("a\0b").unwrap().is_empty());
}

#[test]
fn ttl_expiry_shows_as_expired() {
    let (_dir, store) = open();
    let mut short = msg("short", 5);
    short.ttl_s = 10;
    store.enqueue("u1", &short, NOW, MAX).unwrap();
    store.enqueue("u1", &msg("long", 5), NOW, MAX).unwrap();
    assert_eq!(
        ids(&store.pending("u1", NOW + 9).unwrap()),
        ["short", "long"]
    );
    // expires_at <= now is expired.
    assert_eq!(ids(&store.pending("u1", NOW + 10).unwrap()), ["long"]);
    assert_eq!(store.queue_depth("u1").unwrap(), 1);
    let status = store.message_status("short").unwrap();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].status, MessageStatus::Expired);
    assert_eq!(status[0].updated_at, NOW + 10);
    assert!(
        status[0].payload.is_empty(),
        "final records drop the payload"
    );
}

#[test]
fn expire_due_sweeps_across_agents_with_bounded_work() {
    let (_dir, store) = open();
    for (uid, ttl) in [("u1", 5), ("u2", 6), ("u3", 100), ("u4", 7)] {
        let mut m = msg(&format!("m-{uid}"), 5);
        m.ttl_s = ttl;
        store.enqueue(uid, &m, NOW, MAX).unwrap();
    }
    assert_eq!(store.queue_depth("u2").unwrap(), 1);
    assert_eq!(store.expire_due(NOW + 4, 10).unwrap(), 0);
    assert_eq!(store.expire_due(NOW + 50, 2).unwrap(), 2, "limit respected");
    assert_eq!(store.expire_due(NOW + 50, 10).unwrap(), 1);
    assert_eq!(store.expire_due(NOW + 50, 10).unwrap(), 0);
    for uid in ["u1", "u2", "u4"] {
        assert_eq!(
            status_of(&store, &format!("m-{uid}")),
            [(uid.to_string(), MessageStatus::Expired)]
        );
        assert_eq!(store.queue_depth(uid).unwrap(), 0);
    }
    assert_eq!(store.queue_depth("u3").unwrap(), 1);
    // A delivered message leaves no due index entry behind.
    store.mark_delivered("u3", "m-u3", NOW).unwrap();
    assert_eq!(store.expire_due(i64::MAX, 10).unwrap(), 0);
    assert_eq!(
        status_of(&store, "m-u3"),
        [("u3".to_string(), MessageStatus::Delivered)]
    );
}

#[test]
fn attempts_are_counted_then_retries_exhausted_fail() {
    let (_dir, store) = open();
    let seq = store.enqueue("u1", &msg("m1", 5), NOW, MAX).unwrap().seq;
    for n in 1..=3u32 {
        let m = store
            .record_attempt("u1", seq, 40 + u64::from(n), NOW + i64::from(n))
            .unwrap()
            .unwrap();
        assert_eq!(m.retry_count, n);
        assert_eq!(m.status, MessageStatus::Sent);
        assert_eq!(m.attempts.len(), n as usize);
        assert_eq!(
            m.attempts.last(),
            Some(&Attempt {
                at: NOW + i64::from(n),
                conn: 40 + u64::from(n)
            })
        );
    }
    assert_eq!(store.pending("u1", NOW).unwrap()[0].retry_count, 3);
    // A 4th attempt is refused and fails the message.
    assert_eq!(store.record_attempt("u1", seq, 99, NOW + 9).unwrap(), None);
    let status = store.message_status("m1").unwrap();
    assert_eq!(status[0].status, MessageStatus::Failed);
    assert_eq!(status[0].error.as_deref(), Some("retries exhausted"));
    assert_eq!(status[0].retry_count, 3);
    assert_eq!(store.queue_depth("u1").unwrap(), 0);
    assert_eq!(store.record_attempt("u1", seq, 1, NOW).unwrap(), None);
    assert_eq!(store.record_attempt("u1", seq + 1, 1, NOW).unwrap(), None);
}

#[test]
fn mark_failed_keeps_a_clipped_reason_and_attempts_are_capped() {
    let (_dir, store) = open();
    let mut m = msg("m1", 5);
    m.max_retries = 100;
    let seq = store.enqueue("u1", &m, NOW, MAX).unwrap().seq;
    for i in 0..20 {
        store
            .record_attempt("u1", seq, i, NOW + i as i64)
            .unwrap()
            .unwrap();
    }
    let rec = &store.pending("u1", NOW).unwrap()[0];
    assert_eq!(rec.retry_count, 20);
    assert_eq!(rec.attempts.len(), MAX_ATTEMPTS_KEPT);
    assert_eq!(rec.attempts[0].conn, 4, "the oldest are dropped");
    let reason = "é".repeat(MAX_ERROR_LEN);
    assert!(store.mark_failed("u1", seq, &reason, NOW + 30).unwrap());
    assert!(!store.mark_failed("u1", seq, "again", NOW + 31).unwrap());
    let err = store.message_status("m1").unwrap()[0]
        .error
        .clone()
        .unwrap();
    assert!(err.len() <= MAX_ERROR_LEN && err.len() >= MAX_ERROR_LEN - 1);
    // max_retries 0 is taken as 1 attempt.
    m.message_id = "m2".into();
    m.max_retries = 0;
    let rec = store.enqueue("u1", &m, NOW, MAX).unwrap();
    assert_eq!(rec.max_retries, 1);
    assert!(store
        .record_attempt("u1", rec.seq, 1, NOW)
        .unwrap()
        .is_some());
    assert!(store
        .record_attempt("u1", rec.seq, 1, NOW)
        .unwrap()
        .is_none());
}

#[test]
fn delivered_moves_out_of_the_queue() {
    let (_dir, store) = open();
    let seq = store.enqueue("u1", &msg("m1", 5), NOW, MAX).unwrap().seq;
    store.enqueue("u1", &msg("m2", 5), NOW, MAX).unwrap();
    store
        .record_attempt("u1", seq, 7, NOW + 1)
        .unwrap()
        .unwrap();
    assert!(
        !store.mark_delivered("u2", "m1", NOW + 2).unwrap(),
        "another agent's ack"
    );
    assert!(store.mark_delivered("u1", "m1", NOW + 2).unwrap());
    assert!(
        !store.mark_delivered("u1", "m1", NOW + 3).unwrap(),
        "second ack"
    );
    assert!(!store.mark_delivered("u1", "nope", NOW + 3).unwrap());
    assert_eq!(ids(&store.pending("u1", NOW).unwrap()), ["m2"]);
    assert_eq!(store.queue_depth("u1").unwrap(), 1);
    let done = &store.message_status("m1").unwrap()[0];
    assert_eq!(done.status, MessageStatus::Delivered);
    assert_eq!((done.retry_count, done.updated_at), (1, NOW + 2));
    assert_eq!(store.record_attempt("u1", seq, 8, NOW + 4).unwrap(), None);
    assert!(!store.requeue("u1", seq, NOW + 4).unwrap());
}

#[test]
fn requeue_turns_sent_back_into_queued() {
    let (_dir, store) = open();
    let seq = store.enqueue("u1", &msg("m1", 5), NOW, MAX).unwrap().seq;
    assert!(!store.requeue("u1", seq, NOW).unwrap(), "not sent yet");
    store
        .record_attempt("u1", seq, 1, NOW + 1)
        .unwrap()
        .unwrap();
    assert!(store.requeue("u1", seq, NOW + 2).unwrap());
    let rec = &store.pending("u1", NOW + 3).unwrap()[0];
    assert_eq!(rec.status, MessageStatus::Queued);
    assert_eq!((rec.retry_count, rec.updated_at), (1, NOW + 2));
    assert!(!store.requeue("u1", seq + 1, NOW).unwrap());
}

#[test]
fn enqueue_many_writes_a_thousand_in_one_call() {
    let (_dir, store) = open();
    let mut items: Vec<(String, NewMessage)> = (0..1000)
        .map(|i| (format!("agent-{i:04}"), msg("bcast", 5)))
        .collect();
    items.push(("agent-0007".into(), msg("bcast", 5))); // repeated pair
    items.push(("bad\0uid".into(), msg("bcast", 5)));
    store
        .enqueue("agent-0001", &msg("fill", 5), NOW, MAX)
        .unwrap();
    let results = store.enqueue_many(&items, NOW, 1);
    assert_eq!(results.len(), 1002);
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 999);
    assert!(matches!(results[1], Err(QueueError::Full { depth: 1 })));
    assert!(matches!(results[1000], Err(QueueError::Duplicate)));
    assert!(matches!(results[1001], Err(QueueError::Store(_))));
    let status = store.message_status("bcast").unwrap();
    assert_eq!(status.len(), 999);
    assert!(status.windows(2).all(|w| w[0].agent_uid < w[1].agent_uid));
    assert_eq!(store.queue_depth("agent-0999").unwrap(), 1);
    let returned = results[0].as_ref().unwrap();
    assert!(returned.payload.is_empty(), "not repeated per agent");
    assert_eq!(status[0].payload, msg("bcast", 5).payload);
    assert_eq!(ids(&store.pending("agent-0500", NOW).unwrap()), ["bcast"]);
    // Pages of the status walk every agent once.
    let page = store
        .message_status_page("bcast", Some("agent-0997"), 10)
        .unwrap();
    let uids: Vec<&str> = page.iter().map(|m| m.agent_uid.as_str()).collect();
    assert_eq!(uids, ["agent-0998", "agent-0999"]);
}

#[test]
fn broadcast_status_lists_each_agent_pending_or_final() {
    let (_dir, store) = open();
    let items: Vec<(String, NewMessage)> = ["u1", "u2", "u3"]
        .iter()
        .map(|u| (u.to_string(), msg("b1", 5)))
        .collect();
    assert!(store
        .enqueue_many(&items, NOW, MAX)
        .iter()
        .all(Result::is_ok));
    store.enqueue("u1", &msg("b10", 5), NOW, MAX).unwrap(); // shares a prefix with b1
    store.mark_delivered("u2", "b1", NOW + 1).unwrap();
    let seq = store.pending("u3", NOW).unwrap()[0].seq;
    store.record_attempt("u3", seq, 5, NOW + 1).unwrap();
    let status = store.message_status("b1").unwrap();
    let got: Vec<(&str, MessageStatus)> = status
        .iter()
        .map(|m| (m.agent_uid.as_str(), m.status))
        .collect();
    assert_eq!(
        got,
        [
            ("u1", MessageStatus::Queued),
            ("u2", MessageStatus::Delivered),
            ("u3", MessageStatus::Sent)
        ]
    );
    assert!(
        !status[0].payload.is_empty(),
        "pending records keep the payload"
    );
    assert!(store.message_status("b").unwrap().is_empty());
}

#[test]
fn revoke_queue_finishes_every_pending_command() {
    let (_dir, store) = open();
    for i in 0..5 {
        store
            .enqueue("u1", &msg(&format!("m{i}"), 5), NOW, MAX)
            .unwrap();
    }
    store.enqueue("u2", &msg("m0", 5), NOW, MAX).unwrap();
    store.mark_delivered("u1", "m4", NOW).unwrap();
    assert_eq!(store.revoke_queue("u1", NOW + 1).unwrap(), 4);
    assert_eq!(store.queue_depth("u1").unwrap(), 0);
    assert!(store.pending("u1", NOW).unwrap().is_empty());
    assert_eq!(
        status_of(&store, "m0"),
        [
            ("u1".to_string(), MessageStatus::Revoked),
            ("u2".to_string(), MessageStatus::Queued)
        ]
    );
    assert_eq!(
        status_of(&store, "m4"),
        [("u1".to_string(), MessageStatus::Delivered)]
    );
    assert_eq!(store.revoke_queue("u1", NOW + 2).unwrap(), 0);
    // u2's record and its expiry index entry are all that is left in `queue`.
    assert_eq!(store.keyspaces().unwrap().queue.len().unwrap(), 2);
    assert_eq!(store.expire_due(NOW + 7_200, 100).unwrap(), 1);
    assert!(store.keyspaces().unwrap().queue.is_empty().unwrap());
    // messages: 6 final records + 6 retention entries.
    assert_eq!(store.keyspaces().unwrap().messages.len().unwrap(), 12);
    assert_eq!(store.purge_terminal(i64::MAX, 100).unwrap(), 6);
    assert!(store.keyspaces().unwrap().messages.is_empty().unwrap());
}

#[test]
fn purge_terminal_drops_old_final_records_only() {
    let (_dir, store) = open();
    for i in 0..4 {
        store
            .enqueue("u1", &msg(&format!("m{i}"), 5), NOW, MAX)
            .unwrap();
    }
    store.mark_delivered("u1", "m0", NOW + 10).unwrap();
    store.mark_delivered("u1", "m1", NOW + 20).unwrap();
    store.mark_delivered("u1", "m2", NOW + 30).unwrap();
    assert_eq!(
        store.purge_terminal(NOW + 10, 100).unwrap(),
        0,
        "strictly older"
    );
    assert_eq!(
        store.purge_terminal(NOW + 31, 1).unwrap(),
        1,
        "limit, oldest first"
    );
    assert!(store.message_status("m0").unwrap().is_empty());
    assert_eq!(store.purge_terminal(NOW + 31, 100).unwrap(), 2);
    assert!(store.message_status("m2").unwrap().is_empty());
    assert_eq!(
        status_of(&store, "m3"),
        [("u1".to_string(), MessageStatus::Queued)]
    );
    assert_eq!(store.purge_terminal(i64::MAX, 100).unwrap(), 0);
    // A purged id may be used again.
    store.enqueue("u1", &msg("m0", 5), NOW, MAX).unwrap();
}

#[test]
fn reopen_keeps_everything_and_seqs_keep_growing() {
    let dir = tempfile::tempdir().unwrap();
    let (last_seq, drained_seq);
    {
        let store = Store::open(dir.path()).unwrap();
        for i in 0..3 {
            store
                .enqueue("u1", &msg(&format!("m{i}"), 5), NOW, MAX)
                .unwrap();
        }
        last_seq = store.enqueue("u1", &msg("m3", 7), NOW, MAX).unwrap().seq;
        let seq0 = store.pending("u1", NOW).unwrap()[1].seq;
        store.record_attempt("u1", seq0, 3, NOW).unwrap().unwrap();
        store.mark_delivered("u1", "m1", NOW).unwrap();
        // An agent whose queue is empty at shutdown.
        drained_seq = store.enqueue("u2", &msg("x", 5), NOW, MAX).unwrap().seq;
        store.mark_delivered("u2", "x", NOW).unwrap();
        store.sync_blocking().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.queue_depth("u1").unwrap(), 3);
    let pending = store.pending("u1", NOW + 1).unwrap();
    assert_eq!(ids(&pending), ["m3", "m0", "m2"]);
    assert_eq!(pending[1].retry_count, 1);
    assert_eq!(
        status_of(&store, "m1"),
        [("u1".to_string(), MessageStatus::Delivered)]
    );
    let next = store.enqueue("u1", &msg("m4", 5), NOW + 1, MAX).unwrap();
    assert!(next.seq > last_seq);
    let again = store.enqueue("u2", &msg("y", 5), NOW + 1, MAX).unwrap();
    assert!(again.seq > drained_seq, "{} > {drained_seq}", again.seq);
    assert_eq!(store.queue_depth("u1").unwrap(), 4);
}

#[test]
fn status_helpers() {
    assert_eq!(MessageStatus::Delivered.as_str(), "delivered");
    assert_eq!(
        serde_json::to_string(&MessageStatus::Revoked).unwrap(),
        r#""revoked""#
    );
    let terminal: Vec<bool> = [
        MessageStatus::Queued,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        MessageStatus::Expired,
        MessageStatus::Failed,
        MessageStatus::Revoked,
    ]
    .iter()
    .map(|s| s.is_terminal())
    .collect();
    assert_eq!(terminal, [false, false, true, true, true, true]);
    assert_eq!(clip_reason("abc"), "abc");
    assert_eq!(clip_reason(&"€".repeat(400)).len(), 1_023);
}

#[test]
fn concurrent_enqueues_to_one_agent_get_distinct_seqs_and_exact_depth() {
    let (_dir, store) = open();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let mut seqs = Vec::new();
                for i in 0..50 {
                    let m = msg(&format!("t{t}-{i}"), 5);
                    match store.enqueue("u1", &m, NOW, 150) {
                        Ok(rec) => seqs.push(rec.seq),
                        Err(QueueError::Full { depth }) => assert_eq!(depth, 150),
                        Err(e) => panic!("{e}"),
                    }
                }
                seqs
            })
        })
        .collect();
    let mut all: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(all.len(), 150);
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), 150);
    assert_eq!(store.queue_depth("u1").unwrap(), 150);
    assert_eq!(store.pending("u1", NOW).unwrap().len(), 150);
}

#[test]
fn large_broadcasts_are_committed_in_bounded_batches() {
    let (_dir, store) = open();
    let mut m = msg("big", 5);
    m.payload = "y".repeat(1_000);
    let items: Vec<(String, NewMessage)> =
        (0..50).map(|i| (format!("u{i:02}"), m.clone())).collect();
    // About 1.2 KB per record: a bound of 10 KB makes several batches.
    let results = store.enqueue_chunked(&items, NOW, MAX, 10_000);
    assert!(results.iter().all(Result::is_ok));
    let status = store.message_status("big").unwrap();
    assert_eq!(status.len(), 50);
    assert!(status.iter().all(|r| r.payload.len() == 1_000));
    let again = store.enqueue_chunked(&items, NOW, MAX, 10_000);
    assert!(again
        .iter()
        .all(|r| matches!(r, Err(QueueError::Duplicate))));
    assert_eq!(store.queue_depth("u49").unwrap(), 1);
}
