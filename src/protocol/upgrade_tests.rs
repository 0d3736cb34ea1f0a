//! Tests of `upgrade.rs`.

use super::*;

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// base64 of 32 bytes 0x01..=0x20, written out by hand.
const PK: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";

/// The request exactly as gorilla/websocket writes it for the Go agent (header order and
/// canonicalized names as Go's http.Header.Set produces them).
fn go_request(extra: &str) -> String {
    format!(
        "GET /ws/agent HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\
         User-Agent: Aegis-Agent/1.0\r\nX-Agent-Id: aegis-agent-001\r\n\
         X-Agent-Public-Key: {PK}\r\n{extra}\r\n"
    )
}

fn complete(s: &str) -> (UpgradeRequest, usize) {
    match parse(s.as_bytes(), "/ws/agent") {
        Ok(Parsed::Complete { request, consumed }) => (request, consumed),
        other => panic!("expected Complete, got {other:?}"),
    }
}

fn status(s: &str) -> u16 {
    match parse(s.as_bytes(), "/ws/agent") {
        Err(e) => e.status,
        Ok(other) => panic!("expected an error for\n{s}\ngot {other:?}"),
    }
}

#[test]
fn rfc6455_accept_key() {
    assert_eq!(accept_key(KEY), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    assert_eq!(
        accept_response(KEY),
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"
    );
}

#[test]
fn go_agent_first_connection() {
    let req = go_request("");
    let (r, consumed) = complete(&req);
    assert_eq!(consumed, req.len());
    assert_eq!(r.path, "/ws/agent");
    assert_eq!(r.ws_key, KEY);
    assert_eq!(r.user_agent, "Aegis-Agent/1.0");
    assert_eq!(r.agent_id, "aegis-agent-001");
    let want: Vec<u8> = (1..=32).collect();
    assert_eq!(r.public_key.as_slice(), want.as_slice());
    assert_eq!(r.public_key_b64, PK);
    assert_eq!(
        (r.agent_uid, r.bootstrap_token, r.protocol),
        (None, None, None)
    );
}

#[test]
fn go_agent_reconnect_and_protocol_header() {
    let uid = "0d6f1f4e-3c1b-4c1e-9a57-2f0e8b8f7a10";
    let req = go_request(&format!(
        "X-Agent-Uid: {uid}\r\nX-Bootstrap-Token: abc_DEF-123\r\n"
    ))
    .replace("X-Agent-Id: aegis-agent-001", &format!("X-Agent-Id: {uid}"));
    let (r, _) = complete(&req);
    assert!(r.is_reconnect());
    assert_eq!(r.agent_uid.as_deref(), Some(uid));
    assert_eq!(r.bootstrap_token.as_deref(), Some("abc_DEF-123"));
    assert!(
        !format!("{r:?}").contains("abc_DEF-123"),
        "token must not be logged"
    );
    for (value, want) in [("1", 1), ("2", 2)] {
        let (r, _) = complete(&go_request(&format!("X-Aegis-Protocol: {value}\r\n")));
        assert_eq!(r.protocol, Some(want));
    }
}

#[test]
fn names_are_case_insensitive_and_query_is_ignored() {
    let req = go_request("x-aegis-protocol: 2\r\n")
        .replace("X-Agent-Id", "x-agent-id")
        .replace("User-Agent", "USER-AGENT")
        .replace("Upgrade: websocket", "upgrade: WebSocket")
        .replace("Connection: Upgrade", "connection: keep-alive, Upgrade")
        .replace("/ws/agent ", "/ws/agent?token=x&y ");
    let (r, _) = complete(&req);
    assert_eq!(
        (r.agent_id.as_str(), r.protocol),
        ("aegis-agent-001", Some(2))
    );
}

#[test]
fn trailing_bytes_are_not_consumed() {
    let head = go_request("");
    let mut buf = head.clone().into_bytes();
    buf.extend_from_slice(&[0x81, 0x85, 1, 2, 3, 4]);
    match parse(&buf, "/ws/agent") {
        Ok(Parsed::Complete { consumed, .. }) => assert_eq!(consumed, head.len()),
        other => panic!("{other:?}"),
    }
}

#[test]
fn byte_by_byte_is_incomplete_until_the_end() {
    let req = go_request("").into_bytes();
    for end in 0..req.len() {
        assert_eq!(
            parse(&req[..end], "/ws/agent"),
            Ok(Parsed::Incomplete),
            "at {end}"
        );
    }
    assert!(matches!(
        parse(&req, "/ws/agent"),
        Ok(Parsed::Complete { .. })
    ));
}

#[test]
fn each_bad_case_gets_its_status() {
    let g = go_request;
    let cases: Vec<(String, u16)> = vec![
        (g("").replace("GET ", "POST "), 405),
        (g("").replace("/ws/agent ", "/ws/other "), 404),
        (g("").replace("/ws/agent ", "/ws/agent/ "), 404),
        (g("").replace("HTTP/1.1", "HTTP/1.0"), 400),
        (g("").replace("Upgrade: websocket\r\n", ""), 400),
        (g("").replace("Upgrade: websocket", "Upgrade: h2c"), 400),
        (
            g("").replace("Connection: Upgrade", "Connection: keep-alive"),
            400,
        ),
        (
            g("").replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"),
            426,
        ),
        (g("").replace("Sec-WebSocket-Version: 13\r\n", ""), 426),
        (g("Sec-WebSocket-Version: 13\r\n"), 400),
        (g("").replace(KEY, "c2hvcnQ="), 400),
        (
            g("").replace(&format!("Sec-WebSocket-Key: {KEY}\r\n"), ""),
            400,
        ),
        (g("").replace("User-Agent: Aegis-Agent/1.0\r\n", ""), 400),
        (g("").replace("Aegis-Agent/1.0", "Go-http-client/1.1"), 400),
        (g("").replace("aegis-agent-001", "bad id"), 400),
        (g("").replace("X-Agent-Id: aegis-agent-001\r\n", ""), 400),
        (
            g("").replace("X-Agent-Id: aegis-agent-001", "X-Agent-Id:"),
            400,
        ),
        (
            g("").replace(&format!("X-Agent-Public-Key: {PK}\r\n"), ""),
            400,
        ),
        (
            g("").replace(PK, "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0e"),
            400,
        ),
        (
            g("").replace(PK, "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyAh"),
            400,
        ),
        (g("X-Agent-Uid: aegis-agent-001\r\n"), 400),
        (g("X-Bootstrap-Token: abc\r\n"), 400),
        (
            g("X-Agent-Uid: someone-else\r\nX-Bootstrap-Token: abc\r\n"),
            400,
        ),
        (
            g("X-Agent-Uid: aegis-agent-001\r\nX-Bootstrap-Token: a+b\r\n"),
            400,
        ),
        (
            g(&format!(
                "X-Agent-Uid: aegis-agent-001\r\nX-Bootstrap-Token: {}\r\n",
                "t".repeat(257)
            )),
            400,
        ),
        (g("X-Aegis-Protocol: 3\r\n"), 400),
        (g("X-Aegis-Protocol: 02\r\n"), 400),
        (g("x-agent-id: aegis-agent-001\r\n"), 400),
        (g("User-Agent: Aegis-Agent/1.0\r\n"), 400),
        (g("X-Aegis-Protocol: 1\r\nX-Aegis-Protocol: 1\r\n"), 400),
        (g(&"X-Pad: 1\r\n".repeat(60)), 431),
        (
            g(&format!("X-Pad: {}\r\n", "p".repeat(MAX_UPGRADE_BYTES))),
            431,
        ),
        ("GARBAGE\r\n\r\n".to_owned(), 400),
        (
            "GET /ws/agent HTTP/1.1\r\nBad Header\r\n\r\n".to_owned(),
            400,
        ),
    ];
    for (req, want) in cases {
        assert_eq!(status(&req), want, "request:\n{req}");
    }
    // Exactly at the limit the parser still answers; one byte over without an end is 431.
    let mut long = b"GET /ws/agent HTTP/1.1\r\nX-Pad: ".to_vec();
    long.resize(MAX_UPGRADE_BYTES - 1, b'a');
    assert_eq!(parse(&long, "/ws/agent"), Ok(Parsed::Incomplete));
    long.push(b'a');
    assert_eq!(parse(&long, "/ws/agent").map_err(|e| e.status), Err(431));
    // Exactly 64 headers are fine (the Go request has 8), 65 are not.
    let (r, _) = complete(&g(&"X-Pad: 1\r\n".repeat(56)));
    assert_eq!(r.agent_id, "aegis-agent-001");
    assert_eq!(status(&g(&"X-Pad: 1\r\n".repeat(57))), 431);
    // A bootstrap token at its maximum length is fine.
    let t = "t".repeat(MAX_BOOTSTRAP_TOKEN_LEN);
    let (r, _) = complete(&g(&format!(
        "X-Agent-Uid: aegis-agent-001\r\nX-Bootstrap-Token: {t}\r\n"
    )));
    assert_eq!(r.bootstrap_token.as_deref(), Some(t.as_str()));
}

#[test]
fn error_responses() {
    let body = r#"{"error":"invalid_request","message":"bad \"x\""}"#;
    let want = format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(
        error_response(400, "invalid_request", "bad \"x\""),
        want.as_bytes()
    );
    let r = String::from_utf8(error_response(426, "upgrade_required", "v")).expect("ascii");
    assert!(r.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    assert!(r.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    for (status, phrase) in [
        (404, "Not Found"),
        (405, "Method Not Allowed"),
        (429, "Too Many Requests"),
        (431, "Request Header Fields Too Large"),
        (503, "Service Unavailable"),
    ] {
        let r = String::from_utf8(error_response(status, "k", "m")).expect("ascii");
        assert!(
            r.starts_with(&format!("HTTP/1.1 {status} {phrase}\r\n")),
            "{r}"
        );
        assert!(
            r.ends_with("\r\n\r\n{\"error\":\"k\",\"message\":\"m\"}"),
            "{r}"
        );
    }
    let e = UpgradeError::rate_limited();
    assert_eq!((e.status, e.kind), (429, "rate_limited"));
    assert!(String::from_utf8(e.response())
        .expect("ascii")
        .contains("\"error\":\"rate_limited\""));
    let e = UpgradeError::unavailable("draining");
    assert_eq!((e.status, e.kind), (503, "unavailable"));
    // The response to a parse failure is itself well-formed HTTP that httparse can read.
    let resp = match parse(
        go_request("").replace("GET ", "PUT ").as_bytes(),
        "/ws/agent",
    ) {
        Err(e) => e.response(),
        Ok(p) => panic!("{p:?}"),
    };
    let mut headers = [httparse::EMPTY_HEADER; 8];
    let mut parsed = httparse::Response::new(&mut headers);
    let n = match parsed.parse(&resp) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("{other:?}"),
    };
    assert_eq!(parsed.code, Some(405));
    let len = parsed
        .headers
        .iter()
        .find(|h| h.name == "Content-Length")
        .map(|h| {
            std::str::from_utf8(h.value)
                .expect("ascii")
                .parse::<usize>()
                .expect("number")
        });
    assert_eq!(len, Some(resp.len() - n));
}

#[test]
fn garbage_never_panics() {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let good = go_request("X-Agent-Uid: aegis-agent-001\r\nX-Bootstrap-Token: x\r\n").into_bytes();
    let alphabet = b"GET /\r\n:, \t\x00\xff\x80HTP1.3-_=+aZ";
    for round in 0..3000 {
        let buf: Vec<u8> = if round % 3 == 0 {
            (0..next() % 600).map(|_| next() as u8).collect()
        } else {
            let mut m = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % m.len();
                let b = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 => m[at] = b,
                    1 => m.insert(at, b),
                    _ => {
                        m.remove(at);
                    }
                }
            }
            m
        };
        match parse(&buf, "/ws/agent") {
            Ok(Parsed::Complete { consumed, request }) => {
                assert!(consumed <= buf.len());
                assert!(request
                    .agent_uid
                    .as_deref()
                    .is_none_or(|u| u == request.agent_id));
            }
            Ok(Parsed::Incomplete) => assert!(buf.len() < MAX_UPGRADE_BYTES),
            Err(e) => assert!([400, 404, 405, 426, 431].contains(&e.status)),
        }
    }
}
