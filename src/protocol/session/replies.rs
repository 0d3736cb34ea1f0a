//! Replies of an authenticated session (errors, handshake replies, commands) in its profile's
//! encoding, and the per-session failure limits that decide when an error closes (PROTOCOL §5, §7).

use super::{Action, Env, Keys, Phase, Session};
use crate::protocol::channel::BackendKind;
use crate::protocol::envelope::MsgType;
use crate::protocol::frame;
use crate::protocol::ErrorKind;

/// Counts events in a sliding 60 s window.
#[derive(Debug, Default)]
pub(super) struct Window {
    times: Vec<i64>,
}

impl Window {
    /// Records an event at `now_ms` and returns how many fell in the last 60 s, this one included.
    fn hit(&mut self, now_ms: i64) -> usize {
        self.times.retain(|t| now_ms - *t < 60_000);
        self.times.push(now_ms);
        self.times.len()
    }
}

/// The sliding windows of the per-session failure limits (PROTOCOL §5, §7).
#[derive(Default)]
pub(super) struct Windows {
    pub(super) invalid: Window,
    pub(super) sig_failures: Window,
    pub(super) rate_limited: Window,
}

impl Session {
    /// Builds the frame of a backend command for this session's profile (PROTOCOL §7), or `None`
    /// when the session is not authenticated. `message_json` is the command's JSON text.
    pub fn command_frame(
        &mut self,
        env: &Env<'_>,
        id: &str,
        kind: BackendKind,
        msg_type: MsgType,
        message_json: &[u8],
        now_ms: i64,
    ) -> Option<String> {
        if !matches!(self.phase, Phase::Authed) {
            return None;
        }
        let ts = now_ms / 1000;
        match self.keys.as_mut()? {
            Keys::V1 { key } => {
                let channel = crate::protocol::channel::v1_backend_channel(kind);
                let double = crate::protocol::payloads::b64(message_json);
                let f = frame::v1_encrypted(
                    env.key,
                    key,
                    id.to_string(),
                    msg_type,
                    channel,
                    double.as_bytes(),
                    ts,
                );
                Some(f.to_json())
            }
            Keys::V2 { tx, send_seq, .. } => {
                *send_seq += 1;
                let channel = crate::protocol::channel::backend_channel(&self.ident, kind);
                let s = frame::Sealer {
                    signer: env.key,
                    aead: tx,
                    seq: *send_seq,
                };
                let f = frame::sealed(
                    &s,
                    id.to_string(),
                    msg_type,
                    channel,
                    message_json,
                    ts,
                    Vec::new(),
                );
                Some(f.to_json())
            }
        }
    }

    pub(super) fn end_handshake(&mut self, out: &mut Vec<Action>) {
        if !self.handshake_over {
            self.handshake_over = true;
            out.push(Action::HandshakeOver);
        }
    }

    /// Builds an error frame for an authenticated session (v1 encrypted JSON, v2 sealed).
    pub(super) fn error_frame(
        &mut self,
        env: &Env<'_>,
        kind: ErrorKind,
        message: &str,
        now_ms: i64,
    ) -> String {
        let json = frame::error_json(kind, message, "");
        self.reply_frame(
            env,
            MsgType::Error,
            "error".to_string(),
            json.as_bytes(),
            now_ms,
            ReplyEncoding::Encrypted,
        )
    }

    /// A reply frame of an authenticated session: sealed in v2; in v1 either encrypted (errors,
    /// commands) or raw JSON text (R2, R3).
    pub(super) fn reply_frame(
        &mut self,
        env: &Env<'_>,
        msg_type: MsgType,
        channel: String,
        plaintext: &[u8],
        now_ms: i64,
        v1: ReplyEncoding,
    ) -> String {
        let ts = now_ms / 1000;
        match self.keys.as_mut() {
            Some(Keys::V2 { tx, send_seq, .. }) => {
                *send_seq += 1;
                let s = frame::Sealer {
                    signer: env.key,
                    aead: tx,
                    seq: *send_seq,
                };
                frame::sealed(
                    &s,
                    frame::new_id(),
                    msg_type,
                    channel,
                    plaintext,
                    ts,
                    Vec::new(),
                )
                .to_json()
            }
            Some(Keys::V1 { key }) if v1 == ReplyEncoding::Encrypted => frame::v1_encrypted(
                env.key,
                key,
                frame::new_id(),
                msg_type,
                channel,
                plaintext,
                ts,
            )
            .to_json(),
            _ => frame::plain(
                env.key,
                frame::new_id(),
                msg_type,
                channel,
                String::from_utf8_lossy(plaintext).into_owned(),
                ts,
            )
            .to_json(),
        }
    }

    /// Reports a non-fatal error: an error frame after the handshake, nothing during it (except
    /// `registration_failed`). Counts toward the 4008 / 4003 limits; closes when one is reached.
    pub(super) fn soft_error(
        &mut self,
        env: &Env<'_>,
        out: &mut Vec<Action>,
        kind: ErrorKind,
        message: &str,
        now_ms: i64,
    ) {
        out.push(Action::Rejected(kind));
        let limit_hit = match kind {
            ErrorKind::InvalidMessage => self.windows().invalid.hit(now_ms) >= 5,
            ErrorKind::SignatureVerificationFailed => self.windows().sig_failures.hit(now_ms) >= 3,
            ErrorKind::RateLimited => self.windows().rate_limited.hit(now_ms) >= RATE_LIMITED_CLOSE,
            _ => false,
        };
        let may_send = self.handshake_over || kind == ErrorKind::RegistrationFailed;
        if may_send {
            let f = self.error_frame(env, kind, message, now_ms);
            out.push(Action::Send(f));
        }
        if limit_hit {
            self.phase = Phase::Closed;
            out.push(Action::Close(kind.code(), kind.as_str()));
        }
    }

    /// A fatal error: the error frame (not during the handshake), then the close.
    pub(super) fn fatal(
        &mut self,
        env: &Env<'_>,
        out: &mut Vec<Action>,
        kind: ErrorKind,
        message: &str,
        now_ms: i64,
    ) {
        out.push(Action::Rejected(kind));
        if self.handshake_over || matches!(kind, ErrorKind::SessionExpired | ErrorKind::Replaced) {
            let f = self.error_frame(env, kind, message, now_ms);
            out.push(Action::Send(f));
        }
        self.phase = Phase::Closed;
        out.push(Action::Close(kind.code(), kind.as_str()));
    }
}

/// `rate_limited` errors within 60 s that count as sustained abuse (close 4007).
pub const RATE_LIMITED_CLOSE: usize = 10;

#[derive(PartialEq, Eq, Clone, Copy)]
pub(super) enum ReplyEncoding {
    /// v1: ChaCha20-Poly1305 with K, payload base64 of the ciphertext.
    Encrypted,
    /// v1: the JSON text as the payload (R2, R3).
    RawJson,
}
