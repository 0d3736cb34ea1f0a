//! Executors that are not shards: the admin HTTP listener runs on its own glommio executor
//! (unpinned), so API work — broadcasts, store scans, fsync waits — never runs on a shard.

use crate::admin::Backend;
use futures_channel::oneshot;
use glommio::{LocalExecutorBuilder, Placement};
use std::net::SocketAddr;
use std::rc::Rc;
use std::thread::JoinHandle;
use std::time::Duration;

/// How often the admin executor sweeps expired commands.
const EXPIRY_SWEEP: Duration = Duration::from_secs(1);

/// A running service executor.
pub struct Service {
    /// Bound address.
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Service {
    /// Binds `addr` and serves the admin API with `backend` until [`Service::stop`]. Also sweeps
    /// expired queued commands once a second.
    pub fn start_admin<B: Backend + Send + Sweep>(
        addr: SocketAddr,
        token: String,
        backend: B,
        tls: Option<std::sync::Arc<super::TlsConfig>>,
    ) -> Result<Service, String> {
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<SocketAddr, String>>();
        let join = LocalExecutorBuilder::new(Placement::Unbound)
            .name("admin")
            .io_memory(64 << 10)
            .spawn(move || async move {
                let listener = match glommio::net::TcpListener::bind(addr) {
                    Ok(l) => l,
                    Err(e) => {
                        let _ = ready_tx.send(Err(format!("cannot bind {addr}: {e}")));
                        return;
                    }
                };
                let local = listener.local_addr().unwrap_or(addr);
                let _ = ready_tx.send(Ok(local));
                let backend = Rc::new(backend);
                let sweeper = Rc::clone(&backend);
                glommio::spawn_local(async move {
                    loop {
                        glommio::timer::sleep(EXPIRY_SWEEP).await;
                        sweeper.sweep();
                    }
                })
                .detach();
                let token: Rc<str> = Rc::from(token.as_str());
                futures_lite::future::or(
                    crate::admin::serve_tls(listener, token, backend, tls),
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await;
            })
            .map_err(|e| e.to_string())?;
        let addr = ready_rx
            .recv()
            .map_err(|_| "admin executor exited during start".to_string())??;
        let thread = std::thread::spawn(move || {
            let _ = join.join();
        });
        Ok(Service {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
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

/// Periodic maintenance run by the admin executor.
pub trait Sweep {
    /// Moves expired commands to their terminal status (bounded work per call).
    fn sweep(&self);
}
