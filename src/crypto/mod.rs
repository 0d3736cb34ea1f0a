//! All cryptography of the gateway, in one `unsafe`-free module.
//!
//! | file | what |
//! |---|---|
//! | [`random`] | system randomness (ring `SystemRandom`): bytes, URL-safe tokens, UUID v4 |
//! | [`keys`] | long-term Ed25519 keys: generate, sign, PKCS#8 / SPKI PEM files, key id |
//! | [`verify`](mod@verify) | Ed25519 verification, single and batched, with one strict rule set |
//! | [`aead`] | ChaCha20-Poly1305 (ring) sealing/opening in place, v2 nonce layout |
//! | [`kdf`] | v1 session key, X25519 ephemeral agreement, HKDF-SHA256, v2 session keys |
//! | [`token`] | the session token: a hand-written EdDSA JWT |
//! | [`bootstrap_token`] | bootstrap token hashing and constant-time comparison |
//!
//! Nothing here does network IO or reads the clock: time is an argument (`now`). The only file
//! system access is reading and writing key files in [`keys`].
//!
//! Verification rule (see the [`verify`](mod@verify) module): RFC 8032 cofactorless equation
//! `[s]B = R + [k]A`, with canonical encodings of `A` and `R`, `A` and `R` not of small order,
//! and `s < L`; the ring and dalek back ends and the batch path all apply it.
#![forbid(unsafe_code)]

pub mod aead;
pub mod bootstrap_token;
pub mod kdf;
pub mod keys;
mod pem;
pub mod random;
pub mod token;
pub mod verify;

#[cfg(test)]
mod timing;

pub use aead::{v2_nonce, AeadError, AeadKey};
pub use bootstrap_token::{hash_token, token_matches};
pub use kdf::{derive_v2, hkdf_sha256, v1_key, Ephemeral, KdfError, SessionKeys};
pub use keys::{
    key_id, load_private, load_public, public_from_spki_pem, public_to_spki_pem, write_keypair,
    KeyError, SigningKey,
};
pub use token::{Claims, TokenError};
pub use verify::{
    verify, verify_batch, verify_batch_parsed, verify_dalek, verify_ring, BatchItem, ParsedItem,
    PublicKey,
};
