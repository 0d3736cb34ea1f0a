//! ChaCha20-Poly1305 (RFC 8439) from ring, sealing and opening in place.
//!
//! One [`AeadKey`] is kept per session direction. It holds the 32 raw key bytes and builds
//! ring's key object for each operation: ring's `LessSafeKey` is sized for its largest
//! algorithm (≈ 0.5 KiB, an AES key schedule), which per idle session would be most of the
//! memory budget, while building a ChaCha20 key is a 32-byte copy.

use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305};

/// Length of the Poly1305 tag appended to every sealed message.
pub const TAG_LEN: usize = 16;

/// AEAD failures.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum AeadError {
    /// Peer fault: the tag does not authenticate the ciphertext, nonce and aad (tampered,
    /// truncated below the tag length, or sealed under another key).
    #[error("AEAD open failed: authentication tag mismatch or truncated ciphertext")]
    Open,
    /// Our misuse: a message longer than ChaCha20-Poly1305 can seal (about 256 GiB).
    #[error("AEAD seal failed: message too long")]
    TooLong,
}

/// A ChaCha20-Poly1305 key.
pub struct AeadKey {
    key: [u8; 32],
}

impl std::fmt::Debug for AeadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AeadKey(ChaCha20-Poly1305)")
    }
}

impl AeadKey {
    /// Builds the key from 32 raw bytes.
    pub fn new(key: &[u8; 32]) -> Self {
        Self { key: *key }
    }

    /// ring's key object for one operation.
    fn ring_key(&self) -> LessSafeKey {
        // ring rejects only keys of the wrong length, and ours is 32 bytes by type.
        match UnboundKey::new(&CHACHA20_POLY1305, &self.key) {
            Ok(k) => LessSafeKey::new(k),
            Err(_) => unreachable!("ChaCha20-Poly1305 takes 32-byte keys"),
        }
    }

    /// Encrypts `buf` in place and appends the 16-byte tag.
    ///
    /// The nonce must never repeat under one key (the v2 profile uses [`v2_nonce`] of a
    /// strictly increasing seq; the v1 profile random 12-byte nonces).
    ///
    /// # Panics
    /// Only if `buf` is longer than ChaCha20-Poly1305 allows (about 256 GiB), which message
    /// size limits rule out; use [`AeadKey::try_seal_in_place`] to get an error instead.
    pub fn seal_in_place(&self, nonce: &[u8; 12], aad: &[u8], buf: &mut Vec<u8>) {
        if self.try_seal_in_place(nonce, aad, buf).is_err() {
            panic!(
                "ChaCha20-Poly1305 seal of {} bytes: message too long",
                buf.len()
            );
        }
    }

    /// [`AeadKey::seal_in_place`] returning [`AeadError::TooLong`] instead of panicking.
    pub fn try_seal_in_place(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<(), AeadError> {
        self.ring_key()
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
            .map_err(|_| AeadError::TooLong)
    }

    /// Authenticates and decrypts `buf` (ciphertext ‖ tag) in place; returns the plaintext,
    /// a prefix of `buf`. On failure the content of `buf` is unspecified.
    pub fn open_in_place<'b>(
        &self,
        nonce: &[u8; 12],
        aad: &[u8],
        buf: &'b mut [u8],
    ) -> Result<&'b mut [u8], AeadError> {
        self.ring_key()
            .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
            .map_err(|_| AeadError::Open)
    }
}

/// The v2 AEAD nonce of a sealed message: 4 zero bytes ‖ `seq` as u64 big-endian.
pub fn v2_nonce(seq: u64) -> [u8; 12] {
    let mut n = [0u8; 12];
    n[4..].copy_from_slice(&seq.to_be_bytes());
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 8439 §2.8.2.
    const PLAINTEXT: &[u8] = b"Ladies and Gentlemen of the class of '99: If I could offer you \
only one tip for the future, sunscreen would be it.";
    const AAD: &str = "50515253c0c1c2c3c4c5c6c7";
    const NONCE: &str = "070000004041424344454647";
    const CIPHERTEXT: &str = "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d6\
3dbea45e8ca9671282fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58\
fab324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116";
    const TAG: &str = "1ae10b594f09e26a7e902ecbd0600691";

    fn key() -> AeadKey {
        let k: Vec<u8> = (0x80u8..=0x9f).collect();
        AeadKey::new(&k.try_into().unwrap())
    }

    fn nonce() -> [u8; 12] {
        hex::decode(NONCE).unwrap().try_into().unwrap()
    }

    fn sealed() -> Vec<u8> {
        let mut v = hex::decode(CIPHERTEXT).unwrap();
        v.extend(hex::decode(TAG).unwrap());
        v
    }

    #[test]
    fn rfc8439_seal_gives_vector() {
        assert_eq!(PLAINTEXT.len(), 114);
        let mut buf = PLAINTEXT.to_vec();
        key().seal_in_place(&nonce(), &hex::decode(AAD).unwrap(), &mut buf);
        assert_eq!(hex::encode(&buf), hex::encode(sealed()));
    }

    #[test]
    fn rfc8439_open_recovers_plaintext() {
        let mut buf = sealed();
        let plain = key()
            .open_in_place(&nonce(), &hex::decode(AAD).unwrap(), &mut buf)
            .unwrap();
        assert_eq!(plain, PLAINTEXT);
    }

    #[test]
    fn any_flipped_bit_fails() {
        let aad = hex::decode(AAD).unwrap();
        let k = key();
        // A bit in the ciphertext, in the tag (last byte), and in the aad.
        for pos in [0usize, 57, 113, 114, 129] {
            let mut buf = sealed();
            buf[pos] ^= 0x01;
            assert_eq!(
                k.open_in_place(&nonce(), &aad, &mut buf),
                Err(AeadError::Open)
            );
        }
        let mut bad_aad = aad.clone();
        bad_aad[3] ^= 0x80;
        let mut buf = sealed();
        assert_eq!(
            k.open_in_place(&nonce(), &bad_aad, &mut buf),
            Err(AeadError::Open)
        );
        let mut buf = sealed();
        assert_eq!(
            k.open_in_place(&v2_nonce(7), &aad, &mut buf),
            Err(AeadError::Open)
        );
        // Shorter than a tag.
        let mut short = [0u8; 15];
        assert_eq!(
            k.open_in_place(&nonce(), &aad, &mut short),
            Err(AeadError::Open)
        );
    }

    #[test]
    fn empty_plaintext_round_trip() {
        let k = key();
        let mut buf = Vec::new();
        k.seal_in_place(&v2_nonce(1), b"aad", &mut buf);
        assert_eq!(buf.len(), TAG_LEN);
        assert_eq!(
            k.open_in_place(&v2_nonce(1), b"aad", &mut buf).unwrap(),
            b""
        );
    }

    #[test]
    fn v2_nonce_layout() {
        assert_eq!(hex::encode(v2_nonce(1)), "000000000000000000000001");
        assert_eq!(
            hex::encode(v2_nonce(0x0102_0304_0506_0708)),
            "000000000102030405060708"
        );
        assert_eq!(hex::encode(v2_nonce(u64::MAX)), "00000000ffffffffffffffff");
    }
}
