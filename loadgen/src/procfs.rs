//! The gateway process as `/proc` shows it: CPU seconds (utime + stime) and resident memory.

use serde::{Deserialize, Serialize};

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct ProcSample {
    /// User + system CPU time in seconds.
    pub cpu_s: f64,
    /// Resident set size in bytes.
    pub rss_bytes: u64,
}

/// Reads `/proc/PID/stat` and `/proc/PID/status`; `None` when the process is gone or the files
/// do not parse.
pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let ticks = cpu_ticks(&stat)?;
    Some(ProcSample {
        cpu_s: ticks as f64 / crate::sys::clock_ticks_per_second() as f64,
        rss_bytes: rss_bytes(&status)?,
    })
}

/// utime + stime in clock ticks from the text of `/proc/PID/stat`. Fields are counted after the
/// last `)`, since the command name in parentheses may itself contain spaces and parentheses.
pub fn cpu_ticks(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state(3) ppid(4) … utime(14) stime(15); `rest` starts at field 3.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
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
        assert_eq!(cpu_ticks(stat), Some(1234 + 567));
        assert_eq!(cpu_ticks("garbage"), None);
        assert_eq!(cpu_ticks("1 (x) S 1 2"), None);
    }

    #[test]
    fn parses_rss() {
        let status = "Name:\tx\nVmPeak:\t 1000 kB\nVmRSS:\t    2048 kB\nThreads: 3\n";
        assert_eq!(rss_bytes(status), Some(2048 * 1024));
        assert_eq!(rss_bytes("Name: x\n"), None);
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id()).expect("own /proc entry");
        assert!(s.rss_bytes > 0);
        assert!(s.cpu_s >= 0.0);
    }
}
