//! The M1 nonce replay cache (PROTOCOL §4: a nonce is never accepted twice for one key within
//! 600 s). Pure data structure; time is passed in.

use std::collections::HashMap;

/// How long a seen nonce is remembered, in seconds.
pub const NONCE_TTL_S: i64 = 600;

/// Something that remembers (key, nonce) pairs. `check_and_insert` returns `true` when the pair
/// was not seen in the last [`NONCE_TTL_S`] seconds (and records it), `false` on a replay.
pub trait NonceCheck {
    /// See the trait docs.
    fn check_and_insert(&self, public_key: &[u8; 32], nonce: &[u8; 16], now_s: i64) -> bool;
}

/// A bounded-in-time map of seen nonces. Expired entries are purged as the map grows.
///
/// An entry is 20 bytes: the first 16 bytes of SHA-256(key ‖ nonce) and the expiry in u32
/// seconds (every handshake leaves one for 600 s, so at fleet scale its size matters). A
/// collision could only refuse a fresh nonce, never accept a replayed one, and 128 bits make
/// even that out of reach.
#[derive(Default, Debug)]
pub struct NonceCache {
    seen: HashMap<[u8; 16], u32>,
    next_purge_len: usize,
}

impl NonceCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self {
            seen: HashMap::new(),
            next_purge_len: 1024,
        }
    }

    /// Records the pair; `false` when it was already seen and has not expired.
    pub fn insert(&mut self, public_key: &[u8; 32], nonce: &[u8; 16], now_s: i64) -> bool {
        let now = secs(now_s);
        if self.seen.len() >= self.next_purge_len {
            self.seen.retain(|_, exp| *exp > now);
            self.next_purge_len = (self.seen.len() * 2).max(1024);
        }
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        ctx.update(public_key);
        ctx.update(nonce);
        let mut k = [0u8; 16];
        k.copy_from_slice(&ctx.finish().as_ref()[..16]);
        match self.seen.get(&k) {
            Some(exp) if *exp > now => false,
            _ => {
                self.seen.insert(k, secs(now_s.saturating_add(NONCE_TTL_S)));
                true
            }
        }
    }

    /// Number of entries held (expired ones included until the next purge).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether the cache holds nothing.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Unix seconds as stored (clamped to u32: until 2106).
fn secs(t: i64) -> u32 {
    u32::try_from(t.max(0)).unwrap_or(u32::MAX)
}

impl NonceCheck for std::sync::Mutex<NonceCache> {
    fn check_and_insert(&self, public_key: &[u8; 32], nonce: &[u8; 16], now_s: i64) -> bool {
        match self.lock() {
            Ok(mut c) => c.insert(public_key, nonce, now_s),
            Err(poisoned) => poisoned.into_inner().insert(public_key, nonce, now_s),
        }
    }
}

impl NonceCheck for std::cell::RefCell<NonceCache> {
    fn check_and_insert(&self, public_key: &[u8; 32], nonce: &[u8; 16], now_s: i64) -> bool {
        self.borrow_mut().insert(public_key, nonce, now_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replay_within_ttl_is_refused_and_accepted_after() {
        let mut c = NonceCache::new();
        let k = [1u8; 32];
        let n = [2u8; 16];
        assert!(c.insert(&k, &n, 1000));
        assert!(!c.insert(&k, &n, 1000 + NONCE_TTL_S - 1));
        assert!(c.insert(&k, &n, 1000 + NONCE_TTL_S));
        // Same nonce, other key: independent.
        assert!(c.insert(&[3u8; 32], &n, 1000));
    }

    #[test]
    fn purge_keeps_live_entries() {
        let mut c = NonceCache::new();
        for i in 0..3000u32 {
            let mut n = [0u8; 16];
            n[..4].copy_from_slice(&i.to_be_bytes());
            assert!(c.insert(&[0u8; 32], &n, i64::from(i)));
        }
        // Entry 2999 is live at t=3000, so it is still refused after purges.
        let mut n = [0u8; 16];
        n[..4].copy_from_slice(&2999u32.to_be_bytes());
        assert!(!c.insert(&[0u8; 32], &n, 3000));
        assert!(c.len() <= 3000);
    }
}
