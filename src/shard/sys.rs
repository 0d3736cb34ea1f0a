//! The only unsafe code of the gateway: raw file descriptors for the socket hand-off between
//! shards and for glommio's listeners, the signal mask, and a call into the allocator.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};

/// Asks mimalloc to free what this thread's heap holds but no longer uses (pages emptied by a
/// burst of handshakes, say): it otherwise purges only when the thread allocates again, and an
/// idle shard does not. Harmless when mimalloc is not the global allocator.
pub fn collect_allocator() {
    // SAFETY: mi_collect takes no pointers and may be called from any thread at any time.
    unsafe { libmimalloc_sys::mi_collect(false) }
}

/// An owned duplicate of a socket's file descriptor, movable to another thread. Closed on drop
/// unless turned back into a stream with [`OwnedSocket::into_stream`].
#[derive(Debug)]
pub struct OwnedSocket(OwnedFd);

impl OwnedSocket {
    /// Duplicates the descriptor of `s` (the original can then be dropped); the duplicate has
    /// CLOEXEC set.
    pub fn dup_of(s: &impl AsRawFd) -> io::Result<Self> {
        // SAFETY: the descriptor is borrowed from `s`, which is alive for this call.
        let borrowed = unsafe { BorrowedFd::borrow_raw(s.as_raw_fd()) };
        Ok(OwnedSocket(borrowed.try_clone_to_owned()?))
    }

    /// Turns the descriptor into a glommio stream on the current executor.
    pub fn into_stream(self) -> glommio::net::TcpStream {
        // SAFETY: a connected TCP socket we own exclusively; ownership moves into the stream,
        // which closes it.
        unsafe { glommio::net::TcpStream::from_raw_fd(self.0.into_raw_fd()) }
    }
}

/// Hands a bound, listening socket to glommio on the current executor.
pub fn into_listener(s: socket2::Socket) -> glommio::net::TcpListener {
    // SAFETY: `s` is a listening TCP socket we own; ownership moves into the listener, which
    // closes it.
    unsafe { glommio::net::TcpListener::from_raw_fd(s.into_raw_fd()) }
}

fn termination_set() -> libc::sigset_t {
    // SAFETY: sigset_t is plain data initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGHUP);
        set
    }
}

/// SIGHUP: reload the TLS certificate.
pub const SIGHUP: i32 = libc::SIGHUP;

/// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread and every thread it spawns afterwards, so
/// that [`wait_for_termination`] can receive them. Call before starting any thread.
pub fn block_termination_signals() -> io::Result<()> {
    let set = termination_set();
    // SAFETY: valid set pointer; a null old-set pointer is allowed.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    // pthread functions return the error number instead of setting errno.
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Waits for SIGTERM, SIGINT or SIGHUP (blocked beforehand by [`block_termination_signals`]).
pub fn wait_for_termination() -> io::Result<i32> {
    let set = termination_set();
    let mut sig: libc::c_int = 0;
    // SAFETY: valid pointers to a signal set and an int.
    let rc = unsafe { libc::sigwait(&set, &mut sig) };
    if rc == 0 {
        Ok(sig)
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Takes ownership of descriptors `3 .. 3 + n` passed by systemd (socket activation,
/// `LISTEN_FDS`); the caller checked `LISTEN_PID`. They get CLOEXEC, so no child inherits them.
pub fn systemd_fds(n: usize) -> io::Result<Vec<OwnedFd>> {
    const FIRST: i32 = 3;
    (0..n)
        .map(|i| {
            let fd = FIRST + i32::try_from(i).map_err(io::Error::other)?;
            // SAFETY: systemd passes descriptors 3.. to this process (LISTEN_PID matched) and
            // nothing else owns them; each is taken once.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            rustix::io::fcntl_setfd(&owned, rustix::io::FdFlags::CLOEXEC)?;
            Ok(owned)
        })
        .collect()
}
