//! The connection task: WebSocket upgrade, then the protocol session driven by frames, shard
//! commands and timers, all on one task (no locks; the session is owned here).

use super::batch::MAX_BATCH;
use super::control::{Command, DeliverError, DeliverReply, DeliveryOutcome};
use super::now_ms;
use super::outbox::{command_of, Outbox};
use super::presence::{ConnCmd, ShardCtx};
use super::ws::{Read, WsStream};
use crate::metrics::Delivery;
use crate::protocol::channel::{AgentKind, Channel};
use crate::protocol::close;
use crate::protocol::envelope::MsgType;
use crate::protocol::session::Profile;
use crate::protocol::session::{Action, KnownAgent, Session};
use crate::protocol::upgrade::{self, Parsed, UpgradeRequest};
use crate::protocol::ws::{self, Incoming};
use crate::protocol::ErrorKind;
use futures_channel::mpsc;
use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt, StreamExt};
use glommio::net::TcpStream;
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tungstenite::protocol::frame::coding::Control;

/// How often `last_seen` may be written per connection (heartbeats are not one write each).
const LAST_SEEN_EVERY_MS: i64 = 60_000;

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

/// Completes the upgrade on the owner shard and runs the session.
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
        let resp =
            upgrade::error_response(503, "unavailable", "gateway is at its connection limit");
        let _ = stream.write_all(&resp).await;
        let _ = stream.close().await;
        return;
    };
    let lookup = request.agent_uid.as_deref().unwrap_or(&request.agent_id);
    let known = match ctx.shared.store.get_agent(lookup) {
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
            let resp = upgrade::error_response(503, "unavailable", "storage unavailable");
            let _ = stream.write_all(&resp).await;
            let _ = stream.close().await;
            return;
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
    let session = Session::new(request, known, now_ms(), jitter);
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
        profile_slot: 0,
        last_inbound: std::time::Instant::now(),
        last_seen_write_ms: 0,
    };
    glommio::spawn_local(Box::new(c).live(early, slot, peer)).detach();
}

/// How long one frame may take to write: the ping interval, at most 10 s.
fn write_deadline(cfg: &crate::config::Config) -> Duration {
    cfg.ping_interval.min(Duration::from_secs(10))
}

/// Spread of session-expiry closes: up to a tenth of the session, at most 5 minutes.
fn expiry_jitter_ms(session_timeout_s: i64) -> i64 {
    let span = (session_timeout_s * 100).clamp(1, 300_000);
    let r = u64::from_le_bytes(crate::crypto::random::bytes::<8>());
    (r % span as u64) as i64
}

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
    /// Channels already recorded in the `channels` keyspace by this connection.
    channels_seen: Vec<String>,
    /// Whether this connection holds the presence of `session.identity()`.
    claimed: bool,
    /// Metrics profile slot: 0 unauthenticated, 1 v1, 2 v2.
    profile_slot: usize,
    last_inbound: std::time::Instant,
    last_seen_write_ms: i64,
}

enum Event {
    Read(Read),
    Cmd(Option<ConnCmd>),
    Tick,
}

/// Why the loop ended (for the log line).
type Reason = &'static str;

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// The connection's own task, for as long as it lives: the loop, then the cleanup. It is
    /// spawned apart from the upgrade so its future holds the connection and the loop only.
    ///
    /// The connection is boxed: an async fn keeps its arguments beside its locals, so an
    /// unboxed `Conn` would be stored twice in the task.
    async fn live(mut self: Box<Self>, early: Read, slot: super::limits::Slot, peer: SocketAddr) {
        let reason = self.run(early).await;
        let ctx = Rc::clone(&self.ctx);
        let conn_id = self.conn_id;
        if std::mem::take(&mut self.claimed) {
            ctx.release(self.session.identity(), conn_id);
        }
        if self.session.is_registered() && !self.outbox.is_empty() {
            let t = self
                .outbox
                .close(&ctx.shared.store, self.session.ident(), now_ms());
            ctx.metrics.delivery(Delivery::Failed, t.failed);
        }
        for (_, reply) in self.held.drain(..) {
            let _ = reply.send(Err(DeliverError::Closed));
        }
        ctx.remove_conn(conn_id);
        ctx.metrics.connection(Some(self.profile_slot), None);
        drop(slot);
        tracing::info!(conn = conn_id, %peer, reason, "agent disconnected");
    }

    /// The connection loop. It awaits the read/command/timer race and little else inline:
    /// the work each event starts runs in a boxed future, so the long-lived task future of an
    /// idle connection stays small (the per-connection memory budget).
    async fn run(&mut self, early: Read) -> Reason {
        if let Some(reason) = Box::pin(self.on_read(early)).await {
            return reason;
        }
        let cfg = &self.ctx.shared.config;
        let ping_every = cfg.ping_interval;
        let idle = cfg.idle_timeout;
        let mut next_ping = std::time::Instant::now() + ping_every;
        loop {
            let now = std::time::Instant::now();
            if now.duration_since(self.last_inbound) >= idle {
                Box::pin(self.ws.close(close::NORMAL, "idle timeout")).await;
                return "idle timeout";
            }
            if now >= next_ping {
                if self.send(&ws::control(Control::Ping, &[])).await.is_err() {
                    return "write failed";
                }
                next_ping = now + ping_every;
            }
            let mut wait = next_ping
                .min(self.last_inbound + idle)
                .saturating_duration_since(now);
            let deadlines = [
                self.session.next_deadline(&self.ctx.shared.limits),
                self.outbox.next_deadline(self.ack_timeout_ms()),
            ];
            for d in deadlines.into_iter().flatten() {
                let ms = (d - now_ms()).max(0);
                wait = wait.min(Duration::from_millis(ms as u64));
            }
            let ev = {
                let ws = &mut self.ws;
                let rx = &mut self.rx;
                futures_lite::future::or(
                    async { Event::Read(ws.read().await) },
                    futures_lite::future::or(async { Event::Cmd(rx.next().await) }, async {
                        glommio::timer::sleep(wait).await;
                        Event::Tick
                    }),
                )
                .await
            };
            let actions: Vec<Action> = match ev {
                Event::Read(r) => match Box::pin(self.on_read(r)).await {
                    Some(reason) => return reason,
                    None => continue,
                },
                Event::Cmd(None) => return "shard gone",
                Event::Cmd(Some(cmd)) => match cmd {
                    ConnCmd::Replace => {
                        let now = now_ms();
                        let ctx = Rc::clone(&self.ctx);
                        let env = ctx.env();
                        self.session.terminate(&env, ErrorKind::Replaced, now)
                    }
                    ConnCmd::Revoke => {
                        // The agent no longer exists: close 4001. Its presence is already gone.
                        self.claimed = false;
                        let now = now_ms();
                        let ctx = Rc::clone(&self.ctx);
                        let env = ctx.env();
                        self.session
                            .terminate(&env, ErrorKind::AuthenticationFailed, now)
                    }
                    ConnCmd::Drain => {
                        // Spread closes over a short window so agents do not reconnect at once.
                        let spread = u64::from(crate::crypto::random::bytes::<1>()[0]) * 4;
                        glommio::timer::sleep(Duration::from_millis(spread)).await;
                        Box::pin(self.ws.close(close::GOING_AWAY, "gateway shutting down")).await;
                        return "drained";
                    }
                    ConnCmd::Deliver(d) => {
                        let (cmd, reply) = *d;
                        if self.session.handshake_over() {
                            Box::pin(self.write_command(cmd, Some(reply))).await;
                        } else {
                            self.held.push((cmd, reply));
                        }
                        Vec::new()
                    }
                },
                Event::Tick => {
                    Box::pin(self.retry_overdue()).await;
                    let now = now_ms();
                    let ctx = Rc::clone(&self.ctx);
                    let env = ctx.env();
                    self.session.tick(&env, now)
                }
            };
            if let Some(reason) = Box::pin(self.perform(actions)).await {
                return reason;
            }
        }
    }

    /// Handles what one read produced, in order: messages go to the session, pings are
    /// answered, a close is answered and ends the connection, and a framing violation after
    /// them closes with its code (1002, 1007, 1009). `Some(reason)` when the connection ends.
    async fn on_read(&mut self, read: Read) -> Option<Reason> {
        let (msgs, result) = match read {
            Read::Frames(msgs, result) => (msgs, result),
            Read::Eof => return Some("peer closed"),
            Read::Failed => return Some("read failed"),
        };
        if !msgs.is_empty() {
            self.last_inbound = std::time::Instant::now();
        }
        let mut msgs = msgs.into_iter().peekable();
        while let Some(m) = msgs.next() {
            match m {
                Incoming::Text(mut buf) | Incoming::Binary(mut buf) => {
                    let ahead = {
                        let ctx = Rc::clone(&self.ctx);
                        let env = ctx.env();
                        self.session.parse_ahead(&env, now_ms()).min(MAX_BATCH)
                    };
                    let mut run = Vec::new();
                    while run.len() + 1 < ahead {
                        match msgs.next_if(|m| matches!(m, Incoming::Text(_) | Incoming::Binary(_)))
                        {
                            Some(Incoming::Text(b) | Incoming::Binary(b)) => run.push(b),
                            _ => break,
                        }
                    }
                    let end = if run.is_empty() {
                        let actions = self.on_frame(&mut buf).await;
                        drop(buf);
                        self.perform(actions).await
                    } else {
                        run.insert(0, buf);
                        self.on_frames(run).await
                    };
                    if let Some(reason) = end {
                        return Some(reason);
                    }
                }
                Incoming::Ping(payload) => {
                    if self
                        .send(&ws::control(Control::Pong, &payload))
                        .await
                        .is_err()
                    {
                        return Some("write failed");
                    }
                }
                Incoming::Pong => {}
                Incoming::Close(close) => {
                    self.ws.answer_close(close).await;
                    return Some("peer closed");
                }
            }
        }
        if let Err(e) = result {
            self.ws.close(e.close_code(), e.reason()).await;
            return Some(e.reason());
        }
        None
    }

    /// Several frames of one read, parsed ahead: their signatures go to the shard's batch
    /// together (a busy agent fills a batch by itself), then each is finished in order, exactly
    /// as one frame after the other would be.
    async fn on_frames(&mut self, frames: Vec<Vec<u8>>) -> Option<Reason> {
        let ctx = Rc::clone(&self.ctx);
        let env = ctx.env();
        let now = now_ms();
        let mut parsed: Vec<_> = frames
            .into_iter()
            .map(|mut f| self.session.parse_frame(&env, &mut f, now))
            .collect();
        let mut needs = Vec::with_capacity(parsed.len());
        let mut jobs = Vec::with_capacity(parsed.len());
        for p in parsed.iter_mut() {
            let job = p.take_job();
            needs.push(job.is_some());
            jobs.extend(job);
        }
        let mut verdicts = ctx.batcher.verify_all(jobs).await.into_iter();
        for (p, needed) in parsed.into_iter().zip(needs) {
            let ok = needed && verdicts.next().unwrap_or(false);
            let actions = self.session.finish_parsed(&env, p, ok, now_ms());
            if let Some(reason) = self.perform(actions).await {
                return Some(reason);
            }
        }
        None
    }

    /// Feeds a frame to the session, running its signature check through the shard batcher.
    async fn on_frame(&mut self, buf: &mut [u8]) -> Vec<Action> {
        let now = now_ms();
        let ctx = Rc::clone(&self.ctx);
        let env = ctx.env();
        let step = self.session.on_frame(&env, buf, now);
        let mut actions = step.actions;
        if let Some(job) = step.verify {
            let ok = self.ctx.batcher.verify(job).await;
            let now = now_ms();
            let ctx = Rc::clone(&self.ctx);
            let env = ctx.env();
            actions.extend(self.session.on_verified(&env, ok, now));
        }
        actions
    }

    /// Carries out actions in order; `Some(reason)` when the connection must end.
    async fn perform(&mut self, actions: Vec<Action>) -> Option<Reason> {
        let mut queue: VecDeque<Action> = actions.into();
        while let Some(a) = queue.pop_front() {
            match a {
                Action::Send(text) => {
                    if self.send(&ws::text(text.as_bytes())).await.is_err() {
                        return Some("write failed");
                    }
                }
                Action::Close(code, reason) => {
                    self.ws.close(code, reason).await;
                    return Some(reason);
                }
                Action::Authenticated { identity, profile } => {
                    tracing::info!(conn = self.conn_id, shard = self.ctx.id, %identity, profile = profile.number(), "agent authenticated");
                    let slot = usize::from(profile.number());
                    self.ctx
                        .metrics
                        .connection(Some(self.profile_slot), Some(slot));
                    self.ctx.metrics.handshake(true, profile.number());
                    self.profile_slot = slot;
                    self.ctx.claim(&identity, self.conn_id, self.session_info());
                    self.claimed = true;
                }
                Action::HandshakeOver => {
                    self.flush_queue().await;
                    for (cmd, reply) in std::mem::take(&mut self.held) {
                        self.write_command(cmd, Some(reply)).await;
                    }
                }
                Action::PersistRegistration(p) => {
                    if let Err(e) = self
                        .ctx
                        .shared
                        .store
                        .put_registration(&to_registration(&p, self.conn_id))
                    {
                        tracing::warn!(error = %e, "pending registration not persisted");
                    }
                }
                Action::RemoveRegistration(id) => {
                    let _ = self.ctx.shared.store.remove_registration(&id);
                }
                Action::CommitAgent(new) => {
                    let store = &self.ctx.shared.store;
                    let record = to_agent_record(&new, self.session.public_key());
                    let ok = match store.put_agent(&record) {
                        Ok(()) => store.sync().await.is_ok(),
                        Err(e) => {
                            tracing::error!(error = %e, "agent record not stored");
                            false
                        }
                    };
                    let now = now_ms();
                    let ctx = Rc::clone(&self.ctx);
                    let env = ctx.env();
                    queue.extend(self.session.on_agent_committed(&env, ok, now));
                }
                Action::Registered { old_identity, uid } => {
                    tracing::info!(conn = self.conn_id, %uid, "agent registered");
                    self.ctx.release(&old_identity, self.conn_id);
                    self.ctx.claim(&uid, self.conn_id, self.session_info());
                    self.claimed = true;
                }
                Action::Heartbeat => {
                    self.ctx
                        .metrics
                        .message_in(Some(AgentKind::Heartbeat), false);
                    self.touch_last_seen();
                }
                Action::Inbound {
                    id,
                    channel,
                    msg_type,
                    body,
                } => {
                    let started = std::time::Instant::now();
                    let kind = match crate::protocol::channel::parse(&channel) {
                        Ok(Channel::Agent { kind, .. }) => Some(kind),
                        _ => None,
                    };
                    self.ctx.metrics.message_in(kind, false);
                    self.route_inbound(&id, &channel, msg_type, &body);
                    self.ctx
                        .metrics
                        .route_seconds
                        .record(started.elapsed().as_secs_f64());
                }
                Action::Ack(id) => {
                    self.ctx.metrics.message_in(None, false);
                    if self.session.is_registered() {
                        let ctx = Rc::clone(&self.ctx);
                        if self
                            .outbox
                            .ack(&ctx.shared.store, self.session.ident(), &id, now_ms())
                        {
                            ctx.metrics.delivery(Delivery::Delivered, 1);
                        } else {
                            tracing::debug!(conn = self.conn_id, id, "ack for an unknown command");
                        }
                    }
                }
                Action::LegacyAck => self.ctx.metrics.legacy_ack(),
                Action::Verified => {
                    if self.session.profile() == Profile::V1 && !self.outbox.is_empty() {
                        let ctx = Rc::clone(&self.ctx);
                        let t = self.outbox.confirm_all(
                            &ctx.shared.store,
                            self.session.ident(),
                            now_ms(),
                        );
                        ctx.metrics.delivery(Delivery::Delivered, t.delivered);
                    }
                }
                Action::Rejected(kind) => {
                    if kind == ErrorKind::AuthenticationFailed {
                        self.ctx
                            .metrics
                            .handshake(false, self.session.profile().number());
                    }
                    self.ctx.metrics.error(kind);
                    tracing::debug!(conn = self.conn_id, kind = kind.as_str(), "frame rejected");
                }
            }
        }
        None
    }

    /// Hands a verified agent message to the backend side: the event stream, and the agent's
    /// channel record (written once per channel per connection).
    fn route_inbound(&mut self, id: &str, channel: &str, msg_type: MsgType, body: &str) {
        let now_s = now_ms() / 1000;
        let agent = self.session.ident();
        if let Some(ev) = crate::router::event(agent, channel, msg_type, id, body, now_s) {
            self.ctx.record_event(ev);
        }
        let store = &self.ctx.shared.store;
        if self.session.is_registered()
            && !self.channels_seen.iter().any(|c| c == channel)
            && self.channels_seen.len() < crate::router::CHANNELS_PER_CONN
        {
            self.channels_seen.push(channel.to_string());
            let kind = channel.rsplit('.').next().unwrap_or_default();
            if let Err(e) = store.touch_channel(agent, channel, kind, now_s) {
                tracing::warn!(error = %e, "channel not recorded");
            }
        }
    }

    fn touch_last_seen(&mut self) {
        let now = now_ms();
        if !self.session.is_registered() || now - self.last_seen_write_ms < LAST_SEEN_EVERY_MS {
            return;
        }
        self.last_seen_write_ms = now;
        if let Err(e) = self
            .ctx
            .shared
            .store
            .set_last_seen(self.session.ident(), now / 1000)
        {
            tracing::warn!(error = %e, "last_seen not stored");
        }
    }

    fn session_info(&self) -> crate::shard::SessionInfo {
        crate::shard::SessionInfo {
            profile: self.session.profile().number(),
            session_expires: self.session.session_expires(),
        }
    }

    fn ack_timeout_ms(&self) -> i64 {
        i64::try_from(self.ctx.shared.config.ack_timeout.as_millis()).unwrap_or(i64::MAX)
    }

    /// Writes every pending queued command of this (registered) agent, in queue order.
    async fn flush_queue(&mut self) {
        if !self.session.is_registered() {
            return;
        }
        let ctx = Rc::clone(&self.ctx);
        let pending = match ctx
            .shared
            .store
            .pending(self.session.ident(), now_ms() / 1000)
        {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!(error = %e, "pending commands not read");
                return;
            }
        };
        for q in pending {
            if let Some(cmd) = command_of(&q) {
                self.write_command(cmd, None).await;
            }
        }
    }

    /// v2: writes again the commands whose ack is overdue; fails those out of attempts.
    async fn retry_overdue(&mut self) {
        if self.outbox.is_empty() || self.session.profile() != Profile::V2 {
            return;
        }
        let ctx = Rc::clone(&self.ctx);
        let (again, t) = self.outbox.overdue(
            &ctx.shared.store,
            self.session.ident(),
            self.ack_timeout_ms(),
            now_ms(),
        );
        ctx.metrics.delivery(Delivery::Failed, t.failed);
        for cmd in again {
            ctx.metrics.delivery(Delivery::Retried, 1);
            self.write_command(cmd, None).await;
        }
    }

    /// Writes a command. A queued command (seq ≠ 0) of a registered agent is written once per
    /// connection unless retried, and each write is recorded as an attempt first.
    async fn write_command(&mut self, cmd: Command, reply: Option<DeliverReply>) {
        let now = now_ms();
        let ctx = Rc::clone(&self.ctx);
        let env = ctx.env();
        let durable = cmd.seq != 0 && self.session.is_registered();
        let mut attempt = None;
        if durable {
            // Already written on this connection and awaiting confirmation (a retry is taken
            // out of the outbox before it is written again).
            if self.outbox.contains(cmd.seq) {
                if let Some(r) = reply {
                    let _ = r.send(Ok(DeliveryOutcome::Written));
                }
                return;
            }
            attempt = self.outbox.begin_attempt(
                &ctx.shared.store,
                self.session.ident(),
                &cmd,
                self.conn_id,
                now,
            );
            if attempt.is_none() {
                if let Some(r) = reply {
                    let _ = r.send(Err(DeliverError::NotPending));
                }
                return;
            }
        }
        let frame = self.session.command_frame(
            &env,
            &cmd.message_id,
            cmd.kind,
            cmd.msg_type,
            &cmd.message_json,
            now,
        );
        let result = match frame {
            None => Err(DeliverError::NotConnected),
            Some(text) => match self.send(&ws::text(text.as_bytes())).await {
                Ok(()) => Ok(DeliveryOutcome::Written),
                Err(_) => Err(DeliverError::Closed),
            },
        };
        ctx.metrics.message_out(cmd.kind, result.is_ok());
        if let (Ok(_), Some(a)) = (&result, attempt) {
            ctx.metrics.delivery(Delivery::Sent, 1);
            self.outbox.written(cmd, a, now);
        }
        if let Some(r) = reply {
            let _ = r.send(result);
        }
    }

    /// Writes one frame within the write deadline. A peer that does not read (a full socket
    /// buffer for longer than the deadline) is a slow consumer: the write fails and the
    /// connection ends, so a stalled agent never pins memory or a task; its unconfirmed commands
    /// go back to the durable queue.
    async fn send(&mut self, frame: &[u8]) -> Result<(), ()> {
        let deadline = write_deadline(&self.ctx.shared.config);
        let ws = &mut self.ws;
        let sent = futures_lite::future::or(async { Some(ws.write_frame(frame).await) }, async {
            glommio::timer::sleep(deadline).await;
            None
        })
        .await;
        match sent {
            Some(Ok(())) => Ok(()),
            Some(Err(_)) => Err(()),
            None => {
                tracing::warn!(
                    conn = self.conn_id,
                    "slow consumer: write deadline passed, closing"
                );
                Err(())
            }
        }
    }
}

fn to_registration(
    p: &crate::protocol::session::PendingRecord,
    conn_id: u64,
) -> crate::store::Registration {
    let r = &p.request;
    crate::store::Registration {
        registration_id: p.registration_id.clone(),
        conn_id,
        public_key: r.agent_pubkey.clone(),
        host_id: r.host_id.clone(),
        agent_id: p.agent_id.clone(),
        org_id: r.org_id.clone(),
        platform: r.platform.clone(),
        version: r.agent_version.clone(),
        capabilities: r.capabilities.clone(),
        network: r.network.clone(),
        nonce: p.nonce.clone(),
        server_time: p.server_time.clone(),
        expires_at: p.expires_at,
    }
}

fn to_agent_record(
    n: &crate::protocol::session::NewAgent,
    public_key: &[u8; 32],
) -> crate::store::AgentRecord {
    let r = &n.request;
    crate::store::AgentRecord {
        agent_uid: n.agent_uid.clone(),
        public_key: crate::protocol::payloads::b64(public_key),
        host_id: r.host_id.clone(),
        agent_id: n.agent_id.clone(),
        org_id: r.org_id.clone(),
        platform: r.platform.clone(),
        version: r.agent_version.clone(),
        capabilities: r.capabilities.clone(),
        network: r.network.clone(),
        token_hash: n.token_hash.clone(),
        registered_at: n.registered_at,
        last_seen: n.registered_at,
        profile: n.profile,
    }
}
