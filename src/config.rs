//! Gateway configuration: one typed [`Config`], its defaults, the environment variables that set
//! it (DESIGN.md §4), the command-line flags that override them ([`ConfigArgs`]) and
//! [`Config::validate`] for `check-config`.
//!
//! Config is data: [`Config::from_vars`] turns `(NAME, value)` pairs into a `Config`, reporting
//! every bad variable at once. It reads no files and no global state; [`Config::from_env`] is the
//! thin wrapper that reads the process environment, and [`Config::validate`] adds the checks that
//! touch the file system (key and certificate files exist).
//!
//! An empty value is treated as unset (`TLS_CERT_PATH=` in an env file means "no TLS").
//!
//! The admin token is a secret: it never appears in `Debug`, `Display`,
//! [`Config::redacted_summary`] or error messages.

mod args;
mod display;
mod duration;
mod error;
pub mod nats;
mod parse;
#[cfg(test)]
mod tests;
mod validate;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

pub use args::{ConfigArgs, VARIABLES};
pub use duration::{format_duration, parse_duration};
pub use error::{ConfigError, ConfigErrors};
pub use nats::{FleetStore, NatsConfig};

/// Log output format (`LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable single-line records, coloured on a terminal. Default.
    #[default]
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

impl FromStr for LogFormat {
    type Err = ();

    /// Accepts `pretty` or `json`, ASCII case-insensitive.
    fn from_str(s: &str) -> Result<Self, ()> {
        match s.trim().to_ascii_lowercase().as_str() {
            "pretty" => Ok(Self::Pretty),
            "json" => Ok(Self::Json),
            _ => Err(()),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pretty => "pretty",
            Self::Json => "json",
        })
    }
}

/// Message encryption algorithm (`ENCRYPTION_ALGORITHM`). Only one is supported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EncryptionAlgorithm {
    /// ChaCha20-Poly1305 (RFC 8439), written `chacha20poly1305`. Default.
    #[default]
    ChaCha20Poly1305,
}

impl FromStr for EncryptionAlgorithm {
    type Err = ();

    /// Accepts `chacha20poly1305`, ASCII case-insensitive.
    fn from_str(s: &str) -> Result<Self, ()> {
        if s.trim().eq_ignore_ascii_case("chacha20poly1305") {
            Ok(Self::ChaCha20Poly1305)
        } else {
            Err(())
        }
    }
}

impl fmt::Display for EncryptionAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("chacha20poly1305")
    }
}

/// The whole gateway configuration. Build it with [`Config::from_env`] / [`Config::from_vars`]
/// (or start from `Config::default()` in tests), then call [`Config::validate`].
///
/// `Debug` and `Display` are hand-written so the admin token is redacted.
#[derive(Clone, PartialEq, Eq)]
pub struct Config {
    /// Agent WebSocket listener (`WEBSOCKET_ADDR` as `ip:port` or `ip`, else `WEBSOCKET_PORT` on
    /// all interfaces). Port 0 picks a free port. Default = `0.0.0.0:8080`.
    pub websocket_addr: SocketAddr,
    /// HTTP path of the upgrade (`WEBSOCKET_PATH`); starts with `/`. Default = `/ws/agent`.
    pub websocket_path: String,
    /// Kernel receive buffer of each agent socket in bytes (`WEBSOCKET_READ_BUFFER_SIZE`,
    /// SO_RCVBUF on the listener, inherited by every accepted socket): the most an agent's
    /// unread bytes can hold in kernel memory. The gateway owns no per-connection read buffer
    /// (one 64 KiB buffer per shard). Default = 0: the kernel's autotuned default.
    pub ws_read_buffer_size: usize,
    /// Kernel send buffer of each agent socket in bytes (`WEBSOCKET_WRITE_BUFFER_SIZE`,
    /// SO_SNDBUF): the most a slow agent's unsent frames can hold in kernel memory; frames are
    /// written as soon as they are built. Default = 0: the kernel's autotuned default.
    pub ws_write_buffer_size: usize,
    /// Gateway Ed25519 private key, PKCS#8 PEM (`AUTH_PRIVATE_KEY_PATH`).
    /// Default = `None`: `DATA_DIR/keys/private.pem` (see [`Config::private_key_path`]).
    pub auth_private_key_path: Option<PathBuf>,
    /// Gateway Ed25519 public key, SPKI PEM (`AUTH_PUBLIC_KEY_PATH`).
    /// Default = `None`: `DATA_DIR/keys/public.pem` (see [`Config::public_key_path`]).
    pub auth_public_key_path: Option<PathBuf>,
    /// Session token lifetime (`SESSION_TIMEOUT`). Default = 24h.
    pub session_timeout: Duration,
    /// Message encryption (`ENCRYPTION_ALGORITHM`). Default = `chacha20poly1305`.
    pub encryption_algorithm: EncryptionAlgorithm,
    /// Session re-key interval (`KEY_ROTATION_INTERVAL`). Default = `session_timeout` (24h).
    pub key_rotation_interval: Duration,
    /// Durable queue bound per agent (`MESSAGE_QUEUE_SIZE`). Default = 10000.
    pub message_queue_size: usize,
    /// Delivery attempts per command (`MESSAGE_RETRY_ATTEMPTS`). Default = 3.
    pub message_retry_attempts: u32,
    /// Lifetime of a queued command (`MESSAGE_TTL`). Default = 1h.
    pub message_ttl: Duration,
    /// Storage directory (`DATA_DIR`, or `DATABASE_URL=fjall:///path`). Default = `./data`.
    pub data_dir: PathBuf,
    /// Free space kept on the data directory, in bytes (`STORE_MIN_FREE`): below it the admin
    /// API refuses new commands (507 `insufficient_storage`) before writing them, and a store
    /// that failed on a full disk reopens only once this much is free. 0 disables the check.
    /// Default = 64 MiB.
    pub store_min_free: u64,
    /// Admin HTTP listener (`ADMIN_ADDR`). Default = `127.0.0.1:9090`.
    pub admin_addr: SocketAddr,
    /// Bearer token of the admin API (`ADMIN_TOKEN`); secret, never printed.
    /// Default = `None`: generated into `DATA_DIR` at first start.
    pub admin_token: Option<String>,
    /// TLS certificate chain, PEM (`TLS_CERT_PATH`); set together with `tls_key_path`.
    /// Default = `None` (plain `ws://`).
    pub tls_cert_path: Option<PathBuf>,
    /// TLS private key, PEM (`TLS_KEY_PATH`); set together with `tls_cert_path`.
    /// Default = `None`.
    pub tls_key_path: Option<PathBuf>,
    /// Concurrent agent connections over all shards (`MAX_CONNECTIONS`). Default = 100000.
    pub max_connections: usize,
    /// Largest reassembled WebSocket message in bytes (`MAX_MESSAGE_SIZE`). Default = 262144
    /// (256 KiB).
    pub max_message_size: usize,
    /// Executor count (`SHARDS`, 1-256 or `auto`). Default = `None`: one per available core.
    pub shards: Option<usize>,
    /// Time allowed from upgrade to M1 (`AUTH_TIMEOUT`). Default = 10s.
    pub auth_timeout: Duration,
    /// Time allowed from TCP accept to a complete upgrade request (`UPGRADE_TIMEOUT`).
    /// Default = 10s.
    pub upgrade_timeout: Duration,
    /// Wait after the last handshake reply (`HANDSHAKE_GRACE`). Default = 5s.
    pub handshake_grace: Duration,
    /// Wait for a command acknowledgement before retrying (`ACK_TIMEOUT`). Default = 30s.
    pub ack_timeout: Duration,
    /// Gateway ping period (`PING_INTERVAL`). Default = 30s.
    pub ping_interval: Duration,
    /// Silence after which a connection is closed (`IDLE_TIMEOUT`); greater than
    /// `ping_interval`. Default = 90s.
    pub idle_timeout: Duration,
    /// Accepted clock skew of message timestamps, ± (`TIMESTAMP_WINDOW`). Default = 300s.
    pub timestamp_window: Duration,
    /// After a hand-over in cluster mode, how long the old process keeps its established
    /// connections (`HANDOVER_DRAIN`); those still open are closed one by one, spread evenly
    /// over this window. `0s` closes them all at once. Default = 5m.
    pub handover_drain: Duration,
    /// New connections per second per client IP (`CONNECT_RATE`; 0 disables the limit).
    /// Default = 100.
    pub connect_rate: u32,
    /// Connection burst per client IP (`CONNECT_BURST`; 0 disables the limit). Default = 1000.
    pub connect_burst: u32,
    /// Agent messages per second per connection (`MESSAGE_RATE`; 0 disables the limit).
    /// Default = 500.
    pub message_rate: u32,
    /// Agent message burst per connection (`MESSAGE_BURST`; 0 disables the limit).
    /// Default = 1000.
    pub message_burst: u32,
    /// Serve the admin API over TLS with the agent listener's certificate (`ADMIN_TLS`).
    /// Default = false.
    pub admin_tls: bool,
    /// Log output format (`LOG_FORMAT`). Default = `pretty`.
    pub log_format: LogFormat,
    /// NATS: cluster mode and the AegisFlux integration (`NATS_*`, `NODE_ID`, `FLEET_STORE`).
    /// Default = no NATS.
    pub nats: NatsConfig,
}

/// Default = 24h, shared by `session_timeout` and `key_rotation_interval`.
const DEFAULT_SESSION_TIMEOUT: Duration = Duration::from_secs(24 * 3_600);

impl Default for Config {
    fn default() -> Self {
        Self {
            websocket_addr: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8080)),
            websocket_path: "/ws/agent".to_string(),
            ws_read_buffer_size: 0,
            ws_write_buffer_size: 0,
            auth_private_key_path: None,
            auth_public_key_path: None,
            session_timeout: DEFAULT_SESSION_TIMEOUT,
            encryption_algorithm: EncryptionAlgorithm::ChaCha20Poly1305,
            key_rotation_interval: DEFAULT_SESSION_TIMEOUT,
            message_queue_size: 10_000,
            message_retry_attempts: 3,
            message_ttl: Duration::from_secs(3_600),
            data_dir: PathBuf::from("./data"),
            store_min_free: 64 << 20,
            admin_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 9090)),
            admin_token: None,
            tls_cert_path: None,
            tls_key_path: None,
            max_connections: 100_000,
            max_message_size: 256 * 1024,
            shards: None,
            auth_timeout: Duration::from_secs(10),
            upgrade_timeout: Duration::from_secs(10),
            handshake_grace: Duration::from_secs(5),
            ack_timeout: Duration::from_secs(30),
            ping_interval: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(90),
            timestamp_window: Duration::from_secs(300),
            handover_drain: Duration::from_secs(300),
            connect_rate: 100,
            connect_burst: 1000,
            message_rate: 500,
            admin_tls: false,
            message_burst: 1000,
            log_format: LogFormat::Pretty,
            nats: NatsConfig::default(),
        }
    }
}

impl Config {
    /// Directory of the default key files: `DATA_DIR/keys`.
    pub fn keys_dir(&self) -> PathBuf {
        self.data_dir.join("keys")
    }

    /// Effective private key file: `AUTH_PRIVATE_KEY_PATH`, else `DATA_DIR/keys/private.pem`.
    pub fn private_key_path(&self) -> PathBuf {
        match &self.auth_private_key_path {
            Some(p) => p.clone(),
            None => self.keys_dir().join("private.pem"),
        }
    }

    /// Effective public key file: `AUTH_PUBLIC_KEY_PATH`, else `DATA_DIR/keys/public.pem`.
    pub fn public_key_path(&self) -> PathBuf {
        match &self.auth_public_key_path {
            Some(p) => p.clone(),
            None => self.keys_dir().join("public.pem"),
        }
    }

    /// `(certificate, key)` when TLS is configured.
    pub fn tls_paths(&self) -> Option<(&Path, &Path)> {
        match (&self.tls_cert_path, &self.tls_key_path) {
            (Some(cert), Some(key)) => Some((cert, key)),
            _ => None,
        }
    }

    /// `(rate per second, burst)` of the per-IP connect limiter, `None` when disabled
    /// (either value 0).
    pub fn connect_limit(&self) -> Option<(u32, u32)> {
        (self.connect_rate > 0 && self.connect_burst > 0)
            .then_some((self.connect_rate, self.connect_burst))
    }

    /// `(rate, burst)` of the per-agent message limit, or `None` when disabled.
    pub fn message_limit(&self) -> Option<(u32, u32)> {
        (self.message_rate > 0 && self.message_burst > 0)
            .then_some((self.message_rate, self.message_burst))
    }

    /// Effective shard count: `shards`, else the available cores, clamped to 1-256.
    pub fn shard_count(&self) -> usize {
        let n = self.shards.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        });
        n.clamp(1, validate::MAX_SHARDS)
    }
}
