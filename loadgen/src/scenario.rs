//! What each executor does in each scenario, between the barriers of [`crate::exec`]:
//!
//! | scenario | ramp (`B_START` → `B_RAMPED`) | `B_RAMPED` → `B_READY` | window (`B_READY` → `B_END`) |
//! |---|---|---|---|
//! | connect | connect (+ registration) | | hold until the deadline (heartbeats) |
//! | reconnect-storm | connect + registration | build each M1 | drop all, reconnect all at once (R1 checks after the window) |
//! | steady | connect | | heartbeats + events until the deadline |
//! | throughput | connect | pre-sign `--frames` per agent | blast |
//! | commands | connect + registration | | receive/ack until the driver is done |
//! | mixed | connect + registration | | steady traffic + commands until the deadline |
//! | soak | connect + registration | | as mixed; the coordinating thread samples the gateway |
//! | restart | connect + registration | | heartbeats; the spawned gateway restarts; agents reconnect like the Go agent |
//! | fleet | connect + registration | | heartbeats (+ events) and agent pings until the deadline |
//!
//! Every window that sends ends with a ping barrier per agent ([`Sim::settle`]): the pong proves
//! the gateway processed everything the agent wrote, which is when messages count as accepted.

use crate::exec::{
    close_all, connect_all, connected, run_all, Shared, B_END, B_RAMPED, B_READY, B_START,
};
use crate::options::Scenario;
use crate::sim::{Env, Sim};
use crate::stats::h;
use async_tungstenite::tungstenite::Message;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// The executor script of every scenario.
pub async fn script(env: Rc<Env>, shared: Arc<Shared>, sims: Vec<Sim>) {
    let o = Arc::clone(&env.opts);
    let executors = o.threads.min(o.agents).max(1) as f64;
    let heartbeat = (o.heartbeat_s > 0.0).then(|| Duration::from_secs_f64(o.heartbeat_s));
    let events = (o.event_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / o.event_rate));
    if !shared.sync.barrier(B_START).await {
        return;
    }
    let mut sims = connect_all(&env, sims, o.ramp / executors, h::HANDSHAKE).await;
    if !shared.sync.barrier(B_RAMPED).await {
        close_all(&env, sims).await;
        return;
    }
    if o.registers() {
        if let Ok(mut uids) = shared.uids.lock() {
            for s in sims.iter().filter(|s| s.ws.is_some()) {
                if let Some((uid, _)) = &s.creds {
                    uids.push((uid.clone(), s.index));
                }
            }
        }
    }
    let mut frames: Vec<Vec<Message>> = Vec::new();
    if o.scenario == Scenario::Throughput {
        for s in sims.iter_mut() {
            match s.presign(o.frames, o.payload) {
                Ok(f) if s.ws.is_some() => frames.push(f),
                Ok(_) => frames.push(Vec::new()),
                Err(e) => {
                    env.rec.error(&e.label());
                    frames.push(Vec::new());
                }
            }
        }
    }
    if o.scenario == Scenario::ReconnectStorm {
        for s in sims.iter_mut().filter(|s| s.creds.is_some()) {
            s.prepare_m1();
        }
    }
    if o.offline && o.scenario == Scenario::Commands {
        // Every send becomes an enqueue for an offline agent.
        for s in sims.iter_mut() {
            s.close(&env).await;
        }
    }
    if !shared.sync.barrier(B_READY).await {
        close_all(&env, sims).await;
        return;
    }
    let deadline = env.deadline;
    sims = match o.scenario {
        Scenario::Connect | Scenario::Commands => {
            run_all(&env, &shared, sims, deadline, heartbeat, None).await
        }
        Scenario::Steady | Scenario::Mixed | Scenario::Soak | Scenario::Fleet => {
            run_all(&env, &shared, sims, deadline, heartbeat, events).await
        }
        Scenario::ReconnectStorm => storm(&env, sims).await,
        Scenario::Restart => live_like_go(&env, sims, heartbeat).await,
        Scenario::Throughput => blast_all(&env, sims, frames).await,
    };
    let still = connected(&sims);
    env.rec.count(|c| c.connected_end += still);
    shared.sync.barrier(B_END).await;
    // The storm's R1s were only read in the window; their checks run now.
    for s in sims.iter_mut() {
        s.check_deferred_r1(&env);
    }
    close_all(&env, sims).await;
}

/// Drops every connection at once, then reconnects every registered agent as fast as possible.
async fn storm(env: &Rc<Env>, mut sims: Vec<Sim>) -> Vec<Sim> {
    for s in sims.iter_mut() {
        s.disconnect(env);
    }
    let (ready, lost): (Vec<Sim>, Vec<Sim>) = sims.into_iter().partition(|s| s.creds.is_some());
    for _ in &lost {
        env.rec.error("storm_agent_not_registered");
    }
    let mut out = connect_all(env, ready, 0.0, h::STORM_HANDSHAKE).await;
    out.extend(lost);
    out
}

/// Every agent lives like the deployed Go agent until the deadline (`restart`).
async fn live_like_go(env: &Rc<Env>, sims: Vec<Sim>, heartbeat: Option<Duration>) -> Vec<Sim> {
    concurrently(sims, |mut sim| {
        let env = Rc::clone(env);
        async move {
            if sim.ws.is_some() {
                sim.live_like_go(&env, heartbeat).await;
            }
            sim
        }
    })
    .await
}

/// Every agent blasts its pre-signed frames concurrently.
async fn blast_all(env: &Rc<Env>, sims: Vec<Sim>, frames: Vec<Vec<Message>>) -> Vec<Sim> {
    let work = sims
        .into_iter()
        .zip(frames.into_iter().chain(std::iter::repeat_with(Vec::new)));
    concurrently(work, |(mut sim, f)| {
        let env = Rc::clone(env);
        async move {
            if sim.ws.is_some() && !f.is_empty() {
                sim.blast(&env, f).await;
            }
            sim
        }
    })
    .await
}

/// Runs `work` on every item, each as a task of its own on this executor; the agents come
/// back in item order.
async fn concurrently<T, F, Fut>(items: impl IntoIterator<Item = T>, mut work: F) -> Vec<Sim>
where
    F: FnMut(T) -> Fut,
    Fut: std::future::Future<Output = Sim> + 'static,
{
    let tasks: Vec<_> = items
        .into_iter()
        .map(|item| glommio::spawn_local(work(item)))
        .collect();
    let mut out = Vec::with_capacity(tasks.len());
    for t in tasks {
        out.push(t.await);
    }
    out
}
