//! Building the frames the gateway sends (PROTOCOL §2, §5, §7).
//!
//! Two shapes exist: frames outside the v2 sealed path (R1, everything before authentication,
//! everything sent to a v1 session) carry a 12-byte nonce and the gateway's `aegis/1:msg`
//! signature; v2 sealed frames carry a 16-byte nonce, `headers.seq`, an AEAD-sealed payload and
//! the `aegis/2:msg` signature.

use crate::crypto::{aead, random, AeadKey, SigningKey};
use crate::protocol::envelope::{Envelope, MsgType};
use crate::protocol::payloads::{b64, ErrorPayload};
use crate::protocol::{sigstr, ErrorKind};

/// A fresh frame id: 16 random bytes, URL-safe base64 (fits the `id` character set).
pub fn new_id() -> String {
    random::token_urlsafe(12)
}

/// A frame outside the v2 sealed path: 12-byte nonce, signed over `aegis/1:msg:…`.
pub fn plain(
    key: &SigningKey,
    id: String,
    msg_type: MsgType,
    channel: String,
    payload: String,
    timestamp: i64,
) -> Envelope {
    signed_plain(
        key,
        id,
        msg_type,
        channel,
        payload,
        timestamp,
        &random::bytes::<12>(),
    )
}

/// A frame outside the sealed path with the given 12-byte nonce, signed over `aegis/1:msg:…`.
fn signed_plain(
    key: &SigningKey,
    id: String,
    msg_type: MsgType,
    channel: String,
    payload: String,
    timestamp: i64,
    nonce: &[u8; 12],
) -> Envelope {
    let nonce = b64(nonce);
    let signed = sigstr::gateway_msg(
        &id,
        msg_type.as_str(),
        &channel,
        timestamp,
        &nonce,
        &payload,
    );
    let signature = b64(&key.sign(&signed));
    Envelope {
        id,
        msg_type,
        channel,
        payload,
        timestamp,
        nonce: Some(nonce),
        signature: Some(signature),
        headers: Vec::new(),
    }
}

/// A frame to a v1 session after R1: `payload = base64(ChaCha20-Poly1305(K, nonce12, plaintext))`.
pub fn v1_encrypted(
    key: &SigningKey,
    session_key: &AeadKey,
    id: String,
    msg_type: MsgType,
    channel: String,
    plaintext: &[u8],
    timestamp: i64,
) -> Envelope {
    let nonce_bytes = random::bytes::<12>();
    let mut buf = Vec::with_capacity(plaintext.len() + 16);
    buf.extend_from_slice(plaintext);
    session_key.seal_in_place(&nonce_bytes, &[], &mut buf);
    signed_plain(
        key,
        id,
        msg_type,
        channel,
        b64(&buf),
        timestamp,
        &nonce_bytes,
    )
}

/// Everything a v2 sealed frame needs besides its content.
pub struct Sealer<'a> {
    /// The sender's long-term key (gateway key, or the agent key on the agent side).
    pub signer: &'a SigningKey,
    /// The direction key.
    pub aead: &'a AeadKey,
    /// This frame's sequence number.
    pub seq: u64,
}

/// A v2 sealed frame (PROTOCOL §5).
pub fn sealed(
    s: &Sealer<'_>,
    id: String,
    msg_type: MsgType,
    channel: String,
    plaintext: &[u8],
    timestamp: i64,
    extra_headers: Vec<(String, String)>,
) -> Envelope {
    let aad = sigstr::v2_aad(&id, msg_type.as_str(), &channel, timestamp, s.seq);
    let mut buf = Vec::with_capacity(plaintext.len() + 16);
    buf.extend_from_slice(plaintext);
    s.aead.seal_in_place(&aead::v2_nonce(s.seq), &aad, &mut buf);
    let payload = b64(&buf);
    let nonce = b64(&random::bytes::<16>());
    let signed = sigstr::v2_msg(
        &id,
        msg_type.as_str(),
        &channel,
        timestamp,
        &nonce,
        s.seq,
        &payload,
    );
    let signature = b64(&s.signer.sign(&signed));
    let mut headers = Vec::with_capacity(1 + extra_headers.len());
    headers.push(("seq".to_string(), s.seq.to_string()));
    headers.extend(extra_headers);
    Envelope {
        id,
        msg_type,
        channel,
        payload,
        timestamp,
        nonce: Some(nonce),
        signature: Some(signature),
        headers,
    }
}

/// The JSON of an error payload (PROTOCOL §7).
pub fn error_json(kind: ErrorKind, message: &str, details: &str) -> String {
    let p = ErrorPayload {
        error: kind.as_str().to_string(),
        message: message.to_string(),
        details: details.to_string(),
        code: kind.code(),
    };
    // Serializing a struct of strings and an integer cannot fail.
    serde_json::to_string(&p).unwrap_or_default()
}

/// An error frame before authentication: `payload = base64(JSON)`, signed, 12-byte nonce.
pub fn error_before_auth(
    key: &SigningKey,
    kind: ErrorKind,
    message: &str,
    timestamp: i64,
) -> Envelope {
    let json = error_json(kind, message, "");
    plain(
        key,
        new_id(),
        MsgType::Error,
        "error".to_string(),
        b64(json.as_bytes()),
        timestamp,
    )
}
