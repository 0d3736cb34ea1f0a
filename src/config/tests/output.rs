//! Redacted outputs: the admin token never appears; the summary reads back as variables.

use super::super::*;
use super::{errs, ok, SECRET};

#[test]
fn secrets_never_printed() {
    let c = ok(&[("ADMIN_TOKEN", SECRET), ("DATA_DIR", "/d")]);
    let debug = format!("{c:?}");
    let pretty = format!("{c:#?}");
    let summary = c.redacted_summary();
    let display = c.to_string();
    for text in [&debug, &pretty, &summary, &display] {
        assert!(!text.contains(SECRET), "token leaked: {text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
    assert!(
        debug.contains("data_dir"),
        "Debug still shows the other fields"
    );
    // Errors about the token do not echo it either.
    let bad = format!("{SECRET} x");
    let e = errs(&[("ADMIN_TOKEN", &bad)]);
    assert!(!e[0].contains(SECRET), "{e:?}");
    let unset = Config::default().redacted_summary();
    assert!(
        unset.contains("ADMIN_TOKEN=  # unset: generated into DATA_DIR"),
        "{unset}"
    );
}

#[test]
fn summary_round_trips_through_from_vars() {
    let c = ok(&[
        ("WEBSOCKET_ADDR", "127.0.0.1:0"),
        ("SESSION_TIMEOUT", "1h30m"),
        ("KEY_ROTATION_INTERVAL", "20m"),
        ("HANDSHAKE_GRACE", "1500ms"),
        ("AUTH_PUBLIC_KEY_PATH", "/k/pub.pem"),
        ("TLS_CERT_PATH", "/t/c.pem"),
        ("TLS_KEY_PATH", "/t/k.pem"),
        ("SHARDS", "3"),
        ("CONNECT_BURST", "0"),
        ("LOG_FORMAT", "json"),
        ("ADMIN_TOKEN", SECRET),
    ]);
    let summary = c.redacted_summary();
    let pairs: Vec<(String, String)> = summary
        .lines()
        .filter_map(|line| {
            let line = line.split("  #").next().unwrap_or(line);
            let (k, v) = line.split_once('=')?;
            (k != "ADMIN_TOKEN").then(|| (k.to_string(), v.trim().to_string()))
        })
        .collect();
    assert_eq!(
        pairs.len(),
        VARIABLES.len() - 3,
        "all but the aliases and the token:\n{summary}"
    );
    let mut back = Config::from_vars(pairs).unwrap_or_else(|e| panic!("{e}\n{summary}"));
    back.admin_token = c.admin_token.clone();
    assert_eq!(back, c, "{summary}");
    assert_eq!(
        ok(&[("SHARDS", "auto")])
            .redacted_summary()
            .lines()
            .filter(|l| l.starts_with("SHARDS=auto"))
            .count(),
        1
    );
}
