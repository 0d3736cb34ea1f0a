//! Tests of `Config::from_vars`, `validate` and the redacted outputs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

mod errors;
mod output;

use super::parse::build_traced;
use super::*;

pub(super) fn vars(pairs: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    Config::from_vars(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

pub(super) fn ok(pairs: &[(&str, &str)]) -> Config {
    match vars(pairs) {
        Ok(c) => c,
        Err(e) => panic!("{pairs:?} rejected:\n{e}"),
    }
}

/// The error lines of a configuration that must be rejected.
pub(super) fn errs(pairs: &[(&str, &str)]) -> Vec<String> {
    match vars(pairs) {
        Ok(c) => panic!("{pairs:?} accepted: {c:?}"),
        Err(e) => e.iter().map(ToString::to_string).collect(),
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

pub(super) const SECRET: &str = "tok-4f9a1c77e2b6d053";

#[test]
fn defaults_match_the_design() {
    let c = Config::default();
    assert_eq!(c.websocket_addr, addr("0.0.0.0:8080"));
    assert_eq!(c.websocket_path, "/ws/agent");
    assert_eq!((c.ws_read_buffer_size, c.ws_write_buffer_size), (0, 0));
    assert_eq!(c.session_timeout, Duration::from_secs(86_400));
    assert_eq!(c.key_rotation_interval, c.session_timeout);
    assert_eq!(
        c.encryption_algorithm,
        EncryptionAlgorithm::ChaCha20Poly1305
    );
    assert_eq!(c.message_queue_size, 10_000);
    assert_eq!(c.message_retry_attempts, 3);
    assert_eq!(c.message_ttl, Duration::from_secs(3_600));
    assert_eq!(c.data_dir, PathBuf::from("./data"));
    assert_eq!(c.admin_addr, addr("127.0.0.1:9090"));
    assert_eq!(c.admin_token, None);
    assert_eq!(c.tls_paths(), None);
    assert_eq!(c.max_connections, 100_000);
    assert_eq!(c.max_message_size, 262_144);
    assert_eq!(c.shards, None);
    let secs = |d: Duration| d.as_secs();
    assert_eq!(
        [
            c.auth_timeout,
            c.upgrade_timeout,
            c.handshake_grace,
            c.ack_timeout
        ]
        .map(secs),
        [10, 10, 5, 30]
    );
    assert_eq!(
        [c.ping_interval, c.idle_timeout, c.timestamp_window].map(secs),
        [30, 90, 300]
    );
    assert_eq!(c.connect_limit(), Some((100, 1000)));
    assert_eq!(c.log_format, LogFormat::Pretty);
    assert_eq!(
        c.private_key_path(),
        PathBuf::from("./data/keys/private.pem")
    );
    assert_eq!(c.public_key_path(), PathBuf::from("./data/keys/public.pem"));
    // An empty environment gives the defaults, and the defaults are valid.
    assert_eq!(ok(&[]), c);
    assert_eq!(c.validate(), Ok(()));
}

#[test]
fn every_variable_is_read() {
    let (result, read) = build_traced(&[]);
    assert!(result.is_ok());
    for var in VARIABLES {
        assert!(read.contains(var), "{var} is never read by from_vars");
    }
}

#[test]
fn each_variable_is_parsed() {
    let c = ok(&[
        ("WEBSOCKET_PATH", "/agents"),
        ("WEBSOCKET_READ_BUFFER_SIZE", "8KiB"),
        ("WEBSOCKET_WRITE_BUFFER_SIZE", "0"),
        ("AUTH_PRIVATE_KEY_PATH", "/k/priv.pem"),
        ("AUTH_PUBLIC_KEY_PATH", "/k/pub.pem"),
        ("SESSION_TIMEOUT", "2h"),
        ("ENCRYPTION_ALGORITHM", "ChaCha20Poly1305"),
        ("KEY_ROTATION_INTERVAL", "30m"),
        ("MESSAGE_QUEUE_SIZE", "50"),
        ("MESSAGE_RETRY_ATTEMPTS", "7"),
        ("MESSAGE_TTL", "1h30m"),
        ("DATA_DIR", "/var/lib/aegis"),
        ("ADMIN_ADDR", "[::1]:9191"),
        ("ADMIN_TOKEN", SECRET),
        ("TLS_CERT_PATH", "/t/cert.pem"),
        ("TLS_KEY_PATH", "/t/key.pem"),
        ("MAX_CONNECTIONS", "19000"),
        ("MAX_MESSAGE_SIZE", "1MiB"),
        ("SHARDS", "2"),
        ("AUTH_TIMEOUT", "3s"),
        ("UPGRADE_TIMEOUT", "4s"),
        ("HANDSHAKE_GRACE", "500ms"),
        ("ACK_TIMEOUT", "45"),
        ("PING_INTERVAL", "10s"),
        ("IDLE_TIMEOUT", "25s"),
        ("TIMESTAMP_WINDOW", "2m"),
        ("CONNECT_RATE", "0"),
        ("CONNECT_BURST", "20"),
        ("LOG_FORMAT", "JSON"),
        ("UNRELATED", "ignored"),
    ]);
    let ms = |d: Duration| d.as_millis();
    assert_eq!(c.websocket_path, "/agents");
    assert_eq!((c.ws_read_buffer_size, c.ws_write_buffer_size), (8192, 0));
    assert_eq!(c.private_key_path(), PathBuf::from("/k/priv.pem"));
    assert_eq!(c.public_key_path(), PathBuf::from("/k/pub.pem"));
    assert_eq!(ms(c.session_timeout), 7_200_000);
    assert_eq!(ms(c.key_rotation_interval), 1_800_000);
    assert_eq!((c.message_queue_size, c.message_retry_attempts), (50, 7));
    assert_eq!(ms(c.message_ttl), 5_400_000);
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/aegis"));
    assert_eq!(c.admin_addr, addr("[::1]:9191"));
    assert_eq!(c.admin_token.as_deref(), Some(SECRET));
    assert_eq!(
        c.tls_paths(),
        Some((
            PathBuf::from("/t/cert.pem").as_path(),
            PathBuf::from("/t/key.pem").as_path()
        ))
    );
    assert_eq!((c.max_connections, c.max_message_size), (19_000, 1 << 20));
    assert_eq!((c.shards, c.shard_count()), (Some(2), 2));
    assert_eq!(
        [
            c.auth_timeout,
            c.upgrade_timeout,
            c.handshake_grace,
            c.ack_timeout
        ]
        .map(ms),
        [3_000, 4_000, 500, 45_000]
    );
    assert_eq!(
        [c.ping_interval, c.idle_timeout, c.timestamp_window].map(ms),
        [10_000, 25_000, 120_000]
    );
    assert_eq!(
        (c.connect_rate, c.connect_burst, c.connect_limit()),
        (0, 20, None)
    );
    assert_eq!(c.log_format, LogFormat::Json);
}

#[test]
fn websocket_address_forms() {
    let port_only = ok(&[("WEBSOCKET_PORT", "0")]);
    assert_eq!(port_only.websocket_addr, addr("0.0.0.0:0"));
    let full = ok(&[("WEBSOCKET_ADDR", "127.0.0.1:7000")]);
    assert_eq!(full.websocket_addr, addr("127.0.0.1:7000"));
    let ip_and_port = ok(&[("WEBSOCKET_ADDR", "[::1]"), ("WEBSOCKET_PORT", "7001")]);
    assert_eq!(ip_and_port.websocket_addr, addr("[::1]:7001"));
    let ip_only = ok(&[("WEBSOCKET_ADDR", "10.0.0.1")]);
    assert_eq!(ip_only.websocket_addr, addr("10.0.0.1:8080"));
    let same_port = ok(&[
        ("WEBSOCKET_ADDR", "127.0.0.1:7000"),
        ("WEBSOCKET_PORT", "7000"),
    ]);
    assert_eq!(same_port.websocket_addr, addr("127.0.0.1:7000"));
    let e = errs(&[
        ("WEBSOCKET_ADDR", "127.0.0.1:7000"),
        ("WEBSOCKET_PORT", "7002"),
    ]);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(e[0].starts_with("WEBSOCKET_ADDR: 127.0.0.1:7000 conflicts with WEBSOCKET_PORT=7002"));
}

#[test]
fn later_pairs_win_and_empty_unsets() {
    let c = ok(&[
        ("SHARDS", "2"),
        ("SHARDS", "4"),
        ("TLS_CERT_PATH", "/c"),
        ("TLS_CERT_PATH", ""),
    ]);
    assert_eq!(c.shards, Some(4));
    assert_eq!(c.tls_cert_path, None);
    assert_eq!(ok(&[("SHARDS", "3"), ("SHARDS", "auto")]).shards, None);
    // A later good value repairs an earlier bad one (a flag fixing the environment).
    assert_eq!(ok(&[("SHARDS", "x"), ("SHARDS", "1")]).shards, Some(1));
}

#[test]
fn key_rotation_follows_session_timeout() {
    let c = ok(&[("SESSION_TIMEOUT", "12h")]);
    assert_eq!(c.key_rotation_interval, Duration::from_secs(12 * 3_600));
}
