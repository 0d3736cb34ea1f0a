//! The HTTP registration fallback on the agent port (PROTOCOL §9): `POST /agents/register/init`
//! then `/complete` register an agent that then reconnects over WebSocket with its uid and
//! bootstrap token; every error case gets its status and `{"error","message"}` body, and a
//! refused step stores nothing and completes nothing.

mod common;
use aegis_gateway::crypto::SigningKey;
use aegis_gateway::protocol::payloads::{b64, RegistrationChallenge};
use aegis_gateway::protocol::sigstr;
use aegis_gateway::testkit::agent::Agent;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};

const INIT: &str = "/agents/register/init";
const COMPLETE: &str = "/agents/register/complete";

fn post(gw: &TestGateway, path: &str, body: &str) -> (u16, Value) {
    http_json(gw.addr, "POST", path, None, Some(body))
}

fn init(gw: &TestGateway, a: &Agent, host_id: &str) -> RegistrationChallenge {
    let req = serde_json::to_string(&registration_request(a, host_id)).unwrap();
    let (status, body) = post(gw, INIT, &req);
    assert_eq!(status, 200, "{body}");
    serde_json::from_value(body).unwrap()
}

fn signature(key: &SigningKey, c: &RegistrationChallenge, host_id: &str) -> String {
    let nonce =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &c.nonce).unwrap();
    b64(&key.sign(&sigstr::registration(&nonce, &c.server_time, host_id)))
}

fn completion(c: &RegistrationChallenge, host_id: &str, signature: &str) -> String {
    json!({"registration_id": c.registration_id, "host_id": host_id, "signature": signature})
        .to_string()
}

fn assert_error(got: (u16, Value), status: u16, code: &str) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"], code, "{}", got.1);
    assert!(got.1["message"].as_str().is_some_and(|m| !m.is_empty()));
}

#[test]
fn init_complete_then_a_websocket_reconnect_with_uid_and_token() {
    let gw = TestGateway::start();
    for profile in [V1, V2] {
        let host = format!("http-host-{}", profile.number());
        let mut a = gw.agent(&host, profile);
        let c = init(&gw, &a, &host);
        assert_eq!(c.nonce.len(), 44, "base64 of 32 bytes");
        assert!(c.server_time.ends_with('Z') && c.server_time.len() == 20);
        let (status, r3) = post(
            &gw,
            COMPLETE,
            &completion(&c, &host, &signature(a.key(), &c, &host)),
        );
        assert_eq!(status, 200, "{r3}");
        let uid = r3["agent_uid"].as_str().unwrap().to_string();
        let token = r3["bootstrap_token"].as_str().unwrap().to_string();
        assert!(token.len() >= 32);
        // Stored durably before the answer: the admin API knows it, with the request's data.
        let (code, status) = gw_status(&gw, &uid);
        assert_eq!(code, 200, "{status}");
        assert_eq!(status["host_id"], host.as_str(), "{status}");
        // The agent reconnects as on any reconnect, and commands reach it.
        a.set_uid(&uid);
        let mut ws = connect(gw.addr, &a, Some((&uid, &token)));
        authenticate(&mut ws, &mut a);
        // Completed once: the same completion again is an unknown registration.
        let again = post(
            &gw,
            COMPLETE,
            &completion(&c, &host, &signature(a.key(), &c, &host)),
        );
        assert_error(again, 404, "registration_not_found");
    }
}

fn gw_status(gw: &TestGateway, uid: &str) -> (u16, Value) {
    http_json(
        gw.admin,
        "GET",
        &format!("/api/v1/agents/{uid}/status"),
        Some(TOKEN),
        None,
    )
}

#[test]
fn every_error_case_gets_its_status_and_json_body() {
    let gw = TestGateway::start();
    let a = gw.agent("errs", V1);
    // 400: not JSON, missing fields, a key that is not a key, a host_id outside the charset.
    assert_error(post(&gw, INIT, "{not json"), 400, "invalid_request");
    assert_error(
        post(&gw, INIT, r#"{"host_id":"h"}"#),
        400,
        "invalid_request",
    );
    let mut bad_key = registration_request(&a, "errs");
    bad_key.agent_pubkey = "AAAA".into();
    assert_error(
        post(&gw, INIT, &serde_json::to_string(&bad_key).unwrap()),
        400,
        "invalid_request",
    );
    let bad_host = registration_request(&a, "bad host/id");
    assert_error(
        post(&gw, INIT, &serde_json::to_string(&bad_host).unwrap()),
        400,
        "invalid_request",
    );
    assert_error(post(&gw, COMPLETE, "[]"), 400, "invalid_request");

    let c = init(&gw, &a, "errs");
    // 409: another host_id (the registration is then over: one attempt).
    let wrong_host = completion(&c, "other-host", &signature(a.key(), &c, "other-host"));
    assert_error(post(&gw, COMPLETE, &wrong_host), 409, "host_id_mismatch");
    let good = completion(&c, "errs", &signature(a.key(), &c, "errs"));
    assert_error(post(&gw, COMPLETE, &good), 404, "registration_not_found");

    // 401: signed by another key; nothing registered.
    let c = init(&gw, &a, "errs");
    let forged = completion(&c, "errs", &signature(&SigningKey::generate(), &c, "errs"));
    assert_error(post(&gw, COMPLETE, &forged), 401, "invalid_signature");
    // 404: an id never issued.
    let unknown = json!({"registration_id": "00000000-0000-4000-8000-000000000000",
        "host_id": "errs", "signature": signature(a.key(), &c, "errs")});
    assert_error(
        post(&gw, COMPLETE, &unknown.to_string()),
        404,
        "registration_not_found",
    );

    // 413: a body over 16 KiB (announced; the gateway does not wait for it).
    let big = format!("{{\"pad\":\"{}\"}}", "x".repeat(17 * 1024));
    assert_error(post(&gw, INIT, &big), 413, "payload_too_large");
    // 431: a head over 16 KiB.
    let mut s = std::net::TcpStream::connect(gw.addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let head = format!(
        "POST {INIT} HTTP/1.1\r\nHost: gw\r\nX-Pad: {}\r\nContent-Length: 2\r\n\r\n{{}}",
        "p".repeat(17 * 1024)
    );
    let _ = s.write_all(head.as_bytes());
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    assert_eq!(parse_response(&raw).0, 431);
    // Anything else on the agent port is 404.
    assert_error(post(&gw, "/agents/register", "{}"), 404, "not_found");
    assert_error(post(&gw, "/api/v1/agents", "{}"), 404, "not_found");
    assert_still_serving(&gw);
}

#[test]
fn pending_registrations_are_capped_per_client_ip() {
    let gw = TestGateway::start();
    let a = gw.agent("capped", V1);
    let req = serde_json::to_string(&registration_request(&a, "capped")).unwrap();
    // 256 pending registrations per client IP (shard::pending::PER_IP), then 429.
    let mut first = None;
    for i in 0..256 {
        let (status, body) = post(&gw, INIT, &req);
        assert_eq!(status, 200, "init {i}: {body}");
        first.get_or_insert(body);
    }
    let (status, body) = post(&gw, INIT, &req);
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["message"], "too many pending registrations");
    // Completing one frees its slot.
    let c: RegistrationChallenge = serde_json::from_value(first.unwrap()).unwrap();
    let done = completion(&c, "capped", &signature(a.key(), &c, "capped"));
    assert_eq!(post(&gw, COMPLETE, &done).0, 200);
    assert_eq!(post(&gw, INIT, &req).0, 200);
    assert_eq!(post(&gw, INIT, &req).0, 429);
}

#[test]
fn the_per_ip_connect_limit_applies() {
    let gw = TestGateway::start_with(|c| {
        c.connect_rate = 1;
        c.connect_burst = 2;
    });
    let a = gw.agent("limited", V1);
    let req = serde_json::to_string(&registration_request(&a, "limited")).unwrap();
    let statuses: Vec<u16> = (0..5).map(|_| post(&gw, INIT, &req).0).collect();
    assert!(statuses.contains(&429), "{statuses:?}");
    assert_eq!(statuses[0], 200, "{statuses:?}");
}
