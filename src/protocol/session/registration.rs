//! M3 → R2, M4 → R3 (PROTOCOL §6).

use super::{Action, Env, ReplyEncoding, Session};
use crate::protocol::envelope::MsgType;
use crate::protocol::payloads::{RegistrationComplete, RegistrationRequest, RegistrationResult};
use crate::protocol::registration::{self as rules, Refusal};
use crate::protocol::ErrorKind;

pub use crate::protocol::registration::{NewAgent, PendingRecord};

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
        if let Err(refusal) = rules::check_request(&req, Some(&self.peer.public_key)) {
            self.registration_failed(env, &mut out, &refusal.to_string(), now_ms);
            return out;
        }
        let (record, challenge) = rules::challenge(
            req,
            self.ident.clone(),
            now_ms / 1000,
            env.limits.registration_ttl_s,
        );
        let admitted = env
            .registrations
            .is_none_or(|gate| gate.admit(&record.registration_id, record.expires_at));
        if !admitted {
            let refusal = Refusal::TooMany.to_string();
            self.registration_failed(env, &mut out, &refusal, now_ms);
            return out;
        }
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
        let now_s = now_ms / 1000;
        if let Err(refusal) = rules::check_completion(&pending, &m4, &self.peer.public_key, now_s) {
            self.registration_failed(env, &mut out, &refusal.to_string(), now_ms);
            return out;
        }
        let (new, token) = rules::new_agent(pending, self.profile.number(), now_s);
        let (uid, registration_id) = (new.agent_uid.clone(), new.registration_id.clone());
        self.committing = Some(Box::new(Committing {
            uid,
            token,
            registration_id,
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
