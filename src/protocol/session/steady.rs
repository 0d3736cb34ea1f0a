//! Frames after R1 (PROTOCOL §5, §7): v2 sealed messages, v1 signed messages, routing checks.

use super::{Action, Deferred, Env, Keys, Profile, Session, Step, VerifyJob};
use crate::crypto::aead;
use crate::protocol::channel::{self, AgentKind, Channel};
use crate::protocol::envelope::{self, Envelope, MsgType};
use crate::protocol::payloads::{self, decode_b64_exact, AckBody};
use crate::protocol::{sigstr, ErrorKind};
use base64::Engine;

/// Parses `headers.seq`: `^[1-9][0-9]*$` as a u64.
pub(crate) fn parse_seq(s: &str) -> Option<u64> {
    let b = s.as_bytes();
    if b.is_empty() || b[0] == b'0' || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.parse().ok()
}

/// A frame after R1, parsed and checked as far as it can be without touching the session: what
/// [`Session::finish_parsed`] needs, in the order of PROTOCOL §5's checks. Parsing reads only
/// what does not change between frames of an authenticated v2 session (its keys, the clock),
/// so the runtime may parse several frames ahead and verify their signatures in one batch.
pub struct Parsed {
    /// The envelope's `headers.seq` when it parsed (v2), for the rate-limit rule.
    seq: Option<u64>,
    check: Check,
}

// Parsed values are transient (a read's worth at most) or boxed while deferred; boxing the
// signed variant would add an allocation per message.
#[allow(clippy::large_enum_variant)]
enum Check {
    /// A check before the signature failed: `fatal` closes (v2 bad signature or timestamp).
    Failed {
        kind: ErrorKind,
        msg: String,
        fatal: bool,
    },
    /// A v1 registration message sent without nonce and signature (accepted unsigned).
    Unsigned(Envelope),
    /// Waits for its signature check (taken out by [`Parsed::take_job`]).
    Signed {
        env: Envelope,
        seq: u64,
        job: Option<VerifyJob>,
    },
}

impl Parsed {
    /// The signature check this frame needs, if any (once).
    pub fn take_job(&mut self) -> Option<VerifyJob> {
        match &mut self.check {
            Check::Signed { job, .. } => job.take(),
            _ => None,
        }
    }

    fn failed(kind: ErrorKind, msg: impl Into<String>, fatal: bool) -> Check {
        Check::Failed {
            kind,
            msg: msg.into(),
            fatal,
        }
    }
}

impl Session {
    pub(super) fn on_session_frame(
        &mut self,
        env: &Env<'_>,
        frame: &mut [u8],
        now_ms: i64,
    ) -> Step {
        let mut p = self.parse_frame(env, frame, now_ms);
        // A frame the rate limit will drop is not worth a signature check.
        let job = if self.tokens(env, now_ms) > 0 {
            p.take_job()
        } else {
            None
        };
        match job {
            Some(job) => {
                self.deferred = Some(Deferred::Msg(Box::new(p)));
                Step::verify(job)
            }
            None => Step::actions(self.finish_parsed(env, p, false, now_ms)),
        }
    }

    /// How many frames, at most, the runtime may parse ahead with [`Session::parse_frame`] and
    /// verify in one batch before finishing them in order: 0 unless this is an authenticated v2
    /// session past its handshake with nothing outstanding, and never more than the rate limit
    /// would let through now.
    pub fn parse_ahead(&self, env: &Env<'_>, now_ms: i64) -> usize {
        if !matches!(self.phase, super::Phase::Authed)
            || self.profile != Profile::V2
            || !self.handshake_over
            || self.deferred.is_some()
            || self.committing.is_some()
        {
            return 0;
        }
        usize::try_from(self.tokens(env, now_ms)).unwrap_or(usize::MAX)
    }

    /// Messages the rate limit lets through now.
    fn tokens(&self, env: &Env<'_>, now_ms: i64) -> u64 {
        match (env.limits.message_rate, &self.bucket) {
            (None, _) => u64::MAX,
            (Some(_), Some(b)) => b.available(now_ms),
            (Some((_, burst)), None) => u64::from(burst.max(1)),
        }
    }

    /// Parses a frame received after R1 and runs every check that comes before the signature,
    /// without changing the session (see [`Parsed`]).
    pub fn parse_frame(&self, env: &Env<'_>, frame: &mut [u8], now_ms: i64) -> Parsed {
        let e = match envelope::parse(frame) {
            Ok(e) => e,
            Err(err) => {
                return Parsed {
                    seq: None,
                    check: Parsed::failed(
                        ErrorKind::InvalidMessage,
                        format!("malformed envelope: {err}"),
                        false,
                    ),
                }
            }
        };
        let seq = match self.profile {
            Profile::V2 => e.header("seq").and_then(parse_seq),
            Profile::V1 => None,
        };
        let check = self.check_frame(env, e, seq, now_ms);
        Parsed { seq, check }
    }

    fn check_frame(&self, env: &Env<'_>, e: Envelope, seq: Option<u64>, now_ms: i64) -> Check {
        if e.channel == "auth" {
            return Parsed::failed(ErrorKind::InvalidMessage, "already authenticated", false);
        }
        let in_window =
            super::within_window(e.timestamp, now_ms / 1000, env.limits.timestamp_window_s);
        let Some(public) = self.agent_key else {
            // An invalid agent key never authenticates, so this cannot happen after R1.
            return Parsed::failed(ErrorKind::InvalidMessage, "no agent key", false);
        };
        match self.profile {
            Profile::V2 => {
                let Some(seq) = seq else {
                    return Parsed::failed(
                        ErrorKind::InvalidMessage,
                        "missing or malformed headers.seq",
                        false,
                    );
                };
                let (Some(nonce), Some(sig)) = (e.nonce.as_deref(), e.signature.as_deref()) else {
                    return Parsed::failed(
                        ErrorKind::InvalidMessage,
                        "missing nonce or signature",
                        false,
                    );
                };
                let (Some(sig), true) = (decode_b64_exact::<64>(sig), in_window) else {
                    return Parsed::failed(
                        ErrorKind::SignatureVerificationFailed,
                        "bad signature or timestamp",
                        true,
                    );
                };
                let msg = sigstr::v2_msg(
                    &e.id,
                    e.msg_type.as_str(),
                    &e.channel,
                    e.timestamp,
                    nonce,
                    seq,
                    &e.payload,
                );
                Check::Signed {
                    env: e,
                    seq,
                    job: Some(VerifyJob { public, msg, sig }),
                }
            }
            Profile::V1 => {
                let is_reg = matches!(
                    channel::parse(&e.channel),
                    Ok(Channel::Registration | Channel::RegistrationComplete)
                );
                match (e.nonce.as_deref(), e.signature.as_deref()) {
                    (None, None) if is_reg => Check::Unsigned(e),
                    (Some(nonce), Some(sig)) => {
                        let (Some(sig), true) = (decode_b64_exact::<64>(sig), in_window) else {
                            return Parsed::failed(
                                ErrorKind::SignatureVerificationFailed,
                                "bad signature or timestamp",
                                false,
                            );
                        };
                        let pk = &self.peer.public_key_b64;
                        let msg = sigstr::v1_msg(&self.ident, pk, e.timestamp, nonce);
                        Check::Signed {
                            env: e,
                            seq: 0,
                            job: Some(VerifyJob { public, msg, sig }),
                        }
                    }
                    _ => Parsed::failed(
                        ErrorKind::InvalidMessage,
                        "missing nonce or signature",
                        false,
                    ),
                }
            }
        }
    }

    /// Finishes a parsed frame with its signature verdict (`ok`; ignored when it needed no
    /// check): the rate limit, the failed pre-check if any, then seq, AEAD and routing.
    pub fn finish_parsed(
        &mut self,
        env: &Env<'_>,
        p: Parsed,
        ok: bool,
        now_ms: i64,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if !matches!(self.phase, super::Phase::Authed) {
            return out;
        }
        if let Some((rate, burst)) = env.limits.message_rate {
            let bucket = self.bucket.get_or_insert_with(|| {
                crate::protocol::ratelimit::TokenBucket::new(rate, burst, now_ms)
            });
            if !bucket.take(now_ms) {
                // A v2 frame dropped for rate still consumes its seq when it is the expected one,
                // so a throttled agent stays in sequence (its payload is never processed).
                if let Some(Keys::V2 { recv_seq, .. }) = self.keys.as_mut() {
                    if p.seq == Some(*recv_seq + 1) {
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
                return out;
            }
        }
        match p.check {
            Check::Failed { kind, msg, fatal } => {
                if fatal {
                    self.fatal(env, &mut out, kind, &msg, now_ms);
                } else {
                    self.soft_error(env, &mut out, kind, &msg, now_ms);
                }
                out
            }
            Check::Unsigned(e) => self.finish_msg(env, e, 0, None, now_ms),
            Check::Signed { env: e, seq, .. } => self.finish_msg(env, e, seq, Some(ok), now_ms),
        }
    }

    /// The checks after the signature and the routing of a frame: `signed` is the signature
    /// verdict, `None` for a v1 registration message sent unsigned; `seq` is 0 in v1.
    fn finish_msg(
        &mut self,
        env: &Env<'_>,
        e: Envelope,
        seq: u64,
        signed: Option<bool>,
        now_ms: i64,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        let ok = signed.unwrap_or(true);
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
                if seq != *recv_seq + 1 {
                    let msg = format!("expected seq {}, got {}", *recv_seq + 1, seq);
                    self.fatal(env, &mut out, ErrorKind::ReplayDetected, &msg, now_ms);
                    return out;
                }
                let aad = sigstr::v2_aad(&e.id, e.msg_type.as_str(), &e.channel, e.timestamp, seq);
                let opened = base64::engine::general_purpose::STANDARD
                    .decode(e.payload.as_bytes())
                    .ok()
                    .and_then(|mut buf| {
                        let n = rx
                            .open_in_place(&aead::v2_nonce(seq), &aad, &mut buf)
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
                *recv_seq = seq;
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
                if signed.is_some() {
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
            Ok(Channel::Ack) => match acked(e, &body) {
                Ok(Acked { id, legacy }) => {
                    if legacy {
                        out.push(Action::LegacyAck);
                    }
                    out.push(Action::Ack(id));
                }
                Err(msg) => self.soft_error(env, &mut out, ErrorKind::InvalidMessage, msg, now_ms),
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

/// The command an ack acknowledges.
struct Acked {
    id: String,
    /// Taken from `headers.ack`: the payload was `{}` (an agent built before PROTOCOL §7's rule).
    legacy: bool,
}

/// The command id an ack frame (channel `ack`) acknowledges, read from its opened payload
/// `{"ack":id}` (PROTOCOL §7): headers are covered by neither the signature nor the AAD, so
/// `headers.ack` only has to agree. A payload `{}` is an older agent's ack: its `headers.ack`
/// is taken, for one release.
fn acked(e: &Envelope, body: &[u8]) -> Result<Acked, &'static str> {
    let (Some(header), MsgType::Ack) = (e.header("ack"), e.msg_type) else {
        return Err("an ack needs type ack and headers.ack");
    };
    match payloads::from_json::<AckBody>(body) {
        Ok(AckBody::Id(id)) if id == header => Ok(Acked { id, legacy: false }),
        Ok(AckBody::Id(_)) => Err("headers.ack differs from the acked id in the payload"),
        Ok(AckBody::Legacy) => Ok(Acked {
            id: header.to_string(),
            legacy: true,
        }),
        Err(_) => Err(r#"an ack's payload must be {"ack":id}"#),
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
