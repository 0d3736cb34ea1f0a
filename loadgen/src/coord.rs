//! Lining up barriers across processes. A child process announces `@barrier N` on stderr and
//! waits for `go N` on stdin; the parent answers once every child has arrived. It also reports
//! `@progress CONNECTED SENT ERRORS` lines for the parent's combined progress line.

use std::io::BufRead;

/// Prefix of the barrier line.
pub const BARRIER: &str = "@barrier";
/// Prefix of the progress line.
pub const PROGRESS: &str = "@progress";

/// How this process crosses a barrier with its peers.
pub enum Coordinator {
    /// A single process: nothing to line up.
    Local,
    /// A child of a split run.
    Child,
}

impl Coordinator {
    /// Crosses barrier `n`: for a child, announce it and wait for the parent's `go n`.
    pub fn cross(&self, n: usize) -> anyhow::Result<()> {
        match self {
            Coordinator::Local => Ok(()),
            Coordinator::Child => {
                eprintln!("{BARRIER} {n}");
                let want = format!("go {n}");
                let stdin = std::io::stdin();
                let mut line = String::new();
                loop {
                    line.clear();
                    if stdin.lock().read_line(&mut line)? == 0 {
                        anyhow::bail!("parent went away before barrier {n}");
                    }
                    match line.trim() {
                        l if l == want => return Ok(()),
                        "abort" => anyhow::bail!("parent aborted at barrier {n}"),
                        _ => continue,
                    }
                }
            }
        }
    }
}

/// A line a child wrote on stderr.
#[derive(Debug, PartialEq, Eq)]
pub enum ChildLine {
    /// Arrived at barrier `n`.
    Barrier(usize),
    /// Progress counters.
    Progress(i64, u64, u64),
    /// Anything else (forwarded).
    Other(String),
}

/// Parses one line of a child's stderr.
pub fn parse_child_line(line: &str) -> ChildLine {
    let mut parts = line.split_whitespace();
    match parts.next() {
        Some(BARRIER) => match parts.next().and_then(|n| n.parse().ok()) {
            Some(n) => ChildLine::Barrier(n),
            None => ChildLine::Other(line.to_string()),
        },
        Some(PROGRESS) => {
            let c = parts.next().and_then(|x| x.parse().ok());
            let s = parts.next().and_then(|x| x.parse().ok());
            let e = parts.next().and_then(|x| x.parse().ok());
            match (c, s, e) {
                (Some(c), Some(s), Some(e)) => ChildLine::Progress(c, s, e),
                _ => ChildLine::Other(line.to_string()),
            }
        }
        _ => ChildLine::Other(line.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_child_lines() {
        assert_eq!(parse_child_line("@barrier 2"), ChildLine::Barrier(2));
        assert_eq!(
            parse_child_line("@progress 10 200 3"),
            ChildLine::Progress(10, 200, 3)
        );
        assert_eq!(
            parse_child_line("@barrier x"),
            ChildLine::Other("@barrier x".into())
        );
        assert_eq!(
            parse_child_line("@progress 1 2"),
            ChildLine::Other("@progress 1 2".into())
        );
        assert_eq!(
            parse_child_line("warning"),
            ChildLine::Other("warning".into())
        );
    }
}
