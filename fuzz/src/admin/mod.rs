//! The `admin_request` target: the admin API's sans-IO request path on arbitrary bytes — what
//! `admin::serve` does per connection, without sockets: [`parse_head`] on the bytes read so
//! far, [`routes::resolve`] (bearer auth, route table, path parameter), the body by
//! `Content-Length`, [`routes::dispatch`] to a [`Mock`] backend (query strings, JSON body
//! validation), the response bytes; then the next pipelined request while keep-alive. The pure
//! validators are also called directly on the head's query and on the bytes after the head.
//! Invariants:
//!
//! - nothing panics, and a dispatch never waits;
//! - every prefix of the stream parses to `Ok(None)` or to the same result as the whole stream,
//!   since a reader stops at the first other result (every prefix up to a byte past the end of a
//!   complete head, for heads of at most [`EVERY_PREFIX_MAX`] bytes; past that, the prefixes
//!   around line ends, at the input's two cut points, around the decision and around `MAX_HEAD`);
//! - sizes are bounded: a complete head is ≤ `MAX_HEAD` bytes with ≤ `MAX_HEADERS` lines and a
//!   body ≤ `MAX_BODY`; an incomplete head is shorter than `MAX_HEAD` (longer ones are refused);
//! - a route under `/api/v1/` is only resolved with the right bearer token; a resolved route's
//!   method and template match the request, and its parameter is non-empty and ≤ 256 bytes; a
//!   refusal is 400/401/404/405, a 405 lists exactly the methods whose templates match;
//! - the backend only sees what its trait documents (asserted by [`Mock`]);
//! - every response serializes to exactly one valid HTTP/1.1 response (status with a known
//!   reason, `Content-Length` equal to the body, no header line added by input), and every
//!   error body is a JSON object with string `error` and `message`.

pub mod backend;

use aegis_gateway::admin::api::{self, MAX_CURSOR_LEN};
use aegis_gateway::admin::http::{self, parse_head, Head, HttpError, Response, MAX_BODY, MAX_HEAD};
use aegis_gateway::admin::query::{self, MAX_PATTERN_LEN};
use aegis_gateway::admin::routes::{self, Reply, Route, TokenCheck, AUTH_PREFIX, ROUTES};
use aegis_gateway::protocol::channel;
use aegis_gateway::protocol::payloads::is_agent_id;
use backend::{check_broadcast, check_list, check_send, now, Mock};

/// The admin token of every run.
pub const TOKEN: &str = "fuzz-token";
/// Heads (or undecided streams) at most this long are checked at every prefix (longer ones at
/// their first this many and a sample of the rest).
pub const EVERY_PREFIX_MAX: usize = 256;
/// Most line ends of a longer stream whose prefixes are checked (> `MAX_HEADERS` + 1).
const MAX_LINE_CUTS: usize = 80;
/// Most requests served from one stream.
const MAX_REQUESTS: usize = 16;

type Parsed = Result<Option<(Head, usize)>, HttpError>;

/// What serving a stream reached (for the harness's own tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Served {
    /// Responses written (refusals included).
    pub responses: usize,
    /// Backend calls made.
    pub backend_calls: usize,
    /// The stream ended in an event stream.
    pub events: bool,
}

/// Runs one input: two cut points (reads of the first head) and the bytes of a connection;
/// `/readyz` is ready when `a` is even.
pub fn run(a: u16, b: u16, data: &[u8]) -> Served {
    let full = parse_head(data);
    check_bounds(&full, data.len());
    check_prefixes(data, &full, [usize::from(a), usize::from(b)]);
    if let Ok(Some((head, n))) = &full {
        direct(head, data.get(*n..).unwrap_or_default());
    }
    serve(data, a & 1 == 0)
}

/// The size limits of one parse of `len` bytes.
fn check_bounds(parsed: &Parsed, len: usize) {
    match parsed {
        Ok(Some((head, n))) => {
            assert!(*n <= MAX_HEAD && *n <= len, "head of {n} bytes accepted");
            assert!(head.headers.len() <= http::MAX_HEADERS);
            assert!(head.content_length <= MAX_BODY);
            assert!(head.path.starts_with('/'));
        }
        Ok(None) => assert!(len < MAX_HEAD, "{len} bytes still incomplete"),
        Err(e) => {
            let api = e.to_api();
            assert!(matches!(api.status(), 400 | 411 | 413 | 431), "{e:?}");
        }
    }
}

/// Every prefix (or a sample of them) is undecided or decided like the whole stream.
fn check_prefixes(data: &[u8], full: &Parsed, cuts: [usize; 2]) {
    let len = data.len();
    let check = |k: usize| {
        let part = parse_head(&data[..k]);
        check_bounds(&part, k);
        if part != Ok(None) {
            assert_eq!(&part, full, "a prefix of {k} bytes decided differently");
        }
    };
    // Past a complete head the bytes are body or the next request: one prefix there shows they
    // are ignored, as the input's cuts and the whole stream do.
    let decided = match full {
        Ok(Some((_, n))) => *n + 1,
        _ => len,
    };
    let every = decided.min(len).min(EVERY_PREFIX_MAX);
    (0..=every).for_each(check);
    let line_ends = data
        .iter()
        .take(decided)
        .enumerate()
        .filter(|(_, b)| **b == b'\n')
        .take(MAX_LINE_CUTS)
        .flat_map(|(i, _)| [i, i + 1]);
    let fixed = [
        cuts[0] % (len + 1),
        cuts[1] % (len + 1),
        decided.saturating_sub(2),
        decided.saturating_sub(1),
        decided,
        MAX_HEAD - 1,
        MAX_HEAD,
    ];
    for k in line_ends.chain(fixed) {
        if every < k && k <= len {
            check(k);
        }
    }
}

/// The validators called directly: the head's query as both query kinds, the path as a
/// parameter, the bytes after the head as both JSON bodies.
fn direct(head: &Head, rest: &[u8]) {
    if let Ok(q) = query::parse_list_query(head.query.as_deref()) {
        check_list(&q);
    }
    if let Ok(q) = query::parse_events_query(head.query.as_deref(), head.header("last-event-id")) {
        check_pattern(&q.pattern);
    }
    for max in [0, 1, 8, MAX_CURSOR_LEN] {
        if let Ok(s) = query::percent_decode(&head.path, max) {
            assert!(s.len() <= max);
            let again = query::percent_decode(&percent_encode(&s), max);
            assert_eq!(
                again.as_deref(),
                Ok(s.as_str()),
                "percent-encoding round trip"
            );
        }
    }
    if let Ok(req) = api::parse_send(rest) {
        check_send(&req);
        let channel = match &req.channel_id {
            Some(id) => channel::backend_channel(id, req.kind),
            None => channel::v1_backend_channel(req.kind),
        };
        let mut body = serde_json::json!({"channel": channel, "message": req.message,
            "message_type": req.message_type.as_str(), "priority": req.priority});
        if let Some(ttl) = req.ttl_seconds {
            body["ttl_seconds"] = ttl.into();
        }
        let again = api::parse_send(body.to_string().as_bytes())
            .expect("a normalized request parses again");
        assert_eq!(again, req);
    }
    if let Ok(req) = api::parse_broadcast(rest) {
        check_broadcast(&req);
        let mut body = serde_json::json!({"channel": channel::v1_backend_channel(req.kind),
            "message": req.message, "message_type": req.message_type.as_str(),
            "include_offline": req.include_offline});
        if let Some(f) = &req.agent_filter {
            let mut filter = serde_json::Map::new();
            if let Some(u) = &f.agent_uids {
                filter.insert("agent_uids".into(), u.clone().into());
            }
            for (k, v) in [
                ("os", &f.os),
                ("arch", &f.arch),
                ("agent_version", &f.agent_version),
            ] {
                if let Some(v) = v {
                    filter.insert(k.into(), v.clone().into());
                }
            }
            body["agent_filter"] = filter.into();
        }
        let again = api::parse_broadcast(body.to_string().as_bytes())
            .expect("a normalized request parses again");
        assert_eq!(again, req);
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

fn check_pattern(pattern: &str) {
    assert!(pattern.len() <= MAX_PATTERN_LEN);
    assert!(pattern
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._@*>-".contains(&b)));
}

/// Serves the stream like `admin::serve_conn`: requests until one is incomplete, refused, not
/// keep-alive, or an event stream.
fn serve(data: &[u8], ready: bool) -> Served {
    let token = TokenCheck::new(TOKEN);
    let mock = Mock::default();
    mock.ready.set(ready);
    let mut served = Served::default();
    let mut buf = data;
    for _ in 0..MAX_REQUESTS {
        let (head, n) = match parse_head(buf) {
            Ok(Some(parsed)) => parsed,
            Ok(None) => break,
            Err(e) => {
                check_response(&Response::error(&e.to_api()), false, true);
                served.responses += 1;
                break;
            }
        };
        buf = &buf[n..];
        let resolved = match routes::resolve(&head, &token) {
            Ok(r) => r,
            Err(resp) => {
                check_refusal(&head, &resp);
                let keep = head.keep_alive && head.content_length == 0;
                check_response(&resp, keep, true);
                served.responses += 1;
                if keep {
                    continue;
                }
                break;
            }
        };
        check_resolved(&head, &resolved);
        let Some(body) = buf.get(..head.content_length) else {
            break;
        };
        buf = &buf[head.content_length..];
        let calls = mock.calls.get();
        match now(routes::dispatch(&mock, &head, resolved.clone(), body)) {
            Reply::Response(resp) => {
                // `/readyz` answers 503 `{"status":"draining"}`, not the error shape.
                check_response(&resp, head.keep_alive, resolved.route != Route::Readyz);
                served.responses += 1;
                if resp.status == 200 && resolved.route != Route::OpenApi {
                    let backend_routes = !matches!(
                        resolved.route,
                        Route::Metrics | Route::Healthz | Route::Readyz
                    );
                    assert_eq!(mock.calls.get() > calls, backend_routes);
                }
                if !head.keep_alive {
                    break;
                }
            }
            Reply::Events(q) => {
                assert_eq!(resolved.route, Route::Events);
                check_pattern(&q.pattern);
                served.events = true;
                break;
            }
        }
    }
    served.backend_calls = mock.calls.get();
    served
}

/// Whether `head` carries the admin token (an independent reading of `Authorization`).
fn authorized(head: &Head) -> bool {
    let Some(v) = head.header_bytes("authorization") else {
        return false;
    };
    v.len() > 7
        && v[..7].eq_ignore_ascii_case(b"bearer ")
        && v[7..].trim_ascii() == TOKEN.as_bytes()
}

fn protected(path: &str) -> bool {
    path.starts_with(AUTH_PREFIX) || path == "/api/v1"
}

fn check_resolved(head: &Head, r: &routes::Resolved) {
    let spec = ROUTES
        .iter()
        .find(|s| s.route == r.route)
        .expect("a listed route");
    assert_eq!(spec.method.as_str(), head.method);
    let raw = routes::match_template(spec.path, &head.path).expect("the template matches");
    assert_eq!(raw.is_some(), r.param.is_some());
    if let Some(p) = &r.param {
        assert!(!p.is_empty() && p.len() <= routes::MAX_PARAM_LEN);
        if spec.path.contains("{id}") {
            assert!(is_agent_id(p), "agent id {p:?} resolved");
        }
    }
    if protected(&head.path) || spec.path.starts_with(AUTH_PREFIX) {
        assert!(
            authorized(head),
            "{} {} resolved without the token",
            head.method,
            head.path
        );
    }
}

fn check_refusal(head: &Head, resp: &Response) {
    let header = |name: &str| {
        resp.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    if protected(&head.path) && !authorized(head) {
        assert_eq!(resp.status, 401, "unauthenticated {}", head.path);
        assert!(header("WWW-Authenticate").is_some());
        return;
    }
    // A path a literal template matches belongs to the literal routes alone.
    let all: Vec<_> = ROUTES
        .iter()
        .filter(|s| routes::match_template(s.path, &head.path).is_some())
        .collect();
    let literal = all.iter().any(|s| !s.path.contains('{'));
    let matching: Vec<&str> = all
        .iter()
        .filter(|s| !literal || !s.path.contains('{'))
        .map(|s| s.method.as_str())
        .collect();
    match resp.status {
        400 => assert!(!matching.is_empty(), "400 for an unrouted path"),
        404 => assert!(matching.is_empty(), "404 for a routed path"),
        405 => {
            assert!(!matching.contains(&head.method.as_str()));
            let allow = header("Allow").expect("405 has Allow");
            let mut listed: Vec<&str> = allow.split(", ").collect();
            let mut want = matching.clone();
            listed.sort_unstable();
            want.sort_unstable();
            want.dedup();
            assert_eq!(listed, want, "Allow");
        }
        s => panic!("refusal status {s}"),
    }
}

/// The bytes of `resp` are exactly one valid response (an error response with the JSON error
/// shape when `error_shape`).
fn check_response(resp: &Response, keep_alive: bool, error_shape: bool) {
    let bytes = resp.to_bytes(keep_alive);
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut parsed = httparse::Response::new(&mut headers);
    let n = match parsed.parse(&bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        other => panic!("response head does not parse: {other:?}"),
    };
    assert_eq!(parsed.code, Some(resp.status));
    assert_ne!(
        http::reason(resp.status),
        "Unknown",
        "status {}",
        resp.status
    );
    assert_eq!(parsed.headers.len(), 2 + resp.headers.len(), "header lines");
    let length = parsed
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .and_then(|h| std::str::from_utf8(h.value).ok()?.parse::<usize>().ok());
    assert_eq!(length, Some(resp.body.len()));
    assert_eq!(n + resp.body.len(), bytes.len());
    if resp.status >= 400 && error_shape {
        let body: serde_json::Value =
            serde_json::from_slice(&resp.body).expect("an error body is JSON");
        assert!(
            body["error"].is_string() && body["message"].is_string(),
            "{body}"
        );
    }
}

#[cfg(test)]
mod tests;
