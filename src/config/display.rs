//! Redacted text forms of a [`Config`]: `Debug`, `Display` and the `NAME=value` summary.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::{format_duration, Config};

impl Config {
    /// The effective configuration as `NAME=value` lines in the environment-variable syntax
    /// (so it can be pasted back), for `check-config` and start-up logs. The admin token is
    /// shown as `<redacted>`; unset optional values are empty, with a `#` comment saying what
    /// applies instead.
    pub fn redacted_summary(&self) -> String {
        let mut out = String::new();
        for (name, value, note) in self.summary_entries() {
            out.push_str(name);
            out.push('=');
            out.push_str(&value);
            if let Some(note) = note {
                out.push_str("  # ");
                out.push_str(&note);
            }
            out.push('\n');
        }
        out
    }

    /// `(variable, value, comment)` for every setting, in [`VARIABLES`](super::VARIABLES) order (minus the
    /// `WEBSOCKET_PORT` and `DATABASE_URL` aliases).
    fn summary_entries(&self) -> Vec<(&'static str, String, Option<String>)> {
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map_or(String::new(), |p| p.display().to_string())
        };
        let dur = |d: Duration| format_duration(d);
        let default_key = |p: PathBuf| Some(format!("default: {}", p.display()));
        let mut entries = vec![
            ("WEBSOCKET_ADDR", self.websocket_addr.to_string(), None),
            ("WEBSOCKET_PATH", self.websocket_path.clone(), None),
            (
                "WEBSOCKET_READ_BUFFER_SIZE",
                self.ws_read_buffer_size.to_string(),
                None,
            ),
            (
                "WEBSOCKET_WRITE_BUFFER_SIZE",
                self.ws_write_buffer_size.to_string(),
                None,
            ),
            (
                "AUTH_PRIVATE_KEY_PATH",
                path(&self.auth_private_key_path),
                self.auth_private_key_path
                    .is_none()
                    .then(|| self.private_key_path())
                    .and_then(default_key),
            ),
            (
                "AUTH_PUBLIC_KEY_PATH",
                path(&self.auth_public_key_path),
                self.auth_public_key_path
                    .is_none()
                    .then(|| self.public_key_path())
                    .and_then(default_key),
            ),
            ("SESSION_TIMEOUT", dur(self.session_timeout), None),
            (
                "ENCRYPTION_ALGORITHM",
                self.encryption_algorithm.to_string(),
                None,
            ),
            (
                "KEY_ROTATION_INTERVAL",
                dur(self.key_rotation_interval),
                None,
            ),
            (
                "MESSAGE_QUEUE_SIZE",
                self.message_queue_size.to_string(),
                None,
            ),
            (
                "MESSAGE_RETRY_ATTEMPTS",
                self.message_retry_attempts.to_string(),
                None,
            ),
            ("MESSAGE_TTL", dur(self.message_ttl), None),
            ("DATA_DIR", self.data_dir.display().to_string(), None),
            (
                "STORE_MIN_FREE",
                self.store_min_free.to_string(),
                (self.store_min_free == 0).then(|| "free-space check disabled".to_string()),
            ),
            ("ADMIN_ADDR", self.admin_addr.to_string(), None),
            match self.admin_token {
                Some(_) => ("ADMIN_TOKEN", "<redacted>".to_string(), None),
                None => (
                    "ADMIN_TOKEN",
                    String::new(),
                    Some("unset: generated into DATA_DIR".to_string()),
                ),
            },
            ("ADMIN_TLS", self.admin_tls.to_string(), None),
            (
                "TLS_CERT_PATH",
                path(&self.tls_cert_path),
                self.tls_cert_path
                    .is_none()
                    .then(|| "unset: plain ws://".to_string()),
            ),
            ("TLS_KEY_PATH", path(&self.tls_key_path), None),
            ("MAX_CONNECTIONS", self.max_connections.to_string(), None),
            ("MAX_MESSAGE_SIZE", self.max_message_size.to_string(), None),
            match self.shards {
                Some(n) => ("SHARDS", n.to_string(), None),
                None => (
                    "SHARDS",
                    "auto".to_string(),
                    Some(format!("{} here", self.shard_count())),
                ),
            },
            ("AUTH_TIMEOUT", dur(self.auth_timeout), None),
            ("UPGRADE_TIMEOUT", dur(self.upgrade_timeout), None),
            ("HANDSHAKE_GRACE", dur(self.handshake_grace), None),
            ("ACK_TIMEOUT", dur(self.ack_timeout), None),
            ("PING_INTERVAL", dur(self.ping_interval), None),
            ("IDLE_TIMEOUT", dur(self.idle_timeout), None),
            ("TIMESTAMP_WINDOW", dur(self.timestamp_window), None),
            ("HANDOVER_DRAIN", dur(self.handover_drain), None),
            ("CONNECT_RATE", self.connect_rate.to_string(), None),
            (
                "CONNECT_BURST",
                self.connect_burst.to_string(),
                self.connect_limit()
                    .is_none()
                    .then(|| "connect limit disabled".to_string()),
            ),
            ("MESSAGE_RATE", self.message_rate.to_string(), None),
            (
                "MESSAGE_BURST",
                self.message_burst.to_string(),
                self.message_limit()
                    .is_none()
                    .then(|| "message rate limit disabled".to_string()),
            ),
            ("LOG_FORMAT", self.log_format.to_string(), None),
        ];
        entries.extend(self.nats_entries());
        entries
    }

    /// The NATS part of the summary (URL credentials masked).
    fn nats_entries(&self) -> Vec<(&'static str, String, Option<String>)> {
        let n = &self.nats;
        let path = |p: &Option<PathBuf>| {
            p.as_ref()
                .map_or(String::new(), |p| p.display().to_string())
        };
        let urls: Vec<String> = n.urls.iter().map(|u| super::parse::mask_url(u)).collect();
        vec![
            (
                "NATS_URL",
                urls.join(","),
                n.urls
                    .is_empty()
                    .then(|| "unset: one node, no AegisFlux integration".to_string()),
            ),
            ("FLEET_STORE", n.fleet_store.as_str().to_string(), None),
            ("NATS_CREDS", path(&n.creds), None),
            ("NATS_TLS_CA", path(&n.tls_ca), None),
            ("NATS_TLS_CERT", path(&n.tls_cert), None),
            ("NATS_TLS_KEY", path(&n.tls_key), None),
            ("NODE_ID", n.node_id.clone(), None),
            (
                "NATS_REPLICAS",
                n.replicas.to_string(),
                (n.replicas < 3)
                    .then(|| "fewer than 3: a lost NATS server can lose data".to_string()),
            ),
            ("NATS_COMMANDS_SUBJECT", n.commands_subject.clone(), None),
            ("NATS_COMMANDS_QUEUE", n.commands_queue.clone(), None),
            ("NATS_PUBLISH_EVENTS", n.publish_events.to_string(), None),
            (
                "NATS_PUBLISH_HEARTBEATS",
                n.publish_heartbeats.to_string(),
                None,
            ),
        ]
    }
}

impl fmt::Debug for Config {
    /// Like a derived `Debug`, with `admin_token` shown as `Some("<redacted>")`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Exhaustive destructuring: adding a field without printing it fails to compile.
        let Self {
            websocket_addr,
            websocket_path,
            ws_read_buffer_size,
            ws_write_buffer_size,
            auth_private_key_path,
            auth_public_key_path,
            session_timeout,
            encryption_algorithm,
            key_rotation_interval,
            message_queue_size,
            message_retry_attempts,
            message_ttl,
            data_dir,
            store_min_free,
            admin_addr,
            admin_token,
            admin_tls,
            tls_cert_path,
            tls_key_path,
            max_connections,
            max_message_size,
            shards,
            auth_timeout,
            upgrade_timeout,
            handshake_grace,
            ack_timeout,
            ping_interval,
            idle_timeout,
            timestamp_window,
            handover_drain,
            connect_rate,
            connect_burst,
            message_rate,
            message_burst,
            log_format,
            nats,
        } = self;
        let admin_token = admin_token.as_ref().map(|_| "<redacted>");
        f.debug_struct("Config")
            .field("websocket_addr", websocket_addr)
            .field("websocket_path", websocket_path)
            .field("ws_read_buffer_size", ws_read_buffer_size)
            .field("ws_write_buffer_size", ws_write_buffer_size)
            .field("auth_private_key_path", auth_private_key_path)
            .field("auth_public_key_path", auth_public_key_path)
            .field("session_timeout", session_timeout)
            .field("encryption_algorithm", encryption_algorithm)
            .field("key_rotation_interval", key_rotation_interval)
            .field("message_queue_size", message_queue_size)
            .field("message_retry_attempts", message_retry_attempts)
            .field("message_ttl", message_ttl)
            .field("data_dir", data_dir)
            .field("store_min_free", store_min_free)
            .field("admin_addr", admin_addr)
            .field("admin_token", &admin_token)
            .field("admin_tls", admin_tls)
            .field("tls_cert_path", tls_cert_path)
            .field("tls_key_path", tls_key_path)
            .field("max_connections", max_connections)
            .field("max_message_size", max_message_size)
            .field("shards", shards)
            .field("auth_timeout", auth_timeout)
            .field("upgrade_timeout", upgrade_timeout)
            .field("handshake_grace", handshake_grace)
            .field("ack_timeout", ack_timeout)
            .field("ping_interval", ping_interval)
            .field("idle_timeout", idle_timeout)
            .field("timestamp_window", timestamp_window)
            .field("handover_drain", handover_drain)
            .field("connect_rate", connect_rate)
            .field("connect_burst", connect_burst)
            .field("message_rate", message_rate)
            .field("message_burst", message_burst)
            .field("log_format", log_format)
            .field("nats", &nats_debug(nats))
            .finish()
    }
}

/// The NATS settings for `Debug`, URL credentials masked.
fn nats_debug(n: &super::NatsConfig) -> super::NatsConfig {
    super::NatsConfig {
        urls: n.urls.iter().map(|u| super::parse::mask_url(u)).collect(),
        ..n.clone()
    }
}

impl fmt::Display for Config {
    /// Same text as [`Config::redacted_summary`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted_summary())
    }
}
