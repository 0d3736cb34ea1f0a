//! The gateway process as `/proc` shows it: CPU seconds (utime + stime), resident memory, and
//! for the soak its threads and open file descriptors.

use serde::{Deserialize, Serialize};

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ProcSample {
    /// User + system CPU time in seconds.
    pub cpu_s: f64,
    /// Of `cpu_s`, the system (kernel) part.
    #[serde(default)]
    pub sys_s: f64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`; `None` when the process is gone or the files
/// do not parse.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let (user, sys) = cpu_split(&stat)?;
    let hz = crate::sys::clock_ticks_per_second() as f64;
    Some(ProcSample {
        cpu_s: (user + sys) as f64 / hz,
        sys_s: sys as f64 / hz,
        rss_bytes: rss_bytes(&status)?,
    })
}

/// A fuller reading of a process, for the soak's samples.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ProcDetail {
    /// CPU seconds and RSS.
    pub sample: ProcSample,
    /// `Threads:` of `/proc/PID/status`.
    pub threads: u64,
    /// Entries in `/proc/PID/fd` (open file descriptors).
    pub fds: u64,
}

/// [`sample`] plus threads and open descriptors; `None` when the process is gone or the files
/// do not parse (reading `/proc/PID/fd` of another user's process needs privileges).
pub fn detail(pid: u32) -> Option<ProcDetail> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(ProcDetail {
        sample: sample(pid)?,
        threads: threads(&status)?,
        fds: fd_count(pid)?,
    })
}

/// Open file descriptors of `pid`: the entries of `/proc/PID/fd`.
pub fn fd_count(pid: u32) -> Option<u64> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(dir.filter(Result::is_ok).count() as u64)
}

/// `Threads` from the text of `/proc/PID/status`.
pub fn threads(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("Threads:"))?;
    line["Threads:".len()..].trim().parse().ok()
}

/// (utime, stime) in clock ticks from the text of `/proc/PID/stat`. Fields are counted after the
/// last `)`, since the command name in parentheses may itself contain spaces and parentheses.
pub fn cpu_split(stat: &str) -> Option<(u64, u64)> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state(3) ppid(4) … utime(14) stime(15); `rest` starts at field 3.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// `VmRSS` in bytes from the text of `/proc/PID/status`.
pub fn rss_bytes(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut parts = line["VmRSS:".len()..].split_whitespace();
    let n: u64 = parts.next()?.parse().ok()?;
    match parts.next() {
        Some("kB") | None => n.checked_mul(1024),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_command_name() {
        let stat =
            "4242 (a) b (c)) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 3 0 99 1000 50";
        assert_eq!(cpu_split(stat), Some((1234, 567)));
        assert_eq!(cpu_split("garbage"), None);
        assert_eq!(cpu_split("1 (x) S 1 2"), None);
    }

    #[test]
    fn parses_rss() {
        let status = "Name:\tx\nVmPeak:\t 1000 kB\nVmRSS:\t    2048 kB\nThreads: 3\n";
        assert_eq!(rss_bytes(status), Some(2048 * 1024));
        assert_eq!(rss_bytes("Name: x\n"), None);
    }

    #[test]
    fn parses_threads() {
        let status = "Name:\tx\nThreads:\t17\nVmRSS:\t 4 kB\n";
        assert_eq!(threads(status), Some(17));
        assert_eq!(threads("Name: x\n"), None);
    }

    /// Descriptors of this process a child inherits: those ≥ 3 without `O_CLOEXEC` (a test
    /// harness may pass some down to us), read from `/proc/self/fdinfo`.
    fn inheritable_fds() -> u64 {
        const O_CLOEXEC: u32 = 0o2_000_000;
        let dir = std::fs::read_dir("/proc/self/fd").unwrap();
        let fds: Vec<u32> = dir
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .filter(|fd| *fd >= 3)
            .collect();
        let inherited = |fd: &u32| {
            let Ok(info) = std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}")) else {
                return false; // the directory's own descriptor, closed by now
            };
            let flags = info.lines().find_map(|l| l.strip_prefix("flags:"));
            flags
                .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
                .is_some_and(|f| f & O_CLOEXEC == 0)
        };
        fds.iter().filter(|fd| inherited(fd)).count() as u64
    }

    #[test]
    fn counts_the_descriptors_of_a_child() {
        use std::process::{Command, Stdio};
        let expected = 3 + inheritable_fds();
        let mut child = Command::new("sleep")
            .arg("30")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("sleep runs");
        // Read once it runs `sleep` (before exec the forked child still holds the spawn's
        // own pipe), and long before it could exit.
        let comm = format!("/proc/{}/comm", child.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::read_to_string(&comm).map_or(true, |c| c.trim() != "sleep")
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let fds = fd_count(child.id());
        let d = detail(child.id());
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(fds, Some(expected));
        let d = d.expect("detail of a live process");
        assert_eq!((d.fds, d.threads), (expected, 1));
        assert!(d.sample.rss_bytes > 0);
        assert_eq!(fd_count(u32::MAX), None);
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_bytes > 0);
        assert!(s.cpu_s >= 0.0);
    }
}
