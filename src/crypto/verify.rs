//! Ed25519 signature verification: single and batched, with one rule set for every path.
//!
//! **Rule** (what "valid" means for [`verify`], [`verify_ring`], [`verify_dalek`]): the
//! RFC 8032 cofactorless equation `[s]B = R + [k]A`, checked by recomputing `R` and comparing
//! encodings, plus *strict encodings*: `A` and `R` canonical (`y < p`, no "negative zero"
//! `x`), neither of small order, and `s < L`. That is dalek's `verify_strict` with canonical
//! `A` added, or ring's check with canonical `A` and small-order `A`/`R` rejection added. The
//! encoding checks are byte comparisons done here ([`strict_encodings`]) before either back
//! end runs, so both back ends give the same answer on every input.
//!
//! **Batch** ([`verify_batch`]): items failing the encoding checks or whose key does not
//! decode are `false` and never enter the batch; the rest go through dalek's (cofactorless)
//! batch equation, and on failure each is verified singly. So the batch path gives exactly
//! the single answer for every input except one case, which no cheap check can catch: a
//! signature whose `R` (or key `A`) carries a torsion component, so that
//! `R + [k]A - [s]B` is a non-zero point of order 2, 4 or 8. Single verification rejects it;
//! the batch accepts it when the transcript-derived 128-bit coefficient of that item kills
//! the torsion (probability 1/2, 1/4 or 1/8). Only the holder of the private key can make
//! such a signature (changing `R` changes `k`, so a third party cannot move a valid
//! signature there), and it can sign the same message validly anyway: no forgery, no
//! replay beyond what the key holder can do. Closing the gap needs `[L]R` per item
//! (measured 32 µs, more than batching saves) or a cofactored single check.

use ed25519_dalek::{Signature, Verifier as _, VerifyingKey};

/// The prime `p = 2^255 - 19`, little-endian.
const P_LE: [u8; 32] = {
    let mut p = [0xff; 32];
    p[0] = 0xed;
    p[31] = 0x7f;
    p
};
/// The group order `L = 2^252 + 27742317777372353535851937790883648493`, little-endian.
const L_LE: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];
/// `y` coordinates (sign bit cleared) of the eight points of small order:
/// `y = 0` (order 4, both signs of `x`), `y = 1` (identity), `y = p - 1` (order 2), and two
/// `y` values of order 8 (both signs of `x`). With canonical encodings required, masking the
/// sign bit covers all eight encodings.
const SMALL_ORDER_Y: [[u8; 32]; 5] = [
    [0; 32],
    {
        let mut one = [0; 32];
        one[0] = 1;
        one
    },
    {
        let mut p_minus_1 = P_LE;
        p_minus_1[0] = 0xec;
        p_minus_1
    },
    [
        0x26, 0xe8, 0x95, 0x8f, 0xc2, 0xb2, 0x27, 0xb0, 0x45, 0xc3, 0xf4, 0x89, 0xf2, 0xef, 0x98,
        0xf0, 0xd5, 0xdf, 0xac, 0x05, 0xd3, 0xc6, 0x33, 0x39, 0xb1, 0x38, 0x02, 0x88, 0x6d, 0x53,
        0xfc, 0x05,
    ],
    [
        0xc7, 0x17, 0x6a, 0x70, 0x3d, 0x4d, 0xd8, 0x4f, 0xba, 0x3c, 0x0b, 0x76, 0x0d, 0x10, 0x67,
        0x0f, 0x2a, 0x20, 0x53, 0xfa, 0x2c, 0x39, 0xcc, 0xc6, 0x4e, 0xc7, 0xfd, 0x77, 0x92, 0xac,
        0x03, 0x7a,
    ],
];

/// `a < b` for little-endian 256-bit numbers.
fn lt_le(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().rev().cmp(b.iter().rev()) == std::cmp::Ordering::Less
}

/// A point encoding that is canonical and not of small order.
fn point_ok(enc: &[u8; 32]) -> bool {
    let mut y = *enc;
    y[31] &= 0x7f;
    let x_negative = enc[31] & 0x80 != 0;
    if !lt_le(&y, &P_LE) {
        return false; // y >= p: non-canonical
    }
    let [_, one, p_minus_1, ..] = &SMALL_ORDER_Y;
    if x_negative && (y == *one || y == *p_minus_1) {
        return false; // x = 0 encoded as "negative zero"
    }
    !SMALL_ORDER_Y.contains(&y)
}

/// The encoding checks of the rule above: `A` and `R` canonical and not of small order,
/// `s < L`. Cheap (byte comparisons only). Does not check that the points decode.
pub fn strict_encodings(public: &[u8; 32], sig: &[u8; 64]) -> bool {
    let (r, s) = sig.split_at(32);
    let (Ok(r), Ok(s)) = (<&[u8; 32]>::try_from(r), <&[u8; 32]>::try_from(s)) else {
        return false;
    };
    lt_le(s, &L_LE) && point_ok(public) && point_ok(r)
}

/// Verifies `sig` over `msg` by `public` with the fastest single back end (dalek; see the
/// module doc for the rule and the crate report for the measurements).
pub fn verify(public: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    verify_dalek(public, msg, sig)
}

/// [`verify`] with ring's `UnparsedPublicKey::verify` as the back end.
pub fn verify_ring(public: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    strict_encodings(public, sig)
        && ring::signature::UnparsedPublicKey::new(&ring::signature::ED25519, public)
            .verify(msg, sig)
            .is_ok()
}

/// [`verify`] with ed25519-dalek as the back end (cofactorless check after
/// [`strict_encodings`], which is `verify_strict` plus canonical `A`).
pub fn verify_dalek(public: &[u8; 32], msg: &[u8], sig: &[u8; 64]) -> bool {
    if !strict_encodings(public, sig) {
        return false;
    }
    match VerifyingKey::from_bytes(public) {
        Ok(key) => key.verify(msg, &Signature::from_bytes(sig)).is_ok(),
        Err(_) => false,
    }
}

/// A public key checked and decompressed once ([`strict_encodings`]' point rule plus a valid
/// curve point), for signers whose messages are verified many times (a session's agent).
/// Verifying with it skips the point decompression of `A` on every message.
#[derive(Clone, Copy, Debug)]
pub struct PublicKey {
    bytes: [u8; 32],
    key: VerifyingKey,
}

impl PublicKey {
    /// `None` for a non-canonical, small-order or undecodable key (which could never verify).
    pub fn parse(bytes: &[u8; 32]) -> Option<PublicKey> {
        if !point_ok(bytes) {
            return None;
        }
        let key = VerifyingKey::from_bytes(bytes).ok()?;
        Some(PublicKey { bytes: *bytes, key })
    }

    /// The raw key.
    pub fn bytes(&self) -> &[u8; 32] {
        &self.bytes
    }

    /// Single verification with the same rule as [`verify`].
    pub fn verify(&self, msg: &[u8], sig: &[u8; 64]) -> bool {
        strict_encodings(&self.bytes, sig)
            && self.key.verify(msg, &Signature::from_bytes(sig)).is_ok()
    }
}

/// One signature to check in a batch, with an already parsed key.
#[derive(Clone, Copy, Debug)]
pub struct ParsedItem<'a> {
    /// The signer's key.
    pub public: &'a PublicKey,
    /// The signed message.
    pub msg: &'a [u8],
    /// The signature `R ‖ s`.
    pub sig: &'a [u8; 64],
}

/// [`verify_batch`] for pre-parsed keys: same rule, same results, no decompression of `A`.
pub fn verify_batch_parsed(items: &[ParsedItem<'_>], out: &mut Vec<bool>) {
    out.clear();
    out.resize(items.len(), false);
    let mut index = Vec::with_capacity(items.len());
    let mut keys = Vec::with_capacity(items.len());
    let mut msgs = Vec::with_capacity(items.len());
    let mut sigs = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        if !strict_encodings(&item.public.bytes, item.sig) {
            continue;
        }
        index.push(i);
        keys.push(item.public.key);
        msgs.push(item.msg);
        sigs.push(Signature::from_bytes(item.sig));
    }
    let batch_ok = index.len() > 1 && ed25519_dalek::verify_batch(&msgs, &sigs, &keys).is_ok();
    for (((i, key), msg), sig) in index.into_iter().zip(&keys).zip(msgs).zip(&sigs) {
        if let Some(slot) = out.get_mut(i) {
            *slot = batch_ok || key.verify(msg, sig).is_ok();
        }
    }
}

/// One signature to check in a batch.
#[derive(Clone, Copy, Debug)]
pub struct BatchItem<'a> {
    /// The signer's raw Ed25519 public key.
    pub public: &'a [u8; 32],
    /// The signed message.
    pub msg: &'a [u8],
    /// The signature `R ‖ s`.
    pub sig: &'a [u8; 64],
}

/// Verifies many signatures at once; `out` is cleared, then holds one result per item, in order.
///
/// Items whose encodings fail [`strict_encodings`] or whose key does not decode are `false`
/// and kept out of the batch. One remaining item is verified singly; more go through
/// `ed25519_dalek::verify_batch`, and if that fails each is verified singly, so a bad
/// signature never makes a good one fail. Results equal [`verify`]'s item by item, except
/// for key-holder-crafted torsion signatures (see the module doc).
pub fn verify_batch(items: &[BatchItem<'_>], out: &mut Vec<bool>) {
    let parsed: Vec<Option<PublicKey>> = items.iter().map(|i| PublicKey::parse(i.public)).collect();
    let mut index = Vec::with_capacity(items.len());
    let mut good = Vec::with_capacity(items.len());
    for (i, (item, key)) in items.iter().zip(&parsed).enumerate() {
        if let Some(public) = key {
            index.push(i);
            good.push(ParsedItem {
                public,
                msg: item.msg,
                sig: item.sig,
            });
        }
    }
    let mut inner = Vec::with_capacity(good.len());
    verify_batch_parsed(&good, &mut inner);
    out.clear();
    out.resize(items.len(), false);
    for (i, ok) in index.into_iter().zip(inner) {
        if let Some(slot) = out.get_mut(i) {
            *slot = ok;
        }
    }
}

#[cfg(test)]
#[path = "verify_tests.rs"]
mod tests;
