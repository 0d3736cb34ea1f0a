//! Protocol timers over real sockets, each set short in the test's config: a client that never
//! sends M1 is cut off with 4001 (`auth_timeout`), and a connection that stops answering is
//! pinged and then closed normally (`ping_interval`, `idle_timeout`).

mod common;
use common::*;
use std::io::Read;
use std::time::Duration;

#[test]
fn silent_client_after_upgrade_is_cut_off_with_4001() {
    // Short enough to keep the test fast, long enough for the fresh client of
    // `assert_still_serving` to send its M1 in time on a loaded machine.
    let gw = TestGateway::start_with(|c| c.auth_timeout = Duration::from_millis(300));
    let a = gw.agent("silent", V2);
    let mut c = connect(gw.addr, &a, None);
    let mut seen = Vec::new();
    assert_eq!(c.recv_close(&mut seen), 4001);
    assert_eq!(error_kind_before_auth(&seen[0]), "authentication_failed");
    assert_still_serving(&gw);
}

#[test]
fn gateway_pings_and_closes_an_idle_connection() {
    let gw = TestGateway::start_with(|c| {
        // Five ping periods before the idle close: two pings go out even if the gateway is
        // descheduled for a few hundred ms.
        c.ping_interval = Duration::from_millis(150);
        c.idle_timeout = Duration::from_millis(750);
    });
    let mut a = gw.agent("idle", V2);
    let mut c = connect(gw.addr, &a, None);
    authenticate(&mut c, &mut a);
    // Reading raw bytes (not through tungstenite) means not answering pings: the connection is
    // silent. Read the server's frames until its close frame (each read bounded by the client's
    // read timeout; a WebSocket client would answer the pings).
    let mut raw = Vec::new();
    let mut chunk = [0u8; 256];
    let (mut pings, mut code) = (0, None);
    while code.is_none() {
        let n =
            c.ws.get_mut()
                .read(&mut chunk)
                .expect("frames, then the close");
        assert!(n > 0, "socket closed before a close frame: {raw:?}");
        raw.extend_from_slice(&chunk[..n]);
        // Server frames are unmasked; pings and the close are short (length < 126).
        let (mut i, mut seen_pings) = (0usize, 0);
        while i + 2 <= raw.len() {
            let (opcode, len) = (raw[i] & 0x0f, usize::from(raw[i + 1] & 0x7f));
            let Some(payload) = raw.get(i + 2..i + 2 + len) else {
                break; // the rest of this frame is still in flight
            };
            match opcode {
                0x9 => seen_pings += 1,
                0x8 if payload.len() >= 2 => {
                    code = Some(u16::from_be_bytes([payload[0], payload[1]]))
                }
                _ => {}
            }
            i += 2 + len;
        }
        pings = seen_pings;
    }
    assert!(pings >= 2, "gateway pinged ({pings})");
    assert_eq!(code, Some(1000), "idle timeout closes normally");
    assert_still_serving(&gw);
}

#[test]
fn key_rotation_interval_ends_the_session_with_4009() {
    // A day-long session, re-keyed every second: the re-key close comes first.
    let gw = TestGateway::start_with(|c| {
        c.session_timeout = Duration::from_secs(86_400);
        c.key_rotation_interval = Duration::from_secs(1);
    });
    let mut a = gw.agent("rekeyed", V2);
    let mut c = connect(gw.addr, &a, None);
    authenticate(&mut c, &mut a);
    let mut seen = Vec::new();
    assert_eq!(c.recv_close(&mut seen), 4009);
    let last = seen.last().expect("session_expired before the close");
    assert_eq!(error_kind(&mut a, last), "session_expired");
    // The agent authenticates again, with fresh keys.
    let mut c = connect(gw.addr, &a, None);
    authenticate(&mut c, &mut a);
}
