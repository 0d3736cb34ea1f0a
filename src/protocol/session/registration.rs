//! M3 → R2, M4 → R3 (PROTOCOL §6).

use super::{Action, Env, ReplyEncoding, Session};
use crate::crypto::{random, verify};
use crate::protocol::envelope::MsgType;
use crate::protocol::payloads::{
    b64, decode_b64_exact, is_agent_id, RegistrationChallenge, RegistrationComplete,
    RegistrationRequest, RegistrationResult,
};
use crate::protocol::{sigstr, ErrorKind};

/// A pending registration: M3's data plus the challenge sent in R2.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRecord {
    /// `registration_id` (uuid).
    pub registration_id: String,
    /// The M3 as received.
    pub request: RegistrationRequest,
    /// `agent_id` of the session.
    pub agent_id: String,
    /// Base64 of the 32 challenge bytes.
    pub nonce: String,
    /// The `server_time` text sent in R2.
    pub server_time: String,
    /// Unix seconds after which M4 is refused.
    pub expires_at: i64,
}

/// An agent record to store durably before R3.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAgent {
    /// The new uid.
    pub agent_uid: String,
    /// Hex SHA-256 of the bootstrap token.
    pub token_hash: String,
    /// The registration it completes (to delete afterwards).
    pub registration_id: String,
    /// M3 data.
    pub request: RegistrationRequest,
    /// `agent_id` of the session.
    pub agent_id: String,
    /// Unix seconds.
    pub registered_at: i64,
    /// 1 or 2.
    pub profile: u8,
}

/// A registration whose record is being committed.
pub(super) struct Committing {
    uid: String,
    token: String,
    registration_id: String,
}

impl Session {
    /// M3. `body` is the decoded JSON.
    pub(super) fn on_m3(&mut self, env: &Env<'_>, body: &[u8], now_ms: i64) -> Vec<Action> {
        let mut out = Vec::new();
        if self.registered {
            self.registration_failed(env, &mut out, "agent is already registered", now_ms);
            return out;
        }
        let req: RegistrationRequest = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(_) => {
                self.registration_failed(env, &mut out, "malformed registration request", now_ms);
                return out;
            }
        };
        if decode_b64_exact::<32>(&req.agent_pubkey) != Some(self.peer.public_key) {
            self.registration_failed(env, &mut out, "agent_pubkey is not the session key", now_ms);
            return out;
        }
        if !is_agent_id(&req.host_id) {
            self.registration_failed(env, &mut out, "invalid host_id", now_ms);
            return out;
        }
        let now_s = now_ms / 1000;
        let nonce = random::bytes::<32>();
        let record = PendingRecord {
            registration_id: random::uuid_v4(),
            request: req,
            agent_id: self.ident.clone(),
            nonce: b64(&nonce),
            server_time: crate::protocol::payloads::server_time(now_s),
            expires_at: now_s + env.limits.registration_ttl_s,
        };
        let challenge = RegistrationChallenge {
            registration_id: record.registration_id.clone(),
            nonce: record.nonce.clone(),
            server_time: record.server_time.clone(),
        };
        if let Some(old) = self.pending_reg.replace(Box::new(record.clone())) {
            out.push(Action::RemoveRegistration(old.registration_id));
        }
        out.push(Action::PersistRegistration(record));
        let json = serde_json::to_vec(&challenge).unwrap_or_default();
        let f = self.reply_frame(
            env,
            MsgType::Response,
            "agent.registration".to_string(),
            &json,
            now_ms,
            ReplyEncoding::RawJson,
        );
        self.last_reply_mono = self.mono_ms;
        out.push(Action::Send(f));
        out
    }

    /// M4. `body` is the decoded JSON.
    pub(super) fn on_m4(&mut self, env: &Env<'_>, body: &[u8], now_ms: i64) -> Vec<Action> {
        let mut out = Vec::new();
        if self.registered {
            self.registration_failed(env, &mut out, "agent is already registered", now_ms);
            return out;
        }
        let Ok(m4) = serde_json::from_slice::<RegistrationComplete>(body) else {
            self.registration_failed(env, &mut out, "malformed registration completion", now_ms);
            return out;
        };
        let ours = self
            .pending_reg
            .as_ref()
            .is_some_and(|p| p.registration_id == m4.registration_id);
        if !ours {
            // Another connection's (or an unknown) registration: refused, and left untouched.
            self.registration_failed(env, &mut out, "unknown registration", now_ms);
            return out;
        }
        let Some(pending) = self.pending_reg.take().map(|p| *p) else {
            return out;
        };
        out.push(Action::RemoveRegistration(pending.registration_id.clone()));
        if pending.expires_at <= now_ms / 1000 {
            self.registration_failed(env, &mut out, "registration expired", now_ms);
            return out;
        }
        if m4.host_id != pending.request.host_id {
            self.registration_failed(env, &mut out, "host_id does not match", now_ms);
            return out;
        }
        let (Some(nonce), Some(sig)) = (
            decode_b64_exact::<32>(&pending.nonce),
            decode_b64_exact::<64>(&m4.signature),
        ) else {
            self.registration_failed(env, &mut out, "invalid signature encoding", now_ms);
            return out;
        };
        let signed = sigstr::registration(&nonce, &pending.server_time, &m4.host_id);
        if !verify::verify(&self.peer.public_key, &signed, &sig) {
            self.registration_failed(env, &mut out, "registration signature is invalid", now_ms);
            return out;
        }
        let uid = random::uuid_v4();
        let token = random::token_urlsafe(32);
        let new = NewAgent {
            agent_uid: uid.clone(),
            token_hash: crate::crypto::hash_token(&token),
            registration_id: pending.registration_id.clone(),
            request: pending.request,
            agent_id: pending.agent_id,
            registered_at: now_ms / 1000,
            profile: self.profile.number(),
        };
        self.committing = Some(Box::new(Committing {
            uid,
            token,
            registration_id: pending.registration_id,
        }));
        out.push(Action::CommitAgent(new));
        out
    }

    /// Resumes after [`Action::CommitAgent`]: R3 when the record is durable, else
    /// `registration_failed`.
    pub fn on_agent_committed(
        &mut self,
        env: &Env<'_>,
        ok: bool,
        now: impl Into<crate::protocol::time::Now>,
    ) -> Vec<Action> {
        let now_ms = self.clock(now);
        let mut out = Vec::new();
        let Some(c) = self.committing.take() else {
            return out;
        };
        if !matches!(self.phase, super::Phase::Authed) {
            return out;
        }
        if !ok {
            self.registration_failed(env, &mut out, "registration could not be stored", now_ms);
            return out;
        }
        let _ = c.registration_id;
        let result = RegistrationResult {
            agent_uid: c.uid.clone(),
            bootstrap_token: c.token,
        };
        let json = serde_json::to_vec(&result).unwrap_or_default();
        let f = self.reply_frame(
            env,
            MsgType::Response,
            "agent.registration.complete".to_string(),
            &json,
            now_ms,
            ReplyEncoding::RawJson,
        );
        // Presence moves to the uid before R3 is written, so a command sent as soon as the
        // agent knows its uid finds the connection.
        let old_identity = std::mem::replace(&mut self.identity, c.uid.clone());
        self.ident = c.uid.clone();
        self.registered = true;
        out.push(Action::Registered {
            old_identity,
            uid: c.uid,
        });
        out.push(Action::Send(f));
        self.end_handshake(&mut out);
        out
    }

    fn registration_failed(
        &mut self,
        env: &Env<'_>,
        out: &mut Vec<Action>,
        message: &str,
        now_ms: i64,
    ) {
        self.soft_error(env, out, ErrorKind::RegistrationFailed, message, now_ms);
        self.end_handshake(out);
    }
}
