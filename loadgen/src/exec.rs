//! The executors: one glommio executor per `--threads`, each owning a share of the agents, and
//! the barriers that line their phases up with the main thread (which samples the gateway and,
//! in a split run, lines up with the other processes).

use crate::options::Options;
use crate::sim::{Env, Sim};
use crate::stats::{Live, Recorder, Tally};
use crate::url::Endpoint;
use glommio::sync::Semaphore;
use glommio::{LocalExecutorBuilder, Placement};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Barrier 1: agents created, nothing connected yet; the ramp starts at its release.
pub const B_START: usize = 1;
/// Barrier 2: the ramp is over (every agent connected or failed).
pub const B_RAMPED: usize = 2;
/// Barrier 3: the fleet is ready (frames pre-signed, …); the measured window starts at its
/// release.
pub const B_READY: usize = 3;
/// Barrier 4: the measured window is over.
pub const B_END: usize = 4;
/// Every barrier, in order.
pub const BARRIERS: [usize; 4] = [B_START, B_RAMPED, B_READY, B_END];

/// Executors meet the main thread at numbered barriers.
#[derive(Debug, Default)]
pub struct PhaseSync {
    arrived: Mutex<Vec<usize>>,
    cv: Condvar,
    released: AtomicUsize,
    abort: AtomicBool,
}

impl PhaseSync {
    /// Executor side: arrive at barrier `n` and wait for its release (or an abort).
    pub async fn barrier(&self, n: usize) -> bool {
        if let Ok(mut a) = self.arrived.lock() {
            if a.len() <= n {
                a.resize(n + 1, 0);
            }
            if let Some(x) = a.get_mut(n) {
                *x += 1;
            }
        }
        self.cv.notify_all();
        while self.released.load(Ordering::Acquire) < n {
            if self.aborted() {
                return false;
            }
            glommio::timer::sleep(Duration::from_millis(1)).await;
        }
        !self.aborted()
    }

    /// Main side: waits until `parties` executors arrived at `n`, or `until`.
    pub fn wait_arrived(&self, n: usize, parties: usize, until: Instant) -> bool {
        let Ok(mut a) = self.arrived.lock() else {
            return false;
        };
        loop {
            if a.get(n).copied().unwrap_or(0) >= parties {
                return true;
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            a = match self
                .cv
                .wait_timeout(a, left.min(Duration::from_millis(100)))
            {
                Ok((g, _)) => g,
                Err(_) => return false,
            };
        }
    }

    /// Main side: releases barrier `n`.
    pub fn release(&self, n: usize) {
        self.released.fetch_max(n, Ordering::AcqRel);
    }

    /// Makes every pending and later barrier return `false` at once.
    pub fn abort(&self) {
        self.abort.store(true, Ordering::Release);
    }

    /// Whether the run was aborted.
    pub fn aborted(&self) -> bool {
        self.abort.load(Ordering::Acquire)
    }
}

/// State shared by the executors and the main thread.
pub struct Shared {
    /// The run's options.
    pub opts: Arc<Options>,
    /// Agent endpoint.
    pub ep: Endpoint,
    /// Every agent endpoint (several with cluster nodes; `ep` is the first).
    pub eps: Vec<Endpoint>,
    /// Progress counters.
    pub live: Arc<Live>,
    /// Barriers.
    pub sync: PhaseSync,
    /// Ends the `run` phase of `commands` early (set by the command driver).
    pub stop: AtomicBool,
    /// Registered agents: `(uid, index)`, filled at the end of the ramp.
    pub uids: Mutex<Vec<(String, usize)>>,
    /// Hard end of the run.
    pub deadline: Instant,
}

/// A running set of executors.
pub struct Executors {
    handles: Vec<glommio::ExecutorJoinHandle<Tally>>,
}

impl Executors {
    /// Starts `opts.threads` executors running `script` on their share of the agents.
    pub fn start<F, Fut>(shared: &Arc<Shared>, script: F) -> anyhow::Result<Executors>
    where
        F: Fn(Rc<Env>, Arc<Shared>, Vec<Sim>) -> Fut + Send + Clone + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let threads = shared.opts.threads.min(shared.opts.agents).max(1);
        let mut handles = Vec::with_capacity(threads);
        let shared_for_err = Arc::clone(shared);
        for id in 0..threads {
            let shared = Arc::clone(shared);
            let script = script.clone();
            let h = LocalExecutorBuilder::new(Placement::Unbound)
                .name(&format!("loadgen-{id}"))
                // The gateway's ring settings and reasons: no registered buffers, and rings deep
                // enough that cancelling one of 19,000 parked polls does not walk thousands.
                .io_memory(aegis_gateway::shard::rt::IO_MEMORY)
                .ring_depth(aegis_gateway::shard::rt::RING_DEPTH)
                .spawn(move || async move {
                    let rec = Rc::new(Recorder::new(Arc::clone(&shared.live)));
                    let env = Rc::new(Env {
                        ep: shared.ep.clone(),
                        eps: shared.eps.clone(),
                        opts: Arc::clone(&shared.opts),
                        rec: Rc::clone(&rec),
                        deadline: shared.deadline,
                    });
                    let o = &shared.opts;
                    let sims: Vec<Sim> = (id..o.agents)
                        .step_by(threads)
                        .map(|i| Sim::new(o.agent_offset + i, o))
                        .collect();
                    script(env, Arc::clone(&shared), sims).await;
                    let tally = rec.tally.borrow().clone();
                    tally
                })
                .map_err(|e| {
                    // Executors already started are waiting at the first barrier: let them go.
                    shared_for_err.sync.abort();
                    anyhow::anyhow!("starting executor {id}: {e}")
                })?;
            handles.push(h);
        }
        Ok(Executors { handles })
    }

    /// How many executors run.
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// Waits for every executor and merges their tallies.
    pub fn join(self) -> Tally {
        let mut total = Tally::default();
        for h in self.handles {
            match h.join() {
                Ok(t) => total.merge(&t),
                Err(e) => {
                    *total
                        .errors
                        .entry(format!("executor_failed: {e}"))
                        .or_default() += 1;
                }
            }
        }
        total
    }
}

/// Connects every agent, `rate` per second (0: at once), at most `max_inflight` handshakes at
/// a time, recording latency in `hist`; agents that fail are kept (disconnected).
pub async fn connect_all(env: &Rc<Env>, sims: Vec<Sim>, rate: f64, hist: &'static str) -> Vec<Sim> {
    let sem = Rc::new(Semaphore::new(env.opts.max_inflight as u64));
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(sims.len());
    let mut skipped = Vec::new();
    for (k, mut sim) in sims.into_iter().enumerate() {
        if rate > 0.0 {
            let due = start + Duration::from_secs_f64(k as f64 / rate);
            let wait = due.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                glommio::timer::sleep(wait).await;
            }
        }
        let permit = match Rc::clone(&sem).acquire_static_permit(1).await {
            Ok(p) if Instant::now() < env.deadline => p,
            _ => {
                env.rec.error("not_started_before_deadline");
                skipped.push(sim);
                continue;
            }
        };
        let env = Rc::clone(env);
        tasks.push(glommio::spawn_local(async move {
            let _permit = permit;
            if let Err(e) = sim.connect(&env, hist).await {
                env.rec.error(&e.label());
                sim.disconnect(&env);
            }
            sim
        }));
    }
    let mut out = skipped;
    for t in tasks {
        out.push(t.await);
    }
    out
}

/// Runs every connected agent's steady loop until `until` or until `stop` is set, then settles
/// each (ping barrier, accepted count).
pub async fn run_all(
    env: &Rc<Env>,
    shared: &Arc<Shared>,
    sims: Vec<Sim>,
    until: Instant,
    heartbeat: Option<Duration>,
    event_every: Option<Duration>,
) -> Vec<Sim> {
    let gate = Rc::new(Semaphore::new(0));
    let closer = {
        let gate = Rc::clone(&gate);
        let shared = Arc::clone(shared);
        glommio::spawn_local(async move {
            while Instant::now() < until
                && !shared.stop.load(Ordering::Relaxed)
                && !shared.sync.aborted()
            {
                let left = until.saturating_duration_since(Instant::now());
                glommio::timer::sleep(left.min(Duration::from_millis(5))).await;
            }
            gate.close();
        })
    };
    let tasks: Vec<_> = sims
        .into_iter()
        .map(|mut sim| {
            let env = Rc::clone(env);
            let gate = Rc::clone(&gate);
            glommio::spawn_local(async move {
                if sim.ws.is_some() {
                    futures_lite::future::or(sim.run(&env, heartbeat, event_every), async {
                        let _ = gate.acquire(1).await;
                    })
                    .await;
                    sim.settle(&env).await;
                }
                sim
            })
        })
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await);
    }
    closer.await;
    out
}

/// Closes every connection (close frames, bounded wait).
pub async fn close_all(env: &Rc<Env>, sims: Vec<Sim>) {
    let tasks: Vec<_> = sims
        .into_iter()
        .map(|mut sim| {
            let env = Rc::clone(env);
            glommio::spawn_local(async move { sim.close(&env).await })
        })
        .collect();
    for t in tasks {
        t.await;
    }
}

/// Agents connected now.
pub fn connected(sims: &[Sim]) -> u64 {
    sims.iter().filter(|s| s.ws.is_some()).count() as u64
}
