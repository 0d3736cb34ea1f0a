//! The HTTP registration fallback on the agent port (PROTOCOL §9), sans IO: recognising
//! `POST /agents/register/init` and `/complete`, their size limits, the JSON answers. The rules
//! themselves (request checks, challenge, completion) are [`super::registration`]'s, shared
//! with the WebSocket path; the shard reads the body and calls the fleet state.

use super::payloads::to_json;
use super::registration::Refusal;
use super::upgrade::{error_response, parse_head, UpgradeError, MAX_HEADERS};

/// Largest accepted request body (a registration request is well under 4 KiB).
pub const MAX_BODY: usize = 16 * 1024;

/// Path of the first step.
pub const INIT_PATH: &str = "/agents/register/init";
/// Path of the second step.
pub const COMPLETE_PATH: &str = "/agents/register/complete";

/// Which step a request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `POST /agents/register/init`: a registration request → the challenge.
    Init,
    /// `POST /agents/register/complete`: the signed challenge → uid and bootstrap token.
    Complete,
}

/// A registration request's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The step.
    pub route: Route,
    /// `Content-Length`.
    pub body_len: usize,
    /// Bytes of the head (the body follows).
    pub consumed: usize,
}

/// What the bytes read so far are.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a registration request: the WebSocket upgrade parser decides.
    NotOurs,
    /// A registration request whose head is not complete yet.
    Incomplete,
    /// A complete registration head.
    Request(Head),
}

/// Recognises a registration request in `buf` (the bytes read so far). Anything that is not a
/// `POST` to one of the two paths is [`Parsed::NotOurs`]. Errors: 431 for a head over 16 KiB,
/// 400 for a malformed head, a missing `Content-Length` or a chunked body, 413 for a body over
/// [`MAX_BODY`]. Never panics.
pub fn parse(buf: &[u8]) -> Result<Parsed, UpgradeError> {
    if !buf.starts_with(b"POST ") {
        // A prefix of "POST " might still become one.
        return Ok(if b"POST ".starts_with(buf) {
            Parsed::Incomplete
        } else {
            Parsed::NotOurs
        });
    }
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let Some(consumed) = parse_head(&mut req, buf, "request head exceeds 16 KiB")? else {
        return Ok(Parsed::Incomplete);
    };
    let target = req.path.unwrap_or("");
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let route = match path {
        INIT_PATH => Route::Init,
        COMPLETE_PATH => Route::Complete,
        _ => return Ok(Parsed::NotOurs),
    };
    let mut body_len = None;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(UpgradeError::invalid(
                "Transfer-Encoding is not supported; send Content-Length",
            ));
        }
        if h.name.eq_ignore_ascii_case("content-length") {
            let len = std::str::from_utf8(h.value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok());
            match (len, body_len) {
                (Some(n), None) => body_len = Some(n),
                (Some(n), Some(m)) if n == m => {}
                _ => return Err(UpgradeError::invalid("invalid Content-Length")),
            }
        }
    }
    let Some(body_len) = body_len else {
        return Err(UpgradeError::invalid("Content-Length is required"));
    };
    if body_len > MAX_BODY {
        return Err(UpgradeError::new(
            413,
            "payload_too_large",
            "request body exceeds 16 KiB",
        ));
    }
    Ok(Parsed::Request(Head {
        route,
        body_len,
        consumed,
    }))
}

/// A `200` answer with the JSON of `body`; the connection closes after it.
pub fn ok(body: &impl serde::Serialize) -> Vec<u8> {
    let json = to_json(body);
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nConnection: close\r\n\r\n{json}",
        json.len()
    )
    .into_bytes()
}

/// The answer to a refused step: PROTOCOL §9's status and `{"error","message"}`.
pub fn refused(r: Refusal) -> Vec<u8> {
    error_response(r.http_status(), r.code(), &r.to_string())
}

/// The answer when the fleet state cannot take or give the registration.
pub fn unavailable() -> Vec<u8> {
    error_response(
        503,
        "storage_unavailable",
        "the registration could not be stored; retry later",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::upgrade::MAX_UPGRADE_BYTES;

    fn post(path: &str, extra: &str) -> Vec<u8> {
        format!("POST {path} HTTP/1.1\r\nHost: gw\r\n{extra}\r\n").into_bytes()
    }

    #[test]
    fn recognises_both_routes_and_nothing_else() {
        let head = post(INIT_PATH, "Content-Length: 12\r\n");
        assert_eq!(
            parse(&head).unwrap(),
            Parsed::Request(Head {
                route: Route::Init,
                body_len: 12,
                consumed: head.len()
            })
        );
        let head = post(COMPLETE_PATH, "content-length: 0\r\n");
        assert!(matches!(
            parse(&head).unwrap(),
            Parsed::Request(Head {
                route: Route::Complete,
                ..
            })
        ));
        for other in [
            b"GET /ws/agent HTTP/1.1\r\n\r\n".to_vec(),
            b"GET /agents/register/init HTTP/1.1\r\n\r\n".to_vec(),
            post("/agents/register", "Content-Length: 1\r\n"),
        ] {
            assert_eq!(parse(&other).unwrap(), Parsed::NotOurs);
        }
        assert_eq!(parse(b"PO").unwrap(), Parsed::Incomplete);
        assert_eq!(
            parse(b"POST /agents/register/init HTTP/1.1\r\n").unwrap(),
            Parsed::Incomplete
        );
    }

    #[test]
    fn size_and_framing_limits() {
        let status = |b: &[u8]| parse(b).unwrap_err().status;
        assert_eq!(status(&post(INIT_PATH, "")), 400, "no Content-Length");
        assert_eq!(
            status(&post(INIT_PATH, "Transfer-Encoding: chunked\r\n")),
            400
        );
        assert_eq!(status(&post(INIT_PATH, "Content-Length: -1\r\n")), 400);
        assert_eq!(
            status(&post(
                INIT_PATH,
                "Content-Length: 1\r\nContent-Length: 2\r\n"
            )),
            400
        );
        assert_eq!(status(&post(INIT_PATH, "Content-Length: 16385\r\n")), 413);
        let mut big = post(INIT_PATH, "Content-Length: 1\r\n");
        big.truncate(big.len() - 2);
        big.extend(std::iter::repeat_n(b'a', MAX_UPGRADE_BYTES));
        assert_eq!(status(&big), 431);
        assert_eq!(
            status(b"POST /agents/register/init\x00 HTTP/1.1\r\n\r\n"),
            400
        );
    }

    #[test]
    fn answers_carry_status_and_json() {
        let ok = String::from_utf8(ok(&serde_json::json!({"a": 1}))).unwrap();
        assert!(
            ok.starts_with("HTTP/1.1 200 OK\r\n") && ok.ends_with("{\"a\":1}"),
            "{ok}"
        );
        let r = String::from_utf8(refused(Refusal::HostMismatch)).unwrap();
        assert!(r.starts_with("HTTP/1.1 409 "), "{r}");
        assert!(r.contains(r#""error":"host_id_mismatch""#), "{r}");
    }
}
