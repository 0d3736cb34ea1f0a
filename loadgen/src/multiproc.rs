//! Split runs: more agents than one process (or one source address) may hold. The parent re-runs
//! its own binary as K children, each with a slice of the agents (`--child-spec`), lines their
//! barriers up (sampling the gateway there), shows one combined progress line, and merges their
//! JSON reports.

use crate::admin::AdminClient;
use crate::coord::{parse_child_line, ChildLine};
use crate::exec::{BARRIERS, B_END, B_READY};
use crate::options::{ChildRole, Options, Scenario, SOCKETS_PER_SLOT};
use crate::progress::{Progress, Style};
use crate::report::Report;
use crate::window::Window;
use std::io::{BufRead, BufReader, Write};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Processes needed for `agents` (at least `asked`).
pub fn processes_for(agents: usize, asked: usize) -> usize {
    asked.max(agents.div_ceil(SOCKETS_PER_SLOT)).max(1)
}

/// Source addresses for `agents` when none were given: none if one address is enough, else
/// 127.0.0.1, 127.0.0.2, … as many as needed.
pub fn default_source_ips(agents: usize) -> Vec<Ipv4Addr> {
    let n = agents.div_ceil(SOCKETS_PER_SLOT);
    if n <= 1 {
        return Vec::new();
    }
    (1..=n.min(250) as u8)
        .map(|i| Ipv4Addr::new(127, 0, 0, i))
        .collect()
}

/// Agent counts of `procs` slices of `agents` (differing by at most one).
pub fn split(agents: usize, procs: usize) -> Vec<usize> {
    let procs = procs.max(1);
    (0..procs)
        .map(|i| agents / procs + usize::from(i < agents % procs))
        .collect()
}

/// Runs `opts` as `procs` child processes of `exe` and merges their reports.
pub fn run_parent(opts: &Options, procs: usize, exe: &std::path::Path) -> anyhow::Result<Report> {
    let (_, admin) = opts.validate_split()?;
    let dir = tempfile::Builder::new()
        .prefix("aegis-loadgen-")
        .tempdir()?;
    let sizes = split(opts.agents, procs);
    let (tx, rx) = mpsc::channel::<(usize, ChildLine)>();
    let progress_values = Arc::new(Mutex::new(vec![(0i64, 0u64, 0u64); procs]));
    let mut children: Vec<(Child, Option<ChildStdin>, PathBuf)> = Vec::new();
    let mut offset = opts.agent_offset;
    for (index, &n) in sizes.iter().enumerate() {
        let mut spec = opts.clone();
        spec.agents = n;
        spec.agent_offset = offset;
        spec.ramp = opts.ramp / procs as f64;
        spec.command_rate = opts.command_rate / procs as f64;
        spec.commands = opts
            .commands
            .map(|c| split(c, procs).get(index).copied().unwrap_or(0));
        spec.child = Some(ChildRole {
            index,
            count: procs,
        });
        spec.gateway_pid = None;
        spec.progress = true;
        offset += n;
        let json = dir.path().join(format!("child-{index}.json"));
        let mut child = Command::new(exe)
            .arg(opts.scenario.name())
            .arg("--child-spec")
            .arg(serde_json::to_string(&spec)?)
            .arg("--json")
            .arg(&json)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdin = child.stdin.take();
        if let Some(err) = child.stderr.take() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    if tx.send((index, parse_child_line(&line))).is_err() {
                        break;
                    }
                }
            });
        }
        children.push((child, stdin, json));
    }
    drop(tx);
    let pv = Arc::clone(&progress_values);
    let style = if opts.progress {
        Style::for_stderr()
    } else {
        Style::Off
    };
    let progress = Progress::start(style, opts.agents, move || {
        let v = pv.lock().map(|v| v.clone()).unwrap_or_default();
        v.iter()
            .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2))
    });
    let metrics = match opts.scenario {
        s if s == Scenario::Throughput || s.steady_traffic() => admin
            .clone()
            .map(|a| AdminClient::new(a, opts.admin_token.clone())),
        _ => None,
    };
    let floor = crate::driver::start_floor(opts);
    let mut window = Window::new(opts.gateway_pid, metrics);
    let deadline = Instant::now() + Duration::from_secs_f64(opts.duration_s) + crate::driver::GRACE;
    let mut arrived = vec![vec![false; procs]; B_END + 1];
    let mut ok = true;
    let mut sampler = None;
    let mut soak = None;
    for n in BARRIERS {
        // Everyone at barrier n (or gone / too late).
        while ok && arrived.get(n).is_some_and(|a| !a.iter().all(|x| *x)) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left.min(Duration::from_millis(200))) {
                Ok((i, line)) => absorb_line(i, line, &mut arrived, &progress_values),
                Err(mpsc::RecvTimeoutError::Timeout) if !left.is_zero() => {
                    // A child that exits before everyone arrived will never arrive.
                    if children
                        .iter_mut()
                        .any(|(c, _, _)| matches!(c.try_wait(), Ok(Some(_))))
                    {
                        ok = false;
                    }
                }
                Err(_) => ok = false,
            }
        }
        if !ok {
            break;
        }
        window.arrived(n);
        if n == B_END {
            soak = sampler.take().map(crate::soak::Sampler::finish);
        }
        for (_, stdin, _) in children.iter_mut() {
            if let Some(s) = stdin.as_mut() {
                let _ = writeln!(s, "go {n}").and_then(|()| s.flush());
            }
        }
        window.released(n);
        if let (B_READY, Scenario::Soak, Some(pid)) = (n, opts.scenario, opts.gateway_pid) {
            // The children's live counters, as their progress lines report them.
            let pv = Arc::clone(&progress_values);
            let every = Duration::from_secs_f64(opts.sample_every_s);
            sampler = Some(crate::soak::Sampler::start(pid, every, move || {
                let v = pv.lock().map(|v| v.clone()).unwrap_or_default();
                v.iter().fold((0, 0), |a, b| (a.0 + b.0, a.1 + b.1))
            }));
        }
    }
    if soak.is_none() {
        soak = sampler.take().map(crate::soak::Sampler::finish);
    }
    for (_, stdin, _) in children.iter_mut() {
        if let Some(mut s) = stdin.take() {
            if !ok {
                let _ = writeln!(s, "abort");
            }
        }
    }
    // Keep draining lines until every child is gone.
    let drain = std::thread::spawn(move || for _ in rx {});
    let mut report: Option<Report> = None;
    let mut failures = 0u64;
    for (mut child, _, json) in children {
        let status = child.wait()?;
        let parsed = std::fs::read(&json)
            .ok()
            .and_then(|b| serde_json::from_slice::<Report>(&b).ok());
        match (status.success(), parsed) {
            (true, Some(r)) => match report.as_mut() {
                Some(total) => total.absorb(&r),
                None => report = Some(r),
            },
            _ => failures += 1,
        }
    }
    let _ = drain.join();
    progress.stop();
    let mut report = report.ok_or_else(|| anyhow::anyhow!("no child process produced a report"))?;
    report.agents = opts.agents;
    report.procs = procs;
    if failures > 0 {
        report
            .errors
            .insert("child_process_failed".into(), failures);
    }
    if !ok {
        *report.errors.entry("run_aborted".into()).or_default() += 1;
    }
    for p in &window.problems {
        *report.warnings.entry(p.clone()).or_default() += 1;
    }
    let t = window.timing(opts.scenario);
    report.timing.ramp_s = t.ramp_s;
    report.timing.window_s = t.window_s;
    report.timing.storm_wall_s = t.storm_wall_s;
    report.gateway = window.gateway();
    report.soak = soak;
    if let Some(mut floor) = floor.filter(|_| ok) {
        report.crypto_floor_us_per_msg = crate::driver::finish_floor(&mut floor, opts.gateway_pid);
    }
    report.refresh();
    Ok(report)
}

fn absorb_line(
    i: usize,
    line: ChildLine,
    arrived: &mut [Vec<bool>],
    progress: &Mutex<Vec<(i64, u64, u64)>>,
) {
    match line {
        ChildLine::Barrier(n) => {
            if let Some(slot) = arrived.get_mut(n).and_then(|a| a.get_mut(i)) {
                *slot = true;
            }
        }
        ChildLine::Progress(c, s, e) => {
            if let Some(slot) = progress.lock().ok().as_mut().and_then(|v| v.get_mut(i)) {
                *slot = (c, s, e);
            }
        }
        ChildLine::Other(l) => eprintln!("[child {i}] {l}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_agents_evenly() {
        assert_eq!(split(10, 3), vec![4, 3, 3]);
        assert_eq!(split(38_000, 2), vec![19_000, 19_000]);
        assert_eq!(split(5, 0), vec![5]);
        assert_eq!(split(10, 3).iter().sum::<usize>(), 10);
    }

    #[test]
    fn sizes_processes_and_addresses_for_the_fd_limit() {
        assert_eq!(processes_for(19_000, 1), 1);
        assert_eq!(processes_for(19_001, 1), 2);
        assert_eq!(processes_for(100, 4), 4);
        assert!(default_source_ips(19_000).is_empty());
        assert_eq!(
            default_source_ips(40_000),
            vec![
                Ipv4Addr::new(127, 0, 0, 1),
                Ipv4Addr::new(127, 0, 0, 2),
                Ipv4Addr::new(127, 0, 0, 3)
            ]
        );
    }
}
