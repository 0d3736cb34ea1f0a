//! Rejected configurations: every problem is reported with its variable and value.

use std::path::PathBuf;

use super::super::parse::{build_not_utf8, mask_url, parse_fjall_url, parse_size};
use super::super::*;
use super::{errs, ok, vars};

#[test]
fn database_url_alias() {
    let c = ok(&[("DATABASE_URL", "fjall:///srv/aegis")]);
    assert_eq!(c.data_dir, PathBuf::from("/srv/aegis"));
    let same = ok(&[
        ("DATABASE_URL", "FJALL:///srv/aegis/"),
        ("DATA_DIR", "/srv/aegis"),
    ]);
    assert_eq!(same.data_dir, PathBuf::from("/srv/aegis"));

    let e = errs(&[("DATABASE_URL", "fjall:///a"), ("DATA_DIR", "/b")]);
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("DATABASE_URL: \"fjall:///a\" points to /a but DATA_DIR is /b"),
        "{e:?}"
    );

    for bad in [
        "postgres://localhost/aegis",
        "fjall://relative/dir",
        "fjall:///a?x=1",
        "/plain/path",
        "fjall:",
    ] {
        let e = errs(&[("DATABASE_URL", bad)]);
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert!(
            e[0].starts_with("DATABASE_URL: ") && e[0].contains("is not a fjall URL"),
            "{e:?}"
        );
    }
}

#[test]
fn database_url_credentials_are_masked() {
    let e = errs(&[(
        "DATABASE_URL",
        "postgres://aegis:hunter2@db:5432/aegis?sslpassword=pw9",
    )]);
    assert!(!e[0].contains("hunter2") && !e[0].contains("pw9"), "{e:?}");
    assert!(e[0].contains("postgres://***@db:5432/aegis?***"), "{e:?}");
    assert_eq!(mask_url("user:pw@host"), "***@host");
    assert_eq!(mask_url("fjall:///a/b"), "fjall:///a/b");
    assert_eq!(parse_fjall_url("fjall:///"), Some(PathBuf::from("/")));
}

#[test]
fn sizes() {
    let cases = [
        ("4096", 4096),
        ("64k", 65_536),
        ("64KiB", 65_536),
        ("1m", 1 << 20),
        ("2 MiB", 2 << 20),
        ("1GiB", 1 << 30),
        ("10B", 10),
    ];
    for (text, n) in cases {
        assert_eq!(parse_size(text), Some(n), "{text}");
    }
    for text in [
        "",
        "KiB",
        "1KB",
        "1.5MiB",
        "-1",
        "1TiB",
        "99999999999999999999",
    ] {
        assert_eq!(parse_size(text), None, "{text}");
    }
    assert_eq!(parse_size(&format!("{}GiB", usize::MAX)), None);
}

#[test]
fn every_parse_failure_names_variable_and_value() {
    let cases = [
        (
            "WEBSOCKET_PORT",
            "99999",
            r#"WEBSOCKET_PORT: "99999" is not a valid port (1-65535"#,
        ),
        (
            "WEBSOCKET_PORT",
            "-1",
            r#"WEBSOCKET_PORT: "-1" is not a valid port"#,
        ),
        (
            "WEBSOCKET_ADDR",
            "localhost:80",
            r#"WEBSOCKET_ADDR: "localhost:80" is not an IP address or IP:port"#,
        ),
        (
            "WEBSOCKET_READ_BUFFER_SIZE",
            "4KB",
            r#"WEBSOCKET_READ_BUFFER_SIZE: "4KB" is not a size"#,
        ),
        (
            "WEBSOCKET_WRITE_BUFFER_SIZE",
            "big",
            r#"WEBSOCKET_WRITE_BUFFER_SIZE: "big" is not a size"#,
        ),
        (
            "SESSION_TIMEOUT",
            "5x",
            r#"SESSION_TIMEOUT: "5x" is not a duration (examples: 30s, 24h, 1h30m)"#,
        ),
        (
            "ENCRYPTION_ALGORITHM",
            "aes-256-gcm",
            r#"ENCRYPTION_ALGORITHM: "aes-256-gcm" is not a supported algorithm (only chacha20poly1305)"#,
        ),
        (
            "KEY_ROTATION_INTERVAL",
            "-1h",
            r#"KEY_ROTATION_INTERVAL: "-1h" is not a duration"#,
        ),
        (
            "MESSAGE_QUEUE_SIZE",
            "ten",
            r#"MESSAGE_QUEUE_SIZE: "ten" is not a whole number"#,
        ),
        (
            "MESSAGE_RETRY_ATTEMPTS",
            "99999999999",
            r#"MESSAGE_RETRY_ATTEMPTS: "99999999999" is not a whole number"#,
        ),
        (
            "MESSAGE_TTL",
            "1h 30m",
            r#"MESSAGE_TTL: "1h 30m" is not a duration"#,
        ),
        (
            "ADMIN_ADDR",
            "127.0.0.1",
            r#"ADMIN_ADDR: "127.0.0.1" is not an IP:port address"#,
        ),
        (
            "MAX_CONNECTIONS",
            "1e5",
            r#"MAX_CONNECTIONS: "1e5" is not a whole number"#,
        ),
        (
            "MAX_MESSAGE_SIZE",
            "256kb",
            r#"MAX_MESSAGE_SIZE: "256kb" is not a size"#,
        ),
        (
            "SHARDS",
            "many",
            r#"SHARDS: "many" is not a shard count (1-256, or auto)"#,
        ),
        (
            "AUTH_TIMEOUT",
            "soon",
            r#"AUTH_TIMEOUT: "soon" is not a duration"#,
        ),
        (
            "UPGRADE_TIMEOUT",
            "1.5s",
            r#"UPGRADE_TIMEOUT: "1.5s" is not a duration"#,
        ),
        (
            "HANDSHAKE_GRACE",
            "5sec",
            r#"HANDSHAKE_GRACE: "5sec" is not a duration"#,
        ),
        (
            "ACK_TIMEOUT",
            "30 s",
            r#"ACK_TIMEOUT: "30 s" is not a duration"#,
        ),
        (
            "PING_INTERVAL",
            "1w",
            r#"PING_INTERVAL: "1w" is not a duration"#,
        ),
        (
            "IDLE_TIMEOUT",
            "h",
            r#"IDLE_TIMEOUT: "h" is not a duration"#,
        ),
        (
            "TIMESTAMP_WINDOW",
            "+5m",
            r#"TIMESTAMP_WINDOW: "+5m" is not a duration"#,
        ),
        (
            "CONNECT_RATE",
            "-5",
            r#"CONNECT_RATE: "-5" is not a whole number"#,
        ),
        (
            "CONNECT_BURST",
            "5000000000",
            r#"CONNECT_BURST: "5000000000" is not a whole number"#,
        ),
        (
            "LOG_FORMAT",
            "xml",
            r#"LOG_FORMAT: "xml" is not a log format (pretty or json)"#,
        ),
    ];
    for (var, value, expected) in cases {
        let e = errs(&[(var, value)]);
        assert_eq!(e.len(), 1, "{var}={value}: {e:?}");
        assert!(e[0].starts_with(expected), "{var}={value}: got {:?}", e[0]);
    }
}

#[test]
fn every_range_and_invariant_failure_is_reported() {
    let cases = [
        (
            "WEBSOCKET_PATH",
            "ws/agent",
            r#"WEBSOCKET_PATH: "ws/agent" must start with '/'"#,
        ),
        (
            "WEBSOCKET_PATH",
            "/ws?x",
            r#"WEBSOCKET_PATH: "/ws?x" must be printable ASCII"#,
        ),
        (
            "WEBSOCKET_READ_BUFFER_SIZE",
            "17MiB",
            r#"WEBSOCKET_READ_BUFFER_SIZE: "17825792" is out of range (0-16777216)"#,
        ),
        (
            "WEBSOCKET_WRITE_BUFFER_SIZE",
            "32MiB",
            r#"WEBSOCKET_WRITE_BUFFER_SIZE: "33554432" is out of range"#,
        ),
        (
            "ACK_TIMEOUT",
            "0s",
            r#"ACK_TIMEOUT: "0s" is out of range (1ms-3650d)"#,
        ),
        (
            "MESSAGE_TTL",
            "3651d",
            r#"MESSAGE_TTL: "3651d" is out of range"#,
        ),
        (
            "MESSAGE_QUEUE_SIZE",
            "0",
            r#"MESSAGE_QUEUE_SIZE: "0" is out of range (1 or more)"#,
        ),
        (
            "MESSAGE_RETRY_ATTEMPTS",
            "0",
            r#"MESSAGE_RETRY_ATTEMPTS: "0" is out of range (1-1000)"#,
        ),
        (
            "MAX_CONNECTIONS",
            "0",
            r#"MAX_CONNECTIONS: "0" is out of range"#,
        ),
        (
            "MAX_MESSAGE_SIZE",
            "512",
            r#"MAX_MESSAGE_SIZE: "512" is out of range (1024-67108864)"#,
        ),
        ("SHARDS", "0", r#"SHARDS: "0" is out of range (1-256)"#),
        ("SHARDS", "257", r#"SHARDS: "257" is out of range (1-256)"#),
        (
            "IDLE_TIMEOUT",
            "30s",
            "IDLE_TIMEOUT: 30s must be greater than PING_INTERVAL (30s)",
        ),
        (
            "TLS_CERT_PATH",
            "/c.pem",
            "TLS_KEY_PATH: is required when TLS_CERT_PATH is set",
        ),
        (
            "TLS_KEY_PATH",
            "/k.pem",
            "TLS_CERT_PATH: is required when TLS_KEY_PATH is set",
        ),
        (
            "ADMIN_ADDR",
            "0.0.0.0:8080",
            "ADMIN_ADDR: 0.0.0.0:8080 collides with the agent listener 0.0.0.0:8080",
        ),
        (
            "ADMIN_TOKEN",
            "has space",
            "ADMIN_TOKEN: must be printable ASCII without spaces (value not shown)",
        ),
    ];
    for (var, value, expected) in cases {
        let e = errs(&[(var, value)]);
        assert_eq!(e.len(), 1, "{var}={value}: {e:?}");
        assert!(e[0].starts_with(expected), "{var}={value}: got {:?}", e[0]);
    }
    // Cross-variable: the same idle timeout is fine with a shorter ping interval.
    assert!(vars(&[("IDLE_TIMEOUT", "30s"), ("PING_INTERVAL", "10s")]).is_ok());
}

#[test]
fn several_errors_are_all_reported() {
    let err = vars(&[
        ("WEBSOCKET_PORT", "99999"),
        ("SESSION_TIMEOUT", "5x"),
        ("SHARDS", "0"),
        ("LOG_FORMAT", "xml"),
        ("TLS_CERT_PATH", "/c.pem"),
    ])
    .err()
    .unwrap_or_else(|| ConfigErrors(Vec::new()));
    let named: Vec<&str> = err.iter().map(ConfigError::var).collect();
    for var in [
        "WEBSOCKET_PORT",
        "SESSION_TIMEOUT",
        "SHARDS",
        "LOG_FORMAT",
        "TLS_KEY_PATH",
    ] {
        assert!(named.contains(&var), "{var} missing from {named:?}");
    }
    assert_eq!(err.to_string().lines().count(), named.len());
}

#[test]
fn non_utf8_value_is_reported_not_panicked() {
    let e = build_not_utf8("DATA_DIR", "/d\u{fffd}")
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some("DATA_DIR: \"/d\u{fffd}\" is not valid UTF-8")
    );
}

#[test]
fn validate_checks_files() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let present = dir.path().join("present.pem");
    std::fs::write(&present, "x").unwrap_or_else(|e| panic!("write: {e}"));
    let missing = dir.path().join("missing.pem");
    let mut c = Config {
        data_dir: dir.path().join("data"),
        auth_private_key_path: Some(missing.clone()),
        auth_public_key_path: Some(present.clone()),
        tls_cert_path: Some(PathBuf::from("/x/cert.pem")),
        tls_key_path: Some(dir.path().to_path_buf()),
        ..Config::default()
    };
    let lines: Vec<String> = c
        .validate()
        .err()
        .iter()
        .flat_map(|e| e.iter())
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        lines,
        [
            format!(
                "AUTH_PRIVATE_KEY_PATH: {} does not exist",
                missing.display()
            ),
            "TLS_CERT_PATH: /x/cert.pem does not exist".to_string(),
            format!(
                "TLS_KEY_PATH: {} is not a regular file",
                dir.path().display()
            ),
        ]
    );
    c.auth_private_key_path = Some(present.clone());
    c.tls_cert_path = Some(present.clone());
    c.tls_key_path = Some(present.clone());
    assert_eq!(c.validate(), Ok(()));
    c.data_dir = present.clone();
    let e = c
        .validate()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert_eq!(
        e,
        format!("DATA_DIR: {} is not a directory", present.display())
    );
}

#[test]
fn validate_applies_invariants_to_hand_built_configs() {
    let c = Config {
        shards: Some(0),
        admin_token: Some(String::new()),
        ..Config::default()
    };
    let named: Vec<&str> = c
        .validate()
        .err()
        .iter()
        .flat_map(|e| e.iter())
        .map(ConfigError::var)
        .collect();
    assert_eq!(named, ["SHARDS", "ADMIN_TOKEN"]);
}
