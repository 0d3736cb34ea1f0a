//! The agent side of the handshake over a [`Client`]: M1 → R1, registration M3 → R2 → M4 → R3,
//! error frames, and the checks the attack scenarios share.

use super::client::{connect, Client, Timeouts};
use super::gateway::TestGateway;
use aegis_gateway::crypto::random;
use aegis_gateway::protocol::envelope;
use aegis_gateway::protocol::payloads::{
    AuthResponse, RegistrationChallenge, RegistrationRequest, RegistrationResult,
};
use aegis_gateway::protocol::session::Profile;
use aegis_gateway::testkit::agent::Agent;
use std::time::Duration;

/// Profile of the deployed Go agent.
pub const V1: Profile = Profile::V1;
/// Secure profile.
pub const V2: Profile = Profile::V2;

/// Unix seconds.
pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A registration request for `agent`.
pub fn registration_request(agent: &Agent, host_id: &str) -> RegistrationRequest {
    RegistrationRequest {
        org_id: "org-test".into(),
        host_id: host_id.into(),
        agent_pubkey: agent.public_b64().to_string(),
        agent_version: "1.0.0".into(),
        capabilities: serde_json::json!(["ebpf", "policies"]),
        platform: serde_json::json!({"os": "linux", "arch": "x86_64"}),
        network: serde_json::json!({"hostname": host_id}),
        machine_id_hash: None,
    }
}

/// M1 → R1 on a fresh connection; panics if refused.
pub fn authenticate<S: Timeouts>(c: &mut Client<S>, agent: &mut Agent) {
    let m1 = agent.m1(now_s(), random::bytes::<16>());
    c.send(&m1);
    let r1 = c.recv_text();
    agent.on_r1(r1.as_bytes()).expect("R1 success");
}

/// M3 → R2 → M4 → R3; returns (uid, token) and switches the agent to its uid.
pub fn register<S: Timeouts>(
    c: &mut Client<S>,
    agent: &mut Agent,
    host_id: &str,
) -> (String, String) {
    let m3 = agent
        .m3(&registration_request(agent, host_id), now_s())
        .unwrap();
    c.send(&m3);
    let r2 = agent.open(c.recv_text().as_bytes()).expect("R2 opens");
    let challenge: RegistrationChallenge = serde_json::from_slice(&r2.body).unwrap();
    let m4 = agent.m4(&challenge, host_id, now_s()).unwrap();
    c.send(&m4);
    let r3 = agent.open(c.recv_text().as_bytes()).expect("R3 opens");
    assert_eq!(r3.envelope.channel, "agent.registration.complete");
    let result: RegistrationResult = serde_json::from_slice(&r3.body).unwrap();
    agent.set_uid(&result.agent_uid);
    (result.agent_uid, result.bootstrap_token)
}

/// Connect, authenticate and register a fresh agent; returns the client and (uid, token).
pub fn onboard(gw: &TestGateway, agent: &mut Agent, host_id: &str) -> (Client, String, String) {
    let mut c = connect(gw.addr, agent, None);
    authenticate(&mut c, agent);
    let (uid, token) = register(&mut c, agent, host_id);
    (c, uid, token)
}

/// Reads the error kind of an error frame.
pub fn error_kind(agent: &mut Agent, frame: &str) -> String {
    let opened = agent.open(frame.as_bytes()).expect("error frame opens");
    assert_eq!(opened.envelope.channel, "error");
    let v: serde_json::Value = serde_json::from_slice(&opened.body).unwrap();
    v["error"].as_str().unwrap_or_default().to_string()
}

/// The error kind of an error frame sent before authentication (unsigned, not sealed).
pub fn error_kind_before_auth(frame: &str) -> String {
    let mut raw = frame.as_bytes().to_vec();
    let e = envelope::parse(&mut raw).unwrap();
    assert_eq!(e.channel, "error");
    let json =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, &e.payload).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    v["error"].as_str().unwrap_or_default().to_string()
}

/// Sends M1 and returns (R1, close code).
pub fn m1_outcome(c: &mut Client, m1: &str) -> (AuthResponse, u16) {
    c.send(m1);
    let r1 = c.recv_text();
    let mut raw = r1.into_bytes();
    let e = envelope::parse(&mut raw).unwrap();
    let json =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, e.payload).unwrap();
    let r: AuthResponse = serde_json::from_slice(&json).unwrap();
    let code = c.recv_close(&mut Vec::new());
    (r, code)
}

/// A fresh v2 agent can still connect, authenticate and heartbeat (no error frame comes back
/// within a short window).
pub fn assert_still_serving(gw: &TestGateway) {
    let mut a = gw.agent(
        &format!(
            "fresh-{}",
            random::token_urlsafe(6).replace(['-', '_'], "x")
        ),
        V2,
    );
    let mut c = connect(gw.addr, &a, None);
    authenticate(&mut c, &mut a);
    let hb = a.heartbeat(now_s()).unwrap();
    c.send(&hb);
    c.expect_silence(Duration::from_millis(100));
}
