//! Ad-hoc timings for the report (not benches, not assertions). Run on an idle machine:
//! `cargo test --release --lib crypto::timing -- --ignored --nocapture --test-threads=1`

use std::hint::black_box;
use std::time::Instant;

use super::keys::SigningKey;
use super::verify::{verify_batch, verify_dalek, verify_ring, BatchItem};

/// Runs `f` `n` times and prints the mean in µs.
fn time(label: &str, n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n.div_ceil(10) {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(n);
    println!("{label:<48} {us:>9.2} µs");
    us
}

#[test]
#[ignore = "timing, run by hand in release mode"]
fn signatures() {
    let key = SigningKey::generate();
    let msg = [0x5au8; 100];
    let sig = key.sign(&msg);
    let public = key.public();
    let n = 2000;
    time("ed25519 verify ring (strict pre-check)", n, || {
        assert!(verify_ring(black_box(&public), &msg, &sig));
    });
    time("ed25519 verify dalek (strict pre-check)", n, || {
        assert!(verify_dalek(black_box(&public), &msg, &sig));
    });
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&public).unwrap();
    let dsig = ed25519_dalek::Signature::from_bytes(&sig);
    time("ed25519 dalek verify_strict (key pre-parsed)", n, || {
        assert!(black_box(&vk).verify_strict(&msg, &dsig).is_ok());
    });
    time("ed25519 strict_encodings pre-check only", n * 50, || {
        assert!(super::verify::strict_encodings(black_box(&public), &sig));
    });
    time(
        "ed25519 key decompress (VerifyingKey::from_bytes)",
        n,
        || {
            assert!(ed25519_dalek::VerifyingKey::from_bytes(black_box(&public)).is_ok());
        },
    );
    let r: [u8; 32] = sig[..32].try_into().unwrap();
    let r_point = ed25519_dalek::VerifyingKey::from_bytes(&r)
        .unwrap()
        .to_edwards();
    time("R torsion check ([L]R, is_torsion_free)", n, || {
        assert!(black_box(&r_point).is_torsion_free());
    });
    time("ed25519 sign dalek", n, || {
        black_box(key.sign(black_box(&msg)));
    });
    let seed: [u8; 32] = [7; 32];
    let ring_key = ring::signature::Ed25519KeyPair::from_seed_unchecked(&seed).unwrap();
    time("ed25519 sign ring", n, || {
        black_box(ring_key.sign(black_box(&msg)));
    });

    for size in [2usize, 8, 16, 32, 64, 128] {
        let keys: Vec<SigningKey> = (0..size).map(|_| SigningKey::generate()).collect();
        let msgs: Vec<Vec<u8>> = (0..size).map(|i| vec![i as u8; 100]).collect();
        let sigs: Vec<[u8; 64]> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
        let pubs: Vec<[u8; 32]> = keys.iter().map(SigningKey::public).collect();
        let items: Vec<BatchItem<'_>> = (0..size)
            .map(|i| BatchItem {
                public: &pubs[i],
                msg: &msgs[i],
                sig: &sigs[i],
            })
            .collect();
        let mut out = Vec::new();
        let rounds = (4096 / size) as u32;
        let us = time(
            &format!("verify_batch of {size}, per batch"),
            rounds,
            || {
                verify_batch(black_box(&items), &mut out);
            },
        );
        assert!(out.iter().all(|b| *b));
        println!(
            "{:<48} {:>9.2} µs",
            format!("  -> per signature ({size})"),
            us / size as f64
        );
        if size == 64 {
            let mut bad_sigs = sigs.clone();
            bad_sigs[17][3] ^= 1;
            let bad_items: Vec<BatchItem<'_>> = (0..size)
                .map(|i| BatchItem {
                    public: &pubs[i],
                    msg: &msgs[i],
                    sig: &bad_sigs[i],
                })
                .collect();
            time("verify_batch of 64 with 1 forged (fallback)", 20, || {
                verify_batch(black_box(&bad_items), &mut out);
            });
        }
    }
}

#[test]
#[ignore = "timing, run by hand in release mode"]
fn key_agreement_and_aead() {
    use super::aead::{v2_nonce, AeadKey};
    use super::kdf::{derive_v2, Ephemeral};
    let (_, peer) = Ephemeral::generate();
    let n = 2000;
    time("x25519 ring: generate + agree", n, || {
        let (e, _) = Ephemeral::generate();
        black_box(e.agree(black_box(&peer)).unwrap());
    });
    time("x25519 ring: generate only", n, || {
        black_box(Ephemeral::generate());
    });
    let peer_pk = x25519_dalek::PublicKey::from(peer);
    time("x25519-dalek: static secret + public + agree", n, || {
        let s = x25519_dalek::StaticSecret::from(super::random::bytes::<32>());
        black_box(x25519_dalek::PublicKey::from(&s));
        black_box(s.diffie_hellman(black_box(&peer_pk)));
    });
    let s = x25519_dalek::StaticSecret::from([9u8; 32]);
    time("x25519-dalek: agree only", n, || {
        black_box(s.diffie_hellman(black_box(&peer_pk)));
    });
    time("hkdf derive_v2 (two keys)", n * 10, || {
        black_box(derive_v2(black_box(&[1; 32]), &[2; 16], &[3; 16]));
    });
    let key = AeadKey::new(&[4; 32]);
    for len in [256usize, 1024, 16 * 1024] {
        let mut sealed = vec![0x61u8; len];
        key.seal_in_place(&v2_nonce(1), b"id:event:c:1:1", &mut sealed);
        let mut buf = sealed.clone();
        time(&format!("chacha20-poly1305 open {len} B"), n * 5, || {
            buf.copy_from_slice(&sealed);
            black_box(
                key.open_in_place(&v2_nonce(1), b"id:event:c:1:1", &mut buf)
                    .unwrap(),
            );
        });
    }
}

#[test]
#[ignore = "timing, run by hand in release mode"]
fn token() {
    use super::token::{sign, verify, Claims};
    let key = SigningKey::generate();
    let claims = Claims {
        iss: "aegis-gateway".into(),
        sub: "0b1e7a52-3c3d-4d8e-9a53-1f0e2b3c4d5e".into(),
        pk: "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=".into(),
        iat: 1_700_000_000,
        exp: 1_700_086_400,
        jti: "abcdefghijklmnopqrstuv".into(),
        v: 2,
    };
    let token = sign(&key, &claims);
    time("token sign", 2000, || {
        black_box(sign(&key, black_box(&claims)));
    });
    time("token verify", 2000, || {
        black_box(verify(&key.public(), black_box(&token), 1_700_000_001).unwrap());
    });
}
