//! Two gateway nodes sharing one fleet in NATS JetStream (a real `nats-server` started here):
//! an agent registered through one node reconnects through the other; either node's admin API
//! serves any agent (status, listing, send, broadcast, message status, the event stream,
//! revocation); one live connection per agent across the nodes.

mod common;
use aegis_gateway::protocol::envelope::MsgType;
use common::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn two_nodes_serve_one_fleet() {
    let nats = NatsServer::start();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = cluster_node(da.path(), &nats.url(), "node-a", None, &[]);
    let b = cluster_node(db.path(), &nats.url(), "node-b", Some(da.path()), &[]);
    assert_eq!(
        a.public_key, b.public_key,
        "the nodes share the gateway key"
    );

    // Register through A.
    let mut agent = a.agent("cluster-agent", V2);
    let mut ca = connect(a.agent_addr, &agent, None);
    authenticate(&mut ca, &mut agent);
    let (uid, token) = register(&mut ca, &mut agent, "host-cluster");

    // B's admin API sees it connected (on A), and sends to it there.
    eventually("B sees the agent connected", WAIT, || {
        admin(&b, "GET", &format!("/api/v1/agents/{uid}/status"), None).1["connected"] == true
    });
    let (code, sent) = admin(
        &b,
        "POST",
        &format!("/api/v1/agents/{uid}/send"),
        Some(json!({"channel": "backend.policies", "message": {"via": "b"}})),
    );
    assert_eq!(code, 200, "{sent}");
    assert_eq!(sent["status"], "sent", "{sent}");
    let opened = agent.open(ca.recv_text().as_bytes()).unwrap();
    assert_eq!(opened.envelope.id, sent["message_id"].as_str().unwrap());
    ca.send(&agent.ack(&opened.envelope.id, now_s()).unwrap());
    let mid = sent["message_id"].as_str().unwrap().to_string();
    poll_until(WAIT, || {
        let (_, m) = admin(&a, "GET", &format!("/api/v1/messages/{mid}"), None);
        match m["deliveries"][0]["status"].as_str() {
            Some("delivered") => Ok(()),
            s => Err(format!("status {s:?}: {m}")),
        }
    });

    // An agent event sent on A shows on B's event stream, and northbound on NATS (JetStream,
    // so core subscribers see it too) with the agent's host_id.
    let af = NatsClient::connect(&nats.url());
    let mut northbound = af.subscribe(&format!("aegis.agent.{uid}.threats"));
    let channel = format!("agent.{uid}.threats");
    ca.send(
        &agent
            .message(
                &channel,
                MsgType::Event,
                br#"{"threat":"x"}"#,
                now_s(),
                vec![],
            )
            .unwrap(),
    );
    let mut events = open_events_on(b.admin_addr, CHILD_TOKEN, "?channel=agent.*.threats", None);
    let got = read_events(&mut events, 1);
    assert_eq!(got[0].1["channel"], channel.as_str(), "{got:?}");
    assert_eq!(got[0].1["body"]["threat"], "x", "{got:?}");
    let m = af
        .next(&mut northbound, WAIT)
        .expect("the event northbound");
    let v: serde_json::Value = serde_json::from_slice(&m.payload).unwrap();
    assert_eq!(v["host_id"], "host-cluster", "{v}");
    assert_eq!(v["body"]["threat"], "x", "{v}");

    // Reconnect through B: the uid, token and key hold; A's connection is replaced (4010).
    agent.reset_session();
    let mut cb = connect(b.agent_addr, &agent, Some((&uid, &token)));
    authenticate(&mut cb, &mut agent);
    let mut seen = Vec::new();
    assert_eq!(
        ca.recv_close(&mut seen),
        4010,
        "old connection replaced: {seen:?}"
    );
    eventually("A shows the agent on B", WAIT, || {
        let (_, st) = admin(&a, "GET", &format!("/api/v1/agents/{uid}/status"), None);
        st["connected"] == true
    });

    // A command queued through A while the agent is on B reaches it.
    let (code, r) = admin(
        &a,
        "POST",
        &format!("/api/v1/agents/{uid}/send"),
        Some(json!({"channel": "backend.threats", "message": {"via": "a"}})),
    );
    assert_eq!(code, 200, "{r}");
    let opened = agent.open(cb.recv_text().as_bytes()).unwrap();
    assert_eq!(opened.envelope.id, r["message_id"].as_str().unwrap());
    cb.send(&agent.ack(&opened.envelope.id, now_s()).unwrap());

    // Listing and broadcast from A cover the agent on B.
    let (_, list) = admin(&a, "GET", "/api/v1/agents", None);
    assert!(
        list["agents"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["agent_id"] == uid.as_str() && x["connected"] == true),
        "{list}"
    );
    let (code, bc) = admin(
        &a,
        "POST",
        "/api/v1/agents/broadcast",
        Some(json!({"channel": "backend.policies", "message": {"all": true}})),
    );
    assert_eq!(code, 200, "{bc}");
    assert_eq!(bc["sent_to"], json!([uid]), "{bc}");
    let opened = agent.open(cb.recv_text().as_bytes()).unwrap();
    assert_eq!(opened.envelope.id, bc["message_id"].as_str().unwrap());
    cb.send(&agent.ack(&opened.envelope.id, now_s()).unwrap());

    // Revocation through A closes the connection on B (4001) and it stays revoked.
    let (code, rv) = admin(&a, "DELETE", &format!("/api/v1/agents/{uid}"), None);
    assert_eq!(code, 200, "{rv}");
    assert_eq!(rv["disconnected"], true, "{rv}");
    let mut seen = Vec::new();
    assert_eq!(cb.recv_close(&mut seen), 4001, "{seen:?}");
    for n in [&a, &b] {
        let (code, _) = admin(n, "GET", &format!("/api/v1/agents/{uid}/status"), None);
        assert_eq!(code, 404);
    }
    agent.reset_session();
    let mut again = connect(a.agent_addr, &agent, Some((&uid, &token)));
    let m1 = agent.m1(now_s(), aegis_gateway::crypto::random::bytes::<16>());
    let (r1, close) = m1_outcome(&mut again, &m1);
    assert!(!r1.success, "a revoked uid cannot authenticate");
    assert_eq!(close, 4001);
}

#[test]
fn the_same_agent_on_both_nodes_at_once_keeps_one_connection() {
    let nats = NatsServer::start();
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = cluster_node(da.path(), &nats.url(), "node-a", None, &[]);
    let b = cluster_node(db.path(), &nats.url(), "node-b", Some(da.path()), &[]);
    let mut agent = a.agent("twice", V2);
    let mut c = connect(a.agent_addr, &agent, None);
    authenticate(&mut c, &mut agent);
    let (uid, token) = register(&mut c, &mut agent, "host-twice");
    drop(c);
    a.wait_offline(&uid);
    for round in 0..5 {
        let twin = || {
            let mut t = aegis_gateway::testkit::agent::Agent::new(
                agent.key().clone(),
                "twice",
                V2,
                Some(a.public_key),
            );
            t.set_uid(&uid);
            t
        };
        let (mut x, mut y) = (twin(), twin());
        let (ax, bx) = (a.agent_addr, b.agent_addr);
        let (u1, t1, u2, t2) = (uid.clone(), token.clone(), uid.clone(), token.clone());
        let h1 = std::thread::spawn(move || {
            let mut c = connect(ax, &x, Some((&u1, &t1)));
            authenticate(&mut c, &mut x);
            c
        });
        let h2 = std::thread::spawn(move || {
            let mut c = connect(bx, &y, Some((&u2, &t2)));
            authenticate(&mut c, &mut y);
            c
        });
        let mut conns = vec![h1.join().unwrap(), h2.join().unwrap()];
        // Exactly one is closed with 4010; the other stays.
        let mut closed = 0;
        for c in conns.iter_mut() {
            // The replaced one gets its `replaced` error frame, then the close; the other
            // nothing (no traffic within the bound).
            loop {
                match c.recv_within(Duration::from_secs(3)) {
                    Recv::Text(_) => continue,
                    Recv::Close(code) => {
                        assert_eq!(code, 4010, "round {round}");
                        closed += 1;
                    }
                    Recv::Timeout | Recv::Eof => {}
                }
                break;
            }
        }
        assert_eq!(closed, 1, "round {round}: exactly one connection survives");
        let (_, st) = admin(&b, "GET", &format!("/api/v1/agents/{uid}/status"), None);
        assert_eq!(st["connected"], true, "round {round}: {st}");
        drop(conns);
        a.wait_offline(&uid);
        b.wait_offline(&uid);
    }
}
