//! The admin listener's own executor thread (unpinned, never a shard), so API work — broadcasts,
//! store scans, durability waits — never runs on a shard.

use super::Backend;
use crate::shard::rt;
use crate::tls::TlsConfig;
use futures_channel::oneshot;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::thread::JoinHandle;

/// Why the admin listener did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The executor thread could not start.
    #[error(transparent)]
    Executor(#[from] rt::SpawnError),
    /// The executor exited before it was serving.
    #[error("the admin executor exited during start")]
    Exited,
}

/// A running admin listener.
pub struct Service {
    /// Bound address.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
    /// The listening socket (a duplicate), to hand to a successor.
    listener: std::os::fd::OwnedFd,
}

impl Service {
    /// Binds `addr` (or serves on `inherited`, a listening socket handed over) and serves the
    /// admin API with `backend` until [`Service::stop`]. The backend is moved to the admin
    /// thread; its [`Backend::on_start`] runs there once, before the first request.
    pub fn start<B: Backend + Send>(
        addr: SocketAddr,
        token: String,
        backend: B,
        tls: Option<Arc<TlsConfig>>,
        inherited: Option<std::os::fd::OwnedFd>,
    ) -> Result<Service, StartError> {
        let bind = |source| StartError::Bind { addr, source };
        let socket = match inherited {
            Some(fd) => socket2::Socket::from(fd),
            None => rt::listen_exclusive(addr).map_err(bind)?,
        };
        let listener_fd = socket.try_clone().map_err(bind)?.into();
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<SocketAddr, StartError>>();
        let thread = rt::start_thread("admin", move || async move {
            let listener = rt::listener_from(socket);
            let local = listener.local_addr().unwrap_or(addr);
            let backend = Rc::new(backend);
            backend.on_start();
            let _ = ready_tx.send(Ok(local));
            let token: Rc<str> = Rc::from(token.as_str());
            futures_lite::future::or(super::serve_tls(listener, token, backend, tls), async {
                let _ = stop_rx.await;
            })
            .await;
        })?;
        let addr = ready_rx.recv().map_err(|_| StartError::Exited)??;
        Ok(Service {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
            listener: listener_fd,
        })
    }

    /// A duplicate of the listening socket (for a hand-over to a successor process).
    ///
    /// # Errors
    /// Out of file descriptors.
    pub fn listener_fd(&self) -> std::io::Result<std::os::fd::OwnedFd> {
        self.listener.try_clone()
    }

    /// Stops serving and waits for the executor to exit.
    pub fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
