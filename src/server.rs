//! Wiring: keys, store and shards from a [`Config`], for `serve` and for tests.

use crate::config::Config;
use crate::crypto::{keys, SigningKey};
use crate::ops::GatewayBackend;
use crate::shard::{Gateway, GatewayHandle};
use crate::store::{Fleet, Store, StoreOptions};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Errors starting the gateway, each naming what failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// Key files.
    #[error("gateway key: {0}")]
    Key(#[from] keys::KeyError),
    /// The configured public key is not the private key's.
    #[error(
        "AUTH_PUBLIC_KEY_PATH {public} is not the public key of AUTH_PRIVATE_KEY_PATH {private}"
    )]
    KeyMismatch {
        /// Private key file.
        private: PathBuf,
        /// Public key file.
        public: PathBuf,
    },
    /// The admin token file.
    #[error("admin token file {path}: {source}")]
    AdminToken {
        /// File.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
    /// The admin listener.
    #[error("admin listener: {0}")]
    Admin(#[from] crate::admin::StartError),
    /// Data directory.
    #[error("store at {path}: {source}")]
    Store {
        /// Data dir.
        path: PathBuf,
        /// Cause.
        source: crate::store::StoreError,
    },
    /// Shards.
    #[error(transparent)]
    Start(#[from] crate::shard::StartError),
    /// Cluster mode (NATS).
    #[error("cluster mode")]
    Cluster(#[from] crate::cluster::SetupError),
}

/// The gateway's long-term key: from `AUTH_PRIVATE_KEY_PATH`, else `DATA_DIR/keys/private.pem`,
/// generated there on first start (development). Returns the key and whether it was generated.
pub fn gateway_key(config: &Config) -> Result<(SigningKey, bool), ServeError> {
    if let Some(path) = &config.auth_private_key_path {
        let key = keys::load_private(path)?;
        if let Some(pub_path) = &config.auth_public_key_path {
            let public = keys::load_public(pub_path)?;
            if public != key.public() {
                return Err(ServeError::KeyMismatch {
                    private: path.clone(),
                    public: pub_path.clone(),
                });
            }
        }
        return Ok((key, false));
    }
    let dir = config.data_dir.join("keys");
    let private = dir.join("private.pem");
    if private.exists() {
        return Ok((keys::load_private(&private)?, false));
    }
    Ok((keys::write_keypair(&dir)?, true))
}

/// The admin API bearer token: `ADMIN_TOKEN`, else `DATA_DIR/admin_token` (generated, mode 0600,
/// on first start). Returns the token and whether it was generated.
pub fn admin_token(config: &Config) -> Result<(String, bool), ServeError> {
    if let Some(t) = &config.admin_token {
        return Ok((t.clone(), false));
    }
    let path = config.data_dir.join("admin_token");
    let io = |source| ServeError::AdminToken {
        path: path.clone(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(t) if !t.trim().is_empty() => return Ok((t.trim().to_string(), false)),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    std::fs::create_dir_all(&config.data_dir).map_err(io)?;
    let token = crate::crypto::random::token_urlsafe(32);
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(io)?;
    f.write_all(token.as_bytes()).map_err(io)?;
    Ok((token, true))
}

/// A started gateway with its addresses.
pub struct Running {
    /// Agent WebSocket address.
    pub agent_addr: SocketAddr,
    /// Admin HTTP address.
    pub admin_addr: SocketAddr,
    /// Cleared when draining starts (`/readyz` answers 503).
    pub ready: Arc<AtomicBool>,
    admin: crate::admin::Service,
    /// The gateway's public key.
    pub public_key: [u8; 32],
    /// The embedded store (`None` in cluster mode).
    pub store: Option<Store>,
    gateway: Gateway,
}

impl Running {
    /// Control handle.
    pub fn handle(&self) -> GatewayHandle {
        self.gateway.handle()
    }

    /// Duplicates of the listening sockets, for a successor (`crate::handover`).
    ///
    /// # Errors
    /// Out of file descriptors.
    pub fn listeners(&self) -> std::io::Result<crate::handover::Listeners> {
        Ok(crate::handover::Listeners {
            agent: self.gateway.listener_fds()?,
            admin: Some(self.admin.listener_fd()?),
        })
    }

    /// Reloads the TLS certificate and key from their files (SIGHUP): new connections use them,
    /// existing connections keep their session. On error the current certificate stays.
    pub fn reload_tls(&self) -> Result<(), crate::tls::TlsError> {
        match &self.gateway.tls {
            Some(tls) => tls.reload(),
            None => Ok(()),
        }
    }

    /// Drains and waits for exit: `/readyz` turns unready first, then the shards stop accepting
    /// and close agents with 1001, then the admin listener stops.
    pub fn shutdown(self) {
        self.unready();
        self.gateway.handle().shutdown();
        self.join();
    }

    /// `/readyz` answers 503 from now on (a drain began).
    fn unready(&self) {
        self.ready.store(false, Ordering::Release);
        metrics::gauge!(crate::metrics::READY).set(0.0);
    }

    /// Drains after a hand-over: `/readyz` turns unready and the admin listener stops (the
    /// successor answers on the same socket), the shards stop accepting and keep their agents,
    /// closing those still connected one by one over `spread`, then exit.
    pub fn hand_over(self, spread: std::time::Duration) {
        self.unready();
        self.admin.stop();
        self.gateway.handle().shutdown_spread(spread);
        self.gateway.join();
    }

    /// Waits until the shards exit (after a shutdown request), then stops the admin listener
    /// and flushes the embedded store (so the next start replays no journal).
    pub fn join(self) {
        self.gateway.join();
        self.admin.stop();
        if let Some(store) = &self.store {
            let t = std::time::Instant::now();
            match store.flush_blocking() {
                Ok(()) => tracing::info!(ms = t.elapsed().as_millis() as u64, "store flushed"),
                Err(e) => {
                    tracing::warn!(error = %e, "store not flushed; the next start replays its journal")
                }
            }
        }
    }
}

/// Opens the store, loads keys and starts the shards.
pub fn start(config: Config) -> Result<Running, ServeError> {
    start_on(config, crate::handover::Listeners::default())
}

/// [`start`] on inherited listening sockets (socket activation or a hand-over; those not
/// given are bound).
pub fn start_on(
    config: Config,
    listeners: crate::handover::Listeners,
) -> Result<Running, ServeError> {
    // Before anything records: handles taken before the recorder exists record into nothing
    // (the store's fsync histogram, say).
    crate::metrics::install();
    let (key, generated) = gateway_key(&config)?;
    if generated {
        tracing::warn!(
            dir = %config.data_dir.join("keys").display(),
            "no AUTH_PRIVATE_KEY_PATH: generated a development gateway key"
        );
    }
    let public_key = key.public();
    let (token, generated) = admin_token(&config)?;
    if generated {
        tracing::warn!(
            path = %config.data_dir.join("admin_token").display(),
            "no ADMIN_TOKEN: generated an admin API token"
        );
    }
    let admin_cfg = config.clone();
    // Cluster mode keeps the fleet state in JetStream and opens no embedded store, so a
    // successor on the same DATA_DIR can start while this process still drains (`handover`).
    let (cluster, store, fleet): (_, _, Arc<dyn Fleet>) = if config.nats.cluster() {
        let c = Arc::new(crate::cluster::Cluster::start(&config)?);
        (Some(Arc::clone(&c)), None, c)
    } else {
        let options = StoreOptions {
            min_free_bytes: config.store_min_free,
            ..StoreOptions::default()
        };
        let store =
            Store::open_with(&config.data_dir, &options).map_err(|source| ServeError::Store {
                path: config.data_dir.clone(),
                source,
            })?;
        (None, Some(store.clone()), Arc::new(store))
    };
    // The admin socket first: a second gateway on our admin address fails before its agent
    // listener serves anything.
    let admin_socket = match listeners.admin {
        Some(fd) => fd,
        None => crate::shard::rt::listen_exclusive(admin_cfg.admin_addr)
            .map_err(|source| crate::admin::StartError::Bind {
                addr: admin_cfg.admin_addr,
                source,
            })?
            .into(),
    };
    let (aegisflux, northbound) = if config.nats.enabled() {
        let (link, nb) = crate::aegisflux::Link::connect(&config)?;
        (Some(link), Some(nb))
    } else {
        (None, None)
    };
    let gateway = Gateway::start(config, Arc::clone(&fleet), key, northbound, listeners.agent)?;
    if let Some(c) = &cluster {
        c.attach(gateway.handle());
    }
    let ready = Arc::new(AtomicBool::new(false));
    let backend = GatewayBackend {
        handle: gateway.handle(),
        fleet,
        config: admin_cfg.clone(),
        ready: Arc::clone(&ready),
        on_start: std::sync::Mutex::new(
            aegisflux.map(|link| Box::new(move |ops| link.start(ops)) as crate::ops::StartHook),
        ),
    };
    let admin_tls = if admin_cfg.admin_tls {
        gateway.tls.clone()
    } else {
        None
    };
    let admin = crate::admin::Service::start(
        admin_cfg.admin_addr,
        token,
        backend,
        admin_tls,
        Some(admin_socket),
    )?;
    ready.store(true, Ordering::Release);
    metrics::gauge!(crate::metrics::READY).set(1.0);
    Ok(Running {
        agent_addr: gateway.agent_addr,
        admin_addr: admin.addr,
        ready,
        admin,
        public_key,
        store,
        gateway,
    })
}
