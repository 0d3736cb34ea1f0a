//! Black-box tests over real sockets: auth, routing, limits, validation, keep-alive.

use super::fake::Call;
use super::*;
use crate::admin::api::{ListQuery, SendRequest, DEFAULT_PRIORITY};
use crate::admin::routes::ROUTES;
use crate::protocol::channel::BackendKind;
use crate::protocol::envelope::MsgType;
use serde_json::json;

#[test]
fn api_routes_need_the_bearer_token() {
    let s = TestServer::start();
    let r = s.request("GET /api/v1/agents/u-1/status HTTP/1.1\r\nHost: t\r\n\r\n");
    r.assert_error(401, "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));

    let r = s.request(
        "GET /api/v1/agents/u-1/status HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer test-token-0123456788\r\n\r\n",
    );
    r.assert_error(401, "unauthorized");
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    // Not a bearer scheme, or the token as a prefix of a longer one.
    let basic =
        format!("GET /api/v1/agents HTTP/1.1\r\nHost: t\r\nAuthorization: Basic {TOKEN}\r\n\r\n");
    s.request(&basic).assert_error(401, "unauthorized");
    let longer =
        format!("GET /api/v1/agents HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}x\r\n\r\n");
    s.request(&longer).assert_error(401, "unauthorized");
    // The OpenAPI document and unknown /api/v1 paths are behind auth too.
    s.request("GET /api/v1/openapi.json HTTP/1.1\r\nHost: t\r\n\r\n")
        .assert_error(401, "unauthorized");
    s.request("GET /api/v1/nope HTTP/1.1\r\nHost: t\r\n\r\n")
        .assert_error(401, "unauthorized");
    assert!(s.calls().is_empty(), "backend called without auth");

    // Right token, scheme in any case: 200 JSON.
    let ok =
        format!("GET /api/v1/agents/u-1/status HTTP/1.1\r\nHost: t\r\nAuthorization: bearer  {TOKEN}\r\n\r\n");
    let r = s.request(&ok);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.json()["agent_id"], "u-1");
    assert_eq!(r.json()["queue_depth"], 3);
    assert_eq!(s.calls(), vec![Call::Status("u-1".into())]);
}

#[test]
fn health_metrics_and_readiness_need_no_token() {
    let script = fake::Script::default();
    let not_ready = Arc::clone(&script.not_ready);
    let s = TestServer::start_with(script, Duration::from_millis(50));
    let r = s.request("GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.json()), (200, json!({"status": "ok"})));
    let r = s.request("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.json()), (200, json!({"status": "ready"})));
    let r = s.request("GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    assert!(String::from_utf8(r.body)
        .unwrap()
        .contains("aegis_gateway_up 1"));
    not_ready.store(true, std::sync::atomic::Ordering::SeqCst);
    let r = s.request("GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((r.status, r.json()), (503, json!({"status": "draining"})));
}

#[test]
fn unknown_paths_are_404_and_wrong_methods_405_with_allow() {
    let s = TestServer::start();
    s.request("GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
        .assert_error(404, "not_found");
    s.authed("GET", "/api/v1/agents/u-1/status/x", None)
        .assert_error(404, "not_found");
    s.authed("GET", "/api/v1/agents//status", None)
        .assert_error(404, "not_found");

    let r = s.request("POST /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET"));
    let r = s.authed("GET", "/api/v1/agents/broadcast", None);
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));
    let r = s.authed("DELETE", "/api/v1/agents/broadcast", None);
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));
    // HEAD is answered without a body (the connection stays usable).
    let mut c = s.connect();
    c.send(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.body.len()), (405, 0));
    assert_eq!(r.header("allow"), Some("GET"));
    assert_eq!(c.response().json(), json!({"status": "ok"}));
    // HTTP/1.1 without Host: 400.
    s.request("GET /healthz HTTP/1.1\r\n\r\n")
        .assert_error(400, "bad_request");
    let r = s.authed("PUT", "/api/v1/agents/u-1/send", Some("{}"));
    r.assert_error(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("POST"));
    assert!(s.calls().is_empty());
}

#[test]
fn oversize_body_is_413_before_it_is_read() {
    let s = TestServer::start();
    let mut c = s.connect();
    let head = format!(
        "POST /api/v1/agents/u-1/send HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: {}\r\n\r\n",
        1024 * 1024 + 1
    );
    c.send(head.as_bytes());
    let r = c.response();
    r.assert_error(413, "payload_too_large");
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closed());
    // Exactly 1 MiB is accepted by the HTTP layer (and then judged as JSON).
    let prefix = r#"{"channel":"backend.policies","message":""#;
    let pad = "a".repeat(1024 * 1024 - prefix.len() - 2);
    let body = format!("{prefix}{pad}\"}}");
    assert_eq!(body.len(), 1024 * 1024);
    let r = s.authed("POST", "/api/v1/agents/u-1/send", Some(&body));
    assert_eq!(r.status, 200, "{:?}", r.json());
}

#[test]
fn oversize_head_is_431_and_chunked_is_411() {
    let s = TestServer::start();
    let big = format!(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(17 * 1024)
    );
    s.request(&big).assert_error(431, "header_too_large");
    let many: String = (0..70).map(|i| format!("X-H{i}: v\r\n")).collect();
    s.request(&format!("GET /healthz HTTP/1.1\r\nHost: t\r\n{many}\r\n"))
        .assert_error(431, "header_too_large");
    let chunked = format!(
        "POST /api/v1/agents/broadcast HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
         Transfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"
    );
    s.request(&chunked).assert_error(411, "length_required");
    s.request("GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1x\r\n\r\n")
        .assert_error(400, "bad_request");
    s.request(
        "GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    )
    .assert_error(400, "bad_request");
    s.request("GARBAGE\r\n\r\n")
        .assert_error(400, "bad_request");
    assert!(s.calls().is_empty());
}

#[test]
fn bad_input_is_400_with_the_json_error_shape() {
    let s = TestServer::start();
    let send = |body: &str| s.authed("POST", "/api/v1/agents/u-1/send", Some(body));
    send("{\"channel\": ").assert_error(400, "invalid_json");
    send("").assert_error(400, "invalid_json");
    send("[1]").assert_error(400, "invalid_request");
    send(r#"{"channel":"backend.policies"}"#).assert_error(400, "invalid_request");
    send(r#"{"channel":"backend.policies","message":null}"#).assert_error(400, "invalid_request");
    send(r#"{"channel":"backend.policies","message":{},"extra":1}"#)
        .assert_error(400, "invalid_request");
    send(r#"{"channel":"agent.u-1.logs","message":{}}"#).assert_error(400, "invalid_channel");
    send(r#"{"channel":"backend.u-1.heartbeat","message":{}}"#)
        .assert_error(400, "invalid_channel");
    send(r#"{"channel":7,"message":{}}"#).assert_error(400, "invalid_request");
    send(r#"{"channel":"backend.policies","message":{},"priority":10}"#)
        .assert_error(400, "invalid_request");
    send(r#"{"channel":"backend.policies","message":{},"priority":-1}"#)
        .assert_error(400, "invalid_request");
    send(r#"{"channel":"backend.policies","message":{},"priority":"high"}"#)
        .assert_error(400, "invalid_request");
    send(r#"{"channel":"backend.policies","message":{},"ttl_seconds":0}"#)
        .assert_error(400, "invalid_request");
    send(r#"{"channel":"backend.policies","message":{},"ttl_seconds":604801}"#)
        .assert_error(400, "invalid_request");
    send(r#"{"channel":"backend.policies","message":{},"message_type":"response"}"#)
        .assert_error(400, "invalid_request");
    let bc = |body: &str| s.authed("POST", "/api/v1/agents/broadcast", Some(body));
    bc(r#"{"channel":"backend.u-1.policies","message":{}}"#).assert_error(400, "invalid_channel");
    bc(r#"{"channel":"backend.policies","message":1,"agent_filter":{"osx":"linux"}}"#)
        .assert_error(400, "invalid_request");
    for q in [
        "limit=0",
        "limit=1001",
        "limit=abc",
        "connected=maybe",
        "cursor=%zz",
    ] {
        s.authed("GET", &format!("/api/v1/agents?{q}"), None)
            .assert_error(400, "invalid_query");
    }
    let long = "a".repeat(257);
    s.authed("GET", &format!("/api/v1/agents/{long}/status"), None)
        .assert_error(400, "invalid_path");
    s.authed("GET", "/api/v1/messages/%FF", None)
        .assert_error(400, "invalid_path");
    assert!(s.calls().is_empty(), "{:?}", s.calls());
}

#[test]
fn valid_requests_reach_the_backend_decoded_and_normalized() {
    let s = TestServer::start();
    let body = r#"{"channel":"backend.host.a.policies","message":{"op":"apply"},"ttl_seconds":60}"#;
    let r = s.authed("POST", "/api/v1/agents/host%2Ea/send", Some(body));
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"message_id": "m-1", "status": "queued"}));
    let r = s.authed(
        "GET",
        "/api/v1/agents?connected=false&limit=1000&cursor=a%2Bb+c&x=1",
        None,
    );
    assert_eq!(r.json()["next_cursor"], "c-2");
    let r = s.authed("POST", "/api/v1/agents/broadcast", Some(
        r#"{"channel":"backend.threats","message":[1],"message_type":"event","agent_filter":{"os":"linux"},"include_offline":true}"#,
    ));
    assert_eq!(
        r.json()["counts"],
        json!({"sent": 1, "queued": 2, "failed": 1})
    );
    assert_eq!(
        r.json()["failed"][0],
        json!({"agent_uid": "u-4", "error": "queue full"})
    );
    s.authed("GET", "/api/v1/messages/m%201", None);
    let r = s.authed("DELETE", "/api/v1/agents/u-9", None);
    r.assert_error(503, "unavailable");
    let r = s.authed("GET", "/api/v1/agents/shared-host/status", None);
    r.assert_error(409, "ambiguous_host_id");
    assert_eq!(r.json()["agent_uids"], json!(["u-1", "u-2"]));

    let calls = s.calls();
    assert_eq!(
        calls[0],
        Call::Send(
            "host.a".into(),
            SendRequest {
                kind: BackendKind::Policies,
                channel_id: Some("host.a".into()),
                message: json!({"op": "apply"}),
                message_type: MsgType::Request,
                priority: DEFAULT_PRIORITY,
                ttl_seconds: Some(60),
            }
        )
    );
    assert_eq!(
        calls[1],
        Call::List(ListQuery {
            connected: Some(false),
            limit: 1000,
            cursor: Some("a+b+c".into()),
        })
    );
    let Call::Broadcast(b) = &calls[2] else {
        panic!("{calls:?}")
    };
    assert_eq!(
        (b.kind, b.message_type, b.priority),
        (BackendKind::Threats, MsgType::Event, DEFAULT_PRIORITY)
    );
    assert!(b.include_offline);
    assert_eq!(
        b.agent_filter.as_ref().unwrap().os.as_deref(),
        Some("linux")
    );
    assert_eq!(calls[3], Call::Message("m 1".into()));
    assert_eq!(calls[4], Call::Revoke("u-9".into()));
}

#[test]
fn keep_alive_serves_several_requests_on_one_socket() {
    let s = TestServer::start();
    let mut c = s.connect();
    c.send(authed_raw("GET", "/api/v1/agents/a/status", None).as_bytes());
    let r1 = c.response();
    assert_eq!(
        (r1.status, r1.header("connection")),
        (200, Some("keep-alive"))
    );
    c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().status, 200);
    // Pipelined: two requests in one write, answered in order.
    let two = format!(
        "{}{}",
        authed_raw("GET", "/api/v1/agents/b/status", None),
        authed_raw("POST", "/api/v1/agents/c/send", Some("{bad"))
    );
    c.send(two.as_bytes());
    assert_eq!(c.response().json()["agent_id"], "b");
    c.response().assert_error(400, "invalid_json");
    // An error answered from the head alone keeps the connection when there is no body.
    c.send(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n");
    c.response().assert_error(404, "not_found");
    c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let r = c.response();
    assert_eq!((r.status, r.header("connection")), (200, Some("close")));
    assert!(c.closed());
    assert_eq!(
        s.calls(),
        vec![Call::Status("a".into()), Call::Status("b".into())]
    );

    // HTTP/1.0 is answered and closed.
    let mut c = s.connect();
    c.send(b"GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(c.response().header("connection"), Some("close"));
    assert!(c.closed());
}

#[test]
fn expect_continue_gets_100_before_the_body() {
    let s = TestServer::start();
    let mut c = s.connect();
    let body = r#"{"channel":"backend.policies","message":1}"#;
    c.send(
        format!(
            "POST /api/v1/agents/u-1/send HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\
             Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    assert_eq!(c.head().0, 100);
    c.send(body.as_bytes());
    assert_eq!(c.response().status, 200);
}

#[test]
fn openapi_paths_equal_the_route_table() {
    let s = TestServer::start();
    let r = s.authed("GET", "/api/v1/openapi.json", None);
    assert_eq!(r.status, 200);
    let doc = r.json();
    assert_eq!(doc["openapi"], "3.0.3");
    let mut from_doc: Vec<(String, String)> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.to_uppercase(), path.clone()))
        })
        .collect();
    let mut table: Vec<(String, String)> = ROUTES
        .iter()
        .map(|r| (r.method.as_str().to_owned(), r.path.to_owned()))
        .collect();
    from_doc.sort();
    table.sort();
    assert_eq!(from_doc, table);
    // Every $ref resolves.
    let text = doc.to_string();
    for part in text.split("\"$ref\":\"#/components/").skip(1) {
        let target = part.split('"').next().unwrap();
        let mut node = &doc["components"];
        for seg in target.split('/') {
            node = &node[seg];
        }
        assert!(node.is_object(), "dangling $ref {target}");
    }
}

#[test]
fn slow_requests_get_408_and_idle_connections_are_closed() {
    let opts = crate::admin::Options {
        read_timeout: Duration::from_millis(300),
        ..crate::admin::Options::default()
    };
    let s = TestServer::start_opts(fake::Script::default(), opts);
    // A partial head: 408, then closed.
    let mut c = s.connect();
    c.send(b"GET /healthz HTTP/1.1\r\nHost:");
    let r = c.response();
    r.assert_error(408, "request_timeout");
    assert!(c.closed());
    // A body that never completes: 408 too.
    let mut c = s.connect();
    c.send(
        authed_raw("POST", "/api/v1/agents/broadcast", Some("{"))
            .replace("Length: 1", "Length: 9")
            .as_bytes(),
    );
    c.response().assert_error(408, "request_timeout");
    // An idle keep-alive connection: closed quietly after one answered request.
    let mut c = s.connect();
    c.send(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(c.response().status, 200);
    let t = std::time::Instant::now();
    assert!(c.closed());
    assert!(t.elapsed() < Duration::from_secs(5));
    assert!(s.calls().is_empty());
}
