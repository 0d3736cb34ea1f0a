//! Connecting to NATS and making sure the streams and buckets of the fleet state exist, with the
//! checks DESIGN §7 asks for: the server version (known data-loss releases) and each stream's
//! replicas and storage. Unsafe settings are logged as warnings; they never stop the node.

use super::names;
use crate::config::{Config, NatsConfig};
use async_nats::jetstream::{self, kv, stream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How long a node lease lives without a refresh.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// Pending registrations expire with their bucket (PROTOCOL §6: 300 s).
const REGISTRATION_TTL: Duration = Duration::from_secs(300);
/// Agent messages kept in the event stream.
const EVENTS_KEPT: i64 = 1_000_000;
/// How long final delivery records stay (as on one node).
const STATUS_RETENTION: Duration = Duration::from_secs(7 * 86_400);

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// No NATS server could be reached, or the credentials/TLS files were refused.
    #[error("cannot connect to NATS at {urls}: {message}")]
    Connect {
        /// The configured servers.
        urls: String,
        /// The client's error.
        message: String,
    },
    /// JetStream is not enabled on the servers, or a stream or bucket could not be created
    /// (with replicas the cluster cannot hold, say).
    #[error("JetStream {what}: {message}{hint}")]
    JetStream {
        /// What failed.
        what: String,
        /// The server's error.
        message: String,
        /// What to change.
        hint: &'static str,
    },
    /// The client thread could not start.
    #[error("cannot start the NATS client thread: {0}")]
    Thread(#[from] std::io::Error),
}

/// Everything the NATS thread owns: the client, JetStream, the streams and the buckets.
pub struct Nats {
    /// The core NATS client.
    pub client: async_nats::Client,
    /// JetStream.
    pub js: jetstream::Context,
    /// The command queue.
    pub cmd: stream::Stream,
    /// The event log.
    pub events: stream::Stream,
    /// Registered agents.
    pub agents: kv::Store,
    /// host_id → uids.
    pub hosts: kv::Store,
    /// Pending registrations.
    pub registrations: kv::Store,
    /// Delivery status.
    pub messages: kv::Store,
    /// Channels used.
    pub channels: kv::Store,
    /// Presence.
    pub presence: kv::Store,
    /// Node leases.
    pub nodes: kv::Store,
    /// This node.
    pub node_id: String,
    /// This run of the node (random per start).
    pub run: u64,
    /// Whether the client is connected now (kept by its event callback).
    pub connected: Arc<AtomicBool>,
    /// uid → host_id, for the events published northbound (see `events::append`).
    pub host_ids: std::sync::Mutex<std::collections::HashMap<String, String>>,
}

fn jetstream_error(
    what: impl Into<String>,
    e: impl std::fmt::Display,
    replicas: usize,
) -> SetupError {
    let message = e.to_string();
    let hint = if replicas > 1 && message.contains("insufficient resources") {
        " (the NATS cluster has fewer servers than NATS_REPLICAS: run 3 servers, or set \
         NATS_REPLICAS=1 for development only)"
    } else if message.contains("not enabled") || message.contains("no responders") {
        " (enable JetStream on the servers: `jetstream { store_dir: ... }`, or `nats-server -js`)"
    } else {
        ""
    };
    SetupError::JetStream {
        what: what.into(),
        message,
        hint,
    }
}

impl Nats {
    /// Whether the client is connected now.
    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Acquire)
    }
}

/// Connects with the configured servers, credentials and TLS, retrying in the background after
/// a lost connection (forever: a node outlives NATS outages).
async fn connect(
    n: &NatsConfig,
    connected: Arc<AtomicBool>,
) -> Result<async_nats::Client, SetupError> {
    let urls = n.urls.join(",");
    let fail = |message: String| SetupError::Connect {
        urls: urls.clone(),
        message,
    };
    let mut options = async_nats::ConnectOptions::new()
        .name(format!("aegis-gateway/{}", n.node_id))
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None::<usize>)
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((100 * attempts as u64).min(2_000))
        });
    if let Some(creds) = &n.creds {
        options = options
            .credentials_file(creds)
            .await
            .map_err(|e| fail(format!("NATS_CREDS {}: {e}", creds.display())))?;
    }
    if let Some(ca) = &n.tls_ca {
        options = options.add_root_certificates(ca.clone()).require_tls(true);
    }
    if let (Some(cert), Some(key)) = (&n.tls_cert, &n.tls_key) {
        options = options
            .add_client_certificate(cert.clone(), key.clone())
            .require_tls(true);
    }
    let flag = Arc::clone(&connected);
    options = options.event_callback(move |event| {
        let flag = Arc::clone(&flag);
        async move {
            match event {
                async_nats::Event::Connected => {
                    if !flag.swap(true, Ordering::AcqRel) {
                        tracing::info!("NATS connection restored");
                    }
                    metrics::gauge!(crate::metrics::NATS_CONNECTED).set(1.0);
                }
                async_nats::Event::Disconnected | async_nats::Event::Closed => {
                    if flag.swap(false, Ordering::AcqRel) {
                        tracing::warn!("NATS connection lost; reconnecting");
                    }
                    metrics::gauge!(crate::metrics::NATS_CONNECTED).set(0.0);
                    metrics::counter!(crate::metrics::NATS_DISCONNECTS).increment(1);
                }
                other => tracing::debug!(event = %other, "NATS event"),
            }
        }
    });
    let client = options
        .connect(n.urls.as_slice())
        .await
        .map_err(|e| fail(e.to_string()))?;
    connected.store(true, Ordering::Release);
    metrics::gauge!(crate::metrics::NATS_CONNECTED).set(1.0);
    Ok(client)
}

/// A client of its own with the same servers, credentials and TLS (the AegisFlux
/// integration's, `role` naming it to the servers).
pub async fn connect_client(n: &NatsConfig, role: &str) -> Result<async_nats::Client, SetupError> {
    let mut named = n.clone();
    named.node_id = format!("{}/{role}", n.node_id);
    connect(&named, Arc::new(AtomicBool::new(false))).await
}

/// Connects and prepares every stream and bucket (creating the missing ones with
/// `NATS_REPLICAS` replicas and file storage); warns about unsafe servers and settings.
pub async fn open(config: &Config) -> Result<Nats, SetupError> {
    let n = &config.nats;
    let connected = Arc::new(AtomicBool::new(false));
    let client = connect(n, Arc::clone(&connected)).await?;
    check_version(&client.server_info().version);
    let js = jetstream::new(client.clone());
    let r = n.replicas;
    let ttl = config.message_ttl.max(Duration::from_secs(1));
    let cmd = ensure_stream(
        &js,
        stream::Config {
            name: names::CMD_STREAM.into(),
            description: Some("aegis-gateway: durable commands, one subject per agent".into()),
            subjects: vec![names::CMD_SUBJECTS.into()],
            max_messages_per_subject: i64::try_from(config.message_queue_size).unwrap_or(i64::MAX),
            discard: stream::DiscardPolicy::New,
            discard_new_per_subject: true,
            max_age: ttl,
            duplicate_window: ttl.min(Duration::from_secs(120)),
            storage: stream::StorageType::File,
            num_replicas: r,
            allow_direct: true,
            republish: Some(stream::Republish {
                source: names::CMD_SUBJECTS.into(),
                destination: names::NOTIFY_DESTINATION.into(),
                headers_only: false,
            }),
            ..Default::default()
        },
        r,
    )
    .await?;
    let events = ensure_stream(
        &js,
        stream::Config {
            name: names::EVENTS_STREAM.into(),
            description: Some("aegis-gateway: verified agent messages northbound".into()),
            subjects: vec![names::EVENTS_SUBJECTS.into()],
            max_messages: EVENTS_KEPT,
            max_age: STATUS_RETENTION,
            storage: stream::StorageType::File,
            num_replicas: r,
            allow_direct: true,
            ..Default::default()
        },
        r,
    )
    .await?;
    let bucket = |name: &str, max_age: Duration| kv::Config {
        bucket: name.into(),
        history: 1,
        max_age,
        storage: stream::StorageType::File,
        num_replicas: r,
        ..Default::default()
    };
    let keep = Duration::ZERO;
    let status_age = STATUS_RETENTION.max(ttl + Duration::from_secs(86_400));
    Ok(Nats {
        agents: ensure_bucket(&js, bucket(names::AGENTS, keep), r).await?,
        hosts: ensure_bucket(&js, bucket(names::HOSTS, keep), r).await?,
        registrations: ensure_bucket(&js, bucket(names::REGISTRATIONS, REGISTRATION_TTL), r)
            .await?,
        messages: ensure_bucket(&js, bucket(names::MESSAGES, status_age), r).await?,
        channels: ensure_bucket(&js, bucket(names::CHANNELS, keep), r).await?,
        presence: ensure_bucket(&js, bucket(names::PRESENCE, keep), r).await?,
        nodes: ensure_bucket(&js, bucket(names::NODES, LEASE_TTL), r).await?,
        cmd,
        events,
        client,
        js,
        node_id: n.node_id.clone(),
        run: u64::from_le_bytes(crate::crypto::random::bytes::<8>()) >> 11,
        connected,
        host_ids: std::sync::Mutex::default(),
    })
}

/// The stream `config.name`, created if missing; warns if an existing one is unsafe.
async fn ensure_stream(
    js: &jetstream::Context,
    config: stream::Config,
    replicas: usize,
) -> Result<stream::Stream, SetupError> {
    let name = config.name.clone();
    let stream = match js.get_stream(&name).await {
        Ok(s) => s,
        Err(_) => js
            .create_stream(config)
            .await
            .map_err(|e| jetstream_error(format!("creating stream {name}"), e, replicas))?,
    };
    warn_unsafe(&name, &stream.cached_info().config);
    Ok(stream)
}

/// The bucket `config.bucket`, created if missing; warns if an existing one is unsafe.
async fn ensure_bucket(
    js: &jetstream::Context,
    config: kv::Config,
    replicas: usize,
) -> Result<kv::Store, SetupError> {
    let name = config.bucket.clone();
    let store = match js.get_key_value(&name).await {
        Ok(s) => s,
        Err(_) => js
            .create_key_value(config)
            .await
            .map_err(|e| jetstream_error(format!("creating bucket {name}"), e, replicas))?,
    };
    if let Ok(info) = js.get_stream(format!("KV_{name}")).await {
        warn_unsafe(&name, &info.cached_info().config);
    }
    Ok(store)
}

/// Warns about settings that can lose acknowledged data.
fn warn_unsafe(name: &str, c: &stream::Config) {
    if c.num_replicas < 3 {
        tracing::warn!(
            stream = name,
            replicas = c.num_replicas,
            "fewer than 3 replicas: losing one NATS server can lose acknowledged commands \
             (README \"Cluster\")"
        );
    }
    if c.storage == stream::StorageType::Memory {
        tracing::warn!(
            stream = name,
            "memory storage: a NATS restart loses everything"
        );
    }
}

/// Warns about server releases known to lose data (DESIGN §7), and reminds that the fsync
/// setting cannot be read by a client.
fn check_version(version: &str) {
    let parts: Vec<u32> = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .take(3)
        .filter_map(|p| p.parse().ok())
        .collect();
    if let [2, 10, patch] = parts[..] {
        if (20..=22).contains(&patch) {
            tracing::warn!(
                version,
                "nats-server 2.10.20-2.10.22 can lose streams on a process crash; upgrade to \
                 2.10.23 or later"
            );
        }
    }
    tracing::info!(
        version,
        "NATS server: make sure JetStream runs with `sync_interval: always` (the default syncs \
         every 2 minutes and loses acknowledged writes on power loss; see \
         tuning/nats/nats-server.conf)"
    );
}
