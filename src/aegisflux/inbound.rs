//! AegisFlux's command messages on `websocket.messages` (DESIGN §8), sans IO: one message in,
//! an admin `send` out (target, typed request, message id), or the reason it is refused.
//!
//! `{"id","type","channel","payload","timestamp","headers","target_agent"}`: `target_agent` is
//! the uid (or a host_id, resolved as the admin API does), `payload` base64 of the command's
//! JSON, `channel` `backend.{kind}` or `backend.{uid}.{kind}`, `type` the message type
//! (`event`; anything else is a `request`), `id` the message id (idempotent).

use crate::admin::api::{parse_send, SendRequest};
use base64::Engine;
use serde::Deserialize;

/// Longest accepted message id (it becomes a store key and a NATS token).
pub const MAX_ID_LEN: usize = 128;

/// A command taken from the subject.
#[derive(Debug)]
pub struct Inbound {
    /// The message id (AegisFlux's `id`).
    pub id: String,
    /// `target_agent`: a uid or a host_id.
    pub target: String,
    /// The command, validated as an admin `send`.
    pub request: SendRequest,
}

/// Why a message on the subject is not a command. Each is counted in
/// `aegis_gateway_aegisflux_rejected_total{reason}` and logged once per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// Not the JSON object of DESIGN §8 (or a field of the wrong type).
    NotJson,
    /// `id` missing, too long, or not `[A-Za-z0-9._:-]`.
    BadId,
    /// `target_agent` missing or empty.
    NoTarget,
    /// `payload` is not base64.
    BadBase64,
    /// `payload` is not JSON, or is `null`.
    BadCommand,
    /// `channel` is not `backend.{kind}` / `backend.{uid}.{kind}` (or names another agent).
    BadChannel,
    /// No agent has that uid or host_id.
    UnknownAgent,
}

impl Reason {
    /// Every reason, for the metric's series.
    pub const ALL: [Reason; 7] = [
        Reason::NotJson,
        Reason::BadId,
        Reason::NoTarget,
        Reason::BadBase64,
        Reason::BadCommand,
        Reason::BadChannel,
        Reason::UnknownAgent,
    ];

    /// The metric label and the reply's `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::NotJson => "not_json",
            Reason::BadId => "bad_id",
            Reason::NoTarget => "no_target",
            Reason::BadBase64 => "bad_base64",
            Reason::BadCommand => "bad_command",
            Reason::BadChannel => "bad_channel",
            Reason::UnknownAgent => "unknown_agent",
        }
    }
}

#[derive(Deserialize)]
struct Wire {
    id: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
    channel: Option<String>,
    payload: Option<String>,
    target_agent: Option<String>,
    // `timestamp` and `headers` are AegisFlux's; nothing here depends on them.
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// Parses one message of the subject.
pub fn parse(bytes: &[u8]) -> Result<Inbound, (Option<String>, Reason)> {
    let wire: Wire = serde_json::from_slice(bytes).map_err(|_| (None, Reason::NotJson))?;
    let id = wire.id.unwrap_or_default();
    if !valid_id(&id) {
        return Err((None, Reason::BadId));
    }
    let fail = |r: Reason| (Some(id.clone()), r);
    let target = wire.target_agent.unwrap_or_default();
    if target.is_empty() {
        return Err(fail(Reason::NoTarget));
    }
    let payload = base64::engine::general_purpose::STANDARD
        .decode(wire.payload.unwrap_or_default().as_bytes())
        .map_err(|_| fail(Reason::BadBase64))?;
    let message: serde_json::Value =
        serde_json::from_slice(&payload).map_err(|_| fail(Reason::BadCommand))?;
    if message.is_null() {
        return Err(fail(Reason::BadCommand));
    }
    let message_type = match wire.message_type.as_deref() {
        Some("event") => "event",
        _ => "request",
    };
    let body = serde_json::json!({
        "channel": wire.channel.unwrap_or_default(),
        "message": message,
        "message_type": message_type,
    });
    let request = parse_send(body.to_string().as_bytes()).map_err(|_| fail(Reason::BadChannel))?;
    Ok(Inbound {
        id,
        target,
        request,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::channel::BackendKind;
    use crate::protocol::envelope::MsgType;

    fn msg(channel: &str, payload: &str) -> Vec<u8> {
        serde_json::json!({
            "id": "af-1", "type": "policy_update", "channel": channel, "payload": payload,
            "timestamp": "2026-12-03T07:00:00Z", "headers": {"source": "actions-api"},
            "target_agent": "uid-1",
        })
        .to_string()
        .into_bytes()
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[test]
    fn an_aegisflux_message_is_a_send() {
        let m = parse(&msg("backend.policies", &b64(r#"{"policy_id":"p1"}"#))).unwrap();
        assert_eq!((m.id.as_str(), m.target.as_str()), ("af-1", "uid-1"));
        assert_eq!(m.request.kind, BackendKind::Policies);
        assert_eq!(m.request.message["policy_id"], "p1");
        assert_eq!(m.request.message_type, MsgType::Request);
        let m = parse(&msg("backend.uid-1.investigations", &b64("[1]"))).unwrap();
        assert_eq!(m.request.channel_id.as_deref(), Some("uid-1"));
    }

    #[test]
    fn each_bad_message_has_its_reason() {
        let reason = |b: &[u8]| parse(b).unwrap_err().1;
        assert_eq!(reason(b"not json"), Reason::NotJson);
        assert_eq!(reason(b"[]"), Reason::NotJson);
        assert_eq!(reason(br#"{"target_agent":"u"}"#), Reason::BadId);
        assert_eq!(reason(br#"{"id":"a b","target_agent":"u"}"#), Reason::BadId);
        assert_eq!(reason(br#"{"id":"x","payload":"e30="}"#), Reason::NoTarget);
        assert_eq!(reason(&msg("backend.policies", "%%%")), Reason::BadBase64);
        assert_eq!(
            reason(&msg("backend.policies", &b64("{no"))),
            Reason::BadCommand
        );
        assert_eq!(
            reason(&msg("backend.policies", &b64("null"))),
            Reason::BadCommand
        );
        assert_eq!(
            reason(&msg("agent.x.policies", &b64("{}"))),
            Reason::BadChannel
        );
        assert_eq!(reason(&msg("backend.nope", &b64("{}"))), Reason::BadChannel);
        let long = format!(r#"{{"id":"{}","target_agent":"u"}}"#, "a".repeat(129));
        assert_eq!(reason(long.as_bytes()), Reason::BadId);
    }
}
