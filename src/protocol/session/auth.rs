//! M1 → R1 (PROTOCOL §4).

use super::{
    unregistered_identity, Action, Deferred, Env, Keys, Phase, Profile, Session, Step, VerifyJob,
};
use crate::crypto::{kdf, random, token, AeadKey};
use crate::protocol::channel::{self, Channel};
use crate::protocol::envelope::{self, MsgType};
use crate::protocol::payloads::{b64, decode_b64_exact, is_agent_id, AuthRequest, AuthResponse};
use crate::protocol::{frame, sigstr, ErrorKind};
use base64::Engine;

/// Upper bound on an M1 payload (base64 text), checked before decoding.
const MAX_M1_PAYLOAD: usize = 4096;

/// An M1 that passed every check but its signature.
pub(super) struct PendingAuth {
    req: AuthRequest,
    profile: Profile,
    nonce: [u8; 16],
    kx: Option<[u8; 32]>,
    /// uid on a reconnect.
    uid: Option<String>,
}

impl Session {
    pub(super) fn on_auth_frame(&mut self, env: &Env<'_>, frame: &mut [u8], now_ms: i64) -> Step {
        let env_ok = envelope::parse(frame).ok().filter(|e| {
            e.msg_type == MsgType::Request
                && matches!(channel::parse(&e.channel), Ok(Channel::Auth))
        });
        let Some(m1) = env_ok else {
            self.phase = Phase::Closed;
            let f = frame::error_before_auth(
                env.key,
                ErrorKind::AuthenticationFailed,
                "the first message must be an authentication request on channel auth",
                now_ms / 1000,
            );
            return Step::actions(vec![
                Action::Rejected(ErrorKind::AuthenticationFailed),
                Action::Send(f.to_json()),
                Action::Close(
                    ErrorKind::AuthenticationFailed.code(),
                    "authentication failed",
                ),
            ]);
        };
        match self.check_m1(env, &m1.payload, now_ms / 1000) {
            Ok((pending, job)) => {
                self.deferred = Some(Deferred::Auth(Box::new(pending)));
                Step::verify(job)
            }
            Err(msg) => Step::actions(self.auth_failed(env, msg, now_ms)),
        }
    }

    /// Every check of M1 that does not need the signature.
    fn check_m1(
        &self,
        env: &Env<'_>,
        payload: &str,
        now_s: i64,
    ) -> Result<(PendingAuth, VerifyJob), &'static str> {
        if payload.len() > MAX_M1_PAYLOAD {
            return Err("authentication payload too large");
        }
        let raw = base64::engine::general_purpose::STANDARD
            .decode(payload)
            .map_err(|_| "authentication payload is not base64")?;
        let req: AuthRequest = serde_json::from_slice(&raw)
            .map_err(|_| "authentication payload is not valid JSON of the expected shape")?;
        let profile = match req.v {
            None => Profile::V1,
            Some(2) => Profile::V2,
            Some(_) => return Err("unsupported protocol version"),
        };
        match (self.peer.protocol, profile) {
            (Some(1), Profile::V2) | (Some(2), Profile::V1) => {
                return Err("authentication message does not match X-Aegis-Protocol")
            }
            _ => {}
        }
        if !is_agent_id(&req.agent_id) {
            return Err("invalid agent_id");
        }
        let pk = decode_b64_exact::<32>(&req.public_key).ok_or("invalid public_key")?;
        if pk != self.peer.public_key {
            return Err("public_key does not match X-Agent-Public-Key");
        }
        if !super::within_window(req.timestamp, now_s, env.limits.timestamp_window_s) {
            return Err("timestamp outside the accepted window");
        }
        let nonce = decode_b64_exact::<16>(&req.nonce).ok_or("invalid nonce")?;
        let sig = decode_b64_exact::<64>(&req.signature).ok_or("invalid signature encoding")?;
        let kx = match profile {
            Profile::V1 => {
                if req.kx.is_some() {
                    return Err("kx is not allowed in profile v1");
                }
                None
            }
            Profile::V2 => {
                let kx = req.kx.as_deref().ok_or("missing kx")?;
                Some(decode_b64_exact::<32>(kx).ok_or("invalid kx")?)
            }
        };
        let uid = match &self.peer.agent_uid {
            None => {
                if req.agent_id != self.peer.agent_id {
                    return Err("agent_id does not match X-Agent-Id");
                }
                if self.known.is_some() {
                    return Err(
                        "agent_id is a registered agent uid; reconnect with its credentials",
                    );
                }
                None
            }
            Some(uid) => {
                let known = self.known.as_ref().ok_or("unknown or revoked agent uid")?;
                let token = self.peer.bootstrap_token.as_deref().unwrap_or("");
                if known.uid != *uid || !crate::crypto::token_matches(&known.token_hash, token) {
                    return Err("bootstrap token does not match");
                }
                if known.public_key != pk {
                    return Err("public key is not the key registered for this uid");
                }
                Some(uid.clone())
            }
        };
        let signed = match profile {
            Profile::V1 => {
                sigstr::v1_auth(&req.agent_id, &req.public_key, req.timestamp, &req.nonce)
            }
            Profile::V2 => sigstr::v2_auth(
                &req.agent_id,
                &req.public_key,
                req.timestamp,
                &req.nonce,
                req.kx.as_deref().unwrap_or(""),
            ),
        };
        let public = self
            .agent_key
            .ok_or("public_key is not a valid Ed25519 key")?;
        let job = VerifyJob {
            public,
            msg: signed,
            sig,
        };
        Ok((
            PendingAuth {
                req,
                profile,
                nonce,
                kx,
                uid,
            },
            job,
        ))
    }

    pub(super) fn finish_auth(
        &mut self,
        env: &Env<'_>,
        p: PendingAuth,
        ok: bool,
        now_ms: i64,
    ) -> Vec<Action> {
        let now_s = now_ms / 1000;
        if !ok {
            return self.auth_failed(env, "signature verification failed", now_ms);
        }
        if !env
            .nonces
            .check_and_insert(&self.peer.public_key, &p.nonce, now_s)
        {
            return self.auth_failed(env, "authentication nonce was already used", now_ms);
        }
        let exp = now_s + env.limits.session_timeout_s;
        let sub = p.uid.clone().unwrap_or_else(|| p.req.agent_id.clone());
        let claims = token::Claims {
            iss: "aegis-gateway".to_string(),
            sub,
            pk: p.req.public_key.clone(),
            iat: now_s,
            exp,
            jti: random::token_urlsafe(16),
            v: p.profile.number(),
        };
        let session_token = token::sign(env.key, &claims);
        let response = match p.profile {
            Profile::V1 => {
                let backend_key = random::bytes::<32>();
                let k = kdf::v1_key(&self.peer.public_key, &backend_key);
                self.keys = Some(Keys::V1 {
                    key: AeadKey::new(&k),
                });
                AuthResponse {
                    success: true,
                    session_token,
                    backend_key: b64(&backend_key),
                    expires_at: exp,
                    message: "authenticated".to_string(),
                    v: None,
                    server_nonce: None,
                    signature: None,
                }
            }
            Profile::V2 => {
                let Some(kx) = p.kx else {
                    return self.auth_failed(env, "missing kx", now_ms);
                };
                let (eph, eph_pub) = kdf::Ephemeral::generate();
                let Ok(shared) = eph.agree(&kx) else {
                    return self.auth_failed(env, "key agreement failed", now_ms);
                };
                let server_nonce = random::bytes::<16>();
                let keys = kdf::derive_v2(&shared, &p.nonce, &server_nonce);
                self.keys = Some(Keys::V2 {
                    tx: AeadKey::new(&keys.g2a),
                    rx: AeadKey::new(&keys.a2g),
                    send_seq: 0,
                    recv_seq: 0,
                });
                let backend_key = b64(&eph_pub);
                let server_nonce = b64(&server_nonce);
                let signed = sigstr::v2_auth_ok(
                    &p.req.nonce,
                    p.req.kx.as_deref().unwrap_or(""),
                    &backend_key,
                    &server_nonce,
                    &session_token,
                    exp,
                );
                let signature = b64(&env.key.sign(&signed));
                AuthResponse {
                    success: true,
                    session_token,
                    backend_key,
                    expires_at: exp,
                    message: "authenticated".to_string(),
                    v: Some(2),
                    server_nonce: Some(server_nonce),
                    signature: Some(signature),
                }
            }
        };
        self.phase = Phase::Authed;
        // The credentials checked by M1 are not needed for the rest of the session.
        self.peer.bootstrap_token = None;
        self.known = None;
        self.profile = p.profile;
        self.session_expires_s = exp;
        // The close comes `expiry_jitter_ms` before the token expires, on the monotonic clock.
        let until_close = (exp * 1000)
            .saturating_sub(self.expiry_jitter_ms)
            .saturating_sub(now_ms);
        self.close_at_mono = self.mono_ms.saturating_add(until_close);
        self.registered = p.uid.is_some();
        match p.uid {
            Some(uid) => {
                self.ident = uid.clone();
                self.identity = uid;
            }
            None => {
                self.identity = unregistered_identity(&p.req.agent_id, &p.req.public_key);
                self.ident = p.req.agent_id.clone();
            }
        }
        self.last_reply_mono = self.mono_ms;
        let r1 = r1_frame(env, &response, now_s);
        let mut out = vec![
            Action::Send(r1),
            Action::Authenticated {
                identity: self.identity.clone(),
                profile: self.profile,
            },
        ];
        if self.registered {
            self.end_handshake(&mut out);
        }
        out
    }

    /// R1 with `success:false`, then 4001.
    fn auth_failed(&mut self, env: &Env<'_>, message: &str, now_ms: i64) -> Vec<Action> {
        self.phase = Phase::Closed;
        let response = AuthResponse {
            success: false,
            session_token: String::new(),
            backend_key: String::new(),
            expires_at: 0,
            message: message.to_string(),
            v: None,
            server_nonce: None,
            signature: None,
        };
        vec![
            Action::Rejected(ErrorKind::AuthenticationFailed),
            Action::Send(r1_frame(env, &response, now_ms / 1000)),
            Action::Close(
                ErrorKind::AuthenticationFailed.code(),
                "authentication failed",
            ),
        ]
    }
}

fn r1_frame(env: &Env<'_>, response: &AuthResponse, now_s: i64) -> String {
    let json = serde_json::to_vec(response).unwrap_or_default();
    frame::plain(
        env.key,
        frame::new_id(),
        MsgType::Response,
        "auth".to_string(),
        b64(&json),
        now_s,
    )
    .to_json()
}
