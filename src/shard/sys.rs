//! The only unsafe code of the gateway: raw file descriptors for the socket hand-off between
//! shards, a port reservation for SO_REUSEPORT listeners, and a call into the allocator.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

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
pub struct OwnedSocket(RawFd);

impl OwnedSocket {
    /// Duplicates the descriptor of `s` (the original can then be dropped).
    pub fn dup_of(s: &impl AsRawFd) -> io::Result<Self> {
        // SAFETY: dup() on a descriptor we borrow; the result is a new descriptor we own.
        let fd = unsafe { libc::dup(s.as_raw_fd()) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(OwnedSocket(fd))
    }

    /// Turns the descriptor into a glommio stream on the current executor.
    pub fn into_stream(self) -> glommio::net::TcpStream {
        let fd = self.0;
        std::mem::forget(self);
        // SAFETY: `fd` is a connected TCP socket we own exclusively (from dup); ownership moves
        // into the stream, which closes it.
        unsafe { glommio::net::TcpStream::from_raw_fd(fd) }
    }
}

impl Drop for OwnedSocket {
    fn drop(&mut self) {
        // SAFETY: we own this descriptor and close it once.
        unsafe {
            libc::close(self.0);
        }
    }
}

/// Binds (without listening) a socket with SO_REUSEPORT to `addr`, resolving port 0 to a real
/// port that every shard's listener can then bind. Dropping it releases the reservation; since it
/// never listens, the kernel never hands it connections.
pub fn reserve_port(addr: SocketAddr) -> io::Result<(std::net::TcpListener, SocketAddr)> {
    let domain = if addr.is_ipv6() {
        libc::AF_INET6
    } else {
        libc::AF_INET
    };
    // SAFETY: plain socket(2) call; the descriptor is wrapped in an owning type right away.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh socket we own; TcpListener closes it on drop. It is only used for
    // bind/getsockname, never accept.
    let sock = unsafe { std::net::TcpListener::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    for opt in [libc::SO_REUSEPORT, libc::SO_REUSEADDR] {
        // SAFETY: setsockopt with a valid pointer to an int of the right size.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let (storage, len) = sockaddr_of(addr);
    // SAFETY: `storage` holds a valid sockaddr of `len` bytes.
    let rc = unsafe { libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let local = sock.local_addr()?;
    Ok((sock, local))
}

fn sockaddr_of(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_in fits in sockaddr_storage.
            unsafe {
                std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin);
            }
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_in6 fits in sockaddr_storage.
            unsafe {
                std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6);
            }
            (
                storage,
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
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
pub fn block_termination_signals() {
    let set = termination_set();
    // SAFETY: valid set pointer; a null old-set pointer is allowed.
    unsafe {
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
    }
}

/// Waits for SIGTERM, SIGINT or SIGHUP (blocked beforehand by [`block_termination_signals`]).
pub fn wait_for_termination() -> i32 {
    let set = termination_set();
    let mut sig: libc::c_int = 0;
    // SAFETY: valid pointers to a signal set and an int.
    unsafe {
        libc::sigwait(&set, &mut sig);
    }
    sig
}
