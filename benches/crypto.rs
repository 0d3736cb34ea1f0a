//! Crypto primitives as the gateway uses them: Ed25519 verify (ring, dalek, dalek batch per
//! signature), sign, ChaCha20-Poly1305 seal/open, X25519, the EdDSA session token, and the v2
//! handshake crypto floor (DESIGN.md §6).
//!
//! `cargo bench --bench crypto -- --noplot`

mod common;

use common::clock::BenchClock;

use std::hint::black_box;

use aegis_gateway::crypto::kdf::Ephemeral;
use aegis_gateway::crypto::{
    token, v2_nonce, verify, verify_batch, verify_dalek, verify_ring, AeadKey, BatchItem,
    SigningKey,
};
use aegis_gateway::protocol::sigstr;
use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};

/// Batch sizes of the verify batcher (1 under light load, up to 64 under load; 128 to see the
/// trend).
const BATCH_SIZES: [usize; 5] = [1, 8, 32, 64, 128];

/// AEAD message sizes.
const AEAD_SIZES: [usize; 3] = [256, 1024, 16 * 1024];

fn ed25519(c: &mut Criterion<BenchClock>) {
    let keys: Vec<SigningKey> = (0..128).map(|_| SigningKey::generate()).collect();
    let publics: Vec<[u8; 32]> = keys.iter().map(SigningKey::public).collect();
    let msgs: Vec<Vec<u8>> = (0..128).map(common::v2_signed_string).collect();
    let sigs: Vec<[u8; 64]> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
    let (pk, msg, sig) = (&publics[0], &msgs[0], &sigs[0]);
    assert!(verify_ring(pk, msg, sig) && verify_dalek(pk, msg, sig));

    eprintln!("fixture: v2 signature input of {} B", msg.len());
    let mut g = c.benchmark_group("ed25519_600B");
    g.throughput(Throughput::Elements(1));
    g.bench_function("verify_ring", |b| {
        b.iter(|| verify_ring(black_box(pk), black_box(msg), black_box(sig)))
    });
    g.bench_function("verify_dalek", |b| {
        b.iter(|| verify_dalek(black_box(pk), black_box(msg), black_box(sig)))
    });
    g.bench_function("sign_dalek", |b| b.iter(|| keys[0].sign(black_box(msg))));
    g.finish();

    let items: Vec<BatchItem<'_>> = (0..128)
        .map(|i| BatchItem {
            public: &publics[i],
            msg: &msgs[i],
            sig: &sigs[i],
        })
        .collect();
    let mut g = c.benchmark_group("ed25519_verify_batch_600B");
    for n in BATCH_SIZES {
        let batch = &items[..n];
        let mut out = Vec::with_capacity(n);
        verify_batch(batch, &mut out);
        assert!(out.len() == n && out.iter().all(|ok| *ok));
        // Per signature: criterion reports elements/s; time per element = time / n.
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::from_parameter(n), &batch, |b, batch| {
            b.iter(|| {
                verify_batch(black_box(batch), &mut out);
                out.len()
            })
        });
    }
    g.finish();
}

fn aead(c: &mut Criterion<BenchClock>) {
    let key = AeadKey::new(&[7u8; 32]);
    let aad = sigstr::v2_aad(
        "msg-17",
        "event",
        "agent.0f8e4a52-3c1d-4b7e-9a26-5d0c8b1e2f47.threats",
        common::T0_S,
        17,
    );
    let nonce = v2_nonce(17);
    let mut g = c.benchmark_group("chacha20poly1305");
    for size in AEAD_SIZES {
        let plain = vec![0x5au8; size];
        let mut sealed = plain.clone();
        key.seal_in_place(&nonce, &aad, &mut sealed);
        g.throughput(Throughput::Bytes(size as u64));
        g.bench_with_input(BenchmarkId::new("seal", size), &plain, |b, plain| {
            b.iter_batched_ref(
                || {
                    let mut v = Vec::with_capacity(plain.len() + 16);
                    v.extend_from_slice(plain);
                    v
                },
                |buf| key.seal_in_place(&nonce, &aad, buf),
                BatchSize::SmallInput,
            )
        });
        g.bench_with_input(BenchmarkId::new("open", size), &sealed, |b, sealed| {
            b.iter_batched_ref(
                || sealed.clone(),
                |buf| {
                    let n = key.open_in_place(&nonce, &aad, buf).expect("opens").len();
                    assert_eq!(n, size);
                },
                BatchSize::SmallInput,
            )
        });
    }
    g.finish();
}

fn x25519_and_jwt(c: &mut Criterion<BenchClock>) {
    let (_, peer) = Ephemeral::generate();
    let mut g = c.benchmark_group("x25519");
    g.bench_function("generate_agree", |b| {
        b.iter(|| {
            let (eph, public) = Ephemeral::generate();
            (eph.agree(black_box(&peer)).expect("valid peer"), public)
        })
    });
    g.finish();

    let gw = SigningKey::generate();
    let claims = common::claims(
        common::AGENT_ID,
        "bm90IGEgcmVhbCBrZXkgYnV0IDMyIGJ5dGVzIGxvbmc=",
    );
    let jwt = token::sign(&gw, &claims);
    let public = gw.public();
    assert_eq!(
        token::verify(&public, &jwt, common::T0_S).expect("valid"),
        claims
    );
    let mut g = c.benchmark_group("jwt_eddsa");
    g.bench_function("sign", |b| b.iter(|| token::sign(&gw, black_box(&claims))));
    g.bench_function("verify", |b| {
        b.iter(|| token::verify(&public, black_box(&jwt), common::T0_S).expect("valid"))
    });
    g.finish();
}

fn handshake_floor(c: &mut Criterion<BenchClock>) {
    let input = common::HandshakeInput::new();
    assert!(verify(&input.agent_pub, &input.m1_signed, &input.m1_sig));
    // Not "handshake_v2": that group is protocol.rs's, and criterion keeps results per id.
    let mut g = c.benchmark_group("handshake_v2_floor");
    g.bench_function("crypto_floor", |b| b.iter(|| input.floor(false)));
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::clock::config_cpu();
    targets = ed25519, aead, x25519_and_jwt, handshake_floor
}
criterion_main!(benches);
