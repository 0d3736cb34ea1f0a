//! One process's run: start the executors, walk them through the barriers (sampling the gateway
//! at each), drive commands when the scenario has them, and build the report.

use crate::admin::AdminClient;
use crate::coord::Coordinator;
use crate::exec::{Executors, PhaseSync, Shared, B_END, B_RAMPED, B_READY, B_START};
use crate::options::{Options, Scenario};
use crate::progress::{Progress, Style};
use crate::report::Report;
use crate::stats::Live;
use crate::window::Window;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Extra time after the deadline for the last handshakes and closes to finish.
pub const GRACE: Duration = Duration::from_secs(15);

/// Runs `opts` in this process and returns its report.
pub fn run(opts: &Options) -> anyhow::Result<Report> {
    let (ep, admin) = opts.validate()?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs_f64(opts.duration_s);
    let shared = Arc::new(Shared {
        opts: Arc::new(opts.clone()),
        ep,
        eps: opts.agent_endpoints()?,
        live: Arc::new(Live::default()),
        sync: PhaseSync::default(),
        stop: AtomicBool::new(false),
        uids: Mutex::new(Vec::new()),
        deadline,
    });
    let coord = if opts.child.is_some() {
        Coordinator::Child
    } else {
        Coordinator::Local
    };
    let style = match (opts.progress, opts.child.is_some()) {
        (false, _) => Style::Off,
        (true, true) => Style::Child,
        (true, false) => Style::for_stderr(),
    };
    let live = Arc::clone(&shared.live);
    let progress = Progress::start(style, opts.agents, move || live.snapshot());
    let metrics = match opts.scenario {
        s if (s == Scenario::Throughput || s.steady_traffic()) && opts.child.is_none() => admin
            .clone()
            .map(|a| AdminClient::new(a, opts.admin_token.clone())),
        _ => None,
    };
    // The crypto floor's first half, before any agent runs (see `crate::floor`).
    let floor = start_floor(opts).filter(|_| opts.child.is_none());
    let mut window = Window::new(window_pid(opts), metrics);
    let execs = match Executors::start(&shared, crate::scenario::script) {
        Ok(e) => e,
        Err(e) => {
            progress.stop();
            return Err(e);
        }
    };
    let parties = execs.count();
    let mut ok = [B_START, B_RAMPED, B_READY].into_iter().all(|n| {
        cross(
            &shared,
            &coord,
            &mut window,
            n,
            parties,
            deadline + GRACE,
            || {},
        )
    });
    let sampler = match (opts.scenario, window_pid(opts)) {
        (Scenario::Soak, Some(pid)) if ok => Some(start_sampler(opts, pid, &shared.live)),
        _ => None,
    };
    let mut broadcast_http_ms = None;
    let mut driver_tally = None;
    if ok && opts.scenario.needs_admin() && admin.is_some() {
        let d = crate::commands::drive(&shared, &opts.admin_endpoints()?);
        broadcast_http_ms = d.broadcast_http_ms;
        driver_tally = Some(d.tally);
    }
    // The soak's last sample is taken at the end of the window, before the agents close.
    let mut soak = None;
    ok = ok
        && cross(
            &shared,
            &coord,
            &mut window,
            B_END,
            parties,
            deadline + GRACE,
            || soak = sampler.map(crate::soak::Sampler::finish),
        );
    if !ok {
        shared.sync.abort();
    }
    let mut tally = execs.join();
    progress.stop();
    if let Some(t) = driver_tally {
        tally.merge(&t);
    }
    if !ok {
        *tally.errors.entry("run_aborted".into()).or_default() += 1;
    }
    let mut timing = window.timing(opts.scenario);
    timing.broadcast_http_ms = broadcast_http_ms;
    let mut report = Report::from_tally(opts, &tally, timing);
    report.gateway = window.gateway();
    report.soak = soak;
    report.loadgen_cpu_s = window.own_cpu_s();
    if let Some(mut floor) = floor.filter(|_| ok) {
        report.crypto_floor_us_per_msg = finish_floor(&mut floor, window_pid(opts));
    }
    for p in &window.problems {
        *report.warnings.entry(p.clone()).or_default() += 1;
    }
    report.refresh();
    Ok(report)
}

/// The crypto floor's rounds before a `throughput` or `fleet` run (`None` for the others).
pub fn start_floor(opts: &Options) -> Option<crate::floor::Measure> {
    let mut floor = crate::floor::Measure::of(opts)?;
    floor.sample(crate::floor::ROUNDS);
    Some(floor)
}

/// The floor's rounds after the window, once the gateway is idle; the median of all rounds.
pub fn finish_floor(floor: &mut crate::floor::Measure, gateway: Option<u32>) -> Option<f64> {
    if let Some(pid) = gateway {
        crate::floor::wait_idle(pid, Duration::from_secs(5));
    }
    floor.sample(crate::floor::ROUNDS);
    floor.median()
}

/// The gateway pid this process samples (the parent's in a split run).
fn window_pid(opts: &Options) -> Option<u32> {
    opts.gateway_pid.filter(|_| opts.child.is_none())
}

/// Starts the soak's sampler of `pid`, reading this process's live counters.
fn start_sampler(opts: &Options, pid: u32, live: &Arc<Live>) -> crate::soak::Sampler {
    let live = Arc::clone(live);
    let every = Duration::from_secs_f64(opts.sample_every_s);
    crate::soak::Sampler::start(pid, every, move || {
        let (connected, sent, _) = live.snapshot();
        (connected, sent)
    })
}

/// Waits for the executors at barrier `n`, samples (and calls `at_arrival`), lines up with peer
/// processes, releases.
fn cross(
    shared: &Shared,
    coord: &Coordinator,
    window: &mut Window,
    n: usize,
    parties: usize,
    until: Instant,
    at_arrival: impl FnOnce(),
) -> bool {
    if !shared.sync.wait_arrived(n, parties, until) {
        return false;
    }
    window.arrived(n);
    at_arrival();
    if let Err(e) = coord.cross(n) {
        eprintln!("aegis-loadgen: {e}");
        return false;
    }
    window.released(n);
    shared.sync.release(n);
    true
}
