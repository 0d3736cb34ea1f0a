//! Cluster mode under faults, with real `nats-server` processes started here: a gateway node
//! SIGKILLed while it holds an agent with commands pending, or in the middle of a burst of
//! sends; a NATS server of a 3-node cluster (R3 streams) killed during sends and deliveries; NATS
//! unreachable altogether. No command answered `queued`/`sent` is lost, none is delivered twice.

mod common;
use aegis_gateway::protocol::envelope::MsgType;
use common::*;
use serde_json::json;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Sends `{"n": n}` through `node` to `uid`; the message id when answered `queued` or `sent`.
fn send(node: &Child, uid: &str, n: u32) -> Option<String> {
    let (code, r) = admin(
        node,
        "POST",
        &format!("/api/v1/agents/{uid}/send"),
        Some(json!({"channel": "backend.policies", "message": {"n": n}})),
    );
    let ok = code == 200 && matches!(r["status"].as_str(), Some("queued" | "sent"));
    if !ok {
        eprintln!("send {n} refused: {code} {r}");
    }
    ok.then(|| r["message_id"].as_str().unwrap().to_string())
}

/// Receives (and acks) commands until `want` are in, then checks no more arrive; returns the
/// ids in arrival order.
fn receive_all(c: &mut Client, agent: &mut Agent, want: &HashSet<String>) -> Vec<String> {
    let mut got = Vec::new();
    let seen: HashSet<String> = HashSet::new();
    let mut seen = seen;
    while !want.iter().all(|w| seen.contains(w)) {
        let opened = agent.open(c.recv_text().as_bytes()).unwrap();
        if opened.envelope.msg_type == MsgType::Error {
            continue;
        }
        let id = opened.envelope.id.clone();
        c.send(&agent.ack(&id, now_s()).unwrap());
        assert!(seen.insert(id.clone()), "{id} delivered twice");
        got.push(id);
    }
    c.expect_silence(Duration::from_millis(500));
    got
}

type Agent = aegis_gateway::testkit::agent::Agent;

#[test]
fn sigkill_of_the_node_holding_an_agent_loses_no_pending_command() {
    let nats = NatsServer::start();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // A short ack timeout would retry on A; the commands stay unacked there on purpose.
    let mut a = cluster_node(da.path(), &nats.url(), "node-a", None, &[]);
    let b = cluster_node(db.path(), &nats.url(), "node-b", Some(da.path()), &[]);
    let mut agent = a.agent("held", V2);
    let mut ca = connect(a.agent_addr, &agent, None);
    authenticate(&mut ca, &mut agent);
    let (uid, token) = register(&mut ca, &mut agent, "host-held");
    let mut ids = HashSet::new();
    for n in 0..10 {
        ids.insert(send(&b, &uid, n).expect("answered"));
    }
    // The agent reads them on A but never acks: they stay pending.
    for _ in 0..10 {
        let opened = agent.open(ca.recv_text().as_bytes()).unwrap();
        assert!(ids.contains(&opened.envelope.id));
    }
    a.signal(libc::SIGKILL);
    assert_eq!(a.wait(Duration::from_secs(10)), None, "killed");
    agent.reset_session();
    let mut cb = connect(b.agent_addr, &agent, Some((&uid, &token)));
    authenticate(&mut cb, &mut agent);
    let got = receive_all(&mut cb, &mut agent, &ids);
    assert_eq!(got.iter().cloned().collect::<HashSet<_>>(), ids);
    for id in &ids {
        let (_, m) = admin(&b, "GET", &format!("/api/v1/messages/{id}"), None);
        assert_eq!(m["deliveries"][0]["status"], "delivered", "{m}");
    }
}

#[test]
fn sigkill_in_a_burst_of_sends_loses_none_answered() {
    let nats = NatsServer::start();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = cluster_node(da.path(), &nats.url(), "node-a", None, &[]);
    let b = cluster_node(db.path(), &nats.url(), "node-b", Some(da.path()), &[]);
    let mut agent = b.agent("burst", V2);
    let mut c = connect(b.agent_addr, &agent, None);
    authenticate(&mut c, &mut agent);
    let (uid, token) = register(&mut c, &mut agent, "host-burst");
    drop(c);
    b.wait_offline(&uid);
    let answered = Arc::new(Mutex::new(HashSet::new()));
    let admin_addr = a.admin_addr;
    let senders: Vec<_> = (0..4u32)
        .map(|t| {
            let (answered, uid) = (Arc::clone(&answered), uid.clone());
            std::thread::spawn(move || {
                for n in 0..200u32 {
                    let body =
                        json!({"channel": "backend.policies", "message": {"n": t * 1000 + n}});
                    let r = std::panic::catch_unwind(|| {
                        http_json(
                            admin_addr,
                            "POST",
                            &format!("/api/v1/agents/{uid}/send"),
                            Some(CHILD_TOKEN),
                            Some(&body.to_string()),
                        )
                    });
                    match r {
                        Ok((200, r)) => {
                            answered
                                .lock()
                                .unwrap()
                                .insert(r["message_id"].as_str().unwrap().to_string());
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    eventually("some sends answered", WAIT, || {
        answered.lock().unwrap().len() >= 40
    });
    a.signal(libc::SIGKILL);
    for s in senders {
        let _ = s.join();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(
        answered.len() < 800,
        "the kill came in the middle of the burst"
    );
    agent.reset_session();
    let mut c = connect(b.agent_addr, &agent, Some((&uid, &token)));
    authenticate(&mut c, &mut agent);
    // Every answered command arrives once; a send that got no answer may arrive too.
    let mut seen = HashSet::new();
    loop {
        match c.recv_within(Duration::from_secs(2)) {
            Recv::Text(t) => {
                let opened = agent.open(t.as_bytes()).unwrap();
                let id = opened.envelope.id.clone();
                c.send(&agent.ack(&id, now_s()).unwrap());
                assert!(seen.insert(id.clone()), "{id} delivered twice");
            }
            Recv::Timeout => break,
            other => panic!("connection ended: {other:?}"),
        }
    }
    let lost: Vec<_> = answered.difference(&seen).collect();
    assert!(
        lost.is_empty(),
        "{} answered commands lost: {lost:?}",
        lost.len()
    );
    assert_eq!(a.wait(Duration::from_secs(5)), None);
}

#[test]
fn a_nats_server_killed_in_an_r3_cluster_loses_no_acknowledged_command() {
    let mut nats = NatsCluster::start();
    let urls = nats.urls();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let r3 = [("NATS_REPLICAS", "3")];
    let a = cluster_node(da.path(), &urls, "node-a", None, &r3);
    let b = cluster_node(db.path(), &urls, "node-b", Some(da.path()), &r3);
    let mut agent = a.agent("r3", V2);
    let mut c = connect(a.agent_addr, &agent, None);
    authenticate(&mut c, &mut agent);
    let (uid, token) = register(&mut c, &mut agent, "host-r3");
    let mut answered = HashSet::new();
    let mut received = HashSet::new();
    let mut n = 0u32;
    // 20 commands answered in each phase: all servers up, one killed, back again. A send may
    // be refused (503) while the cluster elects new leaders; the next ones are taken.
    for phase in 0..3 {
        match phase {
            1 => nats.servers[0].kill(),
            2 => nats.servers[0].restart(),
            _ => {}
        }
        let goal = answered.len() + 20;
        let deadline = std::time::Instant::now() + WAIT;
        while answered.len() < goal {
            assert!(
                std::time::Instant::now() < deadline,
                "phase {phase}: the gateways stopped taking commands ({} answered)",
                answered.len()
            );
            let via = if n.is_multiple_of(2) { &a } else { &b };
            if let Some(id) = send(via, &uid, n) {
                answered.insert(id);
            }
            n += 1;
            while let Recv::Text(t) = c.recv_within(Duration::from_millis(20)) {
                let opened = agent.open(t.as_bytes()).unwrap();
                let id = opened.envelope.id.clone();
                c.send(&agent.ack(&id, now_s()).unwrap());
                assert!(received.insert(id.clone()), "{id} twice");
            }
        }
    }
    // Reconnect (to the other node) and collect the rest.
    drop(c);
    agent.reset_session();
    let mut c = connect(b.agent_addr, &agent, Some((&uid, &token)));
    authenticate(&mut c, &mut agent);
    while let Recv::Text(t) = c.recv_within(Duration::from_secs(3)) {
        let opened = agent.open(t.as_bytes()).unwrap();
        let id = opened.envelope.id.clone();
        c.send(&agent.ack(&id, now_s()).unwrap());
        assert!(received.insert(id.clone()), "{id} twice");
    }
    let lost: Vec<_> = answered.difference(&received).collect();
    assert!(lost.is_empty(), "acknowledged commands lost: {lost:?}");
    // The restarted server rejoined: with it the cluster survives losing another one.
    nats.servers[1].kill();
    poll_until(WAIT, || match send(&a, &uid, 999) {
        Some(_) => Ok(()),
        None => Err("no send accepted after the rejoin and a second kill".to_string()),
    });
}

#[test]
fn nats_unreachable_refuses_commands_keeps_agents_and_recovers() {
    let mut nats = NatsServer::start();
    let dir = tempfile::tempdir().unwrap();
    let node = cluster_node(dir.path(), &nats.url(), "solo", None, &[]);
    let mut agent = node.agent("steady", V2);
    let mut c = connect(node.agent_addr, &agent, None);
    authenticate(&mut c, &mut agent);
    let (uid, _token) = register(&mut c, &mut agent, "host-steady");
    let mut probe = node.agent("probe", V2);
    let mut p = connect(node.agent_addr, &probe, None);
    authenticate(&mut p, &mut probe);
    assert!(send(&node, &uid, 0).is_some());
    let opened = agent.open(c.recv_text().as_bytes()).unwrap();
    c.send(&agent.ack(&opened.envelope.id, now_s()).unwrap());

    nats.kill();
    eventually("/readyz turns 503", WAIT, || {
        http(node.admin_addr, "GET", "/readyz", None, None).0 == 503
    });
    let (_, ready) = http_json(node.admin_addr, "GET", "/readyz", None, None);
    assert_eq!(
        ready["status"], "storage_unavailable",
        "not draining: {ready}"
    );
    let (code, r) = admin(
        &node,
        "POST",
        &format!("/api/v1/agents/{uid}/send"),
        Some(json!({"channel": "backend.policies", "message": {"n": 1}})),
    );
    assert_eq!(
        (code, r["error"].as_str()),
        (503, Some("storage_unavailable")),
        "{r}"
    );
    // Still verified: the probe's forged heartbeat gets its error frame and the v2 close.
    c.send(&agent.heartbeat(now_s()).unwrap());
    let forged =
        probe
            .heartbeat(now_s())
            .unwrap()
            .replacen("\"signature\":\"", "\"signature\":\"AAAA", 1);
    p.send(&forged);
    let mut seen = Vec::new();
    assert_eq!(p.recv_close(&mut seen), 4003, "{seen:?}");

    nats.restart();
    eventually("/readyz turns 200 again", WAIT, || {
        http(node.admin_addr, "GET", "/readyz", None, None).0 == 200
    });
    // The agent stayed connected through the outage and gets the next command.
    let id = poll_until(WAIT, || send(&node, &uid, 2).ok_or("refused".to_string()));
    let opened = agent.open(c.recv_text().as_bytes()).unwrap();
    assert_eq!(opened.envelope.id, id);
}
