//! The agent side of the protocol, sans IO: what a v1 (Go `Aegis-Agent/1.0`) or v2 agent sends
//! and how it reads the gateway's frames. Used by the tests and by `aegis-loadgen`.
//!
//! The v1 frames imitate the deployed Go agent byte for byte where PROTOCOL.md describes it: JSON
//! keys in the agent's struct order, a trailing newline, constant envelope nonces.

use crate::crypto::{aead, kdf, verify, AeadKey, SigningKey};
use crate::protocol::envelope::{self, Envelope, MsgType};
use crate::protocol::payloads::{
    b64, decode_b64_exact, AuthRequest, AuthResponse, RegistrationChallenge, RegistrationRequest,
};
use crate::protocol::session::Profile;
use crate::protocol::{frame, sigstr};
use base64::Engine;

// Acks (`Agent::ack`, `Agent::legacy_ack`).
#[path = "agent_ack.rs"]
mod ack;

/// The constant envelope nonce the Go agent puts on its messages ("heartbeat_nonce").
pub const GO_AGENT_NONCE: &str = "aGVhcnRiZWF0X25vbmNl";

/// What can go wrong reading a gateway frame.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AgentError {
    /// Not an envelope.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// R1 said no.
    #[error("authentication refused: {0}")]
    Refused(String),
    /// The gateway's signature did not verify.
    #[error("gateway signature invalid")]
    BadSignature,
    /// v2 seq out of order.
    #[error("unexpected seq {got}, expected {expected}")]
    Seq {
        /// Received.
        got: u64,
        /// Expected.
        expected: u64,
    },
    /// Decryption failed.
    #[error("payload could not be decrypted")]
    Decrypt,
    /// Called out of order.
    #[error("not authenticated yet")]
    NotReady,
}

/// A gateway frame read by the agent.
#[derive(Debug, Clone)]
pub struct Opened {
    /// The envelope as received.
    pub envelope: Envelope,
    /// The payload's plaintext (decrypted; for v1 commands, the inner base64 is decoded too).
    pub body: Vec<u8>,
}

#[allow(clippy::large_enum_variant)]
enum AgentKeys {
    None,
    V1(AeadKey),
    V2 {
        tx: AeadKey,
        rx: AeadKey,
        send_seq: u64,
        recv_seq: u64,
    },
}

/// One simulated agent.
pub struct Agent {
    key: SigningKey,
    pk_b64: String,
    agent_id: String,
    profile: Profile,
    gateway_public: Option<[u8; 32]>,
    ident: String,
    m1_nonce: [u8; 16],
    kx: Option<(kdf::Ephemeral, [u8; 32])>,
    keys: AgentKeys,
    counter: u64,
    /// The session token from R1.
    pub session_token: String,
}

impl Agent {
    /// A new agent; `gateway_public` enables verification of the gateway's signatures.
    pub fn new(
        key: SigningKey,
        agent_id: &str,
        profile: Profile,
        gateway_public: Option<[u8; 32]>,
    ) -> Self {
        let pk_b64 = b64(&key.public());
        Agent {
            key,
            pk_b64,
            agent_id: agent_id.to_string(),
            profile,
            gateway_public,
            ident: agent_id.to_string(),
            m1_nonce: [0; 16],
            kx: None,
            keys: AgentKeys::None,
            counter: 0,
            session_token: String::new(),
        }
    }

    /// Its protocol profile.
    pub fn profile(&self) -> Profile {
        self.profile
    }

    /// The agent's public key, base64.
    pub fn public_b64(&self) -> &str {
        &self.pk_b64
    }

    /// The agent's signing key.
    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    /// The configured agent id.
    pub fn agent_id(&self) -> &str {
        &self.agent_id
    }

    /// The `{id}` of its channels: uid after registration, else agent_id.
    pub fn ident(&self) -> &str {
        &self.ident
    }

    /// Switches to the uid after R3 (or before a reconnect).
    pub fn set_uid(&mut self, uid: &str) {
        self.ident = uid.to_string();
    }

    /// A v1 session as if R1 had been read (with an all-zero backend key), for floors and
    /// benches that build the agent's messages without a gateway. v2 agents are left alone.
    pub fn assume_v1_session(&mut self) {
        if self.profile == Profile::V1 {
            let k = kdf::v1_key(&self.key.public(), &[0; 32]);
            self.keys = AgentKeys::V1(AeadKey::new(&k));
        }
    }

    /// Drops session keys, for a new connection.
    pub fn reset_session(&mut self) {
        self.keys = AgentKeys::None;
        self.kx = None;
    }

    fn next_id(&mut self, prefix: &str) -> String {
        self.counter += 1;
        format!("{prefix}-{}", self.counter)
    }

    /// Writes an envelope the way the Go agent does: its struct order, then a newline.
    pub fn go_json(e: &Envelope) -> String {
        let mut s = e.to_json();
        s.push('\n');
        s
    }

    /// M1. `timestamp` in Unix seconds; `nonce` is 16 bytes (fresh for a real agent).
    pub fn m1(&mut self, timestamp: i64, nonce: [u8; 16]) -> String {
        self.m1_nonce = nonce;
        let nonce_b64 = b64(&nonce);
        let req = match self.profile {
            Profile::V1 => {
                let s = sigstr::v1_auth(&self.agent_id, &self.pk_b64, timestamp, &nonce_b64);
                AuthRequest {
                    agent_id: self.agent_id.clone(),
                    public_key: self.pk_b64.clone(),
                    timestamp,
                    nonce: nonce_b64,
                    v: None,
                    kx: None,
                    signature: b64(&self.key.sign(&s)),
                }
            }
            Profile::V2 => {
                let (eph, eph_pub) = kdf::Ephemeral::generate();
                let kx = b64(&eph_pub);
                self.kx = Some((eph, eph_pub));
                let s = sigstr::v2_auth(&self.agent_id, &self.pk_b64, timestamp, &nonce_b64, &kx);
                AuthRequest {
                    agent_id: self.agent_id.clone(),
                    public_key: self.pk_b64.clone(),
                    timestamp,
                    nonce: nonce_b64,
                    v: Some(2),
                    kx: Some(kx),
                    signature: b64(&self.key.sign(&s)),
                }
            }
        };
        let payload = b64(&serde_json::to_vec(&req).unwrap_or_default());
        let e = Envelope {
            id: self.next_id("auth"),
            msg_type: MsgType::Request,
            channel: "auth".into(),
            payload,
            timestamp,
            nonce: None,
            signature: None,
            headers: Vec::new(),
        };
        Self::go_json(&e)
    }

    /// R1's response as sent, and whether it says `success`, with none of [`Agent::on_r1`]'s
    /// checks: a load generator reads this inside its measured window and runs `on_r1` (the
    /// signatures and key agreement) after it.
    pub fn peek_r1(frame: &[u8]) -> Result<AuthResponse, AgentError> {
        Self::r1_response(&parse(frame)?)
    }

    fn r1_response(e: &Envelope) -> Result<AuthResponse, AgentError> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(e.payload.as_bytes())
            .map_err(|_| AgentError::Malformed("R1 payload not base64".into()))?;
        let r: AuthResponse = serde_json::from_slice(&raw)
            .map_err(|err| AgentError::Malformed(format!("R1 payload: {err}")))?;
        if !r.success {
            return Err(AgentError::Refused(r.message));
        }
        Ok(r)
    }

    /// Reads R1: checks it, derives the session keys. Returns the response.
    pub fn on_r1(&mut self, frame: &[u8]) -> Result<AuthResponse, AgentError> {
        let e = parse(frame)?;
        self.check_plain_signature(&e)?;
        let r = Self::r1_response(&e)?;
        let backend_key = decode_b64_exact::<32>(&r.backend_key)
            .ok_or_else(|| AgentError::Malformed("backend_key".into()))?;
        match self.profile {
            Profile::V1 => {
                let k = kdf::v1_key(&self.key.public(), &backend_key);
                self.keys = AgentKeys::V1(AeadKey::new(&k));
            }
            Profile::V2 => {
                let (Some(server_nonce), Some(sig)) =
                    (r.server_nonce.as_deref(), r.signature.as_deref())
                else {
                    return Err(AgentError::Malformed(
                        "v2 R1 lacks server_nonce/signature".into(),
                    ));
                };
                let (eph, eph_pub) = self.kx.take().ok_or(AgentError::NotReady)?;
                if let Some(gw) = &self.gateway_public {
                    let signed = sigstr::v2_auth_ok(
                        &b64(&self.m1_nonce),
                        &b64(&eph_pub),
                        &r.backend_key,
                        server_nonce,
                        &r.session_token,
                        r.expires_at,
                    );
                    let sig = decode_b64_exact::<64>(sig).ok_or(AgentError::BadSignature)?;
                    if !verify::verify(gw, &signed, &sig) {
                        return Err(AgentError::BadSignature);
                    }
                }
                let sn = decode_b64_exact::<16>(server_nonce)
                    .ok_or_else(|| AgentError::Malformed("server_nonce".into()))?;
                let shared = eph.agree(&backend_key).map_err(|_| AgentError::Decrypt)?;
                let keys = kdf::derive_v2(&shared, &self.m1_nonce, &sn);
                self.keys = AgentKeys::V2 {
                    tx: AeadKey::new(&keys.a2g),
                    rx: AeadKey::new(&keys.g2a),
                    send_seq: 0,
                    recv_seq: 0,
                };
            }
        }
        self.session_token = r.session_token.clone();
        Ok(r)
    }

    /// A message from the agent: v1 base64 payload signed over `ident:pk:ts:nonce` with the Go
    /// agent's constant nonce; v2 sealed. `headers` are extra headers (v2 ack).
    pub fn message(
        &mut self,
        channel: &str,
        msg_type: MsgType,
        body: &[u8],
        timestamp: i64,
        headers: Vec<(String, String)>,
    ) -> Result<String, AgentError> {
        let id = self.next_id("msg");
        match &mut self.keys {
            AgentKeys::None => Err(AgentError::NotReady),
            AgentKeys::V1(_) => {
                let s = sigstr::v1_msg(&self.ident, &self.pk_b64, timestamp, GO_AGENT_NONCE);
                let e = Envelope {
                    id,
                    msg_type,
                    channel: channel.to_string(),
                    payload: b64(body),
                    timestamp,
                    nonce: Some(GO_AGENT_NONCE.to_string()),
                    signature: Some(b64(&self.key.sign(&s))),
                    headers,
                };
                Ok(Self::go_json(&e))
            }
            AgentKeys::V2 { tx, send_seq, .. } => {
                *send_seq += 1;
                let s = frame::Sealer {
                    signer: &self.key,
                    aead: tx,
                    seq: *send_seq,
                };
                let e = frame::sealed(
                    &s,
                    id,
                    msg_type,
                    channel.to_string(),
                    body,
                    timestamp,
                    headers,
                );
                Ok(e.to_json())
            }
        }
    }

    /// A heartbeat on `agent.{ident}.heartbeat`.
    pub fn heartbeat(&mut self, timestamp: i64) -> Result<String, AgentError> {
        let channel = format!("agent.{}.heartbeat", self.ident);
        let body = format!("{{\"status\":\"healthy\",\"timestamp\":{timestamp}}}");
        self.message(
            &channel,
            MsgType::Heartbeat,
            body.as_bytes(),
            timestamp,
            Vec::new(),
        )
    }

    /// M3. v1: unsigned, base64 JSON payload, as the Go agent sends it.
    pub fn m3(&mut self, req: &RegistrationRequest, timestamp: i64) -> Result<String, AgentError> {
        let body = serde_json::to_vec(req).unwrap_or_default();
        self.registration_frame("agent.registration", &body, timestamp)
    }

    /// M4 answering R2's challenge for `host_id`.
    pub fn m4(
        &mut self,
        challenge: &RegistrationChallenge,
        host_id: &str,
        timestamp: i64,
    ) -> Result<String, AgentError> {
        let nonce = base64::engine::general_purpose::STANDARD
            .decode(challenge.nonce.as_bytes())
            .map_err(|_| AgentError::Malformed("R2 nonce".into()))?;
        let signed = sigstr::registration(&nonce, &challenge.server_time, host_id);
        let body = serde_json::json!({
            "registration_id": challenge.registration_id,
            "host_id": host_id,
            "signature": b64(&self.key.sign(&signed)),
        });
        let body = serde_json::to_vec(&body).unwrap_or_default();
        self.registration_frame("agent.registration.complete", &body, timestamp)
    }

    fn registration_frame(
        &mut self,
        channel: &str,
        body: &[u8],
        timestamp: i64,
    ) -> Result<String, AgentError> {
        match self.keys {
            AgentKeys::V1(_) => {
                let e = Envelope {
                    id: self.next_id("reg"),
                    msg_type: MsgType::Request,
                    channel: channel.to_string(),
                    payload: b64(body),
                    timestamp,
                    nonce: None,
                    signature: None,
                    headers: Vec::new(),
                };
                Ok(Self::go_json(&e))
            }
            _ => self.message(channel, MsgType::Request, body, timestamp, Vec::new()),
        }
    }

    /// Reads a gateway frame after R1. v2: verifies signature (when the gateway key is known), seq
    /// and AEAD. v1: R2/R3 payloads are raw JSON; errors are encrypted JSON; commands are
    /// encrypted base64(JSON), whose inner base64 is decoded here too.
    pub fn open(&mut self, frame: &[u8]) -> Result<Opened, AgentError> {
        let e = parse(frame)?;
        let gw = self.gateway_public;
        match &mut self.keys {
            AgentKeys::None => Err(AgentError::NotReady),
            AgentKeys::V2 { rx, recv_seq, .. } => {
                // The strict `^[1-9][0-9]*$` grammar: `+1` or `01` is not the signed text.
                let seq = e
                    .header("seq")
                    .and_then(crate::protocol::session::parse_seq)
                    .ok_or_else(|| AgentError::Malformed("seq".into()))?;
                if let Some(gw) = gw {
                    let s = sigstr::v2_msg(
                        &e.id,
                        e.msg_type.as_str(),
                        &e.channel,
                        e.timestamp,
                        e.nonce.as_deref().unwrap_or(""),
                        seq,
                        &e.payload,
                    );
                    let sig = e
                        .signature
                        .as_deref()
                        .and_then(decode_b64_exact::<64>)
                        .ok_or(AgentError::BadSignature)?;
                    if !verify::verify(&gw, &s, &sig) {
                        return Err(AgentError::BadSignature);
                    }
                }
                if seq != *recv_seq + 1 {
                    return Err(AgentError::Seq {
                        got: seq,
                        expected: *recv_seq + 1,
                    });
                }
                let aad = sigstr::v2_aad(&e.id, e.msg_type.as_str(), &e.channel, e.timestamp, seq);
                let mut buf = base64::engine::general_purpose::STANDARD
                    .decode(e.payload.as_bytes())
                    .map_err(|_| AgentError::Decrypt)?;
                let n = rx
                    .open_in_place(&aead::v2_nonce(seq), &aad, &mut buf)
                    .map_err(|_| AgentError::Decrypt)?
                    .len();
                buf.truncate(n);
                *recv_seq = seq;
                Ok(Opened {
                    envelope: e,
                    body: buf,
                })
            }
            AgentKeys::V1(k) => {
                let nonce_ok = e.nonce.as_deref().and_then(decode_b64_exact::<12>);
                let Some(nonce) = nonce_ok else {
                    // The Go agent panics on any other nonce length: a test must see this.
                    return Err(AgentError::Malformed(
                        "v1 frame nonce is not 12 bytes".into(),
                    ));
                };
                if e.channel.starts_with("agent.registration") {
                    let body = e.payload.clone().into_bytes();
                    return Ok(Opened { envelope: e, body });
                }
                let mut buf = base64::engine::general_purpose::STANDARD
                    .decode(e.payload.as_bytes())
                    .map_err(|_| AgentError::Decrypt)?;
                let n = k
                    .open_in_place(&nonce, &[], &mut buf)
                    .map_err(|_| AgentError::Decrypt)?
                    .len();
                buf.truncate(n);
                let body = if e.msg_type == MsgType::Error {
                    buf
                } else {
                    base64::engine::general_purpose::STANDARD
                        .decode(&buf)
                        .map_err(|_| AgentError::Malformed("command not double-encoded".into()))?
                };
                Ok(Opened { envelope: e, body })
            }
        }
    }

    /// Checks the `aegis/1:msg` gateway signature of a frame outside the sealed path.
    pub fn check_plain_signature(&self, e: &Envelope) -> Result<(), AgentError> {
        let Some(gw) = &self.gateway_public else {
            return Ok(());
        };
        let s = sigstr::gateway_msg(
            &e.id,
            e.msg_type.as_str(),
            &e.channel,
            e.timestamp,
            e.nonce.as_deref().unwrap_or(""),
            &e.payload,
        );
        let sig = e
            .signature
            .as_deref()
            .and_then(decode_b64_exact::<64>)
            .ok_or(AgentError::BadSignature)?;
        if verify::verify(gw, &s, &sig) {
            Ok(())
        } else {
            Err(AgentError::BadSignature)
        }
    }
}

fn parse(frame: &[u8]) -> Result<Envelope, AgentError> {
    let mut buf = frame.to_vec();
    envelope::parse(&mut buf).map_err(|e| AgentError::Malformed(e.to_string()))
}
