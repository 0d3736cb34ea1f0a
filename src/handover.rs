//! Restarts and upgrades that refuse no dial (the deployed agent gives up for good after one
//! refused reconnect): the listening sockets outlive the process.
//!
//! - **Socket activation**: started by systemd with `LISTEN_FDS` (`tuning/aegis-gateway.socket`),
//!   the gateway serves on the sockets systemd holds (agents first, admin second), so a
//!   `systemctl restart` queues dials in the kernel's backlog instead of refusing them.
//! - **Hand-over without systemd**: a running gateway offers its listening sockets on a unix
//!   socket in `DATA_DIR` ([`offer`]). `aegis-gateway serve --takeover` connects there and
//!   receives them (SCM_RIGHTS); the old gateway then drains and exits, and says `released`
//!   once its store is closed; the new one opens the store and accepts. Dials that arrive in
//!   between wait in the same sockets' backlog. A process that was not handed the sockets
//!   still cannot bind the address.

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use std::io::{self, IoSlice, IoSliceMut, Read, Write};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

/// Most descriptors in one hand-over (agent sockets, one per shard, and the admin socket).
const MAX_FDS: usize = 256;

/// Listening sockets received from systemd or a predecessor.
#[derive(Debug, Default)]
pub struct Listeners {
    /// Agent port: one socket per shard of the predecessor (or systemd's one).
    pub agent: Vec<OwnedFd>,
    /// Admin port.
    pub admin: Option<OwnedFd>,
}

/// The hand-over socket of a data directory.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join("handover.sock")
}

/// The sockets systemd passed (`LISTEN_PID` is this process, `LISTEN_FDS` ≥ 1): the first
/// for agents, the second (if any) for the admin API. `None` when not socket-activated.
///
/// # Errors
/// `LISTEN_FDS` is not a number, or a descriptor cannot be taken.
pub fn from_systemd() -> io::Result<Option<Listeners>> {
    let ours = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
        == Some(std::process::id());
    let Some(n) = std::env::var("LISTEN_FDS").ok().filter(|_| ours) else {
        return Ok(None);
    };
    let n: usize = n
        .parse()
        .map_err(|_| io::Error::other(format!("LISTEN_FDS={n:?} is not a number")))?;
    if n == 0 {
        return Ok(None);
    }
    let mut fds = crate::shard::systemd_fds(n.min(2))?.into_iter();
    let agent = fds.next().into_iter().collect();
    Ok(Some(Listeners {
        agent,
        admin: fds.next(),
    }))
}

/// The predecessor, after it handed its sockets over.
pub struct Predecessor(UnixStream);

impl Predecessor {
    /// Waits (at most `limit`) until the predecessor closed its store (`released`, or the
    /// connection ends with the process).
    ///
    /// # Errors
    /// The predecessor did not finish in time.
    pub fn wait_released(mut self, limit: Duration) -> io::Result<()> {
        self.0.set_read_timeout(Some(limit))?;
        let mut buf = [0u8; 64];
        loop {
            match self.0.read(&mut buf) {
                Ok(0) => return Ok(()),
                Ok(n) if buf[..n].contains(&b'\n') => return Ok(()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

/// Takes the listening sockets of the gateway running on `data_dir`.
///
/// # Errors
/// No gateway answers on its hand-over socket, or what it sent is not a hand-over.
pub fn take(data_dir: &Path) -> io::Result<(Listeners, Predecessor)> {
    let path = socket_path(data_dir);
    let stream = UnixStream::connect(&path).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("no running gateway answers on {}: {e}", path.display()),
        )
    })?;
    receive(stream)
}

/// Reads a hand-over from `stream`.
fn receive(stream: UnixStream) -> io::Result<(Listeners, Predecessor)> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut data = [0u8; 128];
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let got = recvmsg(
        &stream,
        &mut [IoSliceMut::new(&mut data)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds: Vec<OwnedFd> = Vec::new();
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(received) = msg {
            fds.extend(received);
        }
    }
    let header = std::str::from_utf8(&data[..got.bytes]).unwrap_or("");
    let agents = header
        .strip_prefix("aegis-handover 1 agent=")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok())
        .filter(|n| *n >= 1 && *n < fds.len())
        .ok_or_else(|| io::Error::other(format!("not a hand-over: {header:?}")))?;
    let admin = fds.split_off(agents).into_iter().next();
    Ok((Listeners { agent: fds, admin }, Predecessor(stream)))
}

/// A running gateway's offer of its sockets to a successor.
pub struct Offer {
    taken: Arc<Mutex<Option<UnixStream>>>,
}

impl Offer {
    /// Whether a successor took the sockets (the gateway was then asked to stop).
    pub fn taken(&self) -> bool {
        self.taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Tells the successor the store is closed (call after the shutdown).
    pub fn release(&self) {
        if let Some(mut s) = self
            .taken
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            let _ = s.write_all(b"released\n");
        }
    }
}

/// Offers `listeners` (built when a successor asks) on `data_dir`'s hand-over socket. The
/// first successor to connect gets them, then this process receives SIGTERM (drain, exit).
///
/// # Errors
/// The unix socket cannot be bound.
pub fn offer<F>(data_dir: &Path, listeners: F) -> io::Result<Offer>
where
    F: Fn() -> io::Result<Listeners> + Send + 'static,
{
    std::fs::create_dir_all(data_dir)?;
    let path = socket_path(data_dir);
    // A stale file (a predecessor's, or one that crashed) is replaced: whoever bound it last
    // is the one serving.
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(&path)?;
    let taken = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&taken);
    std::thread::Builder::new()
        .name("handover".into())
        .spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                match send(&stream, &listeners) {
                    Ok(()) => {
                        tracing::info!("listening sockets handed over; draining");
                        *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(stream);
                        let me = rustix::process::getpid();
                        let _ = rustix::process::kill_process(me, rustix::process::Signal::TERM);
                        return;
                    }
                    Err(e) => tracing::warn!(error = %e, "hand-over failed; still serving"),
                }
            }
        })?;
    Ok(Offer { taken })
}

fn send<F: Fn() -> io::Result<Listeners>>(stream: &UnixStream, listeners: &F) -> io::Result<()> {
    let l = listeners()?;
    let header = format!("aegis-handover 1 agent={}\n", l.agent.len());
    let fds: Vec<_> = l
        .agent
        .iter()
        .chain(l.admin.iter())
        .map(|f| f.as_fd())
        .collect();
    if fds.len() > MAX_FDS {
        return Err(io::Error::other("too many sockets to hand over"));
    }
    let mut space = [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !control.push(SendAncillaryMessage::ScmRights(&fds)) {
        return Err(io::Error::other("hand-over control buffer too small"));
    }
    sendmsg(
        stream,
        &[IoSlice::new(header.as_bytes())],
        &mut control,
        SendFlags::empty(),
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_handed_over_accept_what_was_queued_on_them() {
        let agent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let admin = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (agent_addr, admin_addr) = (agent.local_addr().unwrap(), admin.local_addr().unwrap());
        // A dial before the hand-over waits in the backlog...
        let mut early = std::net::TcpStream::connect(agent_addr).unwrap();
        let (old, new) = UnixStream::pair().unwrap();
        let (a, b) = (OwnedFd::from(agent), OwnedFd::from(admin));
        send(&old, &|| {
            Ok(Listeners {
                agent: vec![a.try_clone()?],
                admin: Some(b.try_clone()?),
            })
        })
        .unwrap();
        // ...and the old process closes its copies.
        drop((a, b));
        let (got, predecessor) = receive(new).unwrap();
        assert_eq!(got.agent.len(), 1);
        let agent = std::net::TcpListener::from(got.agent.into_iter().next().unwrap());
        let admin = std::net::TcpListener::from(got.admin.unwrap());
        assert_eq!(agent.local_addr().unwrap(), agent_addr);
        assert_eq!(admin.local_addr().unwrap(), admin_addr);
        let (mut accepted, _) = agent.accept().unwrap();
        early.write_all(b"hi").unwrap();
        let mut buf = [0u8; 2];
        accepted.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hi");
        // `released` ends the wait; so would the predecessor's exit.
        (&old).write_all(b"released\n").unwrap();
        predecessor.wait_released(Duration::from_secs(5)).unwrap();
    }

    #[test]
    fn a_message_that_is_not_a_hand_over_is_refused() {
        let (old, new) = UnixStream::pair().unwrap();
        (&old).write_all(b"hello\n").unwrap();
        assert!(receive(new).is_err());
    }
}
