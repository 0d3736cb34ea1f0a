//! The binary's commands as an operator runs them.

use std::process::Command;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_aegis-gateway"));
    // Start from a clean slate: no inherited gateway settings.
    for (k, _) in std::env::vars() {
        if k.starts_with("WEBSOCKET_")
            || k.starts_with("AUTH_")
            || k.starts_with("SESSION_")
            || k == "DATA_DIR"
        {
            c.env_remove(k);
        }
    }
    c
}

#[test]
fn check_config_reports_every_problem_with_its_name() {
    let out = bin()
        .arg("check-config")
        .env("WEBSOCKET_PORT", "99999")
        .env("SESSION_TIMEOUT", "5x")
        .env("AUTH_PRIVATE_KEY_PATH", "/definitely/not/here.pem")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("WEBSOCKET_PORT: \"99999\" is not a valid port"),
        "{err}"
    );
    assert!(
        err.contains("SESSION_TIMEOUT: \"5x\" is not a duration"),
        "{err}"
    );
    assert!(
        err.contains("AUTH_PRIVATE_KEY_PATH: /definitely/not/here.pem does not exist"),
        "{err}"
    );
}

#[test]
fn admin_tls_needs_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("check-config")
        .env("DATA_DIR", dir.path())
        .env("ADMIN_TLS", "true")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ADMIN_TLS") && err.contains("TLS_CERT_PATH"),
        "{err}"
    );
}

#[test]
fn check_config_accepts_defaults_and_durations() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .arg("check-config")
        .env("DATA_DIR", dir.path())
        .env("SESSION_TIMEOUT", "24h")
        .env("PING_INTERVAL", "30s")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));
}

#[test]
fn keygen_writes_a_pair_the_gateway_loads() {
    let dir = tempfile::tempdir().unwrap();
    let out = bin()
        .args(["keygen", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let key = aegis_gateway::crypto::keys::load_private(dir.path().join("private.pem")).unwrap();
    let public = aegis_gateway::crypto::keys::load_public(dir.path().join("public.pem")).unwrap();
    assert_eq!(key.public(), public);
    // A second keygen into the same directory refuses to overwrite.
    let again = bin()
        .args(["keygen", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!again.status.success());
}
