//! Carrying out the session's actions, in order: replies and closes, presence, the registration
//! records, heartbeats, routing of verified messages, and delivery confirmations.

use super::{Conn, Reason};
use crate::metrics::Delivery;
use crate::protocol::channel::{AgentKind, Channel};
use crate::protocol::envelope::MsgType;
use crate::protocol::session::{Action, Profile};
use crate::protocol::ws;
use crate::protocol::ErrorKind;
use crate::shard::now_ms;
use crate::store::{AgentRecord, Registration};
use futures_lite::{AsyncRead, AsyncWrite};
use std::collections::VecDeque;
use std::rc::Rc;
use tungstenite::protocol::frame::coding::Control;

/// How often `last_seen` may be written per connection (heartbeats are not one write each).
const LAST_SEEN_EVERY_MS: i64 = 60_000;

impl<S: AsyncRead + AsyncWrite + Unpin> Conn<S> {
    /// Carries out actions in order; `Some(reason)` when the connection must end.
    pub(super) async fn perform(&mut self, actions: Vec<Action>) -> Option<Reason> {
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
                    let record = Registration::pending(&p, self.conn_id);
                    if let Err(e) = self.ctx.shared.fleet.put_registration(&record).await {
                        tracing::warn!(error = %e, "pending registration not persisted");
                    }
                }
                Action::RemoveRegistration(id) => {
                    self.ctx.shared.pending.release(&id);
                    let _ = self.ctx.shared.fleet.remove_registration(&id).await;
                }
                Action::CommitAgent(new) => {
                    let record = AgentRecord::registered(&new, self.session.public_key());
                    let ok = match self.ctx.shared.fleet.register_agent(&record).await {
                        Ok(()) => true,
                        Err(e) => {
                            tracing::error!(error = %e, "agent record not stored");
                            false
                        }
                    };
                    let ctx = Rc::clone(&self.ctx);
                    queue.extend(self.session.on_agent_committed(
                        &ctx.env(),
                        ok,
                        crate::shard::now(),
                    ));
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
                    if let Some(nb) = &self.ctx.shared.northbound {
                        if self.session.is_registered() {
                            nb.offer_heartbeat(
                                self.session.identity(),
                                crate::shard::now_ms() / 1000,
                            );
                        }
                    }
                    self.touch_last_seen().await;
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
                    self.route_inbound(&id, &channel, msg_type, &body).await;
                    self.ctx
                        .metrics
                        .route_seconds
                        .record(started.elapsed().as_secs_f64());
                }
                Action::Ack(id) => {
                    self.ctx.metrics.message_in(None, false);
                    if self.session.is_registered() {
                        let ctx = Rc::clone(&self.ctx);
                        let fleet = &*ctx.shared.fleet;
                        if self
                            .outbox
                            .ack(fleet, self.session.ident(), &id, now_ms())
                            .await
                        {
                            ctx.metrics.delivery(Delivery::Delivered, 1);
                        } else {
                            tracing::debug!(conn = self.conn_id, id, "ack for an unknown command");
                        }
                    }
                }
                Action::LegacyAck => self.ctx.metrics.legacy_ack(),
                Action::Ping => {
                    let ping = ws::control(Control::Ping, &[]);
                    if self.send(&ping).await.is_err() {
                        return Some("write failed");
                    }
                }
                Action::Verified => {
                    if self.session.profile() == Profile::V1 && !self.outbox.is_empty() {
                        let ctx = Rc::clone(&self.ctx);
                        let fleet = &*ctx.shared.fleet;
                        let t = self
                            .outbox
                            .confirm_all(fleet, self.session.ident(), now_ms())
                            .await;
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
    async fn route_inbound(&mut self, id: &str, channel: &str, msg_type: MsgType, body: &str) {
        let now_s = now_ms() / 1000;
        let agent = self.session.ident();
        if let Some(ev) = crate::router::event(agent, channel, msg_type, id, body, now_s) {
            self.ctx.record_event(ev);
        }
        if self.session.is_registered()
            && !self.channels_seen.iter().any(|c| c == channel)
            && self.channels_seen.len() < crate::router::CHANNELS_PER_CONN
        {
            self.channels_seen.push(channel.to_string());
            let kind = channel.rsplit('.').next().unwrap_or_default();
            let fleet = &self.ctx.shared.fleet;
            if let Err(e) = fleet.touch_channel(agent, channel, kind, now_s).await {
                tracing::warn!(error = %e, "channel not recorded");
            }
        }
    }

    /// Records the agent's activity, at most once per [`LAST_SEEN_EVERY_MS`].
    async fn touch_last_seen(&mut self) {
        let now = now_ms();
        if !self.session.is_registered() || now - self.last_seen_write_ms < LAST_SEEN_EVERY_MS {
            return;
        }
        self.last_seen_write_ms = now;
        let fleet = &self.ctx.shared.fleet;
        if let Err(e) = fleet.set_last_seen(self.session.ident(), now / 1000).await {
            tracing::warn!(error = %e, "last_seen not stored");
        }
    }
}
