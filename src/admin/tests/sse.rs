//! The event stream over a real socket.

use super::fake::{event, Call, Script};
use super::*;
use crate::admin::api::EventItem;

fn events_request(extra_headers: &str, query: &str) -> String {
    format!(
        "GET /api/v1/events{query} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n{extra_headers}\r\n"
    )
}

fn event_calls(s: &TestServer) -> Vec<(u64, String, usize, Duration)> {
    s.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Events {
                after,
                pattern,
                limit,
                wait,
            } => Some((after, pattern, limit, wait)),
            _ => None,
        })
        .collect()
}

#[test]
fn two_events_then_a_keepalive_resuming_after_last_event_id() {
    let wait = Duration::from_millis(40);
    let script = Script {
        events: vec![vec![event(42, "event"), event(43, "request")]],
        ..Script::default()
    };
    let s = TestServer::start_with(script, wait);
    let mut c = s.connect();
    c.send(events_request("Last-Event-ID: 41\r\n", "?channel=agent.%2A.heartbeat").as_bytes());
    let (status, headers) = c.head();
    assert_eq!(status, 200);
    let header = |n: &str| {
        headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(n))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("content-type").as_deref(), Some("text/event-stream"));
    assert_eq!(header("cache-control").as_deref(), Some("no-cache"));
    assert_eq!(header("content-length"), None);

    for (seq, kind) in [(42, "event"), (43, "request")] {
        let frame = c.read_until(b"\n\n");
        let lines: Vec<&str> = frame.trim_end().split('\n').collect();
        assert_eq!(lines.len(), 3, "{frame:?}");
        assert_eq!(lines[0], format!("id: {seq}"));
        assert_eq!(lines[1], format!("event: {kind}"));
        let data = lines[2].strip_prefix("data: ").unwrap();
        let item: EventItem = serde_json::from_str(data).unwrap();
        assert_eq!(item, event(seq, kind));
    }
    assert_eq!(c.read_until(b"\n\n"), ": keepalive\n\n");
    assert_eq!(c.read_until(b"\n\n"), ": keepalive\n\n");

    let calls = event_calls(&s);
    assert!(calls.len() >= 3, "{calls:?}");
    assert_eq!(
        calls[0],
        (
            41,
            "agent.*.heartbeat".to_owned(),
            crate::admin::sse::BATCH,
            wait
        )
    );
    // Resumes after the last seq it wrote.
    assert_eq!(calls[1].0, 43);
    assert_eq!(calls[2].0, 43);
}

#[test]
fn query_last_event_id_and_defaults() {
    let s = TestServer::start();
    let mut c = s.connect();
    c.send(events_request("", "?last_event_id=7").as_bytes());
    assert_eq!(c.head().0, 200);
    assert_eq!(c.read_until(b"\n\n"), ": keepalive\n\n");
    let mut c2 = s.connect();
    // The header wins over the query.
    c2.send(events_request("Last-Event-ID: 9\r\n", "?last_event_id=7").as_bytes());
    assert_eq!(c2.head().0, 200);
    assert_eq!(c2.read_until(b"\n\n"), ": keepalive\n\n");
    let calls = event_calls(&s);
    assert!(calls.contains(&(7, String::new(), 256, Duration::from_millis(50))));
    assert!(calls.iter().any(|c| c.0 == 9));

    s.request(&events_request("Last-Event-ID: x\r\n", ""))
        .assert_error(400, "invalid_query");
    s.request(&events_request("", "?channel=a%0Ab"))
        .assert_error(400, "invalid_query");
    s.request("GET /api/v1/events HTTP/1.1\r\nHost: t\r\n\r\n")
        .assert_error(401, "unauthorized");
}

#[test]
fn the_stream_ends_as_soon_as_the_client_goes_away() {
    // A long wait: only noticing the client's EOF (not a failed keepalive write) ends it in time.
    let s = TestServer::start_with(Script::default(), Duration::from_secs(30));
    let mut c = s.connect();
    c.send(events_request("", "").as_bytes());
    assert_eq!(c.head().0, 200);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while event_calls(&s).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "next_events never called"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!s.calls().contains(&Call::EventsCancelled));
    drop(c);
    while !s.calls().contains(&Call::EventsCancelled) {
        assert!(
            std::time::Instant::now() < deadline,
            "the backend wait was not cancelled when the client left"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(event_calls(&s).len(), 1);
}
