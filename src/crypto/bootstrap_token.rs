//! Bootstrap tokens: only their hash is stored; presented tokens are compared in constant time.

/// Hex SHA-256 of a bootstrap token (what the agents keyspace stores).
pub fn hash_token(token: &str) -> String {
    hex::encode(ring::digest::digest(
        &ring::digest::SHA256,
        token.as_bytes(),
    ))
}

/// Whether `presented` hashes to `stored_hex`, comparing the two digests in constant time
/// (no early exit). A malformed `stored_hex` never matches.
pub fn token_matches(stored_hex: &str, presented: &str) -> bool {
    let mut stored = [0u8; 32];
    if hex::decode_to_slice(stored_hex, &mut stored).is_err() {
        return false;
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, presented.as_bytes());
    let diff = stored
        .iter()
        .zip(digest.as_ref())
        .fold(0u8, |acc, (a, b)| acc | (a ^ b));
    // Keep the fold from being turned into an early-exit comparison.
    std::hint::black_box(diff) == 0
}
