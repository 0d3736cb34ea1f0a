//! The command driver of `commands`, `mixed` and `soak`: admin `send` requests paced at
//! `--command-rate` over the registered agents, one broadcast (`commands`), then waits until
//! the agents have opened what was sent. Each command's JSON carries `sent_at_ns`
//! (CLOCK_REALTIME), from which the agents compute send→receive latency.

use crate::admin::AdminClient;
use crate::exec::Shared;
use crate::options::Scenario;
use crate::sim::now_ns;
use crate::stats::{h, Recorder, Tally};
use crate::url::Endpoint;
use serde_json::json;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The channel commands are sent on.
pub const CHANNEL: &str = "backend.policies";

/// What the driver measured.
pub struct Driven {
    /// Counts, HTTP latency and errors of the driver.
    pub tally: Tally,
    /// Broadcast request → answer, ms.
    pub broadcast_http_ms: Option<f64>,
}

/// Drives commands until done or the deadline; sets `shared.stop` for `commands`. With several
/// admin endpoints (cluster nodes, agent `g` on node `g % n`), each send goes through the node
/// after its agent's: every command crosses nodes.
pub fn drive(shared: &Shared, admins: &[Endpoint]) -> Driven {
    let o = &shared.opts;
    let rec = Recorder::new(Arc::clone(&shared.live));
    let Some(admin) = admins.first() else {
        rec.error("no_admin_endpoint");
        return Driven {
            tally: rec.tally.borrow().clone(),
            broadcast_http_ms: None,
        };
    };
    let mut client = AdminClient::new(admin.clone(), o.admin_token.clone());
    let uids = shared.uids.lock().map(|u| u.clone()).unwrap_or_default();
    let mut broadcast_http_ms = None;
    if uids.is_empty() {
        rec.error("no_registered_agents");
    } else {
        let margin = match o.scenario {
            Scenario::Mixed | Scenario::Soak => Duration::from_millis(500),
            _ => Duration::from_secs(2),
        };
        let send_until = shared
            .deadline
            .checked_sub(margin)
            .unwrap_or(shared.deadline);
        let total = match o.scenario {
            Scenario::Commands => o.commands.unwrap_or(uids.len()),
            _ => usize::MAX,
        };
        let senders = o.command_concurrency.max(1);
        let tallies: Vec<Tally> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..senders)
                .map(|k| {
                    let (uids, rec_live) = (&uids, Arc::clone(&shared.live));
                    s.spawn(move || {
                        let rec = Recorder::new(rec_live);
                        let mut clients: Vec<AdminClient> = admins
                            .iter()
                            .map(|a| AdminClient::new(a.clone(), o.admin_token.clone()))
                            .collect();
                        let lane = Lane { k, of: senders };
                        send_commands(shared, &mut clients, &rec, uids, total, send_until, lane);
                        let t = rec.tally.borrow().clone();
                        t
                    })
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        for t in &tallies {
            rec.tally.borrow_mut().merge(t);
        }
        if o.scenario == Scenario::Commands && !o.offline && o.child.is_none_or(|c| c.index == 0) {
            broadcast_http_ms = broadcast(&mut client, &rec, o.run_id.as_str());
        }
        if o.scenario == Scenario::Commands && !o.offline {
            await_delivery(shared, &rec, uids.len() as u64);
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    let tally = rec.tally.borrow().clone();
    Driven {
        tally,
        broadcast_http_ms,
    }
}

/// Which sends one sender thread makes: those with `i % of == k`.
#[derive(Clone, Copy)]
struct Lane {
    k: usize,
    of: usize,
}

fn send_commands(
    shared: &Shared,
    clients: &mut [AdminClient],
    rec: &Recorder,
    uids: &[(String, usize)],
    total: usize,
    until: Instant,
    lane: Lane,
) {
    let o = &shared.opts;
    let interval = (o.command_rate > 0.0).then(|| Duration::from_secs_f64(1.0 / o.command_rate));
    let start = Instant::now();
    let mut i = lane.k;
    while i < total && Instant::now() < until && !shared.sync.aborted() {
        if let Some(d) = interval {
            let due = start + d.mul_f64(i as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let Some((uid, index)) = uids.get(i % uids.len()) else {
            break;
        };
        let n = clients.len().max(1);
        let Some(client) = clients.get_mut((index + 1) % n) else {
            break;
        };
        let body = json!({
            "channel": CHANNEL,
            "message": {"sent_at_ns": now_ns(), "lg": "send", "run": o.run_id, "n": i},
        });
        let t = Instant::now();
        match client.post_json(&format!("/api/v1/agents/{uid}/send"), &body) {
            Ok(r) if r.ok() => {
                rec.latency(h::ADMIN_HTTP, t.elapsed());
                let v = r.json();
                let status = v.get("status").and_then(|s| s.as_str()).unwrap_or("");
                rec.count(|c| {
                    c.commands_sent += 1;
                    c.commands_status_sent += u64::from(status == "sent");
                    c.commands_status_queued += u64::from(status == "queued");
                });
                if status != "sent" && status != "queued" {
                    rec.error(&format!("send_status_{}", label(status)));
                }
            }
            Ok(r) => rec.error(&format!("admin_http_{}", r.status)),
            Err(_) => rec.error("admin_io"),
        }
        i += lane.of;
    }
}

/// One broadcast to every connected agent; returns its HTTP time in ms.
fn broadcast(client: &mut AdminClient, rec: &Recorder, run_id: &str) -> Option<f64> {
    let body = json!({
        "channel": CHANNEL,
        "message": {"sent_at_ns": now_ns(), "lg": "broadcast", "run": run_id},
    });
    let t = Instant::now();
    match client.post_json("/api/v1/agents/broadcast", &body) {
        Ok(r) if r.ok() => {
            let ms = t.elapsed().as_secs_f64() * 1000.0;
            let v = r.json();
            let targets = v
                .get("sent_to")
                .and_then(|s| s.as_array())
                .map_or(0, |a| a.len());
            rec.count(|c| {
                c.broadcasts_sent += 1;
                c.broadcast_targets += targets as u64;
            });
            Some(ms)
        }
        Ok(r) => {
            rec.error(&format!("admin_http_{}", r.status));
            None
        }
        Err(_) => {
            rec.error("admin_io");
            None
        }
    }
}

/// Waits until the agents opened every accepted command and the broadcast, or the deadline;
/// what is missing then is counted as `undelivered`.
fn await_delivery(shared: &Shared, rec: &Recorder, local_agents: u64) {
    let counts = rec.tally.borrow().counts;
    let want_cmds = counts.commands_status_sent + counts.commands_status_queued;
    let broadcast_expected =
        shared.opts.child.is_some_and(|c| c.index != 0) || counts.broadcasts_sent > 0;
    let want_bcast = if broadcast_expected { local_agents } else { 0 };
    let live = &shared.live;
    loop {
        let got_c = live.commands_received.load(Ordering::Relaxed);
        let got_b = live.broadcasts_received.load(Ordering::Relaxed);
        if got_c >= want_cmds && got_b >= want_bcast {
            return;
        }
        if Instant::now() >= shared.deadline || shared.sync.aborted() {
            for _ in got_c..want_cmds {
                rec.error("command_undelivered");
            }
            for _ in got_b..want_bcast {
                rec.error("broadcast_undelivered");
            }
            return;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn label(s: &str) -> String {
    let s: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(32)
        .collect();
    if s.is_empty() {
        "missing".into()
    } else {
        s
    }
}
