//! A full disk: the gateway (as a child process, DATA_DIR on a 96 MiB tmpfs) refuses commands
//! with `507 insufficient_storage`, never answers `queued` for a command it could not write,
//! keeps running and answering, and accepts commands again without a restart once space is
//! freed. The agent then gets every command answered `queued` — before, while and after the
//! disk was full — and none of the refused ones, and so it does after a SIGKILL and restart.
//!
//! `STORE_MIN_FREE=0` turns the free-space reserve off, so the writes really hit ENOSPC inside
//! fjall (which then poisons its database, and the store has to reopen it). A tmpfs needs root
//! (`mount`): as root a failed mount fails the test, otherwise the test is skipped.

mod common;
use aegis_gateway::protocol::envelope::MsgType;
use common::*;
use serde_json::Value;
use std::time::Duration;

/// Sends accepted after the fill, at most: they fit in the journal's last page.
const MAX_ACCEPTED_WHEN_FULL: u32 = 64;

/// Asserts a refusal is the documented storage error: 5xx, `{"error", "message"}`, no id.
fn assert_storage_refusal(status: u16, r: &Value, allowed: &[(u16, &str)]) {
    let got = (status, r["error"].as_str().unwrap_or_default());
    assert!(allowed.contains(&got), "unexpected answer {status}: {r}");
    assert!(
        r["message"].as_str().is_some_and(|m| !m.is_empty()),
        "a message explains it: {r}"
    );
    assert!(
        r.get("message_id").is_none() && r.get("status").is_none(),
        "{r}"
    );
}

fn metric(child: &Child, line_start: &str) -> Option<f64> {
    let (status, text) = http(child.admin_addr, "GET", "/metrics", None, None);
    assert_eq!(status, 200);
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn assert_alive(child: &mut Child) {
    assert!(
        child.child.try_wait().unwrap().is_none(),
        "the gateway exited\n{}",
        child.log()
    );
    let (status, _) = http(child.admin_addr, "GET", "/healthz", None, None);
    assert_eq!(status, 200, "/healthz answers");
}

/// Connects as the registered agent and reads `n` commands (acking them if `ack`), then
/// expects nothing more. Returns their ids in arrival order.
fn receive(
    child: &Child,
    a: &mut aegis_gateway::testkit::agent::Agent,
    uid: &str,
    token: &str,
    n: usize,
    ack: bool,
) -> Vec<String> {
    a.reset_session();
    let mut c = connect(child.agent_addr, a, Some((uid, token)));
    authenticate(&mut c, a);
    let mut got = Vec::new();
    for _ in 0..n {
        let opened = a.open(c.recv_text().as_bytes()).unwrap();
        if ack {
            c.send(&a.ack(&opened.envelope.id, now_s()).unwrap());
        }
        got.push(opened.envelope.id);
    }
    c.expect_silence(Duration::from_millis(500));
    got
}

#[test]
fn a_full_disk_refuses_commands_clearly_and_recovers_when_space_returns() {
    let Some(fs) = Tmpfs::mount_or_skip("96m") else {
        return;
    };
    let data = fs.path().join("data");
    let env = [("STORE_MIN_FREE", "0")];
    let mut child = Child::spawn(&data, &env);

    // A registered v2 agent, offline.
    let mut a = child.agent("disk-full", V2);
    let mut c = connect(child.agent_addr, &a, None);
    authenticate(&mut c, &mut a);
    let (uid, token) = register(&mut c, &mut a, "host-disk-full");
    drop(c);
    child.wait_offline(&uid);

    // A second agent stays connected throughout: its own writes fail while the disk is full.
    let mut w = child.agent("disk-full-witness", V2);
    let mut wc = connect(child.agent_addr, &w, None);
    authenticate(&mut wc, &mut w);
    let (w_uid, _) = register(&mut wc, &mut w, "host-disk-full-witness");

    let mut accepted: Vec<String> = (0..5).map(|n| child.send_queued(&uid, n)).collect();
    let mut refused = 0;

    // Fill the file system. The journal's last page may still take a few commands (they are
    // written, so answered `queued`); then the first write that needs space is refused.
    let (filler, bytes) = fs.fill("filler");
    assert!(
        bytes > 50 << 20,
        "the filler took the space ({bytes} bytes)"
    );
    let before_fill = accepted.len();
    let mut n = 100;
    loop {
        let (status, r) = child.send(&uid, n);
        if status == 200 {
            assert_eq!(r["status"], "queued", "{r}");
            accepted.push(r["message_id"].as_str().unwrap().to_string());
        } else {
            assert_storage_refusal(status, &r, &[(507, "insufficient_storage")]);
            refused += 1;
            break;
        }
        n += 1;
        assert!(
            n < 100 + MAX_ACCEPTED_WHEN_FULL,
            "{MAX_ACCEPTED_WHEN_FULL} sends accepted on a full disk"
        );
    }

    let accepted_when_full = accepted.len() - before_fill;
    // While full: every send is refused with 507, the gateway keeps running and answering.
    for n in 200..205 {
        let (status, r) = child.send(&uid, n);
        assert_storage_refusal(status, &r, &[(507, "insufficient_storage")]);
        refused += 1;
    }
    for kind in ["status", "logs", "threats"] {
        wc.send(&w.heartbeat(now_s()).unwrap());
        let ch = format!("agent.{w_uid}.{kind}");
        let event = w.message(&ch, MsgType::Event, br#"{"ok":true}"#, now_s(), vec![]);
        wc.send(&event.unwrap());
    }
    wc.expect_silence(Duration::from_millis(300));
    assert_alive(&mut child);
    let (status, s) = child.agent_status(&uid);
    assert_eq!(status, 200, "reads keep working: {s}");
    assert_eq!(metric(&child, "aegis_gateway_store_available"), Some(0.0));

    // Space returns: sends are accepted again, without a restart (bounded wait; refusals
    // meanwhile are 507 until the store reopens, 503 while it does).
    std::fs::remove_file(&filler).unwrap();
    let mut n = 300;
    let id = poll_until(Duration::from_secs(30), || {
        let (status, r) = child.send(&uid, n);
        n += 1;
        if status == 200 {
            assert_eq!(r["status"], "queued", "{r}");
            return Ok(r["message_id"].as_str().unwrap().to_string());
        }
        assert_storage_refusal(
            status,
            &r,
            &[(507, "insufficient_storage"), (503, "storage_unavailable")],
        );
        refused += 1;
        Err(format!("no recovery after space returned\n{}", child.log()))
    });
    accepted.push(id);
    for _ in 0..5 {
        accepted.push(child.send_queued(&uid, n));
        n += 1;
    }
    assert_alive(&mut child);
    assert_eq!(metric(&child, "aegis_gateway_store_available"), Some(1.0));
    assert!(
        metric(
            &child,
            "aegis_gateway_store_recoveries_total{result=\"ok\"}"
        ) >= Some(1.0),
        "the store reopened"
    );
    assert!(refused >= 6);
    // The connected agent was kept, and gets a command at once.
    let (status, r) = child.send(&w_uid, 999);
    assert_eq!((status, r["status"].as_str()), (200, Some("sent")), "{r}");
    let opened = w.open(wc.recv_text().as_bytes()).unwrap();
    assert_eq!(opened.envelope.id, r["message_id"].as_str().unwrap());
    wc.send(&w.ack(&opened.envelope.id, now_s()).unwrap());
    assert!(!child.log().contains("panicked"), "{}", child.log());

    eprintln!(
        "{} commands queued ({accepted_when_full} after the fill), {refused} refused",
        accepted.len()
    );
    // The agent gets exactly the accepted commands, in order (not acked: they stay pending).
    let got = receive(&child, &mut a, &uid, &token, accepted.len(), false);
    assert_eq!(got, accepted, "every queued command, none of the refused");

    // SIGKILL and restart on the same data: nothing answered `queued` is lost.
    child.signal(libc::SIGKILL);
    assert_eq!(child.wait(Duration::from_secs(10)), None, "killed");
    let child = Child::spawn(&data, &env);
    let got = receive(&child, &mut a, &uid, &token, accepted.len(), true);
    assert_eq!(
        got, accepted,
        "after a restart: every queued command, none of the refused"
    );
    child.wait_status(accepted.last().unwrap(), "delivered");
}
