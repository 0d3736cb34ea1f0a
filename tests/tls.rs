//! `wss://` with a self-signed certificate: v1 and v2 round trips, and a certificate reload that a
//! new connection picks up while an old one stays up.

mod common;
use aegis_gateway::protocol::channel::BackendKind;
use common::*;
use std::time::Duration;

#[test]
fn wss_round_trips_and_certificate_reload() {
    let certs = tempfile::tempdir().unwrap();
    let (cert_a, key_a) = self_signed(certs.path(), "gw-a");
    let (cert_b, key_b) = self_signed(certs.path(), "gw-b");
    let live_cert = certs.path().join("live.crt");
    let live_key = certs.path().join("live.key");
    std::fs::copy(&cert_a, &live_cert).unwrap();
    std::fs::copy(&key_a, &live_key).unwrap();
    let ca_a = std::fs::read(&cert_a).unwrap();
    let ca_b = std::fs::read(&cert_b).unwrap();
    let (lc, lk) = (live_cert.clone(), live_key.clone());
    let gw = TestGateway::start_with(move |c| {
        c.tls_cert_path = Some(lc);
        c.tls_key_path = Some(lk);
        c.admin_tls = true;
    });
    let running = gw.running.as_ref().unwrap();
    let handle = running.handle();

    let mut old = None;
    for profile in [V1, V2] {
        let mut a = gw.agent(&format!("tls-{}", profile.number()), profile);
        let req = go_upgrade_request(gw.addr, a.agent_id(), a.public_b64(), &[]);
        let mut c = connect_tls(gw.addr, &ca_a, req.as_bytes()).expect("wss upgrade");
        authenticate(&mut c, &mut a);
        let (uid, _) = register(&mut c, &mut a, &format!("host-tls-{}", profile.number()));
        let out = block_on(handle.deliver(
            &uid,
            command("tls-cmd", BackendKind::Policies, r#"{"over":"tls"}"#),
        ));
        assert!(out.is_ok(), "{out:?}");
        assert_eq!(
            a.open(c.recv_text().as_bytes()).unwrap().body,
            br#"{"over":"tls"}"#
        );
        old = Some((c, a));
    }

    // The admin API is served over TLS too (ADMIN_TLS): HTTPS works, plain HTTP does not.
    let (status, body) = https(gw.admin, &ca_a, "GET /api/v1/agents HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-token\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"agents\""));
    assert_eq!(
        http(gw.admin, "GET", "/healthz", None, None).0,
        0,
        "no plain HTTP on a TLS admin port"
    );

    // A plain ws:// client on the TLS port is refused without harming the gateway.
    let a = gw.agent("plain", V2);
    let req = go_upgrade_request(gw.addr, a.agent_id(), a.public_b64(), &[]);
    assert!(connect_raw(gw.addr, req.as_bytes()).is_err());

    // Swap the files and reload: new connections present certificate B.
    std::fs::copy(&cert_b, &live_cert).unwrap();
    std::fs::copy(&key_b, &live_key).unwrap();
    running.reload_tls().expect("reload");
    let mut fresh = gw.agent("tls-after-reload", V2);
    let req = go_upgrade_request(gw.addr, fresh.agent_id(), fresh.public_b64(), &[]);
    assert!(
        connect_tls(gw.addr, &ca_a, req.as_bytes()).is_err(),
        "old certificate still served"
    );
    let req = go_upgrade_request(gw.addr, fresh.agent_id(), fresh.public_b64(), &[]);
    let mut c = connect_tls(gw.addr, &ca_b, req.as_bytes()).expect("new certificate served");
    authenticate(&mut c, &mut fresh);

    // The connection made before the reload is still up.
    let (mut c_old, mut a_old) = old.unwrap();
    let hb = a_old.heartbeat(now_s()).unwrap();
    c_old.send(&hb);
    c_old.expect_silence(Duration::from_millis(200));

    // A broken reload keeps the current certificate.
    std::fs::write(&live_cert, b"not a certificate").unwrap();
    assert!(running.reload_tls().is_err());
    let req = go_upgrade_request(gw.addr, "tls-x", fresh.public_b64(), &[]);
    assert!(connect_tls(gw.addr, &ca_b, req.as_bytes()).is_ok());
}

/// One HTTPS request (trusting only `ca_pem`); returns (status, body).
fn https(addr: std::net::SocketAddr, ca_pem: &[u8], request: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = tls_stream(addr, ca_pem);
    s.sock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}
