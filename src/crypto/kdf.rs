//! Session keys: the v1 key, X25519 ephemeral agreement (ring) and HKDF-SHA256 (ring).

use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::hkdf;
use ring::rand::SystemRandom;

/// HKDF `info` of the agent→gateway key.
pub const INFO_A2G: &[u8] = b"aegis/2 agent->gateway";
/// HKDF `info` of the gateway→agent key.
pub const INFO_G2A: &[u8] = b"aegis/2 gateway->agent";

/// Key derivation failures.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum KdfError {
    /// Peer fault: the X25519 result is all zeros (the peer sent a small-order point).
    #[error("X25519 shared secret is all zeros (peer public key of small order)")]
    ZeroSharedSecret,
    /// Our misuse: more HKDF-SHA256 output than 255 × 32 bytes was asked for.
    #[error("HKDF-SHA256 output of {0} bytes exceeds 8160")]
    OutputTooLong(usize),
}

/// The v1 session key (gateway→agent only): `SHA-256(agent_public ‖ backend_key)`.
pub fn v1_key(agent_public: &[u8; 32], backend_key: &[u8; 32]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(agent_public);
    ctx.update(backend_key);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A one-use X25519 secret (ring: faster here than x25519-dalek, see the report).
pub struct Ephemeral(EphemeralPrivateKey);

impl std::fmt::Debug for Ephemeral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Ephemeral(X25519)")
    }
}

impl Ephemeral {
    /// Generates a fresh secret and returns it with its 32-byte public key.
    ///
    /// # Panics
    /// If the system RNG fails (unrecoverable, as in [`super::random`]).
    pub fn generate() -> (Ephemeral, [u8; 32]) {
        let Ok(secret) = EphemeralPrivateKey::generate(&X25519, &SystemRandom::new()) else {
            panic!("aegis crypto: the system random number generator failed; refusing to continue");
        };
        let mut public = [0u8; 32];
        match secret.compute_public_key() {
            Ok(p) if p.as_ref().len() == 32 => public.copy_from_slice(p.as_ref()),
            _ => unreachable!("an X25519 public key is 32 bytes"),
        }
        (Ephemeral(secret), public)
    }

    /// X25519 with the peer's public key; consumes the secret.
    /// An all-zero result is [`KdfError::ZeroSharedSecret`].
    pub fn agree(self, peer_public: &[u8; 32]) -> Result<[u8; 32], KdfError> {
        let peer = UnparsedPublicKey::new(&X25519, peer_public);
        let mut shared = [0u8; 32];
        // ring fails only on an all-zero result (lengths are fixed by the types).
        agreement::agree_ephemeral(self.0, &peer, |s| {
            if s.len() == 32 {
                shared.copy_from_slice(s);
            }
        })
        .map_err(|_| KdfError::ZeroSharedSecret)?;
        if shared == [0u8; 32] {
            return Err(KdfError::ZeroSharedSecret);
        }
        Ok(shared)
    }
}

/// The two v2 session keys, one per direction.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// Agent→gateway key (`K_a2g`).
    pub a2g: [u8; 32],
    /// Gateway→agent key (`K_g2a`).
    pub g2a: [u8; 32],
}

impl std::fmt::Debug for SessionKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionKeys(..)")
    }
}

/// HKDF-SHA256 (RFC 5869): extract with `salt` and `ikm`, expand with `info` to fill `out`.
pub fn hkdf_sha256(ikm: &[u8], salt: &[u8], info: &[u8], out: &mut [u8]) -> Result<(), KdfError> {
    struct Len(usize);
    impl hkdf::KeyType for Len {
        fn len(&self) -> usize {
            self.0
        }
    }
    let too_long = |_| KdfError::OutputTooLong(out.len());
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, salt).extract(ikm);
    let info = [info];
    let okm = prk.expand(&info, Len(out.len())).map_err(too_long)?;
    okm.fill(out)
        .map_err(|_| KdfError::OutputTooLong(out.len()))
}

/// The v2 session keys: `salt = m1_nonce ‖ server_nonce`, `ikm = shared`,
/// `K_a2g = HKDF(info = "aegis/2 agent->gateway")`, `K_g2a = HKDF(info = "aegis/2 gateway->agent")`.
pub fn derive_v2(shared: &[u8; 32], m1_nonce: &[u8], server_nonce: &[u8]) -> SessionKeys {
    let mut salt = Vec::with_capacity(m1_nonce.len() + server_nonce.len());
    salt.extend_from_slice(m1_nonce);
    salt.extend_from_slice(server_nonce);
    let mut keys = SessionKeys {
        a2g: [0; 32],
        g2a: [0; 32],
    };
    for (info, out) in [(INFO_A2G, &mut keys.a2g), (INFO_G2A, &mut keys.g2a)] {
        if hkdf_sha256(shared, &salt, info, out).is_err() {
            unreachable!("32 bytes is within the HKDF-SHA256 output limit");
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h32(s: &str) -> [u8; 32] {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    /// RFC 7748 §6.1.
    const ALICE_SECRET: &str = "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a";
    const ALICE_PUBLIC: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
    const BOB_SECRET: &str = "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb";
    const BOB_PUBLIC: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";
    const SHARED: &str = "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742";

    #[test]
    fn rfc7748_x25519_vector() {
        use x25519_dalek::{PublicKey, StaticSecret};
        let alice = StaticSecret::from(h32(ALICE_SECRET));
        let bob = StaticSecret::from(h32(BOB_SECRET));
        assert_eq!(PublicKey::from(&alice).to_bytes(), h32(ALICE_PUBLIC));
        assert_eq!(PublicKey::from(&bob).to_bytes(), h32(BOB_PUBLIC));
        let k = alice.diffie_hellman(&PublicKey::from(h32(BOB_PUBLIC)));
        assert_eq!(k.to_bytes(), h32(SHARED));
    }

    #[test]
    fn ring_ephemeral_agrees_with_rfc_checked_x25519() {
        // Our ring path on one side, the RFC-checked x25519-dalek on the other (fixed secret).
        use x25519_dalek::{PublicKey, StaticSecret};
        let bob = StaticSecret::from(h32(BOB_SECRET));
        let (eph, eph_public) = Ephemeral::generate();
        let ours = eph.agree(&h32(BOB_PUBLIC)).unwrap();
        let theirs = bob.diffie_hellman(&PublicKey::from(eph_public)).to_bytes();
        assert_eq!(ours, theirs);
        assert_eq!(x25519_dalek::x25519(bob.to_bytes(), eph_public), ours);
    }

    #[test]
    fn two_ephemerals_agree() {
        let (a, a_pub) = Ephemeral::generate();
        let (b, b_pub) = Ephemeral::generate();
        assert_ne!(a_pub, b_pub);
        let sa = a.agree(&b_pub).unwrap();
        let sb = b.agree(&a_pub).unwrap();
        assert_eq!(sa, sb);
        let ka = derive_v2(&sa, b"m1-nonce-16bytes", b"server-nonce-16b");
        let kb = derive_v2(&sb, b"m1-nonce-16bytes", b"server-nonce-16b");
        assert_eq!(ka, kb);
        assert_ne!(ka.a2g, ka.g2a);
        let other = derive_v2(&sa, b"m1-nonce-16bytes", b"server-nonce-16c");
        assert_ne!(other.a2g, ka.a2g);
    }

    #[test]
    fn zero_shared_secret_is_an_error() {
        let (a, _) = Ephemeral::generate();
        assert_eq!(a.agree(&[0u8; 32]), Err(KdfError::ZeroSharedSecret));
        // u = 1 is also of small order.
        let mut one = [0u8; 32];
        one[0] = 1;
        let (b, _) = Ephemeral::generate();
        assert_eq!(b.agree(&one), Err(KdfError::ZeroSharedSecret));
    }

    #[test]
    fn rfc5869_test_case_1() {
        let ikm = [0x0bu8; 22];
        let salt = hex::decode("000102030405060708090a0b0c").unwrap();
        let info = hex::decode("f0f1f2f3f4f5f6f7f8f9").unwrap();
        let mut okm = [0u8; 42];
        hkdf_sha256(&ikm, &salt, &info, &mut okm).unwrap();
        assert_eq!(
            hex::encode(okm),
            "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"
        );
        let mut too_long = vec![0u8; 255 * 32 + 1];
        assert_eq!(
            hkdf_sha256(&ikm, &salt, &info, &mut too_long),
            Err(KdfError::OutputTooLong(8161))
        );
    }

    #[test]
    fn derive_v2_is_hkdf_with_concatenated_salt_and_labels() {
        let shared = [0x42u8; 32];
        let (n1, n2) = ([1u8; 16], [2u8; 16]);
        let keys = derive_v2(&shared, &n1, &n2);
        // Independent values from Python's hmac/hashlib HKDF (RFC 5869 construction).
        assert_eq!(
            hex::encode(keys.a2g),
            "659aa03ac8792d2d216e8160adffe914d07198f2e55683b252c4f463f908a8e6"
        );
        assert_eq!(
            hex::encode(keys.g2a),
            "e1861fe8afc50012d3485821a56d28ddb6feac7363a79884f4563111954773c3"
        );
    }

    #[test]
    fn v1_key_is_sha256_of_concatenation() {
        let (a, b) = ([3u8; 32], [4u8; 32]);
        let want = ring::digest::digest(&ring::digest::SHA256, &[a, b].concat());
        assert_eq!(v1_key(&a, &b).as_slice(), want.as_ref());
        assert_ne!(v1_key(&a, &b), v1_key(&b, &a));
    }
}
