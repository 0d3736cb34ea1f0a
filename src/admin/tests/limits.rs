//! Connection limits over real sockets: slow clients of one IP cannot shut the admin API for
//! other clients, and health probes are answered from anywhere (hardening issue, item 4).

use super::*;
use crate::admin::Options;

/// A request head that never completes (a slow-loris client sends the rest a byte at a time).
const PARTIAL: &[u8] = b"GET /api/v1/agents HTTP/1.1\r\nHost: t\r\nX-Slow: ";

fn healthz() -> &'static [u8] {
    b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
}

/// Whether the server has closed `c` (without waiting for it to).
fn closed_now(c: &mut Client) -> bool {
    c.stream
        .set_read_timeout(Some(Duration::from_millis(1)))
        .unwrap();
    let mut buf = [0u8; 64];
    match std::io::Read::read(&mut c.stream, &mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

fn status_of(c: &mut Client, raw: &[u8]) -> u16 {
    c.send(raw);
    c.response().status
}

#[test]
fn slow_clients_of_one_ip_leave_room_for_others_and_for_probes() {
    // Regression: 40 slow clients filled the cap and every route answered 503.
    let opts = Options {
        max_connections: 16,
        max_per_ip: 4,
        read_timeout: Duration::from_secs(60),
        pressure_timeout: Duration::from_secs(60),
        ..Options::default()
    };
    let s = TestServer::start_opts(fake::Script::default(), opts);
    let mut attackers: Vec<Client> = (0..40)
        .map(|_| {
            let mut c = s.connect_from([127, 0, 0, 1]);
            c.send(PARTIAL);
            c
        })
        .collect();
    // Another client, with the token: served.
    let mut other = s.connect_from([127, 0, 0, 2]);
    let raw = authed_raw("GET", "/api/v1/agents/u-1/status", None);
    assert_eq!(status_of(&mut other, raw.as_bytes()), 200);
    // Health probes from another address and from the attackers' own address: served.
    for ip in [[127, 0, 0, 3], [127, 0, 0, 1]] {
        let mut probe = s.connect_from(ip);
        assert_eq!(status_of(&mut probe, healthz()), 200, "probe from {ip:?}");
    }
    // Even a real request from the attackers' address gets a slow client's slot.
    let mut same = s.connect_from([127, 0, 0, 1]);
    assert_eq!(status_of(&mut same, raw.as_bytes()), 200);
    // The slow clients kept at most their share: the others were closed.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let open = attackers.iter_mut().map(closed_now).filter(|c| !c).count();
        if open <= 4 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{open} slow connections of one IP still open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(s.calls().len(), 2);
}

#[test]
fn under_pressure_a_slow_head_is_cut_short() {
    let opts = Options {
        max_connections: 100,
        max_per_ip: 4,
        read_timeout: Duration::from_secs(60),
        pressure_timeout: Duration::from_millis(200),
        ..Options::default()
    };
    let s = TestServer::start_opts(fake::Script::default(), opts);
    let mut first = s.connect_from([127, 0, 0, 1]);
    first.send(PARTIAL);
    // The second connection of the IP is at half its share: its head has 200 ms, not 60 s
    // (the client's 10 s read timeout fails the test if the long deadline applied).
    let mut second = s.connect_from([127, 0, 0, 1]);
    second.send(PARTIAL);
    second.response().assert_error(408, "request_timeout");
    assert!(second.closed());
    // A client of another IP is not under pressure: its request is served.
    let mut other = s.connect_from([127, 0, 0, 2]);
    assert_eq!(status_of(&mut other, healthz()), 200);
    drop(first);
}

#[test]
fn an_idle_keep_alive_connection_gives_its_slot_to_a_new_one() {
    let opts = Options {
        max_connections: 1,
        ..Options::default()
    };
    let s = TestServer::start_opts(fake::Script::default(), opts);
    let mut first = s.connect();
    assert_eq!(
        status_of(&mut first, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"),
        200
    );
    let mut second = s.connect();
    let raw = authed_raw("GET", "/api/v1/agents/u-2/status", None);
    assert_eq!(status_of(&mut second, raw.as_bytes()), 200);
    assert!(first.closed(), "the idle connection was not evicted");
}

#[test]
fn beyond_busy_slots_only_health_probes_are_answered() {
    // Event streams are never evicted: with both slots streaming, a new connection is served
    // from the probe reserve.
    let opts = Options {
        max_connections: 2,
        max_per_ip: 8,
        sse_wait: Duration::from_millis(100),
        ..Options::default()
    };
    let s = TestServer::start_opts(fake::Script::default(), opts);
    let events =
        format!("GET /api/v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\r\n");
    let mut streams: Vec<Client> = (0..2)
        .map(|_| {
            let mut c = s.connect();
            c.send(events.as_bytes());
            assert_eq!(c.head().0, 200);
            c
        })
        .collect();
    for ip in [[127, 0, 0, 1], [127, 0, 0, 2]] {
        let mut probe = s.connect_from(ip);
        assert_eq!(status_of(&mut probe, healthz()), 200);
        let mut ready = s.connect_from(ip);
        let r = b"GET /readyz HTTP/1.1\r\nHost: t\r\n\r\n";
        assert_eq!(status_of(&mut ready, r), 200);
        assert!(
            ready.closed(),
            "a probe beyond the caps is closed after its answer"
        );
        let mut api = s.connect_from(ip);
        api.send(authed_raw("GET", "/api/v1/agents/u-1/status", None).as_bytes());
        api.response().assert_error(503, "unavailable");
    }
    // The streams were not disturbed, and the backend saw no status call.
    for c in &mut streams {
        assert!(!c.read_until(b"\n\n").is_empty());
    }
    assert!(!s.calls().iter().any(|c| matches!(c, fake::Call::Status(_))));
}

#[test]
fn a_full_share_of_busy_slots_answers_429_to_that_ip_only() {
    let opts = Options {
        max_connections: 16,
        max_per_ip: 1,
        sse_wait: Duration::from_secs(30),
        ..Options::default()
    };
    let s = TestServer::start_opts(fake::Script::default(), opts);
    let mut stream = s.connect_from([127, 0, 0, 1]);
    stream.send(
        format!("GET /api/v1/events HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {TOKEN}\r\n\r\n")
            .as_bytes(),
    );
    assert_eq!(stream.head().0, 200);
    let raw = authed_raw("GET", "/api/v1/agents/u-1/status", None);
    let mut same = s.connect_from([127, 0, 0, 1]);
    same.send(raw.as_bytes());
    same.response().assert_error(429, "too_many_connections");
    let mut other = s.connect_from([127, 0, 0, 2]);
    assert_eq!(status_of(&mut other, raw.as_bytes()), 200);
}
