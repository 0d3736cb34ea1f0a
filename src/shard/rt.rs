//! Runtime glue for code outside the shards (the admin API, the fleet operations behind it):
//! spawning, timers, deadlines, TCP types and an executor thread of its own. Everything that
//! names glommio lives in `src/shard/`; this file is the small door the rest of the crate uses,
//! so the runtime could be swapped here (PITFALLS: glommio 0.9's dependencies are old).

use std::future::Future;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use glommio::net::{TcpListener, TcpStream};

/// Locked memory registered per executor for io_uring (PITFALLS: without CAP_IPC_LOCK the
/// default 10 MiB × 3 fails; we use no registered buffers).
pub const IO_MEMORY: usize = 64 << 10;

/// Submission entries of each io_uring of a shard (glommio's default is 128). The kernel sizes
/// a ring's poll-cancel hash table from its completion queue (`ilog2(cq) - 5` bits, at most 8):
/// at 128 entries a shard's 10k parked socket polls share 8 buckets, and every wake-up walks
/// one of them when glommio cancels its previous preemption timer (`io_poll_find` was ~48 % of
/// the gateway's CPU with 15k idle agents). 4096 gives the maximum of 256 buckets.
pub const RING_DEPTH: usize = 4096;

/// Errors starting an executor thread.
#[derive(Debug, thiserror::Error)]
#[error("cannot start executor {name}: {message}")]
pub struct SpawnError {
    /// The executor's name.
    pub name: String,
    /// glommio's error, as text (its error type is generic over the failed item).
    pub message: String,
}

/// A listening socket on `addr` that no other socket shares (no SO_REUSEPORT): a second
/// process on the same address fails here with `AddrInUse`. Any thread; accept on it with
/// [`listener_from`] on an executor.
pub fn listen_exclusive(addr: std::net::SocketAddr) -> std::io::Result<socket2::Socket> {
    super::socket::listening(addr, false, super::socket::Buffers::default())
}

/// Accepts on `s` (listening) from the current executor.
pub fn listener_from(s: socket2::Socket) -> TcpListener {
    super::sys::into_listener(s)
}

/// Runs `fut` as a detached task on the current executor.
pub fn spawn<F: Future<Output = ()> + 'static>(fut: F) {
    glommio::spawn_local(fut).detach();
}

/// Waits for `d` on the current executor.
pub async fn sleep(d: Duration) {
    glommio::timer::sleep(d).await;
}

/// Runs `fut` until `deadline`; `None` if the deadline passed first.
pub async fn with_deadline<T>(deadline: Instant, fut: impl Future<Output = T>) -> Option<T> {
    timeout(deadline.saturating_duration_since(Instant::now()), fut).await
}

/// Runs `fut` for at most `limit`; `None` if it did not finish in time.
pub async fn timeout<T>(limit: Duration, fut: impl Future<Output = T>) -> Option<T> {
    futures_lite::future::or(async { Some(fut.await) }, async {
        glommio::timer::sleep(limit).await;
        None
    })
    .await
}

/// Starts an unpinned executor thread named `name` running the future `make()` builds (on that
/// thread, so it need not be `Send`). The handle joins the thread.
pub fn start_thread<M, F>(name: &str, make: M) -> Result<JoinHandle<()>, SpawnError>
where
    M: FnOnce() -> F + Send + 'static,
    F: Future<Output = ()> + 'static,
{
    let join = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .name(name)
        .io_memory(IO_MEMORY)
        .spawn(move || async move { make().await })
        .map_err(|e| SpawnError {
            name: name.to_string(),
            message: e.to_string(),
        })?;
    Ok(std::thread::spawn(move || {
        let _ = join.join();
    }))
}
