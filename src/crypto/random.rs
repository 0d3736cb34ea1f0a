//! System randomness from ring's `SystemRandom` (getrandom on Linux).
//!
//! A failing system RNG is unrecoverable for a security gateway: every function here panics
//! with a clear message in that case rather than continue with predictable values.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::{SecureRandom, SystemRandom};

/// Fills `buf` with cryptographically secure random bytes.
///
/// # Panics
/// If the operating system's random number generator fails (unrecoverable).
pub fn fill(buf: &mut [u8]) {
    if SystemRandom::new().fill(buf).is_err() {
        panic!("aegis crypto: the system random number generator failed; refusing to continue");
    }
}

/// Returns `N` cryptographically secure random bytes.
///
/// # Panics
/// If the operating system's random number generator fails (unrecoverable).
pub fn bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fill(&mut out);
    out
}

/// Returns `n_bytes` random bytes as URL-safe base64 without padding
/// (`ceil(4 * n_bytes / 3)` characters of `[A-Za-z0-9_-]`).
pub fn token_urlsafe(n_bytes: usize) -> String {
    let mut buf = vec![0u8; n_bytes];
    fill(&mut buf);
    URL_SAFE_NO_PAD.encode(&buf)
}

/// Returns a random RFC 4122 version 4 UUID in its lowercase text form
/// (`xxxxxxxx-xxxx-4xxx-Vxxx-xxxxxxxxxxxx` with `V` in `8..=b`).
pub fn uuid_v4() -> String {
    let mut b: [u8; 16] = bytes();
    b[6] = (b[6] & 0x0f) | 0x40; // version 4
    b[8] = (b[8] & 0x3f) | 0x80; // variant RFC 4122 (10xx)
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn bytes_differ_between_calls() {
        let a: [u8; 32] = bytes();
        let b: [u8; 32] = bytes();
        assert_ne!(a, b);
        assert_ne!(a, [0u8; 32]);
    }

    #[test]
    fn fill_touches_whole_buffer() {
        // With 64 random bytes the chance that a given byte stays 0 in all 8 runs is 2^-64.
        let mut seen_nonzero = [false; 64];
        for _ in 0..8 {
            let mut buf = [0u8; 64];
            fill(&mut buf);
            for (s, b) in seen_nonzero.iter_mut().zip(buf) {
                *s |= b != 0;
            }
        }
        assert!(seen_nonzero.iter().all(|s| *s));
    }

    #[test]
    fn token_urlsafe_length_and_alphabet() {
        for n in [0usize, 1, 2, 3, 16, 24, 32, 33] {
            let t = token_urlsafe(n);
            assert_eq!(t.len(), (4 * n).div_ceil(3), "n={n}");
            assert!(t
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
            let decoded = URL_SAFE_NO_PAD.decode(&t).expect("valid base64url");
            assert_eq!(decoded.len(), n);
        }
        assert_ne!(token_urlsafe(32), token_urlsafe(32));
    }

    #[test]
    fn uuid_v4_format() {
        let mut seen = HashSet::new();
        for _ in 0..200 {
            let u = uuid_v4();
            let parts: Vec<&str> = u.split('-').collect();
            let lens: Vec<usize> = parts.iter().map(|p| p.len()).collect();
            assert_eq!(lens, [8, 4, 4, 4, 12], "{u}");
            assert!(u
                .bytes()
                .all(|c| c == b'-' || c.is_ascii_digit() || (b'a'..=b'f').contains(&c)));
            assert!(parts[2].starts_with('4'), "{u}");
            assert!(matches!(&parts[3][..1], "8" | "9" | "a" | "b"), "{u}");
            assert!(seen.insert(u));
        }
    }
}
