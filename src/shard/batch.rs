//! The per-shard signature verify batcher (DESIGN §1).
//!
//! Connection tasks submit their signature checks and await the answer. A batch is verified
//! when it reaches [`MAX_BATCH`] or once every other runnable task on the shard has had its turn
//! (the flush task yields once, then verifies whatever has accumulated). Under light load that is
//! a batch of one, verified at once; under load, one `verify_batch` call serves many connections.

use crate::crypto::{verify_batch_parsed, ParsedItem};
use crate::protocol::session::VerifyJob;
use futures_channel::oneshot;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Largest batch verified at once.
pub const MAX_BATCH: usize = 64;

type Pending = (VerifyJob, oneshot::Sender<bool>);

/// One per shard.
pub struct Batcher {
    queue: RefCell<Vec<Pending>>,
    flush_scheduled: Cell<bool>,
    results: RefCell<Vec<bool>>,
    /// Batches and signatures verified so far.
    stats: Cell<(u64, u64)>,
    batch_size: metrics::Histogram,
    batch_seconds: metrics::Histogram,
}

impl Batcher {
    /// A new, empty batcher recording into these histograms.
    pub fn new(batch_size: metrics::Histogram, batch_seconds: metrics::Histogram) -> Rc<Self> {
        Rc::new(Batcher {
            queue: RefCell::new(Vec::with_capacity(MAX_BATCH)),
            flush_scheduled: Cell::new(false),
            results: RefCell::new(Vec::with_capacity(MAX_BATCH)),
            stats: Cell::new((0, 0)),
            batch_size,
            batch_seconds,
        })
    }

    /// Verifies `job` as part of the shard's next batch.
    pub async fn verify(self: &Rc<Self>, job: VerifyJob) -> bool {
        let (tx, rx) = oneshot::channel();
        let len = {
            let mut q = self.queue.borrow_mut();
            q.push((job, tx));
            q.len()
        };
        if len >= MAX_BATCH {
            self.flush();
        } else if !self.flush_scheduled.replace(true) {
            let me = Rc::clone(self);
            glommio::spawn_local(async move {
                futures_lite::future::yield_now().await;
                me.flush_scheduled.set(false);
                me.flush();
            })
            .detach();
        }
        rx.await.unwrap_or(false)
    }

    /// Verifies `jobs` (one connection's frames parsed ahead) in the shard's next batch, all
    /// at once; the verdicts come back in order.
    pub async fn verify_all(self: &Rc<Self>, jobs: Vec<VerifyJob>) -> Vec<bool> {
        futures_util::future::join_all(jobs.into_iter().map(|j| self.verify(j))).await
    }

    /// Verifies everything queued now.
    pub fn flush(&self) {
        let batch: Vec<Pending> = std::mem::take(&mut *self.queue.borrow_mut());
        if batch.is_empty() {
            return;
        }
        let started = std::time::Instant::now();
        let mut results = self.results.borrow_mut();
        results.clear();
        {
            let items: Vec<ParsedItem<'_>> = batch
                .iter()
                .map(|(j, _)| ParsedItem {
                    public: &j.public,
                    msg: &j.msg,
                    sig: &j.sig,
                })
                .collect();
            verify_batch_parsed(&items, &mut results);
        }
        let (b, s) = self.stats.get();
        self.stats.set((b + 1, s + batch.len() as u64));
        self.batch_size.record(batch.len() as f64);
        self.batch_seconds.record(started.elapsed().as_secs_f64());
        for (i, (_, tx)) in batch.into_iter().enumerate() {
            let _ = tx.send(results.get(i).copied().unwrap_or(false));
        }
    }

    /// (batches verified, signatures verified).
    pub fn stats(&self) -> (u64, u64) {
        self.stats.get()
    }
}
