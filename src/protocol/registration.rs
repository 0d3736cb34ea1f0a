//! The rules of registration (PROTOCOL §6, §9), shared by the WebSocket path (M3 → R2, M4 → R3
//! in the session) and the HTTP fallback on the agent port (`POST /agents/register/init` and
//! `/complete`): what a request must hold, the challenge, the check of the completion, and the
//! new agent. Sans IO: values and the time in, values out.

use crate::crypto::{random, verify};
use crate::protocol::payloads::{
    b64, decode_b64_exact, is_agent_id, server_time, RegistrationChallenge, RegistrationComplete,
    RegistrationRequest,
};
use crate::protocol::sigstr;

/// A pending registration: the request plus the challenge sent back.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingRecord {
    /// `registration_id` (uuid).
    pub registration_id: String,
    /// The request as received.
    pub request: RegistrationRequest,
    /// `agent_id` of the session (the host_id for an HTTP registration).
    pub agent_id: String,
    /// Base64 of the 32 challenge bytes.
    pub nonce: String,
    /// The `server_time` text sent with the challenge.
    pub server_time: String,
    /// Unix seconds after which the completion is refused.
    pub expires_at: i64,
}

/// An agent record to store durably before the registration result is sent.
#[derive(Debug, Clone, PartialEq)]
pub struct NewAgent {
    /// The new uid.
    pub agent_uid: String,
    /// Hex SHA-256 of the bootstrap token.
    pub token_hash: String,
    /// The registration it completes (to delete afterwards).
    pub registration_id: String,
    /// The request's data.
    pub request: RegistrationRequest,
    /// `agent_id` of the session.
    pub agent_id: String,
    /// Unix seconds.
    pub registered_at: i64,
    /// 1 or 2.
    pub profile: u8,
}

/// Admission of a new pending registration, decided by the runtime: the caps per client IP
/// and in total (a peer repeating "fresh key, register, disconnect" must not grow the store).
pub trait RegistrationGate {
    /// Whether registration `id`, expiring at `expires_at` (Unix s), may be kept pending.
    fn admit(&self, id: &str, expires_at: i64) -> bool;
}

/// Why a registration request or completion is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request is not the JSON of the protocol, or a field is invalid.
    #[error("malformed registration request")]
    Malformed,
    /// `agent_pubkey` is not the key the agent speaks with (WebSocket) or not a key at all.
    #[error("agent_pubkey is not the session key")]
    WrongKey,
    /// `host_id` does not have the `X-Agent-Id` character set.
    #[error("invalid host_id")]
    BadHostId,
    /// Too many pending registrations (for this client IP, or in all).
    #[error("too many pending registrations")]
    TooMany,
    /// No such pending registration (or another connection's).
    #[error("unknown registration")]
    Unknown,
    /// The pending registration expired.
    #[error("registration expired")]
    Expired,
    /// The completion's host_id is not the request's.
    #[error("host_id does not match")]
    HostMismatch,
    /// The signature is not base64 of 64 bytes.
    #[error("invalid signature encoding")]
    BadEncoding,
    /// The signature does not verify with the request's key.
    #[error("registration signature is invalid")]
    BadSignature,
}

impl Refusal {
    /// The HTTP status of PROTOCOL §9 (the WebSocket path sends `registration_failed`).
    pub fn http_status(self) -> u16 {
        match self {
            Refusal::Malformed | Refusal::WrongKey | Refusal::BadHostId | Refusal::BadEncoding => {
                400
            }
            Refusal::BadSignature => 401,
            Refusal::Unknown | Refusal::Expired => 404,
            Refusal::HostMismatch => 409,
            Refusal::TooMany => 429,
        }
    }

    /// The `error` code of the HTTP answer.
    pub fn code(self) -> &'static str {
        match self {
            Refusal::Malformed | Refusal::WrongKey | Refusal::BadHostId | Refusal::BadEncoding => {
                "invalid_request"
            }
            Refusal::BadSignature => "invalid_signature",
            Refusal::Unknown | Refusal::Expired => "registration_not_found",
            Refusal::HostMismatch => "host_id_mismatch",
            Refusal::TooMany => "rate_limited",
        }
    }
}

/// Checks a request: `agent_pubkey` is base64 of 32 bytes (equal to `key` when the agent's key
/// is known), `host_id` has the agent-id character set. Returns the request's key.
pub fn check_request(
    req: &RegistrationRequest,
    key: Option<&[u8; 32]>,
) -> Result<[u8; 32], Refusal> {
    let Some(pubkey) = decode_b64_exact::<32>(&req.agent_pubkey) else {
        return Err(if key.is_some() {
            Refusal::WrongKey
        } else {
            Refusal::Malformed
        });
    };
    if key.is_some_and(|k| *k != pubkey) {
        return Err(Refusal::WrongKey);
    }
    if !is_agent_id(&req.host_id) {
        return Err(Refusal::BadHostId);
    }
    Ok(pubkey)
}

/// A new pending registration for `request`, with its challenge (32 random bytes, the server
/// time), expiring `ttl_s` from `now_s`.
pub fn challenge(
    request: RegistrationRequest,
    agent_id: String,
    now_s: i64,
    ttl_s: i64,
) -> (PendingRecord, RegistrationChallenge) {
    let record = PendingRecord {
        registration_id: random::uuid_v4(),
        request,
        agent_id,
        nonce: b64(&random::bytes::<32>()),
        server_time: server_time(now_s),
        expires_at: now_s.saturating_add(ttl_s),
    };
    let challenge = RegistrationChallenge {
        registration_id: record.registration_id.clone(),
        nonce: record.nonce.clone(),
        server_time: record.server_time.clone(),
    };
    (record, challenge)
}

/// Checks a completion against its pending registration: not expired, the same host_id, the
/// signature over `nonce ‖ server_time ‖ host_id` by `key`.
pub fn check_completion(
    pending: &PendingRecord,
    done: &RegistrationComplete,
    key: &[u8; 32],
    now_s: i64,
) -> Result<(), Refusal> {
    if pending.expires_at <= now_s {
        return Err(Refusal::Expired);
    }
    if done.host_id != pending.request.host_id {
        return Err(Refusal::HostMismatch);
    }
    let (Some(nonce), Some(sig)) = (
        decode_b64_exact::<32>(&pending.nonce),
        decode_b64_exact::<64>(&done.signature),
    ) else {
        return Err(Refusal::BadEncoding);
    };
    let signed = sigstr::registration(&nonce, &pending.server_time, &done.host_id);
    if !verify::verify(key, &signed, &sig) {
        return Err(Refusal::BadSignature);
    }
    Ok(())
}

/// The agent a checked completion creates, and its bootstrap token (only its hash is stored).
pub fn new_agent(pending: PendingRecord, profile: u8, now_s: i64) -> (NewAgent, String) {
    let token = random::token_urlsafe(32);
    let agent = NewAgent {
        agent_uid: random::uuid_v4(),
        token_hash: crate::crypto::hash_token(&token),
        registration_id: pending.registration_id,
        request: pending.request,
        agent_id: pending.agent_id,
        registered_at: now_s,
        profile,
    };
    (agent, token)
}
