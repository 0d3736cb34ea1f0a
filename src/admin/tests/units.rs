//! Sans-IO units: head parsing, query and percent-decoding, validation, routing, auth, framing.

use crate::admin::api::{self, ApiError, ErrorKind};
use crate::admin::http::{parse_head, HttpError, Response, MAX_HEAD};
use crate::admin::query::{self, percent_decode, DecodeError};
use crate::admin::routes::{match_template, resolve, Route, TokenCheck};
use crate::admin::sse;
use crate::protocol::channel::BackendKind;
use crate::protocol::envelope::MsgType;
use serde_json::json;

#[test]
fn head_parsing_needs_more_bytes_then_completes() {
    let raw =
        b"POST /a/b?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nConnection: Keep-Alive, Close\r\n\r\nabc";
    for cut in 0..raw.len() - 3 {
        assert_eq!(parse_head(&raw[..cut]), Ok(None), "cut {cut}");
    }
    let (head, n) = parse_head(raw).unwrap().unwrap();
    assert_eq!(n, raw.len() - 3);
    assert_eq!((head.method.as_str(), head.path.as_str()), ("POST", "/a/b"));
    assert_eq!(head.query.as_deref(), Some("x=1"));
    assert_eq!(head.content_length, 3);
    assert!(!head.keep_alive);
    assert_eq!(head.header("content-length"), Some("3"));

    let (head, _) = parse_head(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap()
        .unwrap();
    assert!(head.keep_alive && head.content_length == 0 && head.query.is_none());
    let (head, _) = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
    assert!(!head.keep_alive);
}

#[test]
fn head_limits_and_refusals() {
    let mut big = b"GET / HTTP/1.1\r\nHost: t\r\nX: ".to_vec();
    big.resize(MAX_HEAD, b'a');
    assert_eq!(parse_head(&big), Err(HttpError::HeadTooLarge));
    assert_eq!(
        parse_head(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n"),
        Err(HttpError::BodyTooLarge)
    );
    assert!(parse_head(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n").is_ok());
    assert_eq!(
        parse_head(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Err(HttpError::LengthRequired)
    );
    for bad in [
        &b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET http://x/ HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
    ] {
        assert!(
            matches!(parse_head(bad), Err(HttpError::BadRequest(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let e = HttpError::LengthRequired.to_api();
    assert_eq!((e.status(), e.code()), (411, "length_required"));
    assert_eq!(HttpError::HeadTooLarge.to_api().status(), 431);
    assert_eq!(HttpError::BodyTooLarge.to_api().status(), 413);
}

#[test]
fn a_head_is_decided_by_its_first_max_head_bytes() {
    // Found by the `admin_request` fuzz harness: an unfinished head longer than MAX_HEAD with a
    // byte httparse refuses after MAX_HEAD was 431 for a reader holding MAX_HEAD bytes but 400
    // for one that had read past them (the answer depended on how TCP split the bytes).
    let mut raw = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Long: {}",
        "a".repeat(MAX_HEAD)
    )
    .into_bytes();
    raw.extend_from_slice(b"\x01\r\n\r\n");
    assert_eq!(parse_head(&raw[..MAX_HEAD]), Err(HttpError::HeadTooLarge));
    assert_eq!(parse_head(&raw), Err(HttpError::HeadTooLarge));
    // A head of exactly MAX_HEAD bytes is still accepted, with bytes after it.
    let mut exact = b"GET / HTTP/1.1\r\nHost: t\r\nX: ".to_vec();
    exact.resize(MAX_HEAD - 4, b'a');
    exact.extend_from_slice(b"\r\n\r\nbody");
    assert_eq!(
        parse_head(&exact).map(|h| h.map(|(_, n)| n)),
        Ok(Some(MAX_HEAD))
    );
}

#[test]
fn response_bytes() {
    let r = Response::json(200, &json!({"a": 1})).with_header("Allow", "GET");
    let bytes = String::from_utf8(r.to_bytes(true)).unwrap();
    assert!(bytes.starts_with("HTTP/1.1 200 OK\r\nContent-Length: 7\r\nConnection: keep-alive\r\n"));
    assert!(bytes.contains("Content-Type: application/json\r\n"));
    assert!(bytes.ends_with("Allow: GET\r\n\r\n{\"a\":1}"));
    assert!(String::from_utf8(r.to_bytes(false))
        .unwrap()
        .contains("Connection: close\r\n"));
}

#[test]
fn percent_decoding() {
    assert_eq!(percent_decode("a%2Fb%20c+d", 64).unwrap(), "a/b c+d");
    assert_eq!(percent_decode("%C3%A9", 64).unwrap(), "é");
    assert_eq!(percent_decode("%", 64), Err(DecodeError::BadEscape));
    assert_eq!(percent_decode("%4", 64), Err(DecodeError::BadEscape));
    assert_eq!(percent_decode("%zz", 64), Err(DecodeError::BadEscape));
    assert_eq!(percent_decode("%FF", 64), Err(DecodeError::NotUtf8));
    assert_eq!(percent_decode("abcd", 4).unwrap(), "abcd");
    assert_eq!(percent_decode("abcde", 4), Err(DecodeError::TooLong(4)));
    assert_eq!(
        percent_decode("%41%41%41%41%41", 4),
        Err(DecodeError::TooLong(4))
    );
}

#[test]
fn list_query() {
    let q = query::parse_list_query(None).unwrap();
    assert_eq!((q.connected, q.limit, q.cursor), (None, 100, None));
    let q = query::parse_list_query(Some("connected=true&limit=1&cursor=x%3Dy&&z")).unwrap();
    assert_eq!(
        (q.connected, q.limit, q.cursor.as_deref()),
        (Some(true), 1, Some("x=y"))
    );
    for bad in [
        "limit=",
        "limit=-1",
        "limit=1001",
        "connected=1",
        "cursor=%",
    ] {
        let e = query::parse_list_query(Some(bad)).unwrap_err();
        assert_eq!((e.status(), e.code()), (400, "invalid_query"), "{bad}");
    }
    let long = format!("cursor={}", "a".repeat(1025));
    assert!(query::parse_list_query(Some(&long)).is_err());
}

#[test]
fn events_query() {
    let q = query::parse_events_query(None, None).unwrap();
    assert_eq!((q.pattern.as_str(), q.after), ("", 0));
    let q =
        query::parse_events_query(Some("channel=agent.>&last_event_id=5"), Some(" 8 ")).unwrap();
    assert_eq!((q.pattern.as_str(), q.after), ("agent.>", 8));
    let q = query::parse_events_query(Some("last_event_id=5"), None).unwrap();
    assert_eq!(q.after, 5);
    assert!(query::parse_events_query(Some("channel=a%20b"), None).is_err());
    let long = format!("channel={}", "a".repeat(257));
    assert!(query::parse_events_query(Some(&long), None).is_err());
    assert!(query::parse_events_query(None, Some("-1")).is_err());
}

#[test]
fn send_and_broadcast_validation() {
    let ok =
        api::parse_send(br#"{"channel":"backend.u-1.tests","message":"x","priority":0}"#).unwrap();
    assert_eq!(
        (ok.kind, ok.channel_id.as_deref(), ok.priority),
        (BackendKind::Tests, Some("u-1"), 0)
    );
    assert_eq!((ok.message_type, ok.ttl_seconds), (MsgType::Request, None));
    let ok = api::parse_send(
        br#"{"channel":"backend.rollbacks","message":[],"message_type":"event","ttl_seconds":9}"#,
    )
    .unwrap();
    assert_eq!(
        (ok.kind, ok.channel_id, ok.message_type, ok.priority),
        (
            BackendKind::Rollbacks,
            None,
            MsgType::Event,
            api::DEFAULT_PRIORITY
        )
    );
    assert_eq!(ok.ttl_seconds, Some(9));
    fn code<T>(r: Result<T, ApiError>) -> ErrorKind {
        r.map(|_| ()).unwrap_err().kind
    }
    assert_eq!(code(api::parse_send(b"  ")), ErrorKind::InvalidJson);
    assert_eq!(code(api::parse_send(b"{\"a\"")), ErrorKind::InvalidJson);
    assert_eq!(code(api::parse_send(b"\"str\"")), ErrorKind::InvalidRequest);
    assert_eq!(
        code(api::parse_send(br#"{"message":1}"#)),
        ErrorKind::InvalidRequest
    );
    assert_eq!(
        code(api::parse_send(br#"{"channel":"backend","message":1}"#)),
        ErrorKind::InvalidChannel
    );
    assert_eq!(
        code(api::parse_send(
            br#"{"channel":"backend.policies","message":1,"message_type":"ack"}"#
        )),
        ErrorKind::InvalidRequest
    );
    // Optional fields may be absent but not null (the schema does not allow null).
    for body in [
        &br#"{"channel":"backend.policies","message":1,"message_type":null}"#[..],
        br#"{"channel":"backend.policies","message":1,"priority":null}"#,
        br#"{"channel":"backend.policies","message":1,"ttl_seconds":null}"#,
    ] {
        assert_eq!(code(api::parse_send(body)), ErrorKind::InvalidRequest);
    }
    for body in [
        &br#"{"channel":"backend.policies","message":1,"message_type":null}"#[..],
        br#"{"channel":"backend.policies","message":1,"include_offline":null}"#,
        br#"{"channel":"backend.policies","message":1,"agent_filter":null}"#,
        br#"{"channel":"backend.policies","message":1,"agent_filter":{"os":null}}"#,
    ] {
        assert_eq!(code(api::parse_broadcast(body)), ErrorKind::InvalidRequest);
    }
    let b = api::parse_broadcast(br#"{"channel":"backend.rollbacks","message":false}"#).unwrap();
    assert_eq!(b.message, json!(false));
    assert_eq!(
        (b.kind, b.message_type, b.priority, b.include_offline),
        (
            BackendKind::Rollbacks,
            MsgType::Request,
            api::DEFAULT_PRIORITY,
            false
        )
    );
    assert_eq!(
        code(api::parse_broadcast(
            br#"{"channel":"backend.policies","message":1,"priority":1}"#
        )),
        ErrorKind::InvalidRequest,
        "a broadcast has no priority"
    );
    let many: Vec<String> = (0..100_001).map(|i| i.to_string()).collect();
    let body =
        json!({"channel": "backend.policies", "message": 1, "agent_filter": {"agent_uids": many}});
    let e = api::parse_broadcast(body.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.code(), "invalid_request");
    assert!(e.message.contains("100000"), "{}", e.message);
}

#[test]
fn every_error_kind_has_one_status_and_its_own_code() {
    let mut codes = std::collections::HashSet::new();
    for kind in ErrorKind::ALL {
        assert!((400..600).contains(&kind.status()), "{kind:?}");
        assert!(codes.insert(kind.code()), "{} used twice", kind.code());
        let e = ApiError::new(kind, "m");
        assert_eq!((e.status(), e.code()), (kind.status(), kind.code()));
        assert_eq!(e.body(), json!({"error": kind.code(), "message": "m"}));
        assert_ne!(crate::admin::http::reason(kind.status()), "Unknown");
    }
    assert_eq!(ErrorKind::QueueFull.status(), 429);
    assert_eq!(ErrorKind::AgentNotFound.code(), "agent_not_found");
}

#[test]
fn api_error_body_merges_extra_without_overriding() {
    let e = ApiError::new(ErrorKind::AmbiguousHostId, "m")
        .with_extra(json!({"agent_uids": ["a"], "message": "x"}));
    assert_eq!(e.status(), 409);
    assert_eq!(
        e.body(),
        json!({"error": "ambiguous_host_id", "message": "m", "agent_uids": ["a"]})
    );
    let e = ApiError::ambiguous_host_id("m", &["a".into(), "b".into()]);
    assert_eq!(e.body()["agent_uids"], json!(["a", "b"]));
    let odd = ApiError::internal("boom").with_extra(json!([1]));
    assert_eq!(
        odd.body(),
        json!({"error": "internal", "message": "boom", "details": [1]})
    );
    assert_eq!(ApiError::unavailable("d").status(), 503);
    assert_eq!(ApiError::agent_not_found("n").status(), 404);
    assert_eq!(
        ApiError::invalid_request("y").to_string(),
        "400 invalid_request: y"
    );
}

#[test]
fn templates_match_one_segment_per_parameter() {
    assert_eq!(
        match_template("/a/{id}/s", "/a/x%2Fy/s"),
        Some(Some("x%2Fy"))
    );
    assert_eq!(match_template("/a/{id}/s", "/a//s"), None);
    assert_eq!(match_template("/a/{id}/s", "/a/x/s/"), None);
    assert_eq!(match_template("/a", "/a"), Some(None));
    assert_eq!(match_template("/a", "/a/"), None);
    assert_eq!(match_template("/a/b", "/a/c"), None);
}

#[test]
fn token_check_is_exact_and_refuses_empty() {
    let t = TokenCheck::new("secret");
    assert!(t.matches(b"secret"));
    assert!(!t.matches(b"secreT"));
    assert!(!t.matches(b"secret "));
    assert!(!t.matches(b""));
    let empty = TokenCheck::new("");
    assert!(!empty.matches(b""));
    assert!(!empty.matches(b"x"));
}

#[test]
fn literal_routes_shadow_templates() {
    let t = TokenCheck::new("k");
    let head = |m: &str, path: &str| {
        let raw = format!("{m} {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer k\r\n\r\n");
        parse_head(raw.as_bytes()).unwrap().unwrap().0
    };
    // Regression: DELETE /api/v1/agents/broadcast revoked an agent named "broadcast".
    let r = resolve(&head("DELETE", "/api/v1/agents/broadcast"), &t).unwrap_err();
    assert_eq!(r.status, 405);
    let allow = |r: &crate::admin::http::Response| {
        r.headers
            .iter()
            .find(|(n, _)| *n == "Allow")
            .map(|(_, v)| v.clone())
    };
    assert_eq!(allow(&r).as_deref(), Some("POST"));
    // OPTIONS: the Allow of exactly the route the path names.
    for (path, want) in [
        ("/api/v1/agents/broadcast", "POST"),
        ("/api/v1/agents/u-1", "DELETE"),
        ("/api/v1/agents/u-1/send", "POST"),
        ("/api/v1/agents", "GET"),
        ("/healthz", "GET"),
    ] {
        let r = resolve(&head("OPTIONS", path), &t).unwrap_err();
        assert_eq!(
            (r.status, allow(&r).as_deref()),
            (405, Some(want)),
            "{path}"
        );
    }
    let r = resolve(&head("POST", "/api/v1/agents/broadcast"), &t).unwrap();
    assert_eq!((r.route, r.param), (Route::Broadcast, None));
    // An agent whose id is "broadcast" is still reachable where no literal route competes.
    let r = resolve(&head("GET", "/api/v1/agents/broadcast/status"), &t).unwrap();
    assert_eq!(
        (r.route, r.param.as_deref()),
        (Route::AgentStatus, Some("broadcast"))
    );
    let r = resolve(&head("DELETE", "/api/v1/agents/u-1"), &t).unwrap();
    assert_eq!((r.route, r.param.as_deref()), (Route::Revoke, Some("u-1")));
    let r = resolve(&head("GET", "/healthz"), &t).unwrap();
    assert_eq!(r.route, Route::Healthz);
    assert_eq!(
        resolve(&head("GET", "/api/v1"), &TokenCheck::new("other"))
            .unwrap_err()
            .status,
        401
    );
}

#[test]
fn agent_path_ids_are_agent_ids_and_message_ids_any_text() {
    let t = TokenCheck::new("k");
    let get = |path: &str| {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer k\r\n\r\n");
        resolve(&parse_head(raw.as_bytes()).unwrap().unwrap().0, &t)
    };
    let ok = |path: &str| get(path).unwrap().param.unwrap();
    assert_eq!(ok("/api/v1/agents/host%2Ea@x_y-1/status"), "host.a@x_y-1");
    assert_eq!(
        ok(&format!("/api/v1/agents/{}/status", "a".repeat(128))),
        "a".repeat(128)
    );
    assert_eq!(ok("/api/v1/messages/m%201%2F%C3%A9"), "m 1/é");
    for bad in [
        "/api/v1/agents/a%20b/status",
        "/api/v1/agents/a%2Fb/status",
        "/api/v1/agents/%C3%A9/status",
        "/api/v1/agents/%ZZ/status",
    ] {
        let r = get(bad).unwrap_err();
        assert_eq!(r.status, 400, "{bad}");
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "invalid_path", "{bad}");
    }
    let long = format!("/api/v1/agents/{}/status", "a".repeat(129));
    assert_eq!(get(&long).unwrap_err().status, 400);
}

#[test]
fn http11_needs_exactly_one_host() {
    // Regression: an HTTP/1.1 request without Host was served (RFC 9112 §3.2: 400).
    for raw in [
        &b"GET /healthz HTTP/1.1\r\n\r\n"[..],
        b"GET /healthz HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n",
        b"GET /healthz HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        assert!(
            matches!(parse_head(raw), Err(HttpError::BadRequest(_))),
            "{:?}",
            String::from_utf8_lossy(raw)
        );
    }
    assert!(parse_head(b"GET /healthz HTTP/1.1\r\nHOST: a\r\n\r\n").is_ok());
    assert!(parse_head(b"GET /healthz HTTP/1.0\r\n\r\n").is_ok());
}

#[test]
fn sse_frames() {
    let mut out = Vec::new();
    let mut ev = super::fake::event(5, "ev\nil");
    sse::frame(&ev, &mut out);
    let text = String::from_utf8(out).unwrap();
    assert!(text.starts_with("id: 5\nevent: evil\ndata: {"), "{text:?}");
    assert!(text.ends_with("}\n\n"));
    assert_eq!(
        text.matches('\n').count(),
        4,
        "a raw newline leaked into data: {text:?}"
    );
    ev.message_type.clear();
    let mut out = Vec::new();
    sse::frame(&ev, &mut out);
    assert!(String::from_utf8(out).unwrap().starts_with("id: 5\ndata: "));
    let err = String::from_utf8(sse::error_frame(&ApiError::internal("x"))).unwrap();
    assert_eq!(
        err,
        "event: error\ndata: {\"error\":\"internal\",\"message\":\"x\"}\n\n"
    );
}

#[test]
fn storage_errors_are_documented_and_framed() {
    let doc = crate::admin::openapi::document();
    let send = &doc["paths"]["/api/v1/agents/{id}/send"]["post"]["responses"];
    let broadcast = &doc["paths"]["/api/v1/agents/broadcast"]["post"]["responses"];
    for status in ["503", "507"] {
        assert!(send[status].is_object(), "send documents {status}");
        assert!(
            broadcast[status].is_object(),
            "broadcast documents {status}"
        );
    }
    let e = ApiError::insufficient_storage("disk full");
    assert_eq!((e.status(), e.code()), (507, "insufficient_storage"));
    assert_eq!(
        e.body(),
        json!({"error": "insufficient_storage", "message": "disk full"})
    );
    let e = ApiError::storage_unavailable("reopening");
    assert_eq!((e.status(), e.code()), (503, "storage_unavailable"));
    let bytes = Response::json(507, &e.body()).to_bytes(false);
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.starts_with("HTTP/1.1 507 Insufficient Storage\r\n"),
        "{text}"
    );
}

#[test]
fn a_commands_numbers_are_kept_exactly() {
    // Found by the admin_request fuzz target: without serde_json's float_roundtrip the last
    // digit of this number changed between the request and the queued command.
    let body = br#"{"channel":"backend.policies","message":{"x":3.333333333333337e102,"y":0.1}}"#;
    let req = crate::admin::api::parse_send(body).unwrap();
    let again: serde_json::Value =
        serde_json::from_str(&serde_json::to_string(&req.message).unwrap()).unwrap();
    assert_eq!(again, req.message);
    assert_eq!(req.message["x"].as_f64(), Some(3.333333333333337e102));
}
