//! The connection task: the end of the WebSocket upgrade (the agent's store record, the 101
//! answer), then the protocol session driven by frames, shard commands and timers, all on one
//! task that owns the session (no locks). Its files, one concern each:
//!
//! | file | what it is |
//! |---|---|
//! | `mod.rs` | upgrade completion and agent lookup, the connection state, its cleanup |
//! | `run.rs` | the loop: the read / command / timer race, pings and the idle timeout |
//! | `frames.rs` | one read's frames: data messages in runs, pings, closes, framing errors (shared with `ws-echo`) |
//! | `inbound.rs` | feeding data messages to the session (parse ahead, one signature batch, finish in order) |
//! | `actions.rs` | carrying out the session's actions (replies, presence, registration, routing) |
//! | `delivery.rs` | durable command delivery: the queue at handshake end, retries, writes with a deadline |
//! | `outbox.rs` | the commands written on this connection and not yet confirmed |

mod actions;
mod delivery;
pub(super) mod frames;
mod inbound;
mod outbox;
mod run;

use super::control::DeliverReply;
use super::ctx::{ConnCmd, ShardCtx};
use super::now_ms;
use super::ws::WsStream;
use crate::metrics::Delivery;
use crate::protocol::session::{KnownAgent, Session};
use crate::protocol::upgrade::{self, Parsed, UpgradeRequest};
use crate::store::{Command, DeliverError, SessionInfo};
use futures_channel::mpsc;
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use outbox::Outbox;
use std::net::SocketAddr;
use std::rc::Rc;

/// Why a connection ended (for its log line).
pub(super) type Reason = &'static str;

/// A socket handed over by another shard: parse its head again (cheap) and serve it.
pub(super) async fn serve_handed(
    ctx: Rc<ShardCtx>,
    stream: TcpStream,
    head: Vec<u8>,
    peer: SocketAddr,
) {
    match upgrade::parse(&head, &ctx.shared.config.websocket_path) {
        Ok(Parsed::Complete { request, consumed }) => {
            serve_upgraded(ctx, stream, head, request, consumed, peer).await
        }
        _ => {
            let mut stream = stream;
            let _ = stream.close().await;
        }
    }
}

/// Runs an admitted connection as a task of its own, so its future holds only the connection
/// (not the accept path that led to it).
pub(super) fn spawn<S>(
    ctx: Rc<ShardCtx>,
    stream: S,
    head: Vec<u8>,
    request: UpgradeRequest,
    consumed: usize,
    peer: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    glommio::spawn_local(serve_upgraded(ctx, stream, head, request, consumed, peer)).detach();
}

/// Answers a refused upgrade and closes.
async fn refuse<S: AsyncWrite + Unpin>(stream: &mut S, status: u16, message: &str) {
    let resp = upgrade::error_response(status, "unavailable", message);
    let _ = stream.write_all(&resp).await;
    let _ = stream.close().await;
}

/// Completes the upgrade on the owner shard and starts the connection's own task.
async fn serve_upgraded<S>(
    ctx: Rc<ShardCtx>,
    mut stream: S,
    head: Vec<u8>,
    request: UpgradeRequest,
    consumed: usize,
    peer: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + 'static,
{
    let Some(slot) = super::limits::Slot::take(&ctx.shared) else {
        ctx.metrics
            .rejected(crate::metrics::Rejection::MaxConnections);
        return refuse(&mut stream, 503, "gateway is at its connection limit").await;
    };
    let lookup = request.agent_uid.as_deref().unwrap_or(&request.agent_id);
    let known = match ctx.shared.fleet.get_agent(lookup).await {
        Ok(rec) => rec.and_then(|r| {
            let public_key = crate::protocol::payloads::decode_b64_exact::<32>(&r.public_key)?;
            Some(KnownAgent {
                uid: r.agent_uid,
                public_key,
                token_hash: r.token_hash,
            })
        }),
        Err(e) => {
            tracing::error!(error = %e, "agent lookup failed");
            return refuse(&mut stream, 503, "storage unavailable").await;
        }
    };
    if stream
        .write_all(&upgrade::accept_response(&request.ws_key))
        .await
        .is_err()
    {
        return;
    }
    let mut ws = WsStream::new(stream, ctx.shared.config.max_message_size);
    let early = ws.feed(head.get(consumed..).unwrap_or_default());
    drop(head);
    let jitter = expiry_jitter_ms(ctx.shared.limits.session_timeout_s);
    let session = Session::new(request, known, super::now(), &ctx.shared.limits, jitter);
    let (tx, rx) = mpsc::unbounded();
    let conn_id = ctx.add_conn(tx);
    ctx.metrics.connection(None, Some(0));
    // Two info lines per connection (authenticated, disconnected; the peer is on the second):
    // a fleet's reconnect storm logs tens of thousands of them.
    tracing::debug!(conn = conn_id, %peer, shard = ctx.id, "agent connected");
    let c = Conn {
        ctx,
        ws,
        session,
        conn_id,
        rx,
        held: Vec::new(),
        outbox: Outbox::default(),
        channels_seen: Vec::new(),
        claimed: false,
        peer,
        profile_slot: 0,
        last_seen_write_ms: 0,
    };
    glommio::spawn_local(Box::new(c).live(early, slot)).detach();
}

/// Spread of session-expiry closes: up to a tenth of the session, at most 5 minutes.
fn expiry_jitter_ms(session_timeout_s: i64) -> i64 {
    let span = (session_timeout_s * 100).clamp(1, 300_000);
    let r = u64::from_le_bytes(crate::crypto::random::bytes::<8>());
    (r % span as u64) as i64
}

/// One live connection: its socket, its session and the delivery state of its commands.
struct Conn<S> {
    ctx: Rc<ShardCtx>,
    ws: WsStream<S>,
    session: Session,
    conn_id: u64,
    rx: mpsc::UnboundedReceiver<ConnCmd>,
    /// Commands that arrived during the handshake, written when it ends.
    held: Vec<(Command, DeliverReply)>,
    /// Durable commands written and not yet confirmed.
    outbox: Outbox,
    /// Channels already recorded in the fleet state by this connection.
    channels_seen: Vec<String>,
    /// Whether this connection holds the presence of `session.identity()`.
    claimed: bool,
    /// The client's address.
    peer: SocketAddr,
    /// Metrics profile slot: 0 unauthenticated, 1 v1, 2 v2.
    profile_slot: usize,
    last_seen_write_ms: i64,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// The connection's own task, for as long as it lives: the loop, then the cleanup. It is
    /// spawned apart from the upgrade so its future holds the connection and the loop only.
    ///
    /// The connection is boxed: an async fn keeps its arguments beside its locals, so an
    /// unboxed `Conn` would be stored twice in the task.
    async fn live(mut self: Box<Self>, early: super::ws::Read, slot: super::limits::Slot) {
        let peer = self.peer;
        let reason = self.run(early).await;
        let ctx = Rc::clone(&self.ctx);
        let conn_id = self.conn_id;
        if std::mem::take(&mut self.claimed) {
            ctx.release(self.session.identity(), conn_id);
        }
        if self.session.is_registered() && !self.outbox.is_empty() {
            let fleet = &*ctx.shared.fleet;
            let t = self
                .outbox
                .close(fleet, self.session.ident(), now_ms())
                .await;
            ctx.metrics.delivery(Delivery::Failed, t.failed);
        }
        for (_, reply) in self.held.drain(..) {
            let _ = reply.send(Err(DeliverError::Closed));
        }
        // A registration left pending belongs to this connection only: it goes with it.
        if let Some(id) = self.session.pending_registration() {
            let id = id.to_string();
            ctx.shared.pending.release(&id);
            if let Err(e) = ctx.shared.fleet.remove_registration(&id).await {
                tracing::debug!(error = %e, "pending registration not removed");
            }
        }
        ctx.remove_conn(conn_id);
        ctx.metrics.connection(Some(self.profile_slot), None);
        drop(slot);
        tracing::info!(conn = conn_id, %peer, reason, "agent disconnected");
    }

    /// What the admin API shows of this session.
    fn session_info(&self) -> SessionInfo {
        SessionInfo {
            profile: self.session.profile().number(),
            session_expires: self.session.session_expires(),
        }
    }
}
