//! The driver must reach routing, the body validators and the backend, or the fuzzer cannot.

use super::*;

fn req(method: &str, target: &str, auth: bool, body: &str) -> String {
    let auth = if auth {
        format!("Authorization: Bearer {TOKEN}\r\n")
    } else {
        String::new()
    };
    let length = if body.is_empty() {
        String::new()
    } else {
        format!("Content-Length: {}\r\n", body.len())
    };
    format!("{method} {target} HTTP/1.1\r\nHost: gw\r\n{auth}{length}\r\n{body}")
}

#[test]
fn pipelined_requests_reach_the_backend() {
    let stream = [
        req("GET", "/api/v1/agents/u-1/status", true, ""),
        req(
            "GET",
            "/api/v1/agents?connected=true&limit=5&cursor=c%2F1",
            true,
            "",
        ),
        req(
            "POST",
            "/api/v1/agents/u%2D1/send",
            true,
            r#"{"channel":"backend.policies","message":{"a":1},"priority":9,"ttl_seconds":60}"#,
        ),
        req(
            "POST",
            "/api/v1/agents/broadcast",
            true,
            r#"{"channel":"backend.threats","message":[1],"agent_filter":{"os":"linux"}}"#,
        ),
        req("GET", "/api/v1/messages/m-1", true, ""),
        req("DELETE", "/api/v1/agents/missing", true, ""),
        req("GET", "/healthz", false, ""),
        req("GET", "/readyz", false, ""),
        req("GET", "/metrics", false, ""),
        req("GET", "/api/v1/openapi.json", true, ""),
        req(
            "GET",
            "/api/v1/events?channel=agent.*.heartbeat&last_event_id=7",
            true,
            "",
        ),
    ]
    .concat();
    for ready in [0, 1] {
        let served = run(ready, 40, stream.as_bytes());
        assert_eq!(
            served,
            Served {
                responses: 10,
                backend_calls: 6,
                events: true
            }
        );
    }
}

#[test]
fn refusals_keep_the_connection_when_there_is_no_body() {
    let stream = [
        req("GET", "/api/v1/agents", false, ""),
        req("GET", "/api/v1/agents", true, "").replace(TOKEN, "wrong"),
        req("PUT", "/api/v1/agents/u-1", true, ""),
        req("GET", "/nope", true, ""),
        req("GET", "/api/v1/agents/%zz/status", true, ""),
        // A refusal with a body closes the connection: the request after it is not served.
        req("POST", "/nope", true, "{}"),
        req("GET", "/healthz", false, ""),
    ]
    .concat();
    assert_eq!(
        run(0, 0, stream.as_bytes()),
        Served {
            responses: 6,
            backend_calls: 0,
            events: false
        }
    );
}

#[test]
fn invalid_bodies_and_queries_are_refused_before_the_backend() {
    let stream = [
        req(
            "POST",
            "/api/v1/agents/u-1/send",
            true,
            r#"{"channel":"agent.x.logs","message":1}"#,
        ),
        req(
            "POST",
            "/api/v1/agents/u-1/send",
            true,
            r#"{"channel":"backend.tests","message":null}"#,
        ),
        req(
            "POST",
            "/api/v1/agents/broadcast",
            true,
            r#"{"channel":"backend.u-1.tests","message":1}"#,
        ),
        req("POST", "/api/v1/agents/broadcast", true, "[1]"),
        req("GET", "/api/v1/agents?limit=0", true, ""),
    ]
    .concat();
    let served = run(0, 0, stream.as_bytes());
    assert_eq!(served.responses, 5);
    assert_eq!(served.backend_calls, 0);
}

#[test]
fn http_errors_are_answered() {
    for raw in [
        "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n".to_string(),
        "GET / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n".to_string(),
        "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".to_string(),
        "GET x HTTP/1.1\r\n\r\n".to_string(),
        format!("GET / HTTP/1.1\r\n{}\r\n", "A: b\r\n".repeat(65)),
        format!("GET /{} HTTP/1.1\r\n", "a".repeat(MAX_HEAD)),
    ] {
        assert_eq!(run(0, 7, raw.as_bytes()).responses, 1, "{raw:.40}");
    }
    // Incomplete: nothing answered yet.
    assert_eq!(run(0, 7, b"GET / HTTP/1.1\r\nHost: a").responses, 0);
}

#[test]
fn every_seed_is_served() {
    use arbitrary::{Arbitrary, Unstructured};
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/seeds/admin_request");
    let mut calls = 0;
    for entry in std::fs::read_dir(dir).expect("the seed directory") {
        let path = entry.expect("a seed").path();
        let data = std::fs::read(&path).expect("a readable seed");
        let (a, b, bytes) = <(u16, u16, &[u8])>::arbitrary_take_rest(Unstructured::new(&data))
            .expect("a seed decodes");
        let served = run(a, b, bytes);
        assert!(
            served.responses > 0 || served.events,
            "{path:?}: {served:?}"
        );
        calls += served.backend_calls;
    }
    assert!(calls >= 6, "the seeds reach the backend: {calls} calls");
}

#[test]
fn a_head_is_decided_within_its_first_max_head_bytes() {
    // 16 KiB of a valid, unfinished header line, then a byte httparse refuses: a reader that
    // has 16 KiB answers 431; with the whole stream at once it must answer the same.
    let mut raw = format!("GET / HTTP/1.1\r\nX-Long: {}", "a".repeat(MAX_HEAD)).into_bytes();
    raw.extend_from_slice(b"\x01\r\n\r\n");
    run(MAX_HEAD as u16, 0, &raw);
}
