//! The admin API against the real gateway: auth, every bad-input case, id/host resolution,
//! status and listing, revocation, health, readiness and metrics. (The event stream has its
//! own file, `event_stream.rs`.)

mod common;
use aegis_gateway::protocol::envelope::MsgType;
use common::*;
use serde_json::json;
use std::time::Duration;

#[test]
fn auth_and_bad_requests_get_json_errors() {
    let gw = TestGateway::start();
    let mut a = gw.agent("api-1", V2);
    let (_c, uid, _) = onboard(&gw, &mut a, "host-api-1");
    let path = format!("/api/v1/agents/{uid}/send");
    let good = json!({"channel": "backend.policies", "message": {"x": 1}}).to_string();

    let (s, v) = http_json(gw.admin, "POST", &path, None, Some(&good));
    assert_eq!((s, v["error"].as_str()), (401, Some("unauthorized")));
    let (s, _) = http_json(gw.admin, "POST", &path, Some("wrong-token"), Some(&good));
    assert_eq!(s, 401);
    let (s, _) = http_json(gw.admin, "GET", "/api/v1/openapi.json", None, None);
    assert_eq!(s, 401, "the OpenAPI document is under /api/v1 too");

    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        (
            "POST",
            path.clone(),
            "{not json".into(),
            400,
            "invalid_json",
        ),
        (
            "POST",
            path.clone(),
            json!({"channel": "backend.policies"}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            path.clone(),
            json!({"channel": "agent.x.logs", "message": {}}).to_string(),
            400,
            "invalid_channel",
        ),
        (
            "POST",
            path.clone(),
            json!({"channel": "backend.someone-else.policies", "message": {}}).to_string(),
            400,
            "invalid_channel",
        ),
        (
            "POST",
            path.clone(),
            json!({"channel": "backend.policies", "message": {}, "priority": 42}).to_string(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/api/v1/agents/no-such-agent/send".into(),
            good.clone(),
            404,
            "agent_not_found",
        ),
        ("PUT", path.clone(), good.clone(), 405, "method_not_allowed"),
        (
            "GET",
            "/api/v1/messages/no-such-message".into(),
            String::new(),
            404,
            "message_not_found",
        ),
        (
            "GET",
            "/api/v1/agents?limit=0".into(),
            String::new(),
            400,
            "invalid_query",
        ),
        (
            "GET",
            "/api/v1/nope".into(),
            String::new(),
            404,
            "not_found",
        ),
    ];
    for (method, p, body, status, error) in cases {
        let body = (!body.is_empty()).then_some(body);
        let (s, v) = http_json(gw.admin, method, &p, Some(TOKEN), body.as_deref());
        assert_eq!(s, status, "{method} {p}: {v}");
        assert_eq!(v["error"], error, "{method} {p}: {v}");
        assert!(v["message"].is_string(), "{v}");
    }
    // Oversize body: refused from its Content-Length.
    let big = format!(
        "{{\"channel\":\"backend.policies\",\"message\":\"{}\"}}",
        "x".repeat(2 << 20)
    );
    let (s, _) = http(gw.admin, "POST", &path, Some(TOKEN), Some(&big));
    assert_eq!(s, 413);
    // And a good request still works afterwards.
    let (s, v) = http_json(gw.admin, "POST", &path, Some(TOKEN), Some(&good));
    assert_eq!((s, v["status"].as_str()), (200, Some("sent")));
}

#[test]
fn host_id_resolution_status_listing_and_revocation() {
    let gw = TestGateway::start();
    let mut a = gw.agent("host-shared-a", V2);
    let (mut ca, uid_a, token_a) = onboard(&gw, &mut a, "shared-host");
    // A single holder: the host_id resolves.
    let (s, v) = http_json(
        gw.admin,
        "GET",
        "/api/v1/agents/shared-host/status",
        Some(TOKEN),
        None,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["agent_id"], uid_a.as_str());
    assert_eq!(v["connected"], true);
    assert_eq!(v["protocol"], "v2");
    // The agent publishes an event: its channel shows up in the status.
    let ch = format!("agent.{uid_a}.status");
    ca.send(
        &a.message(&ch, MsgType::Event, br#"{"ok":true}"#, now_s(), vec![])
            .unwrap(),
    );
    let status_path = format!("/api/v1/agents/{uid_a}/status");
    eventually(&format!("{ch} listed in the status"), WAIT, || {
        let (_, v) = http_json(gw.admin, "GET", &status_path, Some(TOKEN), None);
        v["channels"]
            .as_array()
            .expect("channels")
            .iter()
            .any(|c| c == &json!(ch))
    });

    // A second key registers the same host_id (the Go agent makes a new key per restart).
    let mut b = gw.agent("host-shared-b", V1);
    let (cb, uid_b, _) = onboard(&gw, &mut b, "shared-host");
    drop(cb);
    let (s, v) = http_json(
        gw.admin,
        "GET",
        "/api/v1/agents/shared-host/status",
        Some(TOKEN),
        None,
    );
    assert_eq!(s, 409, "{v}");
    assert_eq!(v["error"], "ambiguous_host_id");
    let mut uids: Vec<String> = v["agent_uids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect();
    uids.sort();
    let mut want = vec![uid_a.clone(), uid_b.clone()];
    want.sort();
    assert_eq!(uids, want);

    // Listing: both agents, connected filter (once the gateway has seen b's connection end),
    // paging.
    let (_, all) = http_json(gw.admin, "GET", "/api/v1/agents", Some(TOKEN), None);
    assert_eq!(all["agents"].as_array().unwrap().len(), 2);
    let connected = || -> Vec<String> {
        let (_, live) = http_json(
            gw.admin,
            "GET",
            "/api/v1/agents?connected=true",
            Some(TOKEN),
            None,
        );
        live["agents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["agent_id"].as_str().unwrap().to_string())
            .collect()
    };
    gw.wait_offline(&uid_b);
    assert_eq!(connected(), vec![uid_a.clone()]);
    let (_, page1) = http_json(gw.admin, "GET", "/api/v1/agents?limit=1", Some(TOKEN), None);
    let cursor = page1["next_cursor"]
        .as_str()
        .expect("a next page")
        .to_string();
    let (_, page2) = http_json(
        gw.admin,
        "GET",
        &format!("/api/v1/agents?limit=1&cursor={cursor}"),
        Some(TOKEN),
        None,
    );
    assert_ne!(
        page1["agents"][0]["agent_id"],
        page2["agents"][0]["agent_id"]
    );

    // Revocation: the live connection is closed with 4001 and the uid is forgotten.
    let (s, v) = http_json(
        gw.admin,
        "DELETE",
        &format!("/api/v1/agents/{uid_a}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["disconnected"], true);
    assert_eq!(ca.recv_close(&mut Vec::new()), 4001);
    let (s, _) = http_json(
        gw.admin,
        "GET",
        &format!("/api/v1/agents/{uid_a}/status"),
        Some(TOKEN),
        None,
    );
    assert_eq!(s, 404);
    a.reset_session();
    let mut c = connect(gw.addr, &a, Some((&uid_a, &token_a)));
    let m1 = a.m1(now_s(), aegis_gateway::crypto::random::bytes::<16>());
    c.send(&m1);
    assert!(
        a.on_r1(c.recv_text().as_bytes()).is_err(),
        "a revoked uid cannot authenticate"
    );
}

/// `name{labels} value` lines of the Prometheus text format.
fn scrape(gw: &TestGateway) -> Vec<(String, f64)> {
    let (s, text) = http(gw.admin, "GET", "/metrics", None, None);
    assert_eq!(s, 200);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        assert!(series.starts_with("aegis_gateway_"), "{line}");
        if let Some((name, labels)) = series.split_once('{') {
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
            assert!(labels.ends_with('}'), "{line}");
        }
        out.push((series.to_string(), value));
    }
    out
}

fn value(m: &[(String, f64)], series_prefix: &str, must_contain: &[&str]) -> f64 {
    m.iter()
        .filter(|(s, _)| s.starts_with(series_prefix) && must_contain.iter().all(|c| s.contains(c)))
        .map(|(_, v)| *v)
        .sum()
}

#[test]
fn health_readiness_and_metrics_move() {
    // `server::start` installs the metrics recorder only after it opened the store, so in a
    // process whose first gateway this is, the store's fsync histogram handle is a no-op and
    // `fsync_seconds` is never exported (a product bug, reported; the fix is in src/server.rs).
    // Install the recorder first so this test does not depend on another test's gateway having
    // started before it in the same binary.
    aegis_gateway::metrics::install();
    let gw = TestGateway::start();
    assert_eq!(http(gw.admin, "GET", "/healthz", None, None).0, 200);
    assert_eq!(http(gw.admin, "GET", "/readyz", None, None).0, 200);
    let (s, doc) = http_json(gw.admin, "GET", "/api/v1/openapi.json", Some(TOKEN), None);
    assert_eq!(s, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let before = scrape(&gw);
    let mut a = gw.agent("metrics-agent", V2);
    let (mut c, uid, _) = onboard(&gw, &mut a, "host-metrics");
    c.send(&a.heartbeat(now_s()).unwrap());
    c.send(
        &a.message(
            &format!("agent.{uid}.logs"),
            MsgType::Event,
            b"{}",
            now_s(),
            vec![],
        )
        .unwrap(),
    );
    c.expect_silence(Duration::from_millis(200));
    let after = scrape(&gw);
    let hs = |m: &[(String, f64)]| {
        value(
            m,
            "aegis_gateway_handshakes_total",
            &["result=\"success\"", "profile=\"v2\""],
        )
    };
    assert!(hs(&after) >= hs(&before) + 1.0, "handshakes counter moved");
    let logs =
        |m: &[(String, f64)]| value(m, "aegis_gateway_messages_in_total", &["kind=\"logs\""]);
    assert!(logs(&after) >= logs(&before) + 1.0);
    let conns = value(&after, "aegis_gateway_connections", &["profile=\"v2\""]);
    assert!(conns >= 1.0, "live v2 connection gauge");
    assert!(value(&after, "aegis_gateway_verify_batch_size_count", &[]) > 0.0);
    assert!(
        value(&after, "aegis_gateway_fsync_seconds_count", &[]) > 0.0,
        "registration fsync recorded"
    );
    // Everything exported is in the table of src/metrics.rs that tuning/ is checked against.
    for (series, _) in &after {
        let name = series.split('{').next().unwrap_or_default();
        assert!(
            aegis_gateway::metrics::lookup(name).is_some(),
            "{name} is exported but missing from aegis_gateway::metrics::METRICS"
        );
    }
    // ... with the type and help the table gives it.
    let (_, text) = http(gw.admin, "GET", "/metrics", None, None);
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            let def = aegis_gateway::metrics::lookup(name).expect("typed metric in the table");
            assert_eq!(kind, def.kind.as_str(), "{line}");
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("# HELP name text");
            let def = aegis_gateway::metrics::lookup(name).expect("described metric in the table");
            assert_eq!(help, def.help, "{line}");
        }
    }
}
