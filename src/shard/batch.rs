//! The per-shard signature verify batcher (DESIGN §1).
//!
//! Connection tasks submit their signature checks and await the answer. A batch is verified
//! when it reaches [`MAX_BATCH`] or once every other runnable task on the shard has had its turn
//! (the flush task yields once, then verifies whatever has accumulated). Under light load that is
//! a batch of one, verified at once; under load, one `verify_batch` call serves many connections.

use crate::crypto::{verify_batch, BatchItem};
use crate::protocol::session::VerifyJob;
use futures_channel::oneshot;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Largest batch verified at once.
pub const MAX_BATCH: usize = 64;

type Pending = (VerifyJob, oneshot::Sender<bool>);

/// One per shard.
#[derive(Default)]
pub struct Batcher {
    queue: RefCell<Vec<Pending>>,
    flush_scheduled: Cell<bool>,
    results: RefCell<Vec<bool>>,
    /// Sizes of the batches verified so far (for metrics): (batches, signatures).
    stats: Cell<(u64, u64)>,
}

impl Batcher {
    /// A new, empty batcher.
    pub fn new() -> Rc<Self> {
        Rc::new(Self::default())
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

    /// Verifies everything queued now.
    pub fn flush(&self) {
        let batch: Vec<Pending> = std::mem::take(&mut *self.queue.borrow_mut());
        if batch.is_empty() {
            return;
        }
        let mut results = self.results.borrow_mut();
        results.clear();
        {
            let items: Vec<BatchItem<'_>> = batch
                .iter()
                .map(|(j, _)| BatchItem {
                    public: &j.public,
                    msg: &j.msg,
                    sig: &j.sig,
                })
                .collect();
            verify_batch(&items, &mut results);
        }
        let (b, s) = self.stats.get();
        self.stats.set((b + 1, s + batch.len() as u64));
        crate::metrics::verify_batch_size(batch.len());
        for (i, (_, tx)) in batch.into_iter().enumerate() {
            let _ = tx.send(results.get(i).copied().unwrap_or(false));
        }
    }

    /// (batches verified, signatures verified).
    pub fn stats(&self) -> (u64, u64) {
        self.stats.get()
    }
}
