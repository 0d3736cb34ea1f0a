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

/// An in-memory socket for [`sse::stream`]: the server's writes land in a "kernel buffer" of
/// `capacity` bytes that the test drains when it wants (a client that stops reading).
#[derive(Default)]
struct Pipe {
    /// Every byte the server wrote.
    wire: Vec<u8>,
    /// Bytes of `wire` the client has read.
    read: usize,
    capacity: usize,
    /// The largest buffer the server offered in one write.
    largest_offer: usize,
    /// Whether the last offer held the end event.
    offered_end: bool,
    writer: Option<std::task::Waker>,
    done: bool,
}

#[derive(Clone, Default)]
struct Socket(Arc<Mutex<Pipe>>);

impl futures_lite::AsyncWrite for Socket {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let mut p = self.0.lock().unwrap();
        p.largest_offer = p.largest_offer.max(buf.len());
        p.offered_end = buf.windows(11).any(|w| w == b"event: end\n");
        let room = p.capacity.saturating_sub(p.wire.len() - p.read);
        if room == 0 {
            p.writer = Some(cx.waker().clone());
            return std::task::Poll::Pending;
        }
        let n = room.min(buf.len());
        p.wire.extend_from_slice(&buf[..n]);
        std::task::Poll::Ready(Ok(n))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_close(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl futures_lite::AsyncRead for Socket {
    /// The client sends nothing and never closes.
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut [u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Pending
    }
}

fn big_event(seq: u64) -> EventItem {
    EventItem {
        body: serde_json::json!({"pad": "x".repeat(1000)}),
        ..event(seq, "event")
    }
}

#[test]
fn a_client_that_stops_reading_is_dropped_with_an_end_event_and_bounded_memory() {
    // Regression: a stalled client held a whole batch (here 600 KB) and was cut without a word,
    // in the middle of a frame.
    let batches: Vec<Vec<EventItem>> = (0..3)
        .map(|b| (1..=200).map(|i| big_event(b * 200 + i)).collect())
        .collect();
    let calls = Arc::new(Mutex::new(Vec::new()));
    let fake = fake::Fake::new(
        Arc::clone(&calls),
        Script {
            events: batches,
            ..Script::default()
        },
    );
    let socket = Socket::default();
    socket.0.lock().unwrap().capacity = 10_000;
    let limits = crate::admin::sse::Limits {
        wait: Duration::from_millis(20),
        stall: Duration::from_millis(100),
        grace: Duration::from_secs(60),
        max_bytes: 64 * 1024,
    };
    let server_side = socket.clone();
    let thread = crate::shard::rt::start_thread("sse-slow", move || async move {
        let mut conn = crate::admin::http::Conn::new(server_side.clone());
        let q = crate::admin::query::EventsQuery {
            pattern: String::new(),
            after: 0,
        };
        crate::admin::sse::stream(&mut conn, &fake, q, limits).await;
        server_side.0.lock().unwrap().done = true;
    })
    .unwrap();
    // The client reads nothing until the server gives up on it and offers the end event.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !socket.0.lock().unwrap().offered_end {
        assert!(
            !socket.0.lock().unwrap().done,
            "the stream ended without an end event"
        );
        assert!(std::time::Instant::now() < deadline, "no end event offered");
        std::thread::sleep(Duration::from_millis(2));
    }
    // Now it reads everything.
    {
        let mut p = socket.0.lock().unwrap();
        p.capacity = usize::MAX / 2;
        if let Some(w) = p.writer.take() {
            w.wake();
        }
    }
    thread.join().unwrap();
    let p = socket.0.lock().unwrap();
    assert!(p.done);
    assert!(
        p.largest_offer <= 64 * 1024 + 2048,
        "{} bytes held for one client",
        p.largest_offer
    );
    let text = String::from_utf8(p.wire.clone()).unwrap();
    let body = text.strip_prefix(std::str::from_utf8(crate::admin::sse::HEAD).unwrap());
    let blocks: Vec<&str> = body.unwrap().split_terminator("\n\n").collect();
    let (end, frames) = blocks.split_last().unwrap();
    // Whole frames in order 1..=n, then the end event naming n, then nothing.
    assert!(!frames.is_empty());
    for (i, f) in frames.iter().enumerate() {
        let lines: Vec<&str> = f.split('\n').collect();
        assert_eq!(lines[0], format!("id: {}", i + 1), "frame {i}: {f:.80}");
        let item: EventItem =
            serde_json::from_str(lines[2].strip_prefix("data: ").unwrap()).unwrap();
        assert_eq!(item, big_event(i as u64 + 1));
    }
    let end = end
        .strip_prefix("event: end\ndata: ")
        .expect("an end event");
    let end: serde_json::Value = serde_json::from_str(end).unwrap();
    assert_eq!(end["error"], crate::admin::sse::SLOW_CONSUMER);
    assert_eq!(end["last_event_id"], frames.len());
    assert!(end["message"].as_str().unwrap().contains("Last-Event-ID"));
    assert!(text.ends_with("\n\n"));
}
