//! Key and value layouts of the `queue` and `messages` keyspaces.
//!
//! Every id (agent uid, message id) is a key part: non-empty, no NUL byte (see
//! [`codec::valid_key_part`]). So a key that *starts* with a NUL byte can never collide with a
//! record key, and the two time indexes live under that prefix in the same keyspaces:
//!
//! | keyspace | key | value |
//! |---|---|---|
//! | `queue` | `uid ‖ 0x00 ‖ seq BE` | pending [`QueuedMessage`](super::QueuedMessage) JSON |
//! | `queue` | `0x00 ‖ ord(expires_at) ‖ uid ‖ 0x00 ‖ seq BE` | empty (expiry index) |
//! | `messages` | `message_id ‖ 0x00 ‖ uid` | [`PENDING_TAG`] ‖ queue key, or final record JSON |
//! | `messages` | `0x00 ‖ ord(updated_at) ‖ message_id ‖ 0x00 ‖ uid` | empty (retention index) |
//!
//! `ord(t)` is the i64 with its sign bit flipped, big-endian, so byte order is time order.
//! A final record is JSON and starts with `{`, never with [`PENDING_TAG`].

use crate::store::{codec, StoreError};

/// Separator between the parts of a key (ids contain no NUL byte).
const SEP: u8 = 0;
/// First byte of every index key.
const INDEX: u8 = 0;
/// First byte of a `messages` value that points at a pending queue record.
pub const PENDING_TAG: u8 = 1;

/// Order-preserving encoding of a signed time.
fn ord(t: i64) -> [u8; 8] {
    ((t as u64) ^ (1 << 63)).to_be_bytes()
}

/// `uid ‖ 0x00`: the prefix of every queue key of `uid`.
pub fn queue_prefix(uid: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(uid.len() + 9);
    key.extend_from_slice(uid.as_bytes());
    key.push(SEP);
    key
}

/// `uid ‖ 0x00 ‖ seq BE`.
pub fn queue_key(uid: &str, seq: u64) -> Vec<u8> {
    let mut key = queue_prefix(uid);
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

/// Splits a queue key into `(uid, seq)`.
pub fn parse_queue_key(key: &[u8]) -> Result<(&str, u64), StoreError> {
    let corrupt = || StoreError::CorruptKey {
        keyspace: "queue",
        key: codec::printable(key),
    };
    let split = key.len().checked_sub(9).ok_or_else(corrupt)?;
    let (uid, rest) = key.split_at(split);
    let (sep, seq) = rest.split_first().ok_or_else(corrupt)?;
    let seq: [u8; 8] = seq.try_into().map_err(|_| corrupt())?;
    match std::str::from_utf8(uid) {
        Ok(uid) if *sep == SEP && codec::valid_key_part(uid) => Ok((uid, u64::from_be_bytes(seq))),
        _ => Err(corrupt()),
    }
}

/// The seq of a key known to start with `prefix` (a [`queue_prefix`]).
pub fn seq_of(key: &[u8], prefix_len: usize) -> Result<u64, StoreError> {
    key.get(prefix_len..)
        .and_then(|s| <[u8; 8]>::try_from(s).ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| StoreError::CorruptKey {
            keyspace: "queue",
            key: codec::printable(key),
        })
}

/// Expiry index key for the queue record `uid`/`seq` expiring at `expires_at`.
pub fn expiry_key(expires_at: i64, uid: &str, seq: u64) -> Vec<u8> {
    let mut key = Vec::with_capacity(uid.len() + 18);
    key.push(INDEX);
    key.extend_from_slice(&ord(expires_at));
    key.extend_from_slice(&queue_key(uid, seq));
    key
}

/// Upper bound (exclusive) of the expiry index entries with `expires_at <= now`.
pub fn expiry_end(now: i64) -> Vec<u8> {
    match now.checked_add(1) {
        Some(next) => {
            let mut key = vec![INDEX];
            key.extend_from_slice(&ord(next));
            key
        }
        // Everything expires at i64::MAX: the whole index (which sorts before any 0x01 key).
        None => vec![INDEX + 1],
    }
}

/// The queue key inside an expiry index key.
pub fn queue_key_of_expiry(key: &[u8]) -> Result<&[u8], StoreError> {
    key.get(9..)
        .filter(|_| key.first() == Some(&INDEX))
        .ok_or_else(|| StoreError::CorruptKey {
            keyspace: "queue",
            key: codec::printable(key),
        })
}

/// `message_id ‖ 0x00`: the prefix of every `messages` key of one message.
pub fn message_prefix(message_id: &str) -> Vec<u8> {
    queue_prefix(message_id)
}

/// `message_id ‖ 0x00 ‖ uid`.
pub fn message_key(message_id: &str, uid: &str) -> Vec<u8> {
    let mut key = message_prefix(message_id);
    key.extend_from_slice(uid.as_bytes());
    key
}

/// Retention index key of a final record updated at `updated_at`.
pub fn retention_key(updated_at: i64, message_id: &str, uid: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(message_id.len() + uid.len() + 10);
    key.push(INDEX);
    key.extend_from_slice(&ord(updated_at));
    key.extend_from_slice(&message_key(message_id, uid));
    key
}

/// Upper bound (exclusive) of the retention index entries with `updated_at < older_than`.
pub fn retention_end(older_than: i64) -> Vec<u8> {
    let mut key = vec![INDEX];
    key.extend_from_slice(&ord(older_than));
    key
}

/// The `messages` key inside a retention index key.
pub fn message_key_of_retention(key: &[u8]) -> Result<&[u8], StoreError> {
    key.get(9..)
        .filter(|_| key.first() == Some(&INDEX))
        .ok_or_else(|| StoreError::CorruptKey {
            keyspace: "messages",
            key: codec::printable(key),
        })
}

/// The `messages` value of a pending record: [`PENDING_TAG`] ‖ queue key.
pub fn pending_value(queue_key: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(queue_key.len() + 1);
    value.push(PENDING_TAG);
    value.extend_from_slice(queue_key);
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_keys_round_trip_and_sort_by_seq() {
        let k = queue_key("uid-1", 258);
        assert_eq!(k, b"uid-1\0\0\0\0\0\0\0\x01\x02".to_vec());
        assert_eq!(parse_queue_key(&k).unwrap(), ("uid-1", 258));
        assert!(queue_key("u", 255) < queue_key("u", 256));
        assert_eq!(seq_of(&k, queue_prefix("uid-1").len()).unwrap(), 258);
        // A uid's prefix never covers another uid's keys.
        assert!(!queue_key("uid-10", 1).starts_with(&queue_prefix("uid-1")));
    }

    #[test]
    fn corrupt_keys_are_errors() {
        assert!(parse_queue_key(b"short").is_err());
        assert!(parse_queue_key(b"\0\0\0\0\0\0\0\0\x01").is_err()); // empty uid
        assert!(parse_queue_key(b"uidX\0\0\0\0\0\0\0\x01").is_err()); // no separator
        assert!(queue_key_of_expiry(b"x").is_err());
        assert!(message_key_of_retention(b"\x01abcdefghij").is_err());
        assert!(seq_of(b"u\0\x01", 2).is_err());
    }

    #[test]
    fn index_keys_sort_by_time_before_every_record_key() {
        let early = expiry_key(-5, "zz", 1);
        let late = expiry_key(7, "aa", 1);
        assert!(early < late);
        assert!(late < expiry_end(7) && expiry_end(6) < late);
        assert!(expiry_end(i64::MAX) < queue_key("\x01", 0));
        assert!(late < queue_key("\x01", 0));
        assert_eq!(queue_key_of_expiry(&late).unwrap(), queue_key("aa", 1));
        let r = retention_key(100, "m1", "u1");
        assert!(r < retention_end(101) && retention_end(100) <= r);
        assert_eq!(
            message_key_of_retention(&r).unwrap(),
            message_key("m1", "u1")
        );
        assert_eq!(message_key("m1", "u1"), b"m1\0u1".to_vec());
    }
}
