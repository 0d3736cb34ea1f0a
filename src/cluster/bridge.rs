//! The NATS client's thread: `async-nats` needs tokio, the shards run glommio (DESIGN §7). One
//! plain thread runs a small tokio runtime that owns the client; the rest of the gateway hands it
//! jobs over a channel ([`Bridge::run`]) and awaits their answers on oneshot channels, which wake
//! any executor. Every job is a task of its own on that runtime, so many requests are in flight
//! at once (publishes are pipelined as group commit does for fjall), and every job has a deadline,
//! so a caller never waits on an unreachable server for long.

use crate::store::{Fault, StoreError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// The longest a NATS job may take before its caller gets an error.
pub const OP_TIMEOUT: Duration = Duration::from_secs(5);

type Job<N> = Box<dyn FnOnce(Arc<N>) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// The sending side of the NATS thread; cheap to clone, usable from any thread.
pub struct Bridge<N> {
    tx: tokio::sync::mpsc::UnboundedSender<Job<N>>,
}

impl<N> Clone for Bridge<N> {
    fn clone(&self) -> Self {
        Bridge {
            tx: self.tx.clone(),
        }
    }
}

/// The error of a job that could not run or did not finish in time.
pub fn unavailable(cause: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(Fault {
        disk_full: false,
        cause: format!("NATS: {cause}"),
    })
}

impl<N: Send + Sync + 'static> Bridge<N> {
    /// Starts the thread: `connect` runs on it first (connection, streams); once it resolves,
    /// jobs are served until every `Bridge` is dropped. Returns after `connect` finished, with
    /// its error if it failed.
    pub fn start<C, F, E>(connect: C) -> Result<(Bridge<N>, Arc<N>), E>
    where
        C: FnOnce() -> F + Send + 'static,
        F: Future<Output = Result<N, E>> + 'static,
        E: Send + 'static + From<std::io::Error>,
    {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job<N>>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<Arc<N>, E>>();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("nats".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let nats = match connect().await {
                        Ok(n) => Arc::new(n),
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                            return;
                        }
                    };
                    let _ = ready_tx.send(Ok(Arc::clone(&nats)));
                    while let Some(job) = rx.recv().await {
                        tokio::spawn(job(Arc::clone(&nats)));
                    }
                });
            })?;
        match ready_rx.recv() {
            Ok(Ok(nats)) => Ok((Bridge { tx }, nats)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(std::io::Error::other("the NATS thread exited during start").into()),
        }
    }

    /// Runs `job` on the NATS thread and returns its answer, or an error if the thread is gone
    /// or the job took longer than [`OP_TIMEOUT`].
    pub fn run<T, J, F>(&self, job: J) -> impl Future<Output = Result<T, StoreError>> + 'static
    where
        T: Send + 'static,
        J: FnOnce(Arc<N>) -> F + Send + 'static,
        F: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let (reply, answer) = futures_channel::oneshot::channel();
        let sent = self.tx.send(Box::new(move |nats| {
            Box::pin(async move {
                let out = match tokio::time::timeout(OP_TIMEOUT, job(nats)).await {
                    Ok(out) => out,
                    Err(_) => Err(unavailable("the request timed out")),
                };
                let _ = reply.send(out);
            })
        }));
        async move {
            if sent.is_err() {
                return Err(unavailable("the client thread is gone"));
            }
            answer
                .await
                .unwrap_or_else(|_| Err(unavailable("the client thread is gone")))
        }
    }

    /// Runs `job` on the NATS thread without waiting for it (no deadline: background work such
    /// as subscriptions and leases).
    pub fn spawn<J, F>(&self, job: J)
    where
        J: FnOnce(Arc<N>) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let _ = self.tx.send(Box::new(move |nats| {
            Box::pin(async move { job(nats).await })
        }));
    }
}
