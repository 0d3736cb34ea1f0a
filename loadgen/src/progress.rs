//! The progress line: once a second, agents connected, messages per second and errors, on
//! stderr — rewritten in place (`\r`) on a terminal, one line per second otherwise, and a
//! machine-readable `@progress` line in a child process.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `\r`-rewritten line.
    Terminal,
    /// One plain line per second.
    Lines,
    /// `@progress C S E` for a parent process.
    Child,
    /// Nothing.
    Off,
}

impl Style {
    /// Terminal or plain lines, depending on stderr.
    pub fn for_stderr() -> Style {
        if std::io::stderr().is_terminal() {
            Style::Terminal
        } else {
            Style::Lines
        }
    }
}

/// A running progress printer.
pub struct Progress {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    style: Style,
}

impl Progress {
    /// Prints every second what `read` returns: `(connected, messages sent, errors)`.
    pub fn start<F>(style: Style, total: usize, read: F) -> Progress
    where
        F: Fn() -> (i64, u64, u64) + Send + 'static,
    {
        let stop = Arc::new(AtomicBool::new(false));
        let handle = (style != Style::Off).then(|| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let start = Instant::now();
                let mut last_sent = 0u64;
                let mut tick = start;
                while !stop.load(Ordering::Relaxed) {
                    tick += Duration::from_secs(1);
                    while Instant::now() < tick {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(50));
                    }
                    let (c, s, e) = read();
                    let rate = s.saturating_sub(last_sent);
                    last_sent = s;
                    let elapsed = start.elapsed().as_secs();
                    let text = match style {
                        Style::Child => format!("{} {c} {s} {e}\n", crate::coord::PROGRESS),
                        Style::Terminal => format!("\r{}  ", line(elapsed, c, total, rate, e)),
                        _ => format!("{}\n", line(elapsed, c, total, rate, e)),
                    };
                    let mut err = std::io::stderr().lock();
                    let _ = err.write_all(text.as_bytes());
                    let _ = err.flush();
                }
            })
        });
        Progress {
            stop,
            handle,
            style,
        }
    }

    /// Stops printing (ends a terminal line).
    pub fn stop(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
            if self.style == Style::Terminal {
                eprintln!();
            }
        }
    }
}

/// One progress line.
pub fn line(elapsed_s: u64, connected: i64, total: usize, msgs_per_s: u64, errors: u64) -> String {
    format!("[{elapsed_s:>4}s] connected {connected}/{total}  msg/s {msgs_per_s}  errors {errors}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_line() {
        assert_eq!(
            line(3, 12, 20, 450, 1),
            "[   3s] connected 12/20  msg/s 450  errors 1"
        );
    }

    #[test]
    fn stops_promptly() {
        let p = Progress::start(Style::Lines, 1, || (0, 0, 0));
        let t = Instant::now();
        p.stop();
        assert!(t.elapsed() < Duration::from_millis(500));
    }
}
