//! Environment variables → [`Config`], collecting every problem.

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use super::nats::{self, FleetStore, NatsConfig};
use super::{parse_duration, Config, ConfigError, ConfigErrors, VARIABLES};

const PORT: &str = "a valid port (1-65535, or 0 for any free port)";
const DURATION: &str = "a duration (examples: 30s, 24h, 1h30m)";
const SIZE: &str = "a size in bytes (examples: 4096, 64KiB, 1MiB)";
const COUNT: &str = "a whole number";
const SOCKET_ADDR: &str = "an IP:port address (examples: 127.0.0.1:9090, [::1]:9090)";
const LISTEN_ADDR: &str = "an IP address or IP:port (examples: 0.0.0.0:8080, 127.0.0.1, [::]:8080)";
const SHARDS: &str = "a shard count (1-256, or auto)";
const LOG_FORMAT: &str = "a log format (pretty or json)";
const ALGORITHM: &str = "a supported algorithm (only chacha20poly1305)";
const FJALL_URL: &str = "a fjall URL (expected fjall:///absolute/path; or set DATA_DIR)";
const NATS_URL: &str = "a comma-separated list of NATS URLs (example: nats://127.0.0.1:4222)";
const NODE_ID: &str = "a name of 1-64 characters of [A-Za-z0-9_-]";
const SUBJECT: &str = "a NATS subject without wildcards (example: websocket.messages)";
const BOOL: &str = "true or false";

/// A variable's raw value; values that are not UTF-8 are kept (lossily) for the error message.
enum Raw {
    Text(String),
    NotUtf8(String),
}

/// The known variables of one parse, and the problems found so far.
struct Vars {
    values: HashMap<&'static str, Raw>,
    errors: Vec<ConfigError>,
    /// Variables looked up, so a test can prove every known variable is read.
    read: Vec<&'static str>,
}

impl Vars {
    /// Keeps the known variables; a later pair replaces an earlier one and an empty value unsets.
    fn new(pairs: impl IntoIterator<Item = (String, Raw)>) -> Self {
        let mut values = HashMap::new();
        for (name, raw) in pairs {
            let Some(known) = VARIABLES.iter().copied().find(|v| *v == name) else {
                continue;
            };
            if matches!(&raw, Raw::Text(t) if t.is_empty()) {
                values.remove(known);
            } else {
                values.insert(known, raw);
            }
        }
        Self {
            values,
            errors: Vec::new(),
            read: Vec::new(),
        }
    }

    /// The value of `var`, if set and UTF-8 (a non-UTF-8 value is reported and skipped).
    fn text(&mut self, var: &'static str) -> Option<String> {
        self.read.push(var);
        match self.values.get(var)? {
            Raw::Text(t) => Some(t.clone()),
            Raw::NotUtf8(lossy) => {
                self.errors.push(ConfigError::Invalid {
                    var,
                    value: lossy.clone(),
                    expected: "valid UTF-8",
                });
                None
            }
        }
    }

    /// Parses `var` with `f`; on failure records `"<value>" is not <expected>`.
    fn parse<T>(
        &mut self,
        var: &'static str,
        expected: &'static str,
        f: impl FnOnce(&str) -> Option<T>,
    ) -> Option<T> {
        let raw = self.text(var)?;
        let parsed = f(raw.trim());
        if parsed.is_none() {
            self.errors.push(ConfigError::Invalid {
                var,
                value: raw,
                expected,
            });
        }
        parsed
    }

    fn number<T: FromStr>(&mut self, var: &'static str, expected: &'static str) -> Option<T> {
        self.parse(var, expected, |s| s.parse().ok())
    }

    fn duration(&mut self, var: &'static str) -> Option<Duration> {
        self.parse(var, DURATION, |s| parse_duration(s).ok())
    }

    fn size(&mut self, var: &'static str) -> Option<usize> {
        self.parse(var, SIZE, parse_size)
    }

    fn path(&mut self, var: &'static str) -> Option<PathBuf> {
        self.text(var).map(PathBuf::from)
    }

    fn reject(&mut self, var: &'static str, reason: String) {
        self.errors.push(ConfigError::Rejected { var, reason });
    }
}

/// Overwrites `field` when `value` is `Some`.
fn set<T>(field: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *field = v;
    }
}

impl Config {
    /// Reads the process environment (see [`Config::from_vars`]). Values that are not UTF-8 are
    /// reported for known variables and ignored for others (unlike `std::env::vars`, which
    /// panics on them).
    pub fn from_env() -> Result<Config, ConfigErrors> {
        Self::from_env_with(Vec::new())
    }

    /// Reads the process environment, then applies `overrides` (e.g.
    /// [`ConfigArgs::overrides`](super::ConfigArgs::overrides)); later pairs win.
    pub fn from_env_with(
        overrides: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        build(env_pairs(overrides), false).0
    }

    /// Like [`Config::from_env_with`], and also checks the files the configuration names even
    /// when other values are invalid, so `check-config` and `serve` report every problem at once.
    pub fn load(
        overrides: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigErrors> {
        build(env_pairs(overrides), true).0
    }

    /// Builds a configuration from `(NAME, value)` pairs, normally the environment followed by
    /// command-line overrides: unknown names are ignored, later pairs win, an empty value
    /// means unset. Parses every variable and checks every invariant (but not the file
    /// system: see [`Config::validate`]), returning all problems at once.
    pub fn from_vars<I: IntoIterator<Item = (String, String)>>(
        vars: I,
    ) -> Result<Config, ConfigErrors> {
        build(vars.into_iter().map(|(k, v)| (k, Raw::Text(v))), false).0
    }
}

/// The process environment (non-UTF-8 values kept for error reporting), then `overrides`.
fn env_pairs(
    overrides: impl IntoIterator<Item = (String, String)>,
) -> impl Iterator<Item = (String, Raw)> {
    let env = std::env::vars_os().filter_map(|(k, v): (OsString, OsString)| {
        let name = k.into_string().ok()?;
        let raw = match v.into_string() {
            Ok(text) => Raw::Text(text),
            Err(v) => Raw::NotUtf8(v.to_string_lossy().into_owned()),
        };
        Some((name, raw))
    });
    env.chain(overrides.into_iter().map(|(k, v)| (k, Raw::Text(v))))
}

/// Parses `pairs` into a config, also returning the variables that were looked up.
fn build(
    pairs: impl IntoIterator<Item = (String, Raw)>,
    check_files: bool,
) -> (Result<Config, ConfigErrors>, Vec<&'static str>) {
    let mut p = Vars::new(pairs);
    let mut c = Config::default();

    let addr = p.parse("WEBSOCKET_ADDR", LISTEN_ADDR, parse_listen_addr);
    let port = p.number::<u16>("WEBSOCKET_PORT", PORT);
    c.websocket_addr = match (addr, port) {
        (Some(ListenAddr::Full(a)), Some(port)) if a.port() != port => {
            p.reject(
                "WEBSOCKET_ADDR",
                format!(
                    "{a} conflicts with WEBSOCKET_PORT={port}; set one, or the same port in both"
                ),
            );
            a
        }
        (Some(ListenAddr::Full(a)), _) => a,
        (Some(ListenAddr::Ip(ip)), port) => {
            SocketAddr::new(ip, port.unwrap_or(c.websocket_addr.port()))
        }
        (None, Some(port)) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port),
        (None, None) => c.websocket_addr,
    };
    set(&mut c.websocket_path, p.text("WEBSOCKET_PATH"));
    set(
        &mut c.ws_read_buffer_size,
        p.size("WEBSOCKET_READ_BUFFER_SIZE"),
    );
    set(
        &mut c.ws_write_buffer_size,
        p.size("WEBSOCKET_WRITE_BUFFER_SIZE"),
    );
    c.auth_private_key_path = p.path("AUTH_PRIVATE_KEY_PATH");
    c.auth_public_key_path = p.path("AUTH_PUBLIC_KEY_PATH");
    set(&mut c.session_timeout, p.duration("SESSION_TIMEOUT"));
    set(
        &mut c.encryption_algorithm,
        p.parse("ENCRYPTION_ALGORITHM", ALGORITHM, |s| s.parse().ok()),
    );
    c.key_rotation_interval = p
        .duration("KEY_ROTATION_INTERVAL")
        .unwrap_or(c.session_timeout);
    set(
        &mut c.message_queue_size,
        p.number("MESSAGE_QUEUE_SIZE", COUNT),
    );
    set(
        &mut c.message_retry_attempts,
        p.number("MESSAGE_RETRY_ATTEMPTS", COUNT),
    );
    set(&mut c.message_ttl, p.duration("MESSAGE_TTL"));

    let data_dir = p.path("DATA_DIR");
    let url = p.text("DATABASE_URL");
    let url_dir = url
        .as_deref()
        .and_then(|u| match parse_fjall_url(u.trim()) {
            Some(dir) => Some(dir),
            None => {
                p.errors.push(ConfigError::Invalid {
                    var: "DATABASE_URL",
                    value: mask_url(u),
                    expected: FJALL_URL,
                });
                None
            }
        });
    c.data_dir = match (data_dir, url_dir) {
        (Some(dir), Some(from_url)) if dir != from_url => {
            p.reject(
                "DATABASE_URL",
                format!(
                    "{:?} points to {} but DATA_DIR is {}; set only one",
                    mask_url(url.as_deref().unwrap_or_default()),
                    from_url.display(),
                    dir.display()
                ),
            );
            dir
        }
        (Some(dir), _) | (None, Some(dir)) => dir,
        (None, None) => c.data_dir,
    };

    set(
        &mut c.store_min_free,
        p.size("STORE_MIN_FREE").map(|n| n as u64),
    );
    set(
        &mut c.admin_addr,
        p.parse("ADMIN_ADDR", SOCKET_ADDR, |s| s.parse().ok()),
    );
    c.admin_token = p.text("ADMIN_TOKEN");
    set(&mut c.admin_tls, p.parse("ADMIN_TLS", BOOL, parse_bool));
    c.tls_cert_path = p.path("TLS_CERT_PATH");
    c.tls_key_path = p.path("TLS_KEY_PATH");
    set(&mut c.max_connections, p.number("MAX_CONNECTIONS", COUNT));
    set(&mut c.max_message_size, p.size("MAX_MESSAGE_SIZE"));
    set(&mut c.shards, p.parse("SHARDS", SHARDS, parse_shards));
    set(&mut c.auth_timeout, p.duration("AUTH_TIMEOUT"));
    set(&mut c.upgrade_timeout, p.duration("UPGRADE_TIMEOUT"));
    set(&mut c.handshake_grace, p.duration("HANDSHAKE_GRACE"));
    set(&mut c.ack_timeout, p.duration("ACK_TIMEOUT"));
    set(&mut c.ping_interval, p.duration("PING_INTERVAL"));
    set(&mut c.idle_timeout, p.duration("IDLE_TIMEOUT"));
    set(&mut c.timestamp_window, p.duration("TIMESTAMP_WINDOW"));
    set(&mut c.handover_drain, p.duration("HANDOVER_DRAIN"));
    set(&mut c.connect_rate, p.number("CONNECT_RATE", COUNT));
    set(&mut c.connect_burst, p.number("CONNECT_BURST", COUNT));
    set(&mut c.message_rate, p.number("MESSAGE_RATE", COUNT));
    set(&mut c.message_burst, p.number("MESSAGE_BURST", COUNT));
    set(
        &mut c.log_format,
        p.parse("LOG_FORMAT", LOG_FORMAT, |s| s.parse().ok()),
    );
    parse_nats(&mut p, &mut c.nats);

    c.check_invariants(&mut p.errors);
    if check_files {
        c.check_files(&mut p.errors);
    }
    let result = ConfigErrors::check(p.errors).map(|()| c);
    (result, p.read)
}

/// The `NATS_*` variables, `NODE_ID` and `FLEET_STORE`.
fn parse_nats(p: &mut Vars, n: &mut NatsConfig) {
    if let Some(urls) = p.text("NATS_URL") {
        let list: Vec<String> = urls
            .split(',')
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect();
        if list.is_empty() || !list.iter().all(|u| nats::valid_url(u)) {
            p.errors.push(ConfigError::Invalid {
                var: "NATS_URL",
                value: urls.split(',').map(mask_url).collect::<Vec<_>>().join(","),
                expected: NATS_URL,
            });
        } else {
            n.urls = list;
            n.fleet_store = FleetStore::JetStream;
        }
    }
    set(
        &mut n.fleet_store,
        p.parse("FLEET_STORE", "jetstream or fjall", FleetStore::parse),
    );
    n.creds = p.path("NATS_CREDS");
    n.tls_ca = p.path("NATS_TLS_CA");
    n.tls_cert = p.path("NATS_TLS_CERT");
    n.tls_key = p.path("NATS_TLS_KEY");
    set(
        &mut n.node_id,
        p.parse("NODE_ID", NODE_ID, |s| {
            nats::valid_node_id(s).then(|| s.to_string())
        }),
    );
    set(&mut n.replicas, p.number("NATS_REPLICAS", COUNT));
    set(
        &mut n.commands_subject,
        p.parse("NATS_COMMANDS_SUBJECT", SUBJECT, |s| {
            nats::valid_subject(s).then(|| s.to_string())
        }),
    );
    set(
        &mut n.commands_queue,
        p.parse("NATS_COMMANDS_QUEUE", NODE_ID, |s| {
            nats::valid_node_id(s).then(|| s.to_string())
        }),
    );
    set(
        &mut n.publish_events,
        p.parse("NATS_PUBLISH_EVENTS", BOOL, parse_bool),
    );
    set(
        &mut n.publish_heartbeats,
        p.parse("NATS_PUBLISH_HEARTBEATS", BOOL, parse_bool),
    );
}

/// `true`/`false` and their usual spellings.
fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

/// `WEBSOCKET_ADDR` is either a full socket address or an IP that takes `WEBSOCKET_PORT`.
enum ListenAddr {
    Full(SocketAddr),
    Ip(IpAddr),
}

fn parse_listen_addr(s: &str) -> Option<ListenAddr> {
    if let Ok(a) = s.parse() {
        return Some(ListenAddr::Full(a));
    }
    let bare = s
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(s);
    bare.parse().ok().map(ListenAddr::Ip)
}

/// `auto` → `None` (one shard per core), else a number (range checked later).
fn parse_shards(s: &str) -> Option<Option<usize>> {
    if s.eq_ignore_ascii_case("auto") {
        Some(None)
    } else {
        s.parse().ok().map(Some)
    }
}

/// Bytes, optionally with a binary suffix: `4096`, `64k`, `64KiB`, `1m`, `1MiB`, `1GiB`
/// (ASCII case-insensitive). `KB`/`MB` are refused as ambiguous.
pub(super) fn parse_size(s: &str) -> Option<usize> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let multiplier: usize = match unit.trim_start().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        _ => return None,
    };
    digits.parse::<usize>().ok()?.checked_mul(multiplier)
}

/// `fjall:///absolute/path` (scheme ASCII case-insensitive) → `/absolute/path`.
/// The path is taken literally (no percent-decoding); a host, query or fragment is refused.
pub(super) fn parse_fjall_url(url: &str) -> Option<PathBuf> {
    const SCHEME: &str = "fjall://";
    let head = url.get(..SCHEME.len())?;
    if !head.eq_ignore_ascii_case(SCHEME) {
        return None;
    }
    let path = url.get(SCHEME.len()..)?;
    if !path.starts_with('/') || path.contains(['?', '#']) {
        return None;
    }
    Some(PathBuf::from(path))
}

/// Hides credentials before a URL is echoed in an error: the user-info part and the query.
/// `postgres://user:pw@db:5432/x?password=y` → `postgres://***@db:5432/x?***`.
pub(super) fn mask_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, _)) => (base, "?***"),
        None => (url, ""),
    };
    let masked = match base.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{path}"),
                None => base.to_string(),
            }
        }
        None => match base.rsplit_once('@') {
            Some((_, host)) => format!("***@{host}"),
            None => base.to_string(),
        },
    };
    format!("{masked}{query}")
}

#[cfg(test)]
pub(super) fn build_traced(
    vars: &[(&str, &str)],
) -> (Result<Config, ConfigErrors>, Vec<&'static str>) {
    build(
        vars.iter()
            .map(|(k, v)| (k.to_string(), Raw::Text(v.to_string()))),
        false,
    )
}

#[cfg(test)]
pub(super) fn build_not_utf8(var: &str, lossy: &str) -> Result<Config, ConfigErrors> {
    build([(var.to_string(), Raw::NotUtf8(lossy.to_string()))], false).0
}
