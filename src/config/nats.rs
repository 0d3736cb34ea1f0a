//! NATS settings: cluster mode (the fleet state in JetStream, DESIGN §7) and the AegisFlux
//! integration (DESIGN §8). Without `NATS_URL` none of this runs.

use std::path::PathBuf;

/// Where the fleet state lives (`FLEET_STORE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FleetStore {
    /// The embedded fjall store in `DATA_DIR` (one node).
    Fjall,
    /// NATS JetStream, shared by every node of a cluster.
    JetStream,
}

impl FleetStore {
    /// `fjall` or `jetstream`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fjall => "fjall",
            Self::JetStream => "jetstream",
        }
    }

    /// Parses `fjall` or `jetstream` (ASCII case-insensitive).
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fjall" => Some(Self::Fjall),
            "jetstream" => Some(Self::JetStream),
            _ => None,
        }
    }
}

/// The NATS part of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// Server URLs (`NATS_URL`, comma-separated `nats://host:port`). Default = empty: no NATS.
    pub urls: Vec<String>,
    /// Where the fleet state lives (`FLEET_STORE`). Default = `jetstream` with `NATS_URL`,
    /// `fjall` without.
    pub fleet_store: FleetStore,
    /// Credentials file (`NATS_CREDS`, a `.creds` JWT + nkey seed). Default = none.
    pub creds: Option<PathBuf>,
    /// CA certificate to verify the servers, PEM (`NATS_TLS_CA`); setting it requires TLS.
    /// Default = none (the system roots when a URL is `tls://`).
    pub tls_ca: Option<PathBuf>,
    /// Client certificate, PEM (`NATS_TLS_CERT`), with `NATS_TLS_KEY`. Default = none.
    pub tls_cert: Option<PathBuf>,
    /// Client key, PEM (`NATS_TLS_KEY`). Default = none.
    pub tls_key: Option<PathBuf>,
    /// This node's name in the cluster (`NODE_ID`): a NATS subject token `[A-Za-z0-9_-]`,
    /// ≤ 64 characters, unique per node. Default = the host name (its invalid characters as `-`).
    pub node_id: String,
    /// Replicas of the streams and buckets the gateway creates (`NATS_REPLICAS`, 1-5).
    /// Default = 3 (a 3-node NATS cluster; 1 is for development only).
    pub replicas: usize,
    /// Subject of AegisFlux's commands (`NATS_COMMANDS_SUBJECT`). Default = `websocket.messages`.
    pub commands_subject: String,
    /// Queue group of that subscription, so each command is taken by one node
    /// (`NATS_COMMANDS_QUEUE`). Default = `aegis-gateway`.
    pub commands_queue: String,
    /// Publish verified agent messages on `aegis.agent.<uid>.<kind>` (`NATS_PUBLISH_EVENTS`).
    /// Default = true.
    pub publish_events: bool,
    /// Publish heartbeats too, as presence updates (`NATS_PUBLISH_HEARTBEATS`). Default = false.
    pub publish_heartbeats: bool,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            fleet_store: FleetStore::Fjall,
            creds: None,
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            node_id: default_node_id(),
            replicas: 3,
            commands_subject: "websocket.messages".to_string(),
            commands_queue: "aegis-gateway".to_string(),
            publish_events: true,
            publish_heartbeats: false,
        }
    }
}

impl NatsConfig {
    /// Whether NATS is configured at all.
    pub fn enabled(&self) -> bool {
        !self.urls.is_empty()
    }

    /// Whether the fleet state lives in JetStream (cluster mode).
    pub fn cluster(&self) -> bool {
        self.enabled() && self.fleet_store == FleetStore::JetStream
    }
}

/// Longest `NODE_ID`.
pub const MAX_NODE_ID: usize = 64;

/// Whether `s` is a usable `NODE_ID`.
pub fn valid_node_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NODE_ID
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `s` is a usable NATS subject to subscribe to (dot-separated tokens of printable
/// ASCII without spaces or wildcards).
pub fn valid_subject(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.split('.').all(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>')
        })
}

/// Whether `s` is a usable NATS URL (`nats://`, `tls://`, `ws://`, `wss://` or a bare
/// host:port).
pub fn valid_url(s: &str) -> bool {
    let rest = ["nats://", "tls://", "ws://", "wss://"]
        .iter()
        .find_map(|p| s.strip_prefix(p))
        .unwrap_or(s);
    let host = rest.rsplit('@').next().unwrap_or(rest);
    !host.is_empty() && !host.contains('/') && !host.contains(char::is_whitespace)
}

/// The host name as a `NODE_ID` (characters outside `[A-Za-z0-9_-]` become `-`), or
/// `aegis-node` when it cannot be read.
pub fn default_node_id() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .unwrap_or_default();
    let id: String = raw
        .trim()
        .chars()
        .take(MAX_NODE_ID)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if id.is_empty() {
        "aegis-node".to_string()
    } else {
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_subjects_and_urls() {
        assert!(valid_node_id("gw-1_a"));
        assert!(!valid_node_id("gw.1"));
        assert!(!valid_node_id(""));
        assert!(!valid_node_id(&"a".repeat(65)));
        assert!(valid_node_id(&default_node_id()));
        assert!(valid_subject("websocket.messages"));
        assert!(!valid_subject("websocket.*"));
        assert!(!valid_subject("a..b"));
        assert!(!valid_subject("a b"));
        assert!(valid_url("nats://127.0.0.1:4222"));
        assert!(valid_url("tls://user:pw@nats.example:4222"));
        assert!(valid_url("127.0.0.1:4222"));
        assert!(!valid_url("nats://"));
        assert!(!valid_url("nats://a b"));
        assert_eq!(FleetStore::parse("JetStream"), Some(FleetStore::JetStream));
        assert_eq!(FleetStore::parse("redis"), None);
    }
}
