//! Faults: a stalled agent that stops reading, and SIGKILL during a burst of concurrent enqueues.

mod common;
use common::*;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::Duration;

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

#[test]
fn stalled_agent_is_cut_off_and_its_commands_stay_queued() {
    let gw = TestGateway::start_with(|c| {
        c.ping_interval = Duration::from_secs(1);
        c.idle_timeout = Duration::from_secs(30);
    });
    let mut a = gw.agent("stalled", V2);
    let (c, uid, _) = onboard(&gw, &mut a, "host-stalled");
    // The agent stops reading; the gateway keeps writing 200 KB commands.
    let blob = "x".repeat(200 * 1024);
    let before = rss_bytes();
    let handle = gw.running.as_ref().unwrap().handle();
    let mut statuses = Vec::new();
    for _ in 0..60 {
        let (s, r) = gw.send(
            &uid,
            json!({"channel": "backend.policies", "message": {"blob": blob}}),
        );
        assert_eq!(s, 200, "{r}");
        statuses.push(r["status"].as_str().unwrap().to_string());
    }
    assert!(
        statuses.iter().any(|s| s == "sent"),
        "the first ones were written"
    );
    assert_eq!(
        statuses.last().map(String::as_str),
        Some("queued"),
        "later ones are persisted instead: {statuses:?}"
    );
    assert!(
        !block_on(handle.is_connected(&uid)),
        "the stalled connection was closed"
    );
    let grown = rss_bytes().saturating_sub(before);
    // 12 MB of commands went through; the gateway held at most a socket's worth per connection.
    assert!(grown < 64 << 20, "RSS grew by {grown} bytes");
    drop(c);
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
    std::thread::sleep(Duration::from_millis(200));
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
    while answered.lock().unwrap().len() < 100 {
        std::thread::sleep(Duration::from_millis(5));
    }
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
    let mut received = std::collections::HashSet::new();
    c.ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    while let Recv::Text(t) = c.recv() {
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
