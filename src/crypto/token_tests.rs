//! Tests of `token.rs`.

use super::*;
use crate::crypto::keys::SigningKey;

fn claims(now: i64) -> Claims {
    Claims {
        iss: ISSUER.to_string(),
        sub: "aegis-agent-001".to_string(),
        pk: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".to_string(),
        iat: now,
        exp: now + 86_400,
        jti: "b0b2c1e4-8f7e-4f5e-9d2a-0c5d1b7e3f10".to_string(),
        v: 2,
    }
}

fn b64(s: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(s)
}

#[test]
fn round_trip_and_header_shape() {
    let key = SigningKey::generate();
    let now = 1_700_000_000;
    let token = sign(&key, &claims(now));
    assert!(token.len() >= 20);
    assert_eq!(verify(&key.public(), &token, now).unwrap(), claims(now));
    let header = token.split('.').next().unwrap();
    let header = String::from_utf8(URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
    let digest = ring::digest::digest(&ring::digest::SHA256, &key.public());
    let kid = &hex::encode(digest.as_ref())[..16];
    assert_eq!(
        header,
        format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#)
    );
    // Signature is over the ASCII "header.claims" (checked with the plain verifier).
    let (input, sig) = token.rsplit_once('.').unwrap();
    let sig: [u8; 64] = URL_SAFE_NO_PAD.decode(sig).unwrap().try_into().unwrap();
    assert!(crate::crypto::verify::verify_ring(
        &key.public(),
        input.as_bytes(),
        &sig
    ));
}

#[test]
fn tampered_claims_fail() {
    let key = SigningKey::generate();
    let now = 1_700_000_000;
    let token = sign(&key, &claims(now));
    let parts: Vec<&str> = token.split('.').collect();
    let mut evil = claims(now);
    evil.sub = "someone-else".to_string();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        b64(serde_json::to_string(&evil).unwrap().as_bytes()),
        parts[2]
    );
    assert_eq!(
        verify(&key.public(), &forged, now),
        Err(TokenError::Signature)
    );
    // A flipped character of the signature.
    let mut chars: Vec<char> = token.chars().collect();
    let last = chars.len() - 2;
    chars[last] = if chars[last] == 'A' { 'B' } else { 'A' };
    let bad: String = chars.into_iter().collect();
    assert!(verify(&key.public(), &bad, now).is_err());
}

#[test]
fn expiry_is_strict() {
    let key = SigningKey::generate();
    let now = 1_700_000_000;
    let c = claims(now);
    let token = sign(&key, &c);
    assert!(verify(&key.public(), &token, c.exp - 1).is_ok());
    assert_eq!(
        verify(&key.public(), &token, c.exp),
        Err(TokenError::Expired {
            exp: c.exp,
            now: c.exp
        })
    );
}

#[test]
fn wrong_key_fails() {
    let key = SigningKey::generate();
    let other = SigningKey::generate();
    let now = 1_700_000_000;
    let token = sign(&key, &claims(now));
    assert!(matches!(
        verify(&other.public(), &token, now),
        Err(TokenError::UnknownKeyId(_))
    ));
    // Without a kid the signature check itself refuses it.
    let claims_json = serde_json::to_string(&claims(now)).unwrap();
    let token = sign_compact(&key, r#"{"alg":"EdDSA"}"#, &claims_json);
    assert!(verify(&key.public(), &token, now).is_ok());
    assert_eq!(
        verify(&other.public(), &token, now),
        Err(TokenError::Signature)
    );
}

#[test]
fn algorithm_issuer_and_shape_checks() {
    let key = SigningKey::generate();
    let now = 1_700_000_000;
    let claims_json = serde_json::to_string(&claims(now)).unwrap();
    for alg in ["none", "HS256", "eddsa"] {
        let t = sign_compact(&key, &format!(r#"{{"alg":"{alg}"}}"#), &claims_json);
        assert_eq!(
            verify(&key.public(), &t, now),
            Err(TokenError::Algorithm(alg.to_string()))
        );
    }
    let mut c = claims(now);
    c.iss = "evil".to_string();
    assert_eq!(
        verify(&key.public(), &sign(&key, &c), now),
        Err(TokenError::Issuer("evil".to_string()))
    );
    let good = sign(&key, &claims(now));
    let too_long = format!("{good}{}", "A".repeat(MAX_TOKEN_LEN));
    assert!(matches!(
        verify(&key.public(), &too_long, now),
        Err(TokenError::TooLong { .. })
    ));
    for bad in [
        "",
        "a",
        "a.b",
        "a.b.c.d",
        "...",
        "eyJhbGciOiJFZERTQSJ9..",
        "!!.??.**",
        "\u{e9}.\u{e9}.\u{e9}",
    ] {
        assert!(
            matches!(
                verify(&key.public(), bad, now),
                Err(TokenError::Malformed(_))
            ),
            "{bad:?}"
        );
    }
    // Padding is not base64url-without-padding.
    let padded = format!("{good}=");
    assert!(verify(&key.public(), &padded, now).is_err());
    // A claims part that verifies but is not our JSON shape.
    let t = sign_compact(&key, r#"{"alg":"EdDSA"}"#, r#"{"sub":"x"}"#);
    assert!(matches!(
        verify(&key.public(), &t, now),
        Err(TokenError::Malformed(_))
    ));
}

#[test]
fn rfc8037_a4_example() {
    // RFC 8037 A.1 key ("d" = RFC 8032 test 1 seed), A.4 signing input and signature.
    let d = URL_SAFE_NO_PAD
        .decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A")
        .unwrap();
    let key = SigningKey::from_seed(&d.try_into().unwrap());
    assert_eq!(
        b64(&key.public()),
        "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
    );
    let jws = sign_compact(&key, r#"{"alg":"EdDSA"}"#, "Example of Ed25519 signing");
    assert_eq!(
        jws,
        "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.\
hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    );
}
