//! The session token: a compact JWS/JWT signed with EdDSA (Ed25519, RFC 8037), hand-written.
//!
//! Header `{"alg":"EdDSA","typ":"JWT","kid":K}` with `K` = [`key_id`] of the gateway key;
//! parts are base64url without padding; the signature covers the ASCII `header.claims`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

use super::keys::{key_id, SigningKey};
use super::verify::verify as verify_sig;

/// The `iss` claim the gateway writes and requires.
pub const ISSUER: &str = "aegis-gateway";
/// Longest token accepted by [`verify`] (checked before any decoding).
pub const MAX_TOKEN_LEN: usize = 4096;

/// The claims of a session token.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub struct Claims {
    /// Issuer, always [`ISSUER`].
    pub iss: String,
    /// Subject: the agent_uid, or the agent_id before registration.
    pub sub: String,
    /// The agent's Ed25519 public key, standard base64.
    pub pk: String,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Expires at (Unix seconds); valid while `exp > now`.
    pub exp: i64,
    /// Random token id.
    pub jti: String,
    /// Protocol profile (1 or 2).
    pub v: u8,
}

/// Why a token was refused. All are the presenter's fault except none.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_LEN`].
    #[error("token too long: {len} bytes (max {max})")]
    TooLong {
        /// Length presented.
        len: usize,
        /// Limit.
        max: usize,
    },
    /// Not three base64url parts with a JSON header, JSON claims and a 64-byte signature.
    #[error("malformed token: {0}")]
    Malformed(&'static str),
    /// A header `alg` other than `EdDSA` (at most 32 characters of it).
    #[error("unsupported token algorithm \"{0}\" (only EdDSA)")]
    Algorithm(String),
    /// A header `kid` that is not the verifying key's id (signed by another gateway key).
    #[error("token key id \"{0}\" is not this gateway's key")]
    UnknownKeyId(String),
    /// The signature does not verify.
    #[error("token signature does not verify")]
    Signature,
    /// `exp <= now`.
    #[error("token expired at {exp} (now {now})")]
    Expired {
        /// The token's `exp`.
        exp: i64,
        /// The time it was checked at.
        now: i64,
    },
    /// An `iss` other than [`ISSUER`] (at most 64 characters of it).
    #[error("token issuer \"{0}\" is not {ISSUER}")]
    Issuer(String),
}

#[derive(Serialize)]
struct HeaderOut<'a> {
    alg: &'a str,
    typ: &'a str,
    kid: &'a str,
}

#[derive(Deserialize)]
struct HeaderIn {
    alg: String,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    kid: Option<String>,
}

fn capped(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

/// Signs a compact JWS: `b64url(header_json).b64url(payload_json).b64url(signature)`.
/// The JSON texts are used verbatim (no re-serialization).
pub fn sign_compact(key: &SigningKey, header_json: &str, payload_json: &str) -> String {
    let mut out = URL_SAFE_NO_PAD.encode(header_json);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload_json, &mut out);
    let sig = key.sign(out.as_bytes());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut out);
    out
}

/// Signs `claims` as an EdDSA JWT with header `{"alg":"EdDSA","typ":"JWT","kid":K}`.
pub fn sign(key: &SigningKey, claims: &Claims) -> String {
    let kid = key.key_id();
    let header = HeaderOut {
        alg: "EdDSA",
        typ: "JWT",
        kid: &kid,
    };
    // Serializing plain strings and integers cannot fail.
    let (Ok(header), Ok(claims)) = (
        serde_json::to_string(&header),
        serde_json::to_string(claims),
    ) else {
        unreachable!("JWT header and claims serialize to JSON");
    };
    sign_compact(key, &header, &claims)
}

/// Checks a token against the gateway public key at time `now` (Unix seconds): length cap,
/// shape, `alg` = EdDSA, `kid` (if present) = [`key_id`]`(public)`, signature, `exp > now`,
/// `iss` = [`ISSUER`]. Claims JSON is parsed only after the signature verified.
pub fn verify(public: &[u8; 32], token: &str, now: i64) -> Result<Claims, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::TooLong {
            len: token.len(),
            max: MAX_TOKEN_LEN,
        });
    }
    let mut parts = token.split('.');
    let (Some(h64), Some(c64), Some(s64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed("not three dot-separated parts"));
    };
    let decode = |part: &str, what| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|_| TokenError::Malformed(what))
    };
    let header: HeaderIn = serde_json::from_slice(&decode(h64, "header is not base64url")?)
        .map_err(|_| TokenError::Malformed("header is not a JSON object with alg"))?;
    if header.alg != "EdDSA" {
        return Err(TokenError::Algorithm(capped(&header.alg, 32)));
    }
    if header.typ.as_deref().is_some_and(|t| t != "JWT") {
        return Err(TokenError::Malformed("typ is not JWT"));
    }
    if let Some(kid) = header.kid {
        if kid != key_id(public) {
            return Err(TokenError::UnknownKeyId(capped(&kid, 32)));
        }
    }
    let sig: [u8; 64] = decode(s64, "signature is not base64url")?
        .try_into()
        .map_err(|_| TokenError::Malformed("signature is not 64 bytes"))?;
    let signed_len = h64.len() + 1 + c64.len();
    let signing_input = token
        .get(..signed_len)
        .ok_or(TokenError::Malformed("shape"))?;
    if !verify_sig(public, signing_input.as_bytes(), &sig) {
        return Err(TokenError::Signature);
    }
    let claims: Claims = serde_json::from_slice(&decode(c64, "claims are not base64url")?)
        .map_err(|_| TokenError::Malformed("claims are not the expected JSON object"))?;
    if claims.exp <= now {
        return Err(TokenError::Expired {
            exp: claims.exp,
            now,
        });
    }
    if claims.iss != ISSUER {
        return Err(TokenError::Issuer(capped(&claims.iss, 64)));
    }
    Ok(claims)
}

#[cfg(test)]
#[path = "token_tests.rs"]
mod tests;
