//! Listening sockets. The agent port is shared by this process's shards (SO_REUSEPORT: the
//! kernel spreads connections over them) and by no other process: before it is shared, it is
//! claimed with a plain bind that fails when anything else is bound there, so a second gateway
//! on an address already served fails at start instead of splitting the connections. The admin
//! port has one listener and no SO_REUSEPORT. Agent sockets carry the configured kernel buffer
//! sizes (SO_RCVBUF / SO_SNDBUF, set on the listener and inherited by every accepted socket).

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io;
use std::net::SocketAddr;

/// Pending connections the kernel holds per listener while the shards are busy (reconnect
/// storms); the kernel caps it at `net.core.somaxconn`.
const BACKLOG: i32 = 4096;

/// Kernel buffer sizes for accepted sockets, bytes; 0 keeps the kernel's default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Buffers {
    /// SO_RCVBUF (`WEBSOCKET_READ_BUFFER_SIZE`).
    pub recv: usize,
    /// SO_SNDBUF (`WEBSOCKET_WRITE_BUFFER_SIZE`).
    pub send: usize,
}

fn tcp_socket(addr: SocketAddr) -> io::Result<Socket> {
    // socket2 sets CLOEXEC on Linux.
    Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
}

/// The address `s` is bound to.
pub fn address_of(s: &Socket) -> io::Result<SocketAddr> {
    bound_to(s)
}

fn bound_to(s: &Socket) -> io::Result<SocketAddr> {
    s.local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("bound socket has no IP address"))
}

/// Binds `addr` with `s`, explaining the one failure an operator meets.
fn bind(s: &Socket, addr: SocketAddr) -> io::Result<()> {
    s.bind(&SockAddr::from(addr)).map_err(|e| {
        if e.kind() == io::ErrorKind::AddrInUse {
            io::Error::new(
                e.kind(),
                format!("{e}: another process (a second aegis-gateway?) is serving this address"),
            )
        } else {
            e
        }
    })
}

/// Checks that no other socket is bound to `addr` (SO_REUSEADDR only, so sockets left in
/// TIME_WAIT by an earlier run do not count) and resolves port 0 to a free port.
pub fn claim(addr: SocketAddr) -> io::Result<SocketAddr> {
    let s = tcp_socket(addr)?;
    s.set_reuse_address(true)?;
    bind(&s, addr)?;
    bound_to(&s)
}

/// Claims `addr` for this process, then holds it with an SO_REUSEPORT socket that never
/// listens (the kernel never hands it connections) while every shard binds its own listener on
/// the returned address. Dropping the socket releases the hold.
pub fn reserve_shared(addr: SocketAddr) -> io::Result<(Socket, SocketAddr)> {
    let addr = claim(addr)?;
    let s = tcp_socket(addr)?;
    s.set_reuse_address(true)?;
    s.set_reuse_port(true)?;
    bind(&s, addr)?;
    Ok((s, addr))
}

/// A listening socket on `addr`: SO_REUSEPORT when `shared` (one per shard), with `buffers`
/// applied before `listen` so that accepted sockets inherit them.
pub fn listening(addr: SocketAddr, shared: bool, buffers: Buffers) -> io::Result<Socket> {
    let s = tcp_socket(addr)?;
    s.set_reuse_address(true)?;
    if shared {
        s.set_reuse_port(true)?;
    }
    if buffers.recv > 0 {
        s.set_recv_buffer_size(buffers.recv)?;
    }
    if buffers.send > 0 {
        s.set_send_buffer_size(buffers.send)?;
    }
    bind(&s, addr)?;
    s.listen(BACKLOG)?;
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use socket2::SockRef;

    fn loopback() -> SocketAddr {
        "127.0.0.1:0".parse().unwrap()
    }

    #[test]
    fn a_served_address_cannot_be_claimed_again() {
        let (_hold, addr) = reserve_shared(loopback()).unwrap();
        // This process's shards share it...
        let a = listening(addr, true, Buffers::default()).unwrap();
        let b = listening(addr, true, Buffers::default()).unwrap();
        assert_eq!(bound_to(&a).unwrap(), bound_to(&b).unwrap());
        // ...but a second claim (another gateway starting) is refused with a clear error.
        let err = claim(addr).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
        assert!(err.to_string().contains("another process"), "{err}");
        // So is an exclusive listener (the admin port) on an address already listened on.
        let admin = listening(loopback(), false, Buffers::default()).unwrap();
        let err = listening(bound_to(&admin).unwrap(), false, Buffers::default()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AddrInUse);
    }

    #[test]
    fn accepted_sockets_inherit_the_configured_buffer_sizes() {
        let buffers = Buffers {
            recv: 12 << 10,
            send: 24 << 10,
        };
        let l: std::net::TcpListener = listening(loopback(), true, buffers).unwrap().into();
        let _client = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (accepted, _) = l.accept().unwrap();
        let s = SockRef::from(&accepted);
        // Linux doubles the requested value (for its bookkeeping).
        assert_eq!(s.recv_buffer_size().unwrap(), 2 * buffers.recv);
        assert_eq!(s.send_buffer_size().unwrap(), 2 * buffers.send);
        // With 0 the kernel default stays (autotuned, other than what was asked above).
        let d: std::net::TcpListener = listening(loopback(), true, Buffers::default())
            .unwrap()
            .into();
        let _c = std::net::TcpStream::connect(d.local_addr().unwrap()).unwrap();
        let (plain, _) = d.accept().unwrap();
        assert_ne!(
            SockRef::from(&plain).recv_buffer_size().unwrap(),
            2 * buffers.recv
        );
    }
}
