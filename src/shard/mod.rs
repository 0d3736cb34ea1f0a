//! The runtime: one glommio executor per shard, SO_REUSEPORT listeners, the socket hand-off, the
//! cross-shard mesh, presence, and the verify batcher. The only module that knows glommio.
//!
//! Sharding: `owner(id) = fnv1a64(id) % shards`, where `id` is the canonical identity — the uid
//! for a registered agent, `agent_id#public_key` before registration. The shard that accepts a
//! socket reads the upgrade head, computes the owner, and hands the socket (a dup'ed fd plus the
//! bytes already read) to the owner over the mesh. After registration, the uid's owner keeps a
//! presence pointer to the shard holding the socket.

mod batch;
mod conn;
mod control;
mod ctx;
mod echo;
mod limits;
mod listener;
mod mesh;
mod pending;
mod presence;
mod register_http;
pub mod rt;
mod socket;
// The one module allowed unsafe code (raw fds, socket options, signals, the allocator).
#[allow(unsafe_code)]
mod sys;
mod ws;

pub use echo::run_echo;

pub use sys::{block_termination_signals, systemd_fds, wait_for_termination, SIGHUP};

pub use crate::store::{Command, DeliverError, SessionInfo};
pub use control::{GatewayHandle, ShardStats};

use crate::config::Config;
use crate::crypto::SigningKey;
use crate::protocol::replay::NonceCache;
use crate::protocol::session::Limits;
use crate::store::Fleet;
use crate::tls::{TlsConfig, TlsError};
use glommio::{LocalExecutorBuilder, Placement};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Everything the shards share read-only (plus the handshake-path nonce cache).
pub struct Shared {
    /// Effective configuration.
    pub config: Config,
    /// Gateway long-term key.
    pub key: SigningKey,
    /// Protocol timers.
    pub limits: Limits,
    /// M1 replay cache (touched once per handshake, never per message).
    pub nonces: Mutex<NonceCache>,
    /// The fleet state (embedded store, or the cluster's).
    pub fleet: Arc<dyn Fleet>,
    /// Number of shards.
    pub shards: usize,
    /// Upgraded connections across all shards (checked against `MAX_CONNECTIONS`; touched once
    /// per connection, never per message).
    pub live: std::sync::atomic::AtomicUsize,
    /// Caps on pending registrations (touched once per registration).
    pub pending: pending::PendingCaps,
    /// Per-client-IP connect limiter (touched once per connection attempt).
    pub connect_limiter: Option<Mutex<limits::ConnectLimiter>>,
    /// `wss://` configuration, when a certificate is configured.
    pub tls: Option<Arc<TlsConfig>>,
    /// Agent messages to AegisFlux (with `NATS_URL`), offered without waiting.
    pub northbound: Option<crate::router::northbound::Northbound>,
}

/// Errors starting the gateway.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// TLS certificate or key unusable.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// Binding the agent listener failed.
    #[error("cannot bind agent listener on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// An executor could not start.
    #[error("cannot start shard {shard}: {message}")]
    Executor {
        /// Shard index.
        shard: usize,
        /// Cause.
        message: String,
    },
}

/// A running gateway.
pub struct Gateway {
    /// Where agents connect.
    pub agent_addr: SocketAddr,
    /// The TLS configuration, when serving `wss://`.
    pub tls: Option<Arc<TlsConfig>>,
    handle: GatewayHandle,
    threads: Vec<JoinHandle<()>>,
    /// The agent listening sockets (duplicates), to hand to a successor.
    listeners: Vec<std::os::fd::OwnedFd>,
}

/// The owner shard of a canonical identity (FNV-1a 64, fixed, documented).
pub fn owner_of(id: &str, shards: usize) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in id.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (h % shards.max(1) as u64) as usize
}

impl Gateway {
    /// Starts `shards` executors serving agents on the configured address, or on `inherited`
    /// listening sockets when given (systemd socket activation, or a hand-over from the
    /// gateway this one replaces: `crate::handover`); verified agent messages are also offered
    /// to `northbound` when given.
    pub fn start(
        config: Config,
        fleet: Arc<dyn Fleet>,
        key: SigningKey,
        northbound: Option<crate::router::northbound::Northbound>,
        inherited: Vec<std::os::fd::OwnedFd>,
    ) -> Result<Gateway, StartError> {
        let shards = config
            .shards
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let limits = limits_of(&config);
        let tls = match config.tls_paths() {
            Some((cert, key)) => Some(Arc::new(TlsConfig::load(cert, key)?)),
            None => None,
        };
        let config_for_limits = config.clone();
        let configured = config.websocket_addr;
        let bind_error = move |source| StartError::Bind {
            addr: configured,
            source,
        };
        let buffers = socket::Buffers {
            recv: config.ws_read_buffer_size,
            send: config.ws_write_buffer_size,
        };
        // Every listening socket exists before any shard starts: bound here (one per shard,
        // SO_REUSEPORT, on an address claimed for this process), or inherited.
        let (sockets, agent_addr) = if inherited.is_empty() {
            let (reservation, addr) =
                socket::reserve_shared(config.websocket_addr).map_err(bind_error)?;
            let sockets = (0..shards)
                .map(|_| socket::listening(addr, true, buffers))
                .collect::<Result<Vec<_>, _>>()
                .map_err(bind_error)?;
            drop(reservation);
            (sockets, addr)
        } else {
            let sockets: Vec<socket2::Socket> =
                inherited.into_iter().map(socket2::Socket::from).collect();
            let addr = socket::address_of(&sockets[0]).map_err(bind_error)?;
            (sockets, addr)
        };
        let listeners = sockets
            .iter()
            .map(|s| s.try_clone().map(std::os::fd::OwnedFd::from))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bind_error)?;
        let shared = Arc::new(Shared {
            config,
            key,
            limits,
            nonces: Mutex::new(NonceCache::new()),
            fleet,
            shards,
            live: std::sync::atomic::AtomicUsize::new(0),
            pending: pending::PendingCaps::default(),
            connect_limiter: limits::ConnectLimiter::from_config(&config_for_limits)
                .map(Mutex::new),
            tls: tls.clone(),
            northbound,
        });
        let (handle, control_rxs) = control::channels(shards);
        let mesh = glommio::channels::channel_mesh::MeshBuilder::full(shards, 1024);
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), StartError>>();
        let mut threads = Vec::with_capacity(shards);
        for (id, control_rx) in control_rxs.into_iter().enumerate() {
            let placement = if shards <= cpus {
                Placement::Fixed(id)
            } else {
                Placement::Unbound
            };
            let shared = Arc::clone(&shared);
            let mesh = mesh.clone();
            let ready = ready_tx.clone();
            // Fewer inherited sockets than shards: some shards accept on the same socket.
            let listener = sockets[id % sockets.len()]
                .try_clone()
                .map_err(bind_error)?;
            let builder = LocalExecutorBuilder::new(placement)
                .name(&format!("shard-{id}"))
                .io_memory(rt::IO_MEMORY)
                .ring_depth(rt::RING_DEPTH);
            let join = builder
                .spawn(move || async move {
                    listener::run_shard(id, shared, mesh, listener, control_rx, ready).await;
                })
                .map_err(|e| StartError::Executor {
                    shard: id,
                    message: e.to_string(),
                })?;
            threads.push(std::thread::spawn(move || {
                let _ = join.join();
            }));
        }
        drop(ready_tx);
        for _ in 0..shards {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    handle.shutdown();
                    return Err(e);
                }
                Err(_) => {
                    return Err(StartError::Executor {
                        shard: 0,
                        message: "shard exited during start".into(),
                    })
                }
            }
        }
        Ok(Gateway {
            agent_addr,
            tls,
            handle,
            threads,
            listeners,
        })
    }

    /// Duplicates of the agent listening sockets (for a hand-over to a successor process).
    ///
    /// # Errors
    /// Out of file descriptors.
    pub fn listener_fds(&self) -> std::io::Result<Vec<std::os::fd::OwnedFd>> {
        self.listeners.iter().map(|fd| fd.try_clone()).collect()
    }

    /// A cloneable, thread-safe handle (command delivery, shutdown).
    pub fn handle(&self) -> GatewayHandle {
        self.handle.clone()
    }

    /// Asks every shard to drain and waits for them to exit.
    pub fn shutdown(self) {
        self.handle.shutdown();
        self.join();
    }

    /// Waits for every shard to exit.
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

fn limits_of(c: &Config) -> Limits {
    let secs = |d: std::time::Duration| i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    Limits {
        timestamp_window_s: secs(c.timestamp_window),
        // KEY_ROTATION_INTERVAL bounds the session: at its end the 4009 close makes the agent
        // authenticate again with fresh keys (PROTOCOL §4).
        session_timeout_s: secs(c.session_timeout.min(c.key_rotation_interval)),
        handshake_grace_ms: ms(c.handshake_grace),
        auth_timeout_ms: ms(c.auth_timeout),
        registration_ttl_s: 300,
        message_rate: c.message_limit(),
        ping_interval_ms: ms(c.ping_interval),
        idle_timeout_ms: ms(c.idle_timeout),
    }
}

/// Now on both clocks (wall and monotonic, see [`crate::protocol::time`]).
pub fn now() -> crate::protocol::time::Now {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let epoch = EPOCH.get_or_init(std::time::Instant::now);
    crate::protocol::time::Now {
        unix_ms: now_ms(),
        mono_ms: i64::try_from(epoch.elapsed().as_millis()).unwrap_or(i64::MAX),
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::owner_of;

    #[test]
    fn owner_is_stable_and_in_range() {
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c (published test vector).
        assert_eq!(
            owner_of("a", 1 << 20),
            (0xaf63_dc4c_8601_ec8c_u64 % (1 << 20)) as usize
        );
        for n in 1..8 {
            for id in ["x", "agent-1#AAAA", "8c6f1c8e-1d7c-4bb8-9d0a-7d0d2c1e9f00"] {
                assert!(owner_of(id, n) < n);
                assert_eq!(owner_of(id, n), owner_of(id, n));
            }
        }
    }
}
