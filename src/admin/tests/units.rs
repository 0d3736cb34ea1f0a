//! Sans-IO units: head parsing, query and percent-decoding, validation, routing, auth, framing.

use crate::admin::api::{self, ApiError};
use crate::admin::http::{parse_head, HttpError, Response, MAX_HEAD};
use crate::admin::query::{self, percent_decode, DecodeError};
use crate::admin::routes::{match_template, resolve, Route, TokenCheck};
use crate::admin::sse;
use serde_json::json;

#[test]
fn head_parsing_needs_more_bytes_then_completes() {
    let raw =
        b"POST /a/b?x=1 HTTP/1.1\r\nContent-Length: 3\r\nConnection: Keep-Alive, Close\r\n\r\nabc";
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

    let (head, _) = parse_head(b"GET / HTTP/1.1\r\n\r\n").unwrap().unwrap();
    assert!(head.keep_alive && head.content_length == 0 && head.query.is_none());
    let (head, _) = parse_head(b"GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
    assert!(!head.keep_alive);
}

#[test]
fn head_limits_and_refusals() {
    let mut big = b"GET / HTTP/1.1\r\nX: ".to_vec();
    big.resize(MAX_HEAD, b'a');
    assert_eq!(parse_head(&big), Err(HttpError::HeadTooLarge));
    assert_eq!(
        parse_head(b"POST / HTTP/1.1\r\nContent-Length: 1048577\r\n\r\n"),
        Err(HttpError::BodyTooLarge)
    );
    assert!(parse_head(b"POST / HTTP/1.1\r\nContent-Length: 1048576\r\n\r\n").is_ok());
    assert_eq!(
        parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
        Err(HttpError::LengthRequired)
    );
    for bad in [
        &b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"[..],
        b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET http://x/ HTTP/1.1\r\n\r\n",
        b"GET / HTTP/2.0\r\n\r\n",
    ] {
        assert!(
            matches!(parse_head(bad), Err(HttpError::BadRequest(_))),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    let e = HttpError::LengthRequired.to_api();
    assert_eq!((e.status, e.error), (411, "length_required"));
    assert_eq!(HttpError::HeadTooLarge.to_api().status, 431);
    assert_eq!(HttpError::BodyTooLarge.to_api().status, 413);
}

#[test]
fn a_head_is_decided_by_its_first_max_head_bytes() {
    // Found by the `admin_request` fuzz harness: an unfinished head longer than MAX_HEAD with a
    // byte httparse refuses after MAX_HEAD was 431 for a reader holding MAX_HEAD bytes but 400
    // for one that had read past them (the answer depended on how TCP split the bytes).
    let mut raw = format!("GET / HTTP/1.1\r\nX-Long: {}", "a".repeat(MAX_HEAD)).into_bytes();
    raw.extend_from_slice(b"\x01\r\n\r\n");
    assert_eq!(parse_head(&raw[..MAX_HEAD]), Err(HttpError::HeadTooLarge));
    assert_eq!(parse_head(&raw), Err(HttpError::HeadTooLarge));
    // A head of exactly MAX_HEAD bytes is still accepted, with bytes after it.
    let mut exact = b"GET / HTTP/1.1\r\nX: ".to_vec();
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
        assert_eq!((e.status, e.error), (400, "invalid_query"), "{bad}");
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
    assert_eq!(ok.priority, Some(0));
    assert_eq!(ok.message_type.as_deref(), Some("request"));
    let code = |r: Result<_, ApiError>| r.map(|_| ()).unwrap_err().error;
    assert_eq!(code(api::parse_send(b"  ")), "invalid_json");
    assert_eq!(code(api::parse_send(b"{\"a\"")), "invalid_json");
    assert_eq!(code(api::parse_send(b"\"str\"")), "invalid_request");
    assert_eq!(
        code(api::parse_send(br#"{"message":1}"#)),
        "invalid_request"
    );
    assert_eq!(
        code(api::parse_send(br#"{"channel":"backend","message":1}"#)),
        "invalid_channel"
    );
    let b = api::parse_broadcast(br#"{"channel":"backend.rollbacks","message":false}"#).unwrap();
    assert_eq!(b.message, json!(false));
    assert_eq!(b.message_type.as_deref(), Some("request"));
    let many: Vec<String> = (0..100_001).map(|i| i.to_string()).collect();
    let body =
        json!({"channel": "backend.policies", "message": 1, "agent_filter": {"agent_uids": many}});
    let e = api::parse_broadcast(body.to_string().as_bytes()).unwrap_err();
    assert_eq!(e.error, "invalid_request");
    assert!(e.message.contains("100000"), "{}", e.message);
}

#[test]
fn api_error_body_merges_extra_without_overriding() {
    let e = ApiError::conflict(
        "ambiguous_host_id",
        "m",
        json!({"agent_uids": ["a"], "message": "x"}),
    );
    assert_eq!(e.status, 409);
    assert_eq!(
        e.body(),
        json!({"error": "ambiguous_host_id", "message": "m", "agent_uids": ["a"]})
    );
    let mut odd = ApiError::internal("boom");
    odd.extra = Some(json!([1]));
    assert_eq!(
        odd.body(),
        json!({"error": "internal", "message": "boom", "details": [1]})
    );
    assert_eq!(ApiError::unavailable("d").status, 503);
    assert_eq!(ApiError::not_found("agent_not_found", "n").status, 404);
    assert_eq!(
        ApiError::bad_request("x", "y").body(),
        json!({"error": "x", "message": "y"})
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
fn resolve_prefers_the_method_that_matches() {
    let t = TokenCheck::new("k");
    let head = |raw: &str| parse_head(raw.as_bytes()).unwrap().unwrap().0;
    let r = resolve(
        &head("DELETE /api/v1/agents/broadcast HTTP/1.1\r\nAuthorization: Bearer k\r\n\r\n"),
        &t,
    )
    .unwrap();
    assert_eq!(
        (r.route, r.param.as_deref()),
        (Route::Revoke, Some("broadcast"))
    );
    let r = resolve(
        &head("POST /api/v1/agents/broadcast HTTP/1.1\r\nAuthorization: Bearer k\r\n\r\n"),
        &t,
    )
    .unwrap();
    assert_eq!((r.route, r.param), (Route::Broadcast, None));
    let r = resolve(&head("GET /healthz HTTP/1.1\r\n\r\n"), &t).unwrap();
    assert_eq!(r.route, Route::Healthz);
    assert_eq!(
        resolve(&head("GET /api/v1 HTTP/1.1\r\n\r\n"), &t)
            .unwrap_err()
            .status,
        401
    );
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
    assert_eq!((e.status, e.error), (507, "insufficient_storage"));
    assert_eq!(
        e.body(),
        json!({"error": "insufficient_storage", "message": "disk full"})
    );
    let e = ApiError::storage_unavailable("reopening");
    assert_eq!((e.status, e.error), (503, "storage_unavailable"));
    let bytes = Response::json(507, &e.body()).to_bytes(false);
    let text = String::from_utf8_lossy(&bytes);
    assert!(
        text.starts_with("HTTP/1.1 507 Insufficient Storage\r\n"),
        "{text}"
    );
}
