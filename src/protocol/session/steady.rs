//! Frames after R1 (PROTOCOL §5, §7): v2 sealed messages, v1 signed messages, routing checks.

use super::{Action, Deferred, Env, Keys, Profile, Session, Step, VerifyJob};
use crate::crypto::aead;
use crate::protocol::channel::{self, AgentKind, Channel};
use crate::protocol::envelope::{self, Envelope, MsgType};
use crate::protocol::payloads::decode_b64_exact;
use crate::protocol::{sigstr, ErrorKind};
use base64::Engine;

/// A frame waiting for its signature check.
pub(super) struct PendingMsg {
    env: Envelope,
    /// v2 seq (0 for v1).
    seq: u64,
    /// v1 M3/M4 without a signature skip the check.
    unsigned: bool,
}

/// Parses `headers.seq`: `^[1-9][0-9]*$` as a u64.
pub(crate) fn parse_seq(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b[0] == b'0' || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.parse().ok()
}

impl Session {
    pub(super) fn on_session_frame(
        &mut self,
        env: &Env<'_>,
        frame: &mut [u8],
        now_ms: i64,
    ) -> Step {
        let mut out = Vec::new();
        if let Some((rate, burst)) = env.limits.message_rate {
            let bucket = self.bucket.get_or_insert_with(|| {
                crate::protocol::ratelimit::TokenBucket::new(rate, burst, now_ms)
            });
            if !bucket.take(now_ms) {
                // A v2 frame dropped for rate still consumes its seq when it is the expected one,
                // so a throttled agent stays in sequence (its payload is never processed).
                if let (Some(Keys::V2 { recv_seq, .. }), Ok(e)) =
                    (self.keys.as_mut(), envelope::parse(frame))
                {
                    if e.header("seq").and_then(parse_seq) == Some(*recv_seq + 1) {
                        *recv_seq += 1;
                    }
                }
                self.soft_error(
                    env,
                    &mut out,
                    ErrorKind::RateLimited,
                    "message rate limit exceeded",
                    now_ms,
                );
                return Step::actions(out);
            }
        }
        let e = match envelope::parse(frame) {
            Ok(e) => e,
            Err(err) => {
                let msg = format!("malformed envelope: {err}");
                self.soft_error(env, &mut out, ErrorKind::InvalidMessage, &msg, now_ms);
                return Step::actions(out);
            }
        };
        if e.channel == "auth" {
            self.soft_error(
                env,
                &mut out,
                ErrorKind::InvalidMessage,
                "already authenticated",
                now_ms,
            );
            return Step::actions(out);
        }
        let now_s = now_ms / 1000;
        let in_window = super::within_window(e.timestamp, now_s, env.limits.timestamp_window_s);
        match self.profile {
            Profile::V2 => {
                let Some(seq) = e.header("seq").and_then(parse_seq) else {
                    self.soft_error(
                        env,
                        &mut out,
                        ErrorKind::InvalidMessage,
                        "missing or malformed headers.seq",
                        now_ms,
                    );
                    return Step::actions(out);
                };
                let (Some(nonce), Some(sig)) = (e.nonce.as_deref(), e.signature.as_deref()) else {
                    self.soft_error(
                        env,
                        &mut out,
                        ErrorKind::InvalidMessage,
                        "missing nonce or signature",
                        now_ms,
                    );
                    return Step::actions(out);
                };
                let sig = decode_b64_exact::<64>(sig);
                let (Some(sig), true) = (sig, in_window) else {
                    self.fatal(
                        env,
                        &mut out,
                        ErrorKind::SignatureVerificationFailed,
                        "bad signature or timestamp",
                        now_ms,
                    );
                    return Step::actions(out);
                };
                let signed = sigstr::v2_msg(
                    &e.id,
                    e.msg_type.as_str(),
                    &e.channel,
                    e.timestamp,
                    nonce,
                    seq,
                    &e.payload,
                );
                self.defer(e, seq, signed, sig)
            }
            Profile::V1 => {
                let is_reg = matches!(
                    channel::parse(&e.channel),
                    Ok(Channel::Registration | Channel::RegistrationComplete)
                );
                match (e.nonce.as_deref(), e.signature.as_deref()) {
                    (None, None) if is_reg => {
                        let p = PendingMsg {
                            env: e,
                            seq: 0,
                            unsigned: true,
                        };
                        Step::actions(self.finish_msg(env, p, true, now_ms))
                    }
                    (Some(nonce), Some(sig)) => {
                        let sig = decode_b64_exact::<64>(sig);
                        let (Some(sig), true) = (sig, in_window) else {
                            self.soft_error(
                                env,
                                &mut out,
                                ErrorKind::SignatureVerificationFailed,
                                "bad signature or timestamp",
                                now_ms,
                            );
                            return Step::actions(out);
                        };
                        let pk = crate::protocol::payloads::b64(&self.upgrade.public_key);
                        let signed = sigstr::v1_msg(&self.ident, &pk, e.timestamp, nonce);
                        self.defer(e, 0, signed, sig)
                    }
                    _ => {
                        self.soft_error(
                            env,
                            &mut out,
                            ErrorKind::InvalidMessage,
                            "missing nonce or signature",
                            now_ms,
                        );
                        Step::actions(out)
                    }
                }
            }
        }
    }

    /// Parks a frame until its signature check (`signed` by the agent's key) comes back.
    fn defer(&mut self, env: Envelope, seq: u64, signed: Vec<u8>, sig: [u8; 64]) -> Step {
        let Some(public) = self.agent_key else {
            // An invalid agent key never authenticates, so this cannot happen after R1.
            return Step::default();
        };
        self.deferred = Some(Deferred::Msg(Box::new(PendingMsg {
            env,
            seq,
            unsigned: false,
        })));
        Step::verify(VerifyJob {
            public,
            msg: signed,
            sig,
        })
    }

    pub(super) fn finish_msg(
        &mut self,
        env: &Env<'_>,
        p: PendingMsg,
        ok: bool,
        now_ms: i64,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let e = p.env;
        let body: Vec<u8> = match self.keys.as_mut() {
            Some(Keys::V2 { rx, recv_seq, .. }) => {
                if !ok {
                    self.fatal(
                        env,
                        &mut out,
                        ErrorKind::SignatureVerificationFailed,
                        "signature verification failed",
                        now_ms,
                    );
                    return out;
                }
                if p.seq != *recv_seq + 1 {
                    let msg = format!("expected seq {}, got {}", *recv_seq + 1, p.seq);
                    self.fatal(env, &mut out, ErrorKind::ReplayDetected, &msg, now_ms);
                    return out;
                }
                let aad =
                    sigstr::v2_aad(&e.id, e.msg_type.as_str(), &e.channel, e.timestamp, p.seq);
                let opened = base64::engine::general_purpose::STANDARD
                    .decode(e.payload.as_bytes())
                    .ok()
                    .and_then(|mut buf| {
                        let n = rx
                            .open_in_place(&aead::v2_nonce(p.seq), &aad, &mut buf)
                            .ok()?
                            .len();
                        buf.truncate(n);
                        Some(buf)
                    });
                let Some(plain) = opened else {
                    self.fatal(
                        env,
                        &mut out,
                        ErrorKind::SignatureVerificationFailed,
                        "payload authentication failed",
                        now_ms,
                    );
                    return out;
                };
                *recv_seq = p.seq;
                plain
            }
            Some(Keys::V1 { .. }) => {
                if !ok {
                    self.soft_error(
                        env,
                        &mut out,
                        ErrorKind::SignatureVerificationFailed,
                        "signature verification failed",
                        now_ms,
                    );
                    return out;
                }
                if !p.unsigned {
                    out.push(Action::Verified);
                }
                match base64::engine::general_purpose::STANDARD.decode(e.payload.as_bytes()) {
                    Ok(b) => b,
                    Err(_) => {
                        self.soft_error(
                            env,
                            &mut out,
                            ErrorKind::InvalidMessage,
                            "payload is not base64",
                            now_ms,
                        );
                        return out;
                    }
                }
            }
            None => return out,
        };
        if self.profile == Profile::V2 {
            out.push(Action::Verified);
        }
        out.extend(self.route(env, &e, body, now_ms));
        out
    }

    /// Dispatches a verified, decrypted message by channel (PROTOCOL §6, §7).
    fn route(&mut self, env: &Env<'_>, e: &Envelope, body: Vec<u8>, now_ms: i64) -> Vec<Action> {
        let mut out = Vec::new();
        match channel::parse(&e.channel) {
            Ok(Channel::Registration) => return self.on_m3(env, &body, now_ms),
            Ok(Channel::RegistrationComplete) => return self.on_m4(env, &body, now_ms),
            Ok(Channel::Ack) => match e.header("ack") {
                Some(id) if e.msg_type == MsgType::Ack => out.push(Action::Ack(id.to_string())),
                _ => self.soft_error(
                    env,
                    &mut out,
                    ErrorKind::InvalidMessage,
                    "an ack needs type ack and headers.ack",
                    now_ms,
                ),
            },
            Ok(Channel::Agent { id, kind }) => {
                if id != self.ident {
                    self.soft_error(
                        env,
                        &mut out,
                        ErrorKind::ChannelForbidden,
                        "an agent may publish only on its own channels",
                        now_ms,
                    );
                } else if kind == AgentKind::Heartbeat {
                    out.push(Action::Heartbeat);
                } else {
                    match String::from_utf8(body) {
                        Ok(text)
                            if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok() =>
                        {
                            out.push(Action::Inbound {
                                id: e.id.clone(),
                                channel: e.channel.clone(),
                                msg_type: e.msg_type,
                                body: text,
                            })
                        }
                        _ => self.soft_error(
                            env,
                            &mut out,
                            ErrorKind::MessageProcessingError,
                            "message body is not JSON",
                            now_ms,
                        ),
                    }
                }
            }
            Ok(_) => self.soft_error(
                env,
                &mut out,
                ErrorKind::ChannelForbidden,
                "an agent may publish only on its own agent.{id}.* channels",
                now_ms,
            ),
            Err(_) => self.soft_error(
                env,
                &mut out,
                ErrorKind::ChannelNotFound,
                "unknown channel",
                now_ms,
            ),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::parse_seq;

    #[test]
    fn seq_grammar() {
        assert_eq!(parse_seq("1"), Some(1));
        assert_eq!(parse_seq("18446744073709551615"), Some(u64::MAX));
        for bad in [
            "",
            "0",
            "01",
            "-1",
            "+1",
            "1a",
            " 1",
            "18446744073709551616",
        ] {
            assert_eq!(parse_seq(bad), None, "{bad:?}");
        }
    }
}
