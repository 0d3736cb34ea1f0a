//! Shard start-up, the accept loop, the upgrade head, and the socket hand-off to the owner shard.

use super::conn;
use super::control::Control;
use super::ctx::ShardCtx;
use super::mesh::MeshMsg;
use super::register_http;
use super::sys::OwnedSocket;
use super::{owner_of, Shared};
use crate::protocol::register_http as reg;
use crate::protocol::session::Session;
use crate::protocol::upgrade::{self, Parsed};
use futures_channel::{mpsc, oneshot};
use futures_lite::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, StreamExt};
use glommio::channels::channel_mesh::{Full, MeshBuilder};
use glommio::net::{TcpListener, TcpStream};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

/// How often a shard hands memory it freed back to the OS.
const ALLOCATOR_COLLECT_EVERY: Duration = Duration::from_secs(2);

/// How long a draining shard waits for its connections to close.
const DRAIN_WAIT: Duration = Duration::from_secs(10);

pub(super) async fn run_shard(
    id: usize,
    shared: Arc<Shared>,
    mesh: MeshBuilder<MeshMsg, Full>,
    listener: socket2::Socket,
    control_rx: mpsc::UnboundedReceiver<Control>,
    ready: std::sync::mpsc::Sender<Result<(), super::StartError>>,
) {
    let Ok((senders, mut receivers)) = mesh.join().await else {
        let _ = ready.send(Err(super::StartError::Executor {
            shard: id,
            message: "joining the cross-shard mesh failed".into(),
        }));
        return;
    };
    let addr = super::socket::address_of(&listener).ok();
    let listener = super::sys::into_listener(listener);
    let ctx = ShardCtx::new(id, shared, senders);
    for (_, rx) in receivers.streams() {
        let ctx = Rc::clone(&ctx);
        glommio::spawn_local(async move {
            while let Some(msg) = rx.recv().await {
                if let Some((socket, head, peer)) = ctx.on_mesh(msg) {
                    ctx.handoffs_in.set(ctx.handoffs_in.get() + 1);
                    let ctx = Rc::clone(&ctx);
                    glommio::spawn_local(async move {
                        conn::serve_handed(ctx, socket.into_stream(), head, peer).await;
                    })
                    .detach();
                }
            }
        })
        .detach();
    }
    glommio::spawn_local(async {
        loop {
            glommio::timer::sleep(ALLOCATOR_COLLECT_EVERY).await;
            super::sys::collect_allocator();
        }
    })
    .detach();
    let (stop_tx, stop_rx) = oneshot::channel::<Duration>();
    glommio::spawn_local(control_loop(Rc::clone(&ctx), control_rx, stop_tx)).detach();
    let _ = ready.send(Ok(()));
    tracing::debug!(shard = id, ?addr, "shard listening");
    let spread = accept_loop(&ctx, listener, stop_rx).await;
    ctx.draining.set(true);
    if !spread.is_zero() {
        drain_spread(&ctx, spread).await;
    }
    ctx.drain_all();
    let deadline = std::time::Instant::now() + DRAIN_WAIT;
    while ctx.conn_count() > 0 && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    tracing::debug!(shard = id, left = ctx.conn_count(), "shard stopped");
}

/// Closes the connections open now one by one, evenly over `spread` (connection k of n at
/// k/n of it); those that end by themselves meanwhile are skipped. Returns early when none is
/// left.
async fn drain_spread(ctx: &Rc<ShardCtx>, spread: Duration) {
    let open: Vec<u64> = ctx.conns.borrow().keys().copied().collect();
    tracing::debug!(
        shard = ctx.id,
        connections = open.len(),
        ?spread,
        "spread drain"
    );
    let step = spread / u32::try_from(open.len().max(1)).unwrap_or(u32::MAX);
    for conn in open {
        let due = std::time::Instant::now() + step;
        while std::time::Instant::now() < due {
            if ctx.conn_count() == 0 {
                return;
            }
            let left = due.saturating_duration_since(std::time::Instant::now());
            glommio::timer::sleep(left.min(Duration::from_millis(500))).await;
        }
        if let Some(tx) = ctx.conns.borrow().get(&conn) {
            let _ = tx.unbounded_send(super::ctx::ConnCmd::Drain { jitter: false });
        }
    }
}

async fn control_loop(
    ctx: Rc<ShardCtx>,
    mut rx: mpsc::UnboundedReceiver<Control>,
    stop: oneshot::Sender<Duration>,
) {
    let mut stop = Some(stop);
    while let Some(msg) = rx.next().await {
        match msg {
            Control::Deliver {
                identity,
                cmd,
                reply,
            } => ctx.deliver(&identity, cmd, reply),
            Control::Info { identities, reply } => {
                let _ = reply.send(identities.iter().map(|i| ctx.session_info(i)).collect());
            }
            Control::Revoke { identity, reply } => {
                let _ = reply.send(ctx.revoke(&identity));
            }
            Control::Replace { identity, conn } => ctx.replace(&identity, conn),
            Control::Stats { reply } => {
                let _ = reply.send(ctx.stats());
            }
            Control::Shutdown { spread } => {
                ctx.draining.set(true);
                if let Some(s) = stop.take() {
                    let _ = s.send(spread);
                }
            }
        }
    }
}

/// Accepts until told to stop; returns the drain's spread.
async fn accept_loop(
    ctx: &Rc<ShardCtx>,
    listener: TcpListener,
    mut stop: oneshot::Receiver<Duration>,
) -> Duration {
    enum Next {
        Accepted(glommio::Result<TcpStream, ()>),
        Stop(Duration),
    }
    loop {
        let next =
            futures_lite::future::or(async { Next::Accepted(listener.accept().await) }, async {
                Next::Stop((&mut stop).await.unwrap_or_default())
            })
            .await;
        match next {
            Next::Stop(spread) => return spread,
            Next::Accepted(Ok(stream)) => {
                let ctx = Rc::clone(ctx);
                glommio::spawn_local(async move { serve_accepted(ctx, stream).await }).detach();
            }
            Next::Accepted(Err(e)) => {
                // EMFILE and friends: back off briefly instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

/// Reads the upgrade head of a freshly accepted socket and hands it to its owner shard. A TLS
/// connection is served where it was accepted (its session cannot move); presence pointers keep
/// routing right. The connection itself runs as a task of its own: this one (with its TLS
/// handshake and head-reading state) ends, so a long-lived connection carries none of it.
async fn serve_accepted(ctx: Rc<ShardCtx>, mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    if let Some(tls) = &ctx.shared.tls {
        let acceptor = tls.acceptor();
        let timeout = ctx.shared.config.upgrade_timeout;
        let handshake =
            futures_lite::future::or(async { acceptor.accept(stream).await.ok() }, async {
                glommio::timer::sleep(timeout).await;
                None
            })
            .await;
        let Some(mut tls_stream) = handshake else {
            return;
        };
        match admit(&ctx, &mut tls_stream, peer).await {
            Some(Request::Upgrade(buf, request, consumed)) => {
                conn::spawn(ctx, tls_stream, buf, request, consumed, peer);
            }
            Some(Request::Register(buf, head)) => {
                register_http::serve(&ctx, &mut tls_stream, buf, head, peer).await;
            }
            None => {}
        }
        return;
    }
    let (buf, request, consumed) = match admit(&ctx, &mut stream, peer).await {
        Some(Request::Upgrade(buf, request, consumed)) => (buf, request, consumed),
        Some(Request::Register(buf, head)) => {
            register_http::serve(&ctx, &mut stream, buf, head, peer).await;
            return;
        }
        None => return,
    };
    let owner = owner_of(&Session::canonical_id(&request), ctx.shared.shards);
    if owner != ctx.id {
        match OwnedSocket::dup_of(&stream) {
            Ok(socket) => {
                drop(stream);
                let msg = MeshMsg::Handoff {
                    socket,
                    head: buf,
                    peer,
                };
                match ctx.mesh_send_wait(owner, msg).await {
                    Ok(()) => {
                        ctx.handoffs_out.set(ctx.handoffs_out.get() + 1);
                        ctx.metrics.handoffs.increment(1);
                        return;
                    }
                    Err(Some(MeshMsg::Handoff { socket, head, .. })) => {
                        // The owner cannot take it: serve here; presence pointers keep it right.
                        conn::spawn(ctx, socket.into_stream(), head, request, consumed, peer);
                        return;
                    }
                    Err(_) => return,
                }
            }
            Err(e) => tracing::warn!(error = %e, "dup failed; serving on the accepting shard"),
        }
    }
    conn::spawn(ctx, stream, buf, request, consumed, peer);
}

/// What a fresh connection on the agent port asked for.
enum Request {
    /// A WebSocket upgrade: the bytes read, the request, the bytes of its head.
    Upgrade(Vec<u8>, upgrade::UpgradeRequest, usize),
    /// A step of the HTTP registration fallback (PROTOCOL §9): the bytes read and its head.
    Register(Vec<u8>, reg::Head),
}

/// Reads the request head (within `UPGRADE_TIMEOUT`) and applies the pre-upgrade checks (both
/// also for the HTTP registration fallback), answering refusals with their HTTP status. `None`
/// when the connection was refused or went away.
async fn admit<S>(ctx: &Rc<ShardCtx>, stream: &mut S, peer: SocketAddr) -> Option<Request>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let timeout = ctx.shared.config.upgrade_timeout;
    let head = futures_lite::future::or(read_head(ctx, stream), async {
        glommio::timer::sleep(timeout).await;
        Err(HeadError::Timeout)
    })
    .await;
    let refusal = match head {
        Ok(h) => {
            if ctx.draining.get() {
                ctx.metrics.rejected(crate::metrics::Rejection::Draining);
                upgrade::error_response(503, "unavailable", "gateway is shutting down")
            } else if !connect_allowed(ctx, peer) {
                ctx.metrics.rejected(crate::metrics::Rejection::RateLimited);
                upgrade::error_response(
                    429,
                    "rate_limited",
                    "too many connections from this address",
                )
            } else {
                return Some(h);
            }
        }
        Err(HeadError::Http(e)) => {
            ctx.metrics.rejected(crate::metrics::Rejection::BadRequest);
            upgrade::error_response(e.status, e.kind, &e.message)
        }
        Err(HeadError::Timeout | HeadError::Eof) => {
            let _ = stream.close().await;
            return None;
        }
    };
    let _ = stream.write_all(&refusal).await;
    let _ = stream.close().await;
    None
}

/// Counts a connection attempt against the per-IP connect limit.
fn connect_allowed(ctx: &ShardCtx, peer: SocketAddr) -> bool {
    let Some(limiter) = &ctx.shared.connect_limiter else {
        return true;
    };
    match limiter.lock() {
        Ok(mut l) => l.allow(peer.ip(), super::now_ms()),
        Err(p) => p.into_inner().allow(peer.ip(), super::now_ms()),
    }
}

enum HeadError {
    Http(upgrade::UpgradeError),
    Timeout,
    Eof,
}

async fn read_head<S: AsyncRead + Unpin>(
    ctx: &Rc<ShardCtx>,
    stream: &mut S,
) -> Result<Request, HeadError> {
    let path = &ctx.shared.config.websocket_path;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await.map_err(|_| HeadError::Eof)?;
        if n == 0 {
            return Err(HeadError::Eof);
        }
        buf.extend_from_slice(&chunk[..n]);
        match reg::parse(&buf).map_err(HeadError::Http)? {
            reg::Parsed::Request(head) => return Ok(Request::Register(buf, head)),
            reg::Parsed::Incomplete => continue,
            reg::Parsed::NotOurs => {}
        }
        match upgrade::parse(&buf, path).map_err(HeadError::Http)? {
            Parsed::Incomplete => continue,
            Parsed::Complete { request, consumed } => {
                return Ok(Request::Upgrade(buf, request, consumed))
            }
        }
    }
}
