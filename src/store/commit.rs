//! Group commit: one dedicated thread makes writes durable for many waiters with one fsync.
//!
//! Callers (executor tasks or plain threads) send a oneshot reply sender over a crossbeam
//! channel. The committer thread blocks for one request, drains every other pending request,
//! syncs the journal once and answers them all. N concurrent callers share one fsync, and no
//! executor thread ever runs an fsync.
//!
//! fjall's `Database::persist(SyncAll)` runs the fsync while holding the journal writer mutex,
//! so every insert on an executor would wait behind it. The committer therefore only flushes
//! the journal's user-space buffer under that mutex (`PersistMode::Buffer`, a quick `write`) and
//! runs the fsync itself on its own descriptor of the active journal file, outside the mutex
//! ([`JournalSync`]). If the journal file cannot be found or opened it falls back to
//! `persist(SyncAll)`, which is always correct, only slower for concurrent writers.
//!
//! The committer also watches the store's health: a failed sync marks the store failed, an
//! idle probe (`persist(Buffer)`, which fjall refuses once poisoned) notices failures of other
//! writers, and while failed it answers every request with [`StoreError::Unavailable`] and tries
//! to reopen the database once a second (see `recovery`). Each answer carries the epoch of the
//! database it synced: a waiter whose writes went to an older one gets
//! [`StoreError::Reopened`].

use super::{Inner, StoreError};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use fjall::{Database, PersistMode};
use futures_channel::oneshot;
use std::{
    fs::File,
    future::Future,
    io,
    path::{Path, PathBuf},
    pin::Pin,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    task::{Context, Poll},
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// Health checks (probe, pending withdrawals) at least this often.
const PROBE_INTERVAL: Duration = Duration::from_millis(500);
/// Pause between two reopen attempts of a failed store.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

/// The outcome of one sync: the epoch of the database synced.
type Outcome = Result<u64, Failure>;
/// Where the committer sends the outcome of one sync request.
type Reply = oneshot::Sender<Outcome>;

/// Counters kept by the committer thread.
#[derive(Debug, Default)]
struct Counters {
    fsyncs: AtomicU64,
    requests: AtomicU64,
}

/// Handle on the committer thread; dropping it stops and joins the thread.
pub(crate) struct Committer {
    tx: Option<Sender<Reply>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Committer {
    /// Starts the committer thread for the store `inner`. With a `gate`, the thread waits for
    /// it to yield (or disconnect) before serving requests: tests use it to queue requests
    /// deterministically.
    pub(crate) fn spawn(inner: Arc<Inner>, gate: Option<Receiver<()>>) -> Result<Self, StoreError> {
        let (tx, rx) = crossbeam_channel::unbounded::<Reply>();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("aegis-committer".into())
            .spawn(move || {
                if let Some(gate) = gate {
                    let _ = gate.recv();
                }
                run(&inner, &rx, &thread_counters);
            })
            .map_err(StoreError::SpawnCommitter)?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            counters,
        })
    }

    /// Queues a sync request; the returned future resolves once it is served. With `expect`,
    /// it fails with [`StoreError::Reopened`] unless the database synced is of that epoch.
    pub(crate) fn request(&self, expect: Option<u64>) -> SyncWaiter {
        let (reply, rx) = oneshot::channel();
        match self.tx.as_ref().map(|tx| tx.send(reply)) {
            Some(Ok(())) => SyncWaiter {
                state: WaiterState::Pending(rx),
                expect,
            },
            _ => SyncWaiter::failed(StoreError::CommitterGone),
        }
    }

    /// `(fsyncs done, requests served)` so far.
    pub(crate) fn stats(&self) -> (u64, u64) {
        (
            self.counters.fsyncs.load(Ordering::Acquire),
            self.counters.requests.load(Ordering::Acquire),
        )
    }

    /// Number of requests waiting in the channel (test support).
    #[cfg(test)]
    pub(crate) fn queued(&self) -> usize {
        self.tx.as_ref().map_or(0, Sender::len)
    }
}

impl Drop for Committer {
    fn drop(&mut self) {
        // Disconnect the channel: the thread finishes the batch it holds (at most one fsync)
        // and exits; joining makes sure its database handle is released before we return.
        drop(self.tx.take());
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("store committer thread panicked");
            }
        }
    }
}

/// The committer loop: one request, then everything else pending, one sync, answer all;
/// between batches, health checks and (when failed) reopen attempts.
fn run(inner: &Inner, rx: &Receiver<Reply>, counters: &Counters) {
    let mut batch: Vec<Reply> = Vec::new();
    let fsync_seconds = metrics::histogram!(crate::metrics::FSYNC_SECONDS);
    let mut syncer: Option<(u64, JournalSync)> = None;
    let mut next_check = Instant::now() + PROBE_INTERVAL;
    let mut next_reopen = Instant::now();
    loop {
        let wait = next_check.saturating_duration_since(Instant::now());
        match rx.recv_timeout(wait) {
            Ok(first) => {
                batch.push(first);
                batch.extend(rx.try_iter());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        if inner.health.is_failed() {
            // Answer first: nobody waits for a reopen (which may take a while) to hear "no".
            let fault = inner.health.fault().unwrap_or_else(super::Fault::reopening);
            answer(&mut batch, counters, &Err(Failure::Unavailable(fault)));
            if Instant::now() >= next_reopen {
                next_reopen = Instant::now() + RETRY_INTERVAL;
                if super::recovery::reopen(inner).is_ok() {
                    syncer = None;
                }
            }
            next_check = Instant::now() + RETRY_INTERVAL.min(PROBE_INTERVAL);
            continue;
        }
        if Instant::now() >= next_check {
            next_check = Instant::now() + PROBE_INTERVAL;
            check(inner);
        }
        if batch.is_empty() {
            continue;
        }
        let outcome = match inner.engine() {
            Ok(engine) => {
                if !matches!(&syncer, Some((epoch, _)) if *epoch == engine.epoch) {
                    syncer = None;
                }
                let tracked = match syncer.take() {
                    Some(s) => Ok(s),
                    None => JournalSync::open(&inner.dir).map(|s| (engine.epoch, s)),
                };
                match tracked {
                    Ok((epoch, mut sync)) => {
                        let started = Instant::now();
                        let outcome = sync.sync(&engine.db).map(|()| engine.epoch);
                        fsync_seconds.record(started.elapsed().as_secs_f64());
                        counters.fsyncs.fetch_add(1, Ordering::AcqRel);
                        syncer = Some((epoch, sync));
                        outcome.map_err(|e| Failure::Sync(Arc::new(e)))
                    }
                    // The journal fjall reopened into is not where this build expects it:
                    // nothing can be made durable, so nothing is acknowledged.
                    Err(e) => Err(Failure::Sync(Arc::new(e.into()))),
                }
            }
            Err(_) => Err(Failure::Unavailable(super::Fault::reopening())),
        };
        if let Err(f) = &outcome {
            let e = StoreError::from(f.clone());
            tracing::error!(error = %e, waiters = batch.len(), "store sync failed");
            inner.note_failure(&e);
        }
        answer(&mut batch, counters, &outcome);
    }
}

/// Answers every request of `batch` with `outcome`.
fn answer(batch: &mut Vec<Reply>, counters: &Counters, outcome: &Outcome) {
    counters
        .requests
        .fetch_add(batch.len() as u64, Ordering::AcqRel);
    for reply in batch.drain(..) {
        // A waiter that gave up (dropped its future) is not an error.
        let _ = reply.send(outcome.clone());
    }
}

/// Periodic check of a healthy store: fjall refuses `persist` once poisoned (by any writer),
/// and commands refused after a write are withdrawn here.
fn check(inner: &Inner) {
    let Ok(engine) = inner.engine() else { return };
    let probe = engine
        .db
        .persist(PersistMode::Buffer)
        .map_err(|source| StoreError::Fjall {
            context: "probing the journal",
            source,
        });
    let outcome = probe.and_then(|()| inner.withdraw_pending(&engine));
    if let Err(e) = outcome {
        inner.note_failure(&e);
    }
}

/// Why a sync failed, shared by every waiter of the batch.
#[derive(Clone, Debug)]
enum Failure {
    /// The fsync (or the buffer flush before it) failed.
    Sync(Arc<fjall::Error>),
    /// The store is failed or reopening.
    Unavailable(super::Fault),
}

impl From<Failure> for StoreError {
    fn from(f: Failure) -> StoreError {
        match f {
            Failure::Sync(e) => StoreError::Sync(e),
            Failure::Unavailable(fault) => StoreError::Unavailable(fault),
        }
    }
}

/// Future returned by [`Store::sync`](super::Store::sync): resolves once every write made
/// before the call is on disk. `Send`, `Unpin`; woken from the committer thread.
#[must_use = "a sync does nothing unless awaited"]
#[derive(Debug)]
pub struct SyncWaiter {
    state: WaiterState,
    /// The epoch the writes went to; another one synced means they may be lost.
    expect: Option<u64>,
}

#[derive(Debug)]
enum WaiterState {
    Pending(oneshot::Receiver<Outcome>),
    Done(Option<StoreError>),
}

impl SyncWaiter {
    /// A waiter that fails with `e` at once.
    pub(crate) fn failed(e: StoreError) -> SyncWaiter {
        SyncWaiter {
            state: WaiterState::Done(Some(e)),
            expect: None,
        }
    }
}

impl Future for SyncWaiter {
    type Output = Result<(), StoreError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let expect = self.expect;
        match &mut self.state {
            WaiterState::Pending(rx) => match Pin::new(rx).poll(cx) {
                Poll::Ready(Ok(Ok(epoch))) if expect.is_some_and(|e| e != epoch) => {
                    Poll::Ready(Err(StoreError::Reopened))
                }
                Poll::Ready(Ok(outcome)) => Poll::Ready(outcome.map(|_| ()).map_err(Into::into)),
                Poll::Ready(Err(oneshot::Canceled)) => Poll::Ready(Err(StoreError::CommitterGone)),
                Poll::Pending => Poll::Pending,
            },
            WaiterState::Done(err) => match err.take() {
                Some(e) => Poll::Ready(Err(e)),
                None => Poll::Ready(Err(StoreError::CommitterGone)),
            },
        }
    }
}

/// Syncs fjall's journal with the fsync outside fjall's journal mutex.
///
/// Relies on fjall 3.1's journal layout (`src/journal/writer.rs`, `db.rs`): journals are
/// `<db dir>/<id>.jnl`, the active one has the highest id, and a rotation (under the journal
/// mutex) first fsyncs the old journal, then creates `<id+1>.jnl` and fsyncs the directory.
/// So after a `persist(Buffer)`, fsyncing the highest-numbered journal covers every write made
/// before: a write either sits in that journal, or in an older one that its rotation synced.
struct JournalSync {
    dir: PathBuf,
    active: Option<(u64, File)>,
    /// Set after an fsync error: the kernel may have dropped the dirty pages, so a later
    /// "successful" fsync would prove nothing. Every later sync fails (like fjall's poisoning).
    failed: bool,
}

impl JournalSync {
    /// Tracks the newest journal of `dir`; an error when there is none (see [`check_layout`]).
    fn open(dir: &Path) -> io::Result<Self> {
        let id = newest_journal(dir)?.ok_or_else(|| missing_journal(dir))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            active: Some((id, File::open(journal_path(dir, id))?)),
            failed: false,
        })
    }

    /// Makes every write made before this call durable.
    fn sync(&mut self, db: &Database) -> Result<(), fjall::Error> {
        if self.failed {
            return Err(fjall::Error::Poisoned);
        }
        // Flush fjall's user-space buffer (a write syscall) under its mutex; this also waits
        // for any journal rotation in progress.
        db.persist(PersistMode::Buffer)?;
        self.fsync_active().map_err(|e| {
            self.failed = true;
            e.into()
        })
    }

    /// Fsyncs the newest journal. A newer journal that exists but cannot be opened is an
    /// error: a write in it would be acknowledged without being durable.
    fn fsync_active(&mut self) -> io::Result<()> {
        self.advance()?;
        match &self.active {
            Some((_, file)) => file.sync_all(),
            None => Err(missing_journal(&self.dir)),
        }
    }

    /// Moves to `<id+1>.jnl` for as long as such a file exists (journal rotations).
    fn advance(&mut self) -> io::Result<()> {
        while let Some((id, _)) = &self.active {
            let next = id.saturating_add(1);
            match File::open(journal_path(&self.dir, next)) {
                Ok(file) => self.active = Some((next, file)),
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    #[cfg(test)]
    fn active_id(&self) -> Option<u64> {
        self.active.as_ref().map(|(id, _)| *id)
    }
}

/// Fails unless `dir` holds a fjall journal where this build's group commit looks for it
/// (`<id>.jnl`, fjall 3.1's layout; `Cargo.toml` pins fjall to the version it was checked
/// against). Called at open, so a fjall upgrade that moves its journal stops the gateway at
/// start instead of silently weakening durability.
pub(crate) fn check_layout(dir: &Path) -> Result<(), StoreError> {
    match newest_journal(dir) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(StoreError::JournalLayout {
            source: missing_journal(dir),
        }),
        Err(source) => Err(StoreError::JournalLayout { source }),
    }
}

fn missing_journal(dir: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "no fjall journal (<id>.jnl) in {}: group commit relies on fjall 3.1's journal layout",
            dir.display()
        ),
    )
}

fn journal_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id}.jnl"))
}

/// Highest `<id>.jnl` in `dir`, if any.
fn newest_journal(dir: &Path) -> io::Result<Option<u64>> {
    let mut newest = None;
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name();
        let id = name
            .to_str()
            .and_then(|n| n.strip_suffix(".jnl"))
            .and_then(|n| n.parse::<u64>().ok());
        if let Some(id) = id {
            newest = newest.max(Some(id));
        }
    }
    Ok(newest)
}

#[cfg(test)]
#[path = "commit_tests.rs"]
mod tests;
