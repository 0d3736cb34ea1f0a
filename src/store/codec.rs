//! Key encodings and value (JSON) codecs shared by the store's record modules.
//!
//! Keys are raw UTF-8 strings, except the host index whose key is
//! `host_id ‖ 0x00 ‖ agent_uid`: the NUL separator lets one host_id map to several uids and
//! is why no key part may contain a NUL byte (`"a"` must not be a prefix of host `"a\0b"`).

use super::StoreError;
use serde::{de::DeserializeOwned, Serialize};

/// Longest accepted key part (uid, host_id, registration id), in bytes. fjall limits whole keys
/// to 64 KiB and does not check it; our ids are uuids and short host names.
pub const MAX_KEY_PART: usize = 512;

/// Largest encoded record the store accepts, in bytes.
pub const MAX_VALUE_LEN: usize = 256 * 1024;

/// Separator between host_id and uid in the host index.
const HOST_SEP: u8 = 0;

/// Whether `part` can be a key part: non-empty, at most [`MAX_KEY_PART`] bytes, no NUL byte.
pub fn valid_key_part(part: &str) -> bool {
    key_part_problem(part).is_none()
}

fn key_part_problem(part: &str) -> Option<&'static str> {
    if part.is_empty() {
        Some("is empty")
    } else if part.len() > MAX_KEY_PART {
        Some("is longer than 512 bytes")
    } else if part.as_bytes().contains(&HOST_SEP) {
        Some("contains a NUL byte")
    } else {
        None
    }
}

/// Checks a key part before a write; `field` names it in the error.
pub fn check_key_part(field: &'static str, part: &str) -> Result<(), StoreError> {
    match key_part_problem(part) {
        None => Ok(()),
        Some(reason) => Err(StoreError::InvalidKey { field, reason }),
    }
}

/// The host index prefix shared by every uid of `host_id`: `host_id ‖ 0x00`.
pub fn host_prefix(host_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(host_id.len() + 1);
    key.extend_from_slice(host_id.as_bytes());
    key.push(HOST_SEP);
    key
}

/// The host index key `host_id ‖ 0x00 ‖ uid`.
pub fn host_key(host_id: &str, uid: &str) -> Vec<u8> {
    let mut key = host_prefix(host_id);
    key.extend_from_slice(uid.as_bytes());
    key
}

/// Extracts the uid from a host index key that starts with a prefix of `prefix_len` bytes.
pub fn uid_from_host_key(key: &[u8], prefix_len: usize) -> Result<String, StoreError> {
    let corrupt = || StoreError::CorruptKey {
        keyspace: "agents_by_host",
        key: printable(key),
    };
    let uid = key.get(prefix_len..).ok_or_else(corrupt)?;
    match std::str::from_utf8(uid) {
        Ok(uid) if valid_key_part(uid) => Ok(uid.to_owned()),
        _ => Err(corrupt()),
    }
}

/// Encodes a record as JSON, refusing anything larger than [`MAX_VALUE_LEN`].
pub fn encode<T: Serialize>(what: &'static str, value: &T) -> Result<Vec<u8>, StoreError> {
    let bytes = serde_json::to_vec(value).map_err(|source| StoreError::Encode { what, source })?;
    if bytes.len() > MAX_VALUE_LEN {
        return Err(StoreError::TooLarge {
            what,
            len: bytes.len(),
            max: MAX_VALUE_LEN,
        });
    }
    Ok(bytes)
}

/// Decodes a JSON record read under `key`.
pub fn decode<T: DeserializeOwned>(
    what: &'static str,
    key: &[u8],
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        what,
        key: printable(key),
        source,
    })
}

/// A key rendered for an error message (lossy UTF-8, at most 64 bytes of it).
pub fn printable(key: &[u8]) -> String {
    let shown = key.get(..64).unwrap_or(key);
    String::from_utf8_lossy(shown).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_key_layout_is_host_nul_uid() {
        assert_eq!(host_key("web-1", "u1"), b"web-1\0u1".to_vec());
        assert_eq!(host_prefix("web-1"), b"web-1\0".to_vec());
    }

    #[test]
    fn uid_round_trips_through_host_key() {
        let key = host_key("web-1", "0b7c-uid");
        let uid = uid_from_host_key(&key, host_prefix("web-1").len()).unwrap();
        assert_eq!(uid, "0b7c-uid");
    }

    #[test]
    fn host_prefix_does_not_match_a_longer_host() {
        // "web" must not see the uids of "web-1": the separator ends the host part.
        let longer = host_key("web-1", "u1");
        assert!(!longer.starts_with(&host_prefix("web")));
    }

    #[test]
    fn corrupt_host_keys_are_errors_not_panics() {
        assert!(matches!(
            uid_from_host_key(b"ab", 5),
            Err(StoreError::CorruptKey { .. })
        ));
        assert!(uid_from_host_key(b"h\0\xff\xfe", 2).is_err());
        assert!(uid_from_host_key(b"h\0", 2).is_err());
    }

    #[test]
    fn key_parts_are_checked() {
        assert!(valid_key_part("host-01.example"));
        assert!(!valid_key_part(""));
        assert!(!valid_key_part("a\0b"));
        assert!(!valid_key_part(&"x".repeat(MAX_KEY_PART + 1)));
        assert!(valid_key_part(&"x".repeat(MAX_KEY_PART)));
        assert!(matches!(
            check_key_part("host_id", "a\0b"),
            Err(StoreError::InvalidKey {
                field: "host_id",
                ..
            })
        ));
    }

    #[test]
    fn oversized_values_are_refused() {
        let big = "x".repeat(MAX_VALUE_LEN);
        assert!(matches!(
            encode("test", &big),
            Err(StoreError::TooLarge { .. })
        ));
        assert!(encode("test", &"small").is_ok());
    }

    #[test]
    fn decode_reports_garbage() {
        let r: Result<u32, _> = decode("test", b"k", b"{not json");
        assert!(matches!(r, Err(StoreError::Decode { what: "test", .. })));
    }
}
