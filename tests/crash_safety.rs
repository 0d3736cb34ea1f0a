//! The gateway as a child process killed with SIGKILL: commands answered `queued` survive
//! several kill/restart cycles, and a kill in the middle of a burst of concurrent enqueues loses
//! none of the commands already answered `queued`.

mod common;
use common::*;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[test]
fn sigkill_loses_nothing_answered_queued() {
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(dir.path(), &[]);
    let mut a = child.agent("crashy", V2);
    let mut c = connect(child.agent_addr, &a, None);
    authenticate(&mut c, &mut a);
    let (uid, token) = register(&mut c, &mut a, "host-crashy");
    drop(c);
    drop(child); // SIGKILL
    let mut pending: Vec<String> = Vec::new();
    for cycle in 0..3u32 {
        let mut child = Child::spawn(dir.path(), &[]);
        for n in 0..10 {
            pending.push(child.send_queued(&uid, cycle * 100 + n));
        }
        child.signal(libc::SIGKILL);
        assert_eq!(
            child.wait(Duration::from_secs(10)),
            None,
            "killed, no exit code"
        );
    }
    let child = Child::spawn(dir.path(), &[]);
    a.reset_session();
    let mut c = connect(child.agent_addr, &a, Some((&uid, &token)));
    authenticate(&mut c, &mut a);
    let mut got = Vec::new();
    for _ in 0..pending.len() {
        let opened = a.open(c.recv_text().as_bytes()).unwrap();
        c.send(&a.ack(&opened.envelope.id, now_s()).unwrap());
        got.push(opened.envelope.id);
    }
    assert_eq!(got, pending, "every queued command arrives, in order");
    c.expect_silence(Duration::from_millis(300));
}

#[test]
fn sigkill_during_a_burst_of_concurrent_enqueues() {
    let dir = tempfile::tempdir().unwrap();
    let child = Child::spawn(dir.path(), &[]);
    let mut a = child.agent("burst", V2);
    let mut c = connect(child.agent_addr, &a, None);
    authenticate(&mut c, &mut a);
    let (uid, token) = register(&mut c, &mut a, "host-burst");
    drop(c);
    child.wait_offline(&uid);
    let answered = Arc::new(Mutex::new(Vec::<String>::new()));
    let admin = child.admin_addr;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (answered, stop, uid) = (answered.clone(), stop.clone(), uid.clone());
            std::thread::spawn(move || {
                for n in 0..10_000 {
                    if stop.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    let body = json!({"channel": "backend.threats", "message": {"w": w, "n": n}})
                        .to_string();
                    let (s, text) = http(
                        admin,
                        "POST",
                        &format!("/api/v1/agents/{uid}/send"),
                        Some(CHILD_TOKEN),
                        Some(&body),
                    );
                    if s != 200 {
                        return; // the gateway died under us
                    }
                    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                    if v["status"] == "queued" {
                        answered
                            .lock()
                            .unwrap()
                            .push(v["message_id"].as_str().unwrap().to_string());
                    }
                }
            })
        })
        .collect();
    eventually("100 sends answered queued", WAIT, || {
        answered.lock().unwrap().len() >= 100
    });
    child.signal(libc::SIGKILL);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    drop(child);
    let answered = answered.lock().unwrap().clone();
    let child = Child::spawn(dir.path(), &[]);
    a.reset_session();
    let mut c = connect(child.agent_addr, &a, Some((&uid, &token)));
    authenticate(&mut c, &mut a);
    // Read (and ack) until every answered command has arrived; commands queued but not yet
    // answered when the kill came may arrive too. A lost one ends the reading at the client's
    // read timeout.
    let mut received = std::collections::HashSet::new();
    while !answered.iter().all(|id| received.contains(id)) {
        let Recv::Text(t) = c.recv() else { break };
        let opened = a.open(t.as_bytes()).unwrap();
        c.send(&a.ack(&opened.envelope.id, now_s()).unwrap());
        received.insert(opened.envelope.id);
    }
    let lost: Vec<&String> = answered
        .iter()
        .filter(|id| !received.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} answered-queued commands lost",
        lost.len(),
        answered.len()
    );
}
