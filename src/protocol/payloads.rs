//! Payload JSON of the handshake and error frames (PROTOCOL.md §4, §6, §7), plus the base64
//! and identifier helpers they need.
//!
//! Deserialization is strict about what is listed (missing or mistyped fields, duplicate keys
//! fail) and ignores unknown fields. Serialization writes keys in the order the spec lists them
//! and omits `None` fields.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::error::ErrorKind;

/// Longest accepted agent id, uid or host id (bytes).
pub const MAX_AGENT_ID_LEN: usize = 128;

/// M1 payload (`auth` request). v1 has no `v`/`kx`; v2 has `v: 2` and `kx`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthRequest {
    /// The agent's configured id.
    pub agent_id: String,
    /// base64 Ed25519 public key; must equal `X-Agent-Public-Key`.
    pub public_key: String,
    /// Unix seconds.
    pub timestamp: i64,
    /// base64 of 16 random bytes.
    pub nonce: String,
    /// Profile: absent (or `null`) for v1, `2` for v2; anything else fails authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<i64>,
    /// v2: base64 of the agent's ephemeral X25519 public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kx: Option<String>,
    /// base64 Ed25519 signature (see `sigstr::v1_auth` / `sigstr::v2_auth`).
    pub signature: String,
}

/// R1 payload (`auth` response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthResponse {
    /// Whether authentication succeeded.
    pub success: bool,
    /// EdDSA JWT on success, `""` on failure.
    pub session_token: String,
    /// v1: base64 of 32 random bytes; v2: base64 of the gateway's ephemeral X25519 key;
    /// `""` on failure.
    pub backend_key: String,
    /// Token expiry (Unix seconds); `0` on failure.
    pub expires_at: i64,
    /// Human-readable message.
    pub message: String,
    /// v2 success only: `2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<u8>,
    /// v2 success only: base64 of 16 random bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_nonce: Option<String>,
    /// v2 success only: gateway signature over `sigstr::v2_auth_ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl AuthResponse {
    /// The failure response of §4: only the five v1 fields, `success:false`, empty token and
    /// key, `expires_at:0`.
    pub fn failure(message: impl Into<String>) -> Self {
        AuthResponse {
            success: false,
            session_token: String::new(),
            backend_key: String::new(),
            expires_at: 0,
            message: message.into(),
            v: None,
            server_nonce: None,
            signature: None,
        }
    }
}

/// M3 payload (`agent.registration`). Every field but `machine_id_hash` is required (§6 lists
/// them without `?`); `capabilities`, `platform` and `network` are opaque JSON values that must
/// be present but may be any value, `null` included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegistrationRequest {
    /// Organisation id (opaque).
    pub org_id: String,
    /// Host id, `X-Agent-Id` character set (checked by the caller with [`is_agent_id`]).
    pub host_id: String,
    /// base64 Ed25519 key; must equal the session key.
    pub agent_pubkey: String,
    /// Agent version string.
    pub agent_version: String,
    /// Agent capabilities (opaque JSON).
    pub capabilities: serde_json::Value,
    /// Platform description, e.g. `{"os":"linux","arch":"arm64"}` (opaque JSON).
    pub platform: serde_json::Value,
    /// Network description (opaque JSON).
    pub network: serde_json::Value,
    /// Optional machine id hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id_hash: Option<String>,
}

/// R2 payload (`agent.registration` response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationChallenge {
    /// UUID of the pending registration.
    pub registration_id: String,
    /// base64 of 32 random bytes.
    pub nonce: String,
    /// `YYYY-MM-DDTHH:MM:SSZ` (see [`server_time`]).
    pub server_time: String,
}

/// M4 payload (`agent.registration.complete`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationComplete {
    /// The id from R2.
    pub registration_id: String,
    /// Must equal M3's host_id.
    pub host_id: String,
    /// base64 Ed25519 signature over `sigstr::registration`.
    pub signature: String,
}

/// R3 payload (`agent.registration.complete` response).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegistrationResult {
    /// The agent's new canonical id (UUID).
    pub agent_uid: String,
    /// ≥ 32 chars of URL-safe random text; only its hash is stored.
    pub bootstrap_token: String,
}

/// Error frame payload (§7).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorPayload {
    /// snake_case kind ([`ErrorKind::as_str`]).
    pub error: String,
    /// Human-readable message.
    pub message: String,
    /// Extra detail (may be empty).
    pub details: String,
    /// Numeric code ([`ErrorKind::code`]).
    pub code: u16,
}

impl ErrorPayload {
    /// The payload for `kind`, with its name and code filled in.
    pub fn new(kind: ErrorKind, message: impl Into<String>, details: impl Into<String>) -> Self {
        ErrorPayload {
            error: kind.as_str().to_owned(),
            message: message.into(),
            details: details.into(),
            code: kind.code(),
        }
    }
}

/// The payload of an ack (§7), sealed in v2: `{"ack":id}`, the acked command's id. The
/// gateway takes the id from here, where the signature and the AEAD cover it; `headers.ack`
/// must say the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AckPayload {
    /// The command's `id`.
    pub ack: String,
}

/// What an ack's payload says: read with [`from_json`]. Strict: the payload is a JSON object;
/// `ack`, when present, is a string and appears once; other members are ignored, but an object
/// with members and no `ack` is an error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckBody {
    /// `{"ack":id}`.
    Id(String),
    /// `{}`: an agent built before the acked id moved into the payload; the id is only in
    /// `headers.ack` (accepted for one release).
    Legacy,
}

impl<'de> Deserialize<'de> for AckBody {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> serde::de::Visitor<'de> for Fields {
            type Value = AckBody;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(r#"an object {"ack":id}, or {} from an older agent"#)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<AckBody, A::Error> {
                let mut ack = None;
                let mut others = false;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    if key == "ack" {
                        if ack.is_some() {
                            return Err(serde::de::Error::duplicate_field("ack"));
                        }
                        ack = Some(map.next_value::<String>()?);
                    } else {
                        others = true;
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                match ack {
                    Some(id) => Ok(AckBody::Id(id)),
                    None if others => Err(serde::de::Error::missing_field("ack")),
                    None => Ok(AckBody::Legacy),
                }
            }
        }
        d.deserialize_map(Fields)
    }
}

/// Why a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    /// The base64 text is longer than the caller's cap.
    #[error("payload too large")]
    TooLarge,
    /// Not standard padded base64.
    #[error("payload is not valid base64")]
    Base64,
    /// Not JSON of the expected shape (missing, mistyped or duplicate fields).
    #[error("payload JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Decodes `base64(JSON)` into `T`, refusing base64 text longer than `max_b64_len` before
/// decoding anything.
pub fn from_b64_json<T: DeserializeOwned>(s: &str, max_b64_len: usize) -> Result<T, PayloadError> {
    if s.len() > max_b64_len {
        return Err(PayloadError::TooLarge);
    }
    let bytes = STANDARD.decode(s).map_err(|_| PayloadError::Base64)?;
    Ok(serde_json::from_slice(&bytes)?)
}

/// Decodes raw JSON text (v1 R2/R3, decrypted or unsealed plaintexts) into `T`.
pub fn from_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, PayloadError> {
    Ok(serde_json::from_slice(bytes)?)
}

/// JSON text of a payload. Serializing these structs cannot fail (string keys only); the
/// fallback avoids an unreachable panic path.
pub fn to_json<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// `base64(JSON)` of a payload.
pub fn to_b64_json<T: Serialize>(value: &T) -> String {
    b64(to_json(value).as_bytes())
}

/// True if `s` is 1..128 chars of `[A-Za-z0-9._@-]` (`X-Agent-Id`, `agent_id`, `host_id`, uids).
pub fn is_agent_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_AGENT_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
}

/// Standard padded base64 of `bytes`.
pub fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes standard padded base64 of exactly `N` bytes; any other length, alphabet, padding or
/// non-canonical trailing bits gives `None`. The text length is checked before decoding.
pub fn decode_b64_exact<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != N.div_ceil(3) * 4 {
        return None;
    }
    STANDARD.decode(s).ok()?.try_into().ok()
}

/// Decodes standard padded base64 of at most `max_bytes` bytes (text length checked first).
pub fn decode_b64_capped(s: &str, max_bytes: usize) -> Option<Vec<u8>> {
    if s.len() > max_bytes.div_ceil(3).saturating_mul(4) {
        return None;
    }
    let bytes = STANDARD.decode(s).ok()?;
    (bytes.len() <= max_bytes).then_some(bytes)
}

/// Formats Unix seconds as `YYYY-MM-DDTHH:MM:SSZ` (UTC), the R2 `server_time` format. Years
/// outside 0..=9999 are clamped to that range's ends.
pub fn server_time(unix_secs: i64) -> String {
    // 0000-01-01T00:00:00Z and 9999-12-31T23:59:59Z.
    let secs = unix_secs.clamp(-62_167_219_200, 253_402_300_799);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

#[cfg(test)]
#[path = "payloads_tests.rs"]
mod tests;
