//! AegisFlux's commands: the subscription on `websocket.messages` (a queue group, so that
//! several nodes take each message once), each message an admin `send` with AegisFlux's `id`
//! as the message id (so a repeated publish is one command), run on the admin executor.
//!
//! Core NATS has no acknowledgement: a publisher that does not ask for a reply cannot learn
//! that a command was refused (unknown agent, full queue, store down). One that publishes with
//! a reply subject (a NATS request) gets `{"message_id","status"[,"error"]}`: `queued` or
//! `sent` once the command is durable, `duplicate` for an id already taken for that agent,
//! `rejected` for a bad message, `failed` (queue full) or `unavailable` (store down: retry).
//! Messages are taken one at a time, in order; a bad one is counted and logged (once per
//! minute per reason) and never stops the subscription.

use super::inbound::{self, Reason};
use crate::admin::api::ErrorKind;
use crate::ops::GatewayBackend;
use futures_util::StreamExt;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often each reason of refusal is logged at most.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The reply to a publisher that asked for one.
#[derive(Debug, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Reply {
    /// The message id (`None` when the message had no usable id).
    pub message_id: Option<String>,
    /// `queued`, `sent`, `duplicate`, `rejected`, `failed` or `unavailable`.
    pub status: String,
    /// Why it was not taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Rate-limited logging of refusals, per reason.
#[derive(Default)]
struct Complaints {
    last: RefCell<HashMap<&'static str, (Instant, u64)>>,
}

impl Complaints {
    /// Counts a refusal; logs it at most once per [`LOG_EVERY`] per reason, with the number
    /// seen since the last line.
    fn note(&self, reason: &'static str, detail: &str) {
        metrics::counter!(crate::metrics::AEGISFLUX_REJECTED, "reason" => reason).increment(1);
        let mut last = self.last.borrow_mut();
        let now = Instant::now();
        let entry = last.entry(reason).or_insert((now - LOG_EVERY, 0));
        entry.1 += 1;
        if now.duration_since(entry.0) >= LOG_EVERY {
            tracing::warn!(
                reason,
                count = entry.1,
                detail,
                "AegisFlux message not taken"
            );
            *entry = (now, 0);
        }
    }
}

fn rejected(id: Option<String>, reason: Reason, complaints: &Complaints, detail: &str) -> Reply {
    complaints.note(reason.as_str(), detail);
    Reply {
        message_id: id,
        status: "rejected".to_string(),
        error: Some(reason.as_str().to_string()),
    }
}

/// One message of the subject, taken or refused.
async fn take(ops: &GatewayBackend, bytes: &[u8], complaints: &Complaints) -> Reply {
    let m = match inbound::parse(bytes) {
        Ok(m) => m,
        Err((id, reason)) => return rejected(id, reason, complaints, ""),
    };
    let id = m.id.clone();
    match ops.send_command(&m.target, m.request, Some(m.id)).await {
        Ok(r) => {
            let status = r.status;
            metrics::counter!(crate::metrics::AEGISFLUX_COMMANDS, "status" => status.clone())
                .increment(1);
            Reply {
                message_id: Some(r.message_id),
                status,
                error: None,
            }
        }
        Err(e) => {
            let reason = match e.kind {
                ErrorKind::NotFound | ErrorKind::AgentNotFound | ErrorKind::AmbiguousHostId => {
                    Some(Reason::UnknownAgent)
                }
                ErrorKind::InvalidChannel | ErrorKind::InvalidRequest => Some(Reason::BadChannel),
                _ => None,
            };
            if let Some(reason) = reason {
                return rejected(Some(id), reason, complaints, &e.message);
            }
            let status = if e.kind == ErrorKind::QueueFull {
                "failed"
            } else {
                "unavailable"
            };
            complaints.note(status, &e.message);
            Reply {
                message_id: Some(id),
                status: status.to_string(),
                error: Some(e.message),
            }
        }
    }
}

/// Takes the subject's messages until the client is closed.
pub async fn serve(
    client: async_nats::Client,
    subject: String,
    queue: String,
    ops: Rc<GatewayBackend>,
) {
    let mut sub = match client.queue_subscribe(subject.clone(), queue.clone()).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(%subject, error = %e, "cannot subscribe to AegisFlux's commands");
            return;
        }
    };
    tracing::info!(%subject, %queue, "taking AegisFlux commands");
    let complaints = Complaints::default();
    while let Some(msg) = sub.next().await {
        let reply = take(&ops, &msg.payload, &complaints).await;
        if let Some(to) = msg.reply {
            if let Ok(json) = serde_json::to_vec(&reply) {
                if let Err(e) = client.publish(to, json.into()).await {
                    tracing::debug!(error = %e, "reply to AegisFlux not sent");
                }
            }
        }
    }
}
