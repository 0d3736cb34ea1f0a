//! Wiring: keys, store and shards from a [`Config`], for `serve` and for tests.

use crate::config::Config;
use crate::crypto::{keys, SigningKey};
use crate::shard::{Gateway, GatewayHandle};
use crate::store::Store;
use std::net::SocketAddr;
use std::path::PathBuf;

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

/// A started gateway with its addresses.
pub struct Running {
    /// Agent WebSocket address.
    pub agent_addr: SocketAddr,
    /// The gateway's public key.
    pub public_key: [u8; 32],
    /// Store handle.
    pub store: Store,
    gateway: Gateway,
}

impl Running {
    /// Control handle.
    pub fn handle(&self) -> GatewayHandle {
        self.gateway.handle()
    }

    /// Drains and waits for exit.
    pub fn shutdown(self) {
        self.gateway.shutdown();
    }

    /// Waits until the shards exit (after a shutdown request).
    pub fn join(self) {
        self.gateway.join();
    }
}

/// Opens the store, loads keys and starts the shards.
pub fn start(config: Config) -> Result<Running, ServeError> {
    let (key, generated) = gateway_key(&config)?;
    if generated {
        tracing::warn!(
            dir = %config.data_dir.join("keys").display(),
            "no AUTH_PRIVATE_KEY_PATH: generated a development gateway key"
        );
    }
    let store = Store::open(&config.data_dir).map_err(|source| ServeError::Store {
        path: config.data_dir.clone(),
        source,
    })?;
    let public_key = key.public();
    let gateway = Gateway::start(config, store.clone(), key)?;
    Ok(Running {
        agent_addr: gateway.agent_addr,
        public_key,
        store,
        gateway,
    })
}
