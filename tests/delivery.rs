//! Durable command delivery through the admin API: sent vs queued, acks, order, exactly once,
//! TTL expiry, retry exhaustion, queue bound, disconnect mid-delivery, broadcast.

mod common;
use common::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn send_to_connected_v1_and_v2_agents() {
    let gw = TestGateway::start();
    for profile in [V1, V2] {
        let mut a = gw.agent(&format!("dlv-{}", profile.number()), profile);
        let (mut c, uid, _) = onboard(&gw, &mut a, &format!("host-dlv-{}", profile.number()));
        let cmd = json!({"policy_id": "p-9", "rules": ["deny /tmp/x"]});
        let (status, r) = gw.send(&uid, json!({"channel": "backend.policies", "message": cmd}));
        assert_eq!(status, 200, "{r}");
        assert_eq!(r["status"], "sent");
        let id = r["message_id"].as_str().unwrap().to_string();
        let opened = a.open(c.recv_text().as_bytes()).unwrap();
        assert_eq!(opened.envelope.id, id);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&opened.body).unwrap(),
            cmd
        );
        assert_eq!(gw.message_status(&id), "sent");
        if profile == V2 {
            c.send(&a.ack(&id, now_s()).unwrap());
        } else {
            // v1: a later verified frame on the same connection confirms the write.
            c.send(&a.heartbeat(now_s()).unwrap());
        }
        gw.wait_status(&id, "delivered");
        let m = gw.message(&id);
        assert_eq!(m["deliveries"][0]["retry_count"], 1);
    }
}

#[test]
fn offline_agent_receives_queued_commands_in_order_exactly_once() {
    let gw = TestGateway::start();
    let mut a = gw.agent("offline-1", V2);
    let (c, uid, token) = onboard(&gw, &mut a, "host-offline");
    drop(c);
    gw.wait_offline(&uid);
    let mut ids = Vec::new();
    for i in 0..3 {
        let (status, r) = gw.send(
            &uid,
            json!({"channel": "backend.threats", "message": {"n": i}}),
        );
        assert_eq!(status, 200);
        assert_eq!(r["status"], "queued");
        ids.push(r["message_id"].as_str().unwrap().to_string());
    }
    // A higher-priority command queued last is delivered first.
    let (_, r) = gw.send(
        &uid,
        json!({"channel": "backend.policies", "message": {"urgent": true}, "priority": 9}),
    );
    let urgent = r["message_id"].as_str().unwrap().to_string();
    a.reset_session();
    let mut c = connect(gw.addr, &a, Some((&uid, &token)));
    authenticate(&mut c, &mut a);
    let mut got = Vec::new();
    for _ in 0..4 {
        let opened = a.open(c.recv_text().as_bytes()).unwrap();
        got.push(opened.envelope.id.clone());
        c.send(&a.ack(&opened.envelope.id, now_s()).unwrap());
    }
    let mut expected = vec![urgent.clone()];
    expected.extend(ids.iter().cloned());
    assert_eq!(got, expected);
    c.expect_silence(Duration::from_millis(500));
    for id in expected {
        gw.wait_status(&id, "delivered");
    }
    // Reconnecting again delivers nothing more.
    a.reset_session();
    let mut c2 = connect(gw.addr, &a, Some((&uid, &token)));
    authenticate(&mut c2, &mut a);
    c2.expect_silence(Duration::from_millis(500));
}

#[test]
fn ttl_expiry_retry_exhaustion_and_queue_full() {
    let gw = TestGateway::start_with(|c| {
        c.ack_timeout = Duration::from_millis(300);
        c.message_retry_attempts = 2;
        c.message_queue_size = 2;
    });
    // TTL: queued for an offline agent, expires (checked last: the retries below run meanwhile).
    let mut a = gw.agent("ttl", V2);
    let (c, uid, _) = onboard(&gw, &mut a, "host-ttl");
    drop(c);
    gw.wait_offline(&uid);
    let (_, r) = gw.send(
        &uid,
        json!({"channel": "backend.tests", "message": {}, "ttl_seconds": 1}),
    );
    assert_eq!(r["status"], "queued");
    let ttl_id = r["message_id"].as_str().unwrap().to_string();
    // Queue bound: a second fits, the third does not.
    let (status, _) = gw.send(&uid, json!({"channel": "backend.tests", "message": {}}));
    assert_eq!(status, 200);
    let (status, r) = gw.send(&uid, json!({"channel": "backend.tests", "message": {}}));
    assert_eq!(status, 429, "{r}");
    assert_eq!(r["error"], "queue_full");

    // Retry exhaustion: a connected v2 agent that never acks gets 2 attempts, then failed.
    let mut b = gw.agent("noack", V2);
    let (mut c, uid, _) = onboard(&gw, &mut b, "host-noack");
    let (_, r) = gw.send(
        &uid,
        json!({"channel": "backend.rollbacks", "message": {"to": "v1"}}),
    );
    let id = r["message_id"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let opened = b.open(c.recv_text().as_bytes()).unwrap();
        assert_eq!(opened.envelope.id, id, "same id on every attempt");
    }
    gw.wait_status(&id, "failed");
    assert_eq!(gw.message(&id)["deliveries"][0]["retry_count"], 2);
    // No third attempt: nothing comes within two more ack timeouts.
    c.expect_silence(Duration::from_millis(600));

    // The TTL of 1 s has passed by now or soon will: the expiry sweep marks it.
    gw.wait_status(&ttl_id, "expired");
}

#[test]
fn disconnect_mid_delivery_redelivers_on_reconnect() {
    let gw = TestGateway::start();
    let mut a = gw.agent("flaky", V2);
    let (mut c, uid, token) = onboard(&gw, &mut a, "host-flaky");
    let (_, r) = gw.send(
        &uid,
        json!({"channel": "backend.investigations", "message": {"q": 1}}),
    );
    let id = r["message_id"].as_str().unwrap().to_string();
    assert_eq!(a.open(c.recv_text().as_bytes()).unwrap().envelope.id, id);
    drop(c); // no ack
    a.reset_session();
    gw.wait_offline(&uid);
    let mut c = connect(gw.addr, &a, Some((&uid, &token)));
    authenticate(&mut c, &mut a);
    let again = a.open(c.recv_text().as_bytes()).unwrap();
    assert_eq!(again.envelope.id, id);
    c.send(&a.ack(&id, now_s()).unwrap());
    gw.wait_status(&id, "delivered");
    assert_eq!(gw.message(&id)["deliveries"][0]["retry_count"], 2);
}

#[test]
fn broadcast_reaches_a_few_hundred_agents() {
    let gw = TestGateway::start_with(|c| c.connect_rate = 0);
    let mut agents = Vec::new();
    for i in 0..300 {
        let profile = if i % 3 == 0 { V1 } else { V2 };
        let mut a = gw.agent(&format!("bc-{i}"), profile);
        let (c, uid, _) = onboard(&gw, &mut a, &format!("host-bc-{i}"));
        agents.push((c, a, uid));
    }
    let started = std::time::Instant::now();
    let (status, r) = http_json(
        gw.admin,
        "POST",
        "/api/v1/agents/broadcast",
        Some(TOKEN),
        Some(
            &json!({"channel": "backend.threats", "message": {"ioc": "evil.example"}}).to_string(),
        ),
    );
    let took = started.elapsed();
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["sent_to"].as_array().unwrap().len(), 300, "{r}");
    assert!(r["failed"].as_array().unwrap().is_empty());
    let id = r["message_id"].as_str().unwrap().to_string();
    for (c, a, _) in agents.iter_mut() {
        let opened = a.open(c.recv_text().as_bytes()).unwrap();
        assert_eq!(opened.envelope.id, id);
        let body: serde_json::Value = serde_json::from_slice(&opened.body).unwrap();
        assert_eq!(body, json!({"ioc": "evil.example"}));
    }
    eprintln!("broadcast to 300 agents answered in {took:?}");
}
