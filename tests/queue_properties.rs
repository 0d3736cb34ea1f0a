//! Property test (proptest) of the durable queue ([`Store`]): it keeps priority/FIFO order and
//! delivers exactly once under random interleavings of sends, acks, stale acks, disconnects and
//! restarts (the store synced, closed and opened again).
//!
//! The case count is kept moderate so the file runs in seconds in a debug build.

use aegis_gateway::store::{NewMessage, Store};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

/// One step of an agent's life as the queue sees it.
#[derive(Debug, Clone)]
enum QueueOp {
    /// The admin API enqueues a command of this priority.
    Enqueue(u8),
    /// The connection writes the next pending command it has not written yet.
    Send,
    /// The agent acks the oldest command in flight.
    Ack,
    /// The agent acks a command that is not in flight (a duplicate or stale ack).
    StaleAck,
    /// The connection dies: what was in flight goes back to the queue.
    Disconnect,
    /// The gateway restarts (the store is synced, closed and opened again).
    Restart,
}

fn queue_op() -> impl Strategy<Value = QueueOp> {
    prop_oneof![
        4 => (0u8..3).prop_map(QueueOp::Enqueue),
        4 => Just(QueueOp::Send),
        3 => Just(QueueOp::Ack),
        1 => Just(QueueOp::StaleAck),
        1 => Just(QueueOp::Disconnect),
        1 => Just(QueueOp::Restart),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Under any interleaving of sends, acks, disconnects and restarts, the queue hands out
    /// commands by priority then FIFO, an ack confirms a command exactly once, and draining at
    /// the end delivers every enqueued command exactly once — none lost, none twice.
    #[test]
    fn queue_keeps_order_and_delivers_exactly_once(ops in prop::collection::vec(queue_op(), 1..50)) {
        const UID: &str = "agent-prop";
        let now = 1_700_000_000;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(dir.path()).unwrap();
        // Model: pending (priority, enqueue index, id); in flight (seq, id) in write order.
        let mut model: Vec<(u8, usize, String)> = Vec::new();
        let mut in_flight: Vec<(u64, String)> = Vec::new();
        let mut confirmed: BTreeMap<String, u32> = BTreeMap::new();
        let mut enqueued = BTreeSet::new();
        let mut conn = 1;
        let expected_order = |model: &Vec<(u8, usize, String)>| {
            let mut m = model.clone();
            m.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
            m.into_iter().map(|x| x.2).collect::<Vec<_>>()
        };
        let ack = |store: &Store, id: &str, confirmed: &mut BTreeMap<String, u32>| {
            if store.mark_delivered(UID, id, now).unwrap() {
                *confirmed.entry(id.to_string()).or_default() += 1;
            }
        };
        for (n, op) in ops.into_iter().enumerate() {
            match op {
                QueueOp::Enqueue(priority) => {
                    let id = format!("m{n}");
                    let msg = NewMessage {
                        message_id: id.clone(),
                        kind: "policies".into(),
                        message_type: "request".into(),
                        payload: format!("{{\"n\":{n}}}"),
                        priority,
                        ttl_s: 3_600,
                        max_retries: 1_000,
                    };
                    store.enqueue(UID, &msg, now, 10_000).unwrap();
                    model.push((priority, n, id.clone()));
                    enqueued.insert(id);
                }
                QueueOp::Send => {
                    let pending = store.pending(UID, now).unwrap();
                    let next = pending
                        .iter()
                        .find(|m| !in_flight.iter().any(|(s, _)| *s == m.seq));
                    if let Some(m) = next {
                        let rec = store.record_attempt(UID, m.seq, conn, now).unwrap();
                        prop_assert!(rec.is_some(), "a pending command can be attempted");
                        in_flight.push((m.seq, m.message_id.clone()));
                    }
                }
                QueueOp::Ack => {
                    if !in_flight.is_empty() {
                        let (_, id) = in_flight.remove(0);
                        ack(&store, &id, &mut confirmed);
                        model.retain(|x| x.2 != id);
                    }
                }
                QueueOp::StaleAck => {
                    if let Some(id) = confirmed.keys().next().cloned() {
                        ack(&store, &id, &mut confirmed);
                    }
                    ack(&store, "never-sent", &mut confirmed);
                }
                QueueOp::Disconnect => {
                    for (seq, _) in in_flight.drain(..) {
                        prop_assert!(store.requeue(UID, seq, now).unwrap());
                    }
                    conn += 1;
                }
                QueueOp::Restart => {
                    store.sync_blocking().unwrap();
                    drop(store);
                    store = Store::open(dir.path()).unwrap();
                    // The connection died with the process: its writes stay `sent` and are
                    // written again on the next connection.
                    in_flight.clear();
                    conn += 1;
                }
            }
            let pending: Vec<String> = store
                .pending(UID, now)
                .unwrap()
                .into_iter()
                .map(|m| m.message_id)
                .collect();
            prop_assert_eq!(&pending, &expected_order(&model), "pending order");
            prop_assert!(confirmed.values().all(|c| *c == 1), "confirmed twice: {:?}", confirmed);
        }
        // Drain: a fresh connection writes and acks everything still pending.
        for (seq, _) in in_flight.drain(..) {
            store.requeue(UID, seq, now).unwrap();
        }
        for m in store.pending(UID, now).unwrap() {
            prop_assert!(store.record_attempt(UID, m.seq, conn + 1, now).unwrap().is_some());
            ack(&store, &m.message_id, &mut confirmed);
        }
        prop_assert!(store.pending(UID, now).unwrap().is_empty());
        let delivered: BTreeSet<String> = confirmed.keys().cloned().collect();
        prop_assert_eq!(delivered, enqueued, "every command delivered");
        prop_assert!(confirmed.values().all(|c| *c == 1), "exactly once: {:?}", confirmed);
    }
}
