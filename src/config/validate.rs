//! Invariants of a [`Config`] and the file-system checks of [`Config::validate`].

use std::fs;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::{format_duration, Config, ConfigError, ConfigErrors};

/// Most shards accepted (`SHARDS`).
pub(super) const MAX_SHARDS: usize = 256;
/// Longest duration accepted for any setting (3650 days): keeps `Instant + d` far from overflow.
const MAX_DURATION: Duration = Duration::from_secs(3_650 * 86_400);
/// Largest WebSocket buffer accepted (16 MiB).
const MAX_BUFFER: usize = 16 << 20;
/// Accepted `MAX_MESSAGE_SIZE` range: 1 KiB (handshake messages must fit) to 64 MiB.
const MESSAGE_SIZE_RANGE: (usize, usize) = (1 << 10, 64 << 20);
/// Longest `WEBSOCKET_PATH` accepted.
const MAX_PATH_LEN: usize = 1024;
/// Longest `ADMIN_TOKEN` accepted.
const MAX_TOKEN_LEN: usize = 1024;

impl Config {
    /// Checks everything: the invariants [`Config::from_vars`] also enforces (so a config built
    /// in code is held to the same rules) and the file system: configured key and certificate
    /// files exist and are readable regular files, and `DATA_DIR`, if it exists, is a
    /// directory. Returns every problem found.
    pub fn validate(&self) -> Result<(), ConfigErrors> {
        let mut errors = Vec::new();
        self.check_invariants(&mut errors);
        self.check_files(&mut errors);
        ConfigErrors::check(errors)
    }

    /// Value checks that need no IO.
    pub(super) fn check_invariants(&self, errors: &mut Vec<ConfigError>) {
        check_nats(&self.nats, errors);
        check_websocket_path(&self.websocket_path, errors);
        range(
            errors,
            "WEBSOCKET_READ_BUFFER_SIZE",
            self.ws_read_buffer_size,
            0,
            MAX_BUFFER,
        );
        range(
            errors,
            "WEBSOCKET_WRITE_BUFFER_SIZE",
            self.ws_write_buffer_size,
            0,
            MAX_BUFFER,
        );
        for (var, d) in [
            ("SESSION_TIMEOUT", self.session_timeout),
            ("KEY_ROTATION_INTERVAL", self.key_rotation_interval),
            ("MESSAGE_TTL", self.message_ttl),
            ("AUTH_TIMEOUT", self.auth_timeout),
            ("UPGRADE_TIMEOUT", self.upgrade_timeout),
            ("HANDSHAKE_GRACE", self.handshake_grace),
            ("ACK_TIMEOUT", self.ack_timeout),
            ("PING_INTERVAL", self.ping_interval),
            ("IDLE_TIMEOUT", self.idle_timeout),
            ("TIMESTAMP_WINDOW", self.timestamp_window),
        ] {
            if d.is_zero() || d > MAX_DURATION {
                errors.push(ConfigError::OutOfRange {
                    var,
                    value: format_duration(d),
                    range: format!("1ms-{}", format_duration(MAX_DURATION)),
                });
            }
        }
        if self.handover_drain > MAX_DURATION {
            errors.push(ConfigError::OutOfRange {
                var: "HANDOVER_DRAIN",
                value: format_duration(self.handover_drain),
                range: format!("0s-{}", format_duration(MAX_DURATION)),
            });
        }
        if self.idle_timeout <= self.ping_interval {
            errors.push(ConfigError::Rejected {
                var: "IDLE_TIMEOUT",
                reason: format!(
                    "{} must be greater than PING_INTERVAL ({})",
                    format_duration(self.idle_timeout),
                    format_duration(self.ping_interval)
                ),
            });
        }
        positive(errors, "MESSAGE_QUEUE_SIZE", self.message_queue_size);
        range(
            errors,
            "MESSAGE_RETRY_ATTEMPTS",
            self.message_retry_attempts,
            1,
            1000,
        );
        positive(errors, "MAX_CONNECTIONS", self.max_connections);
        let (lo, hi) = MESSAGE_SIZE_RANGE;
        range(errors, "MAX_MESSAGE_SIZE", self.max_message_size, lo, hi);
        if let Some(n) = self.shards {
            range(errors, "SHARDS", n, 1, MAX_SHARDS);
        }
        if self.data_dir.as_os_str().is_empty() {
            errors.push(ConfigError::Rejected {
                var: "DATA_DIR",
                reason: "must not be empty".to_string(),
            });
        }
        if let Some(token) = &self.admin_token {
            check_token(token, errors);
        }
        match (&self.tls_cert_path, &self.tls_key_path) {
            (Some(_), None) => errors.push(ConfigError::Rejected {
                var: "TLS_KEY_PATH",
                reason: "is required when TLS_CERT_PATH is set".to_string(),
            }),
            (None, Some(_)) => errors.push(ConfigError::Rejected {
                var: "TLS_CERT_PATH",
                reason: "is required when TLS_KEY_PATH is set".to_string(),
            }),
            _ => {}
        }
        if self.admin_tls && self.tls_cert_path.is_none() {
            errors.push(ConfigError::Rejected {
                var: "ADMIN_TLS",
                reason: "needs TLS_CERT_PATH and TLS_KEY_PATH".to_string(),
            });
        }
        if listeners_collide(self.admin_addr, self.websocket_addr) {
            errors.push(ConfigError::Rejected {
                var: "ADMIN_ADDR",
                reason: format!(
                    "{} collides with the agent listener {}",
                    self.admin_addr, self.websocket_addr
                ),
            });
        }
    }

    /// Checks that touch the file system.
    pub(super) fn check_files(&self, errors: &mut Vec<ConfigError>) {
        for (var, path) in [
            ("AUTH_PRIVATE_KEY_PATH", &self.auth_private_key_path),
            ("AUTH_PUBLIC_KEY_PATH", &self.auth_public_key_path),
            ("TLS_CERT_PATH", &self.tls_cert_path),
            ("TLS_KEY_PATH", &self.tls_key_path),
            ("NATS_CREDS", &self.nats.creds),
            ("NATS_TLS_CA", &self.nats.tls_ca),
            ("NATS_TLS_CERT", &self.nats.tls_cert),
            ("NATS_TLS_KEY", &self.nats.tls_key),
        ] {
            if let Some(path) = path {
                check_readable_file(var, path, errors);
            }
        }
        if let Ok(meta) = fs::metadata(&self.data_dir) {
            if !meta.is_dir() {
                errors.push(ConfigError::BadPath {
                    var: "DATA_DIR",
                    path: self.data_dir.clone(),
                    reason: "is not a directory".to_string(),
                });
            }
        }
    }
}

/// The NATS settings: replicas in range, a JetStream fleet store only with servers, client
/// certificate and key together.
fn check_nats(n: &super::NatsConfig, errors: &mut Vec<ConfigError>) {
    range(errors, "NATS_REPLICAS", n.replicas, 1, 5);
    if n.fleet_store == super::FleetStore::JetStream && !n.enabled() {
        errors.push(ConfigError::Rejected {
            var: "FLEET_STORE",
            reason: "jetstream needs NATS_URL".to_string(),
        });
    }
    if n.tls_cert.is_some() != n.tls_key.is_some() {
        errors.push(ConfigError::Rejected {
            var: "NATS_TLS_CERT",
            reason: "NATS_TLS_CERT and NATS_TLS_KEY are set together".to_string(),
        });
    }
    if !super::nats::valid_node_id(&n.node_id) {
        errors.push(ConfigError::Rejected {
            var: "NODE_ID",
            reason: format!("{:?} is not 1-64 characters of [A-Za-z0-9_-]", n.node_id),
        });
    }
}

/// Records `OutOfRange` unless `lo <= value <= hi`.
fn range<T>(errors: &mut Vec<ConfigError>, var: &'static str, value: T, lo: T, hi: T)
where
    T: PartialOrd + ToString,
{
    if value < lo || value > hi {
        errors.push(ConfigError::OutOfRange {
            var,
            value: value.to_string(),
            range: format!("{}-{}", lo.to_string(), hi.to_string()),
        });
    }
}

/// Records `OutOfRange` unless `value >= 1`.
fn positive(errors: &mut Vec<ConfigError>, var: &'static str, value: usize) {
    if value == 0 {
        errors.push(ConfigError::OutOfRange {
            var,
            value: value.to_string(),
            range: "1 or more".to_string(),
        });
    }
}

fn check_websocket_path(path: &str, errors: &mut Vec<ConfigError>) {
    let reason = if !path.starts_with('/') {
        "must start with '/'"
    } else if path.len() > MAX_PATH_LEN {
        "is longer than 1024 bytes"
    } else if !path
        .bytes()
        .all(|b| b.is_ascii_graphic() && b != b'?' && b != b'#')
    {
        "must be printable ASCII without spaces, '?' or '#'"
    } else {
        return;
    };
    errors.push(ConfigError::Rejected {
        var: "WEBSOCKET_PATH",
        reason: format!("{path:?} {reason}"),
    });
}

/// The token is compared with an HTTP header value: printable ASCII, no spaces. Never echoed.
fn check_token(token: &str, errors: &mut Vec<ConfigError>) {
    let reason = if token.is_empty() {
        "must not be empty (unset it to have one generated)"
    } else if token.len() > MAX_TOKEN_LEN {
        "is longer than 1024 characters (value not shown)"
    } else if !token.bytes().all(|b| b.is_ascii_graphic()) {
        "must be printable ASCII without spaces (value not shown)"
    } else {
        return;
    };
    errors.push(ConfigError::Rejected {
        var: "ADMIN_TOKEN",
        reason: reason.to_string(),
    });
}

/// Two listeners on the same fixed port collide when their IPs are equal or either is a
/// wildcard (Linux binds `[::]` dual-stack). Port 0 never collides.
fn listeners_collide(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0
        && a.port() == b.port()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

fn check_readable_file(var: &'static str, path: &Path, errors: &mut Vec<ConfigError>) {
    let bad = |reason: String| ConfigError::BadPath {
        var,
        path: path.to_path_buf(),
        reason,
    };
    match fs::metadata(path) {
        Err(e) if e.kind() == ErrorKind::NotFound => errors.push(ConfigError::MissingFile {
            var,
            path: path.to_path_buf(),
        }),
        Err(e) => errors.push(bad(format!("cannot be read: {e}"))),
        Ok(meta) if !meta.is_file() => errors.push(bad("is not a regular file".to_string())),
        Ok(_) => {
            if let Err(e) = fs::File::open(path) {
                errors.push(bad(format!("cannot be read: {e}")));
            }
        }
    }
}
