//! The protocol layer: envelope parsing (simd-json tape vs serde_json), v2 sealing/opening of a
//! whole frame, the crypto floor of an inbound v2 message against the gateway session path
//! (DESIGN.md §6: ≤ 1.25 ×), and the v2 handshake through `Session` against its crypto floor
//! (≤ 1.2 ×).
//!
//! `cargo bench --bench protocol -- --noplot`

mod common;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use aegis_gateway::crypto::{aead, verify_batch, AeadKey, BatchItem, SigningKey};
use aegis_gateway::protocol::envelope::{self, Envelope, MsgType};
use aegis_gateway::protocol::payloads::decode_b64_exact;
use aegis_gateway::protocol::session::{Session, VerifyJob};
use aegis_gateway::protocol::{frame, sigstr};
use base64::Engine as _;
use common::clock::BenchClock;
use common::{Gateway, Registered, BATCH, EVENT_BODY_LEN, T0_MS, T0_S};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

/// The envelope as a borrowed serde struct: what a serde_json parser of the same fields does.
#[derive(serde::Deserialize)]
#[allow(dead_code)] // fields are read by the deserializer only
struct EnvelopeRef<'a> {
    #[serde(borrow)]
    id: &'a str,
    #[serde(rename = "type", borrow)]
    msg_type: &'a str,
    #[serde(borrow)]
    channel: &'a str,
    #[serde(borrow)]
    payload: &'a str,
    timestamp: i64,
    #[serde(default, borrow)]
    nonce: Option<&'a str>,
    #[serde(default, borrow)]
    signature: Option<&'a str>,
    #[serde(default, borrow)]
    headers: BTreeMap<&'a str, &'a str>,
}

/// One agent linked by hand (keys known) and `n` consecutive sealed events from it.
struct Inbound {
    agent_pub: [u8; 32],
    rx: AeadKey,
    frames: Vec<Vec<u8>>,
}

impl Inbound {
    fn new(n: usize) -> Self {
        let gw = SigningKey::generate();
        let (mut agent, keys) = common::manual_link(&gw, &aegis_gateway::crypto::random::uuid_v4());
        let body = common::event_body(EVENT_BODY_LEN);
        let channel = format!("agent.{}.threats", agent.ident());
        let frames = (0..n)
            .map(|_| {
                let f = agent.message(&channel, MsgType::Event, &body, T0_S, Vec::new());
                f.expect("authenticated").into_bytes()
            })
            .collect();
        Inbound {
            agent_pub: agent.key().public(),
            rx: AeadKey::new(&keys.a2g),
            frames,
        }
    }
}

/// The crypto floor of inbound v2 messages: parse every envelope, verify all signatures in one
/// batch, open every payload. Signature inputs, AAD and base64 decoding are included (no
/// verify or open is possible without them); nothing else the session does is.
fn inbound_floor(bufs: &mut [Vec<u8>], rx: &AeadKey, public: &[u8; 32], ok: &mut Vec<bool>) {
    let envs: Vec<Envelope> = bufs
        .iter_mut()
        .map(|b| envelope::parse(b).expect("envelope"))
        .collect();
    let mut signed = Vec::with_capacity(envs.len());
    for e in &envs {
        let seq: u64 = e.header("seq").and_then(|s| s.parse().ok()).expect("seq");
        let sig = e.signature.as_deref().and_then(decode_b64_exact::<64>);
        let nonce = e.nonce.as_deref().expect("nonce");
        let s = sigstr::v2_msg(
            &e.id,
            e.msg_type.as_str(),
            &e.channel,
            e.timestamp,
            nonce,
            seq,
            &e.payload,
        );
        signed.push((seq, s, sig.expect("signature")));
    }
    let items: Vec<BatchItem<'_>> = signed
        .iter()
        .map(|(_, msg, sig)| BatchItem { public, msg, sig })
        .collect();
    verify_batch(&items, ok);
    assert!(ok.iter().all(|v| *v));
    for (e, (seq, _, _)) in envs.iter().zip(&signed) {
        let aad = sigstr::v2_aad(&e.id, e.msg_type.as_str(), &e.channel, e.timestamp, *seq);
        let mut buf = base64::engine::general_purpose::STANDARD
            .decode(e.payload.as_bytes())
            .expect("payload base64");
        let n = rx
            .open_in_place(&aead::v2_nonce(*seq), &aad, &mut buf)
            .expect("opens")
            .len();
        black_box(n);
    }
}

/// Checks a batch of the session's verify jobs at once, as the shard's batcher does.
fn verify_jobs(jobs: &[VerifyJob], ok: &mut Vec<bool>) {
    let items: Vec<BatchItem<'_>> = jobs
        .iter()
        .map(|j| BatchItem {
            public: &j.public,
            msg: &j.msg,
            sig: &j.sig,
        })
        .collect();
    verify_batch(&items, ok);
}

fn envelope_parse(c: &mut Criterion<BenchClock>) {
    let frame = Inbound::new(1).frames.remove(0);
    assert!(
        (650..=750).contains(&frame.len()),
        "envelope is {} B",
        frame.len()
    );
    let mut probe = frame.clone();
    let ours = envelope::parse(&mut probe).expect("ours parses");
    let theirs: EnvelopeRef<'_> = serde_json::from_slice(&frame).expect("serde parses");
    assert_eq!(
        (ours.payload.as_str(), ours.header("seq")),
        (theirs.payload, theirs.headers.get("seq").copied())
    );

    eprintln!(
        "fixture: v2 envelope of {} B (event body {EVENT_BODY_LEN} B)",
        frame.len()
    );
    let mut g = c.benchmark_group("envelope_parse_v2");
    g.throughput(Throughput::Bytes(frame.len() as u64));
    g.bench_function("simd_json_tape", |b| {
        b.iter_batched_ref(
            || frame.clone(),
            |buf| envelope::parse(buf).expect("parses"),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("serde_json_borrowed", |b| {
        b.iter(|| serde_json::from_slice::<EnvelopeRef<'_>>(black_box(&frame)).expect("parses"))
    });
    g.finish();
}

fn v2_frame(c: &mut Criterion<BenchClock>) {
    let gw = SigningKey::generate();
    let (mut agent, keys) = common::manual_link(&gw, &aegis_gateway::crypto::random::uuid_v4());
    let tx = AeadKey::new(&keys.g2a);
    let body = common::event_body(EVENT_BODY_LEN);
    let channel = format!("backend.{}.policies", agent.ident());
    let seal = |seq: u64| {
        let s = frame::Sealer {
            signer: &gw,
            aead: &tx,
            seq,
        };
        frame::sealed(
            &s,
            format!("cmd-{seq}"),
            MsgType::Request,
            channel.clone(),
            &body,
            T0_S,
            Vec::new(),
        )
        .to_json()
    };
    let mut g = c.benchmark_group("v2_frame");
    let mut seq = 0u64;
    g.bench_function("gateway_seal_to_json", |b| {
        b.iter(|| {
            seq += 1;
            seal(seq)
        })
    });
    // Agent::open checks seq order: frames are made in order between timed chunks.
    let mut next = 0u64;
    g.bench_function("agent_open", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let chunk = left.min(256);
                let frames: Vec<String> = (0..chunk)
                    .map(|_| {
                        next += 1;
                        seal(next)
                    })
                    .collect();
                let start = common::clock::clock_now();
                for f in &frames {
                    black_box(agent.open(f.as_bytes()).expect("agent opens"));
                }
                total += common::clock::clock_now() - start;
                left -= chunk;
            }
            total
        })
    });
    g.finish();
}

fn inbound_v2(c: &mut Criterion<BenchClock>) {
    let mut g = c.benchmark_group("inbound_v2_x64");
    g.throughput(Throughput::Elements(BATCH as u64));

    let input = Inbound::new(BATCH);
    let mut ok = Vec::with_capacity(BATCH);
    g.bench_function("crypto_floor", |b| {
        b.iter_batched_ref(
            || input.frames.clone(),
            |bufs| inbound_floor(bufs, &input.rx, &input.agent_pub, &mut ok),
            BatchSize::SmallInput,
        )
    });

    // One authenticated session, 64 frames. The session holds one outstanding signature check
    // at a time, so each frame is resumed with `on_verified(true)` at once and the 64 checks
    // are verified afterwards in one batch and asserted: the same work in a different order.
    let gw = Gateway::new();
    let mut reg = Registered::new(&gw);
    let body = common::event_body(EVENT_BODY_LEN);
    g.bench_function("session_one_session", |b| {
        b.iter_batched(
            || {
                let session = reg.connect(&gw, T0_MS);
                let frames: Vec<Vec<u8>> = (0..BATCH).map(|_| reg.event(&body, T0_MS)).collect();
                (session, frames)
            },
            |(mut session, mut frames)| {
                let env = gw.env();
                let mut jobs = Vec::with_capacity(BATCH);
                for f in &mut frames {
                    let step = session.on_frame(&env, f, T0_MS);
                    jobs.push(step.verify.expect("a sealed frame asks for a check"));
                    let actions = session.on_verified(&env, true, T0_MS);
                    assert!(common::routed(&actions), "{actions:?}");
                }
                verify_jobs(&jobs, &mut ok);
                assert!(ok.len() == BATCH && ok.iter().all(|v| *v));
                session
            },
            BatchSize::SmallInput,
        )
    });

    // The runtime's shape: 64 sessions with one frame each, one batch, then each resumes.
    let mut fleet: Vec<(Registered, Session)> = (0..BATCH)
        .map(|_| {
            let mut r = Registered::new(&gw);
            let s = r.connect(&gw, T0_MS);
            (r, s)
        })
        .collect();
    let mut now = T0_MS;
    g.bench_function("session_64_sessions", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                // 10 ms per round keeps each session far below its message rate limit.
                now += 10;
                let mut frames: Vec<Vec<u8>> =
                    fleet.iter_mut().map(|(r, _)| r.event(&body, now)).collect();
                let start = common::clock::clock_now();
                let env = gw.env();
                let mut jobs = Vec::with_capacity(BATCH);
                for ((_, s), f) in fleet.iter_mut().zip(&mut frames) {
                    jobs.push(s.on_frame(&env, f, now).verify.expect("check"));
                }
                verify_jobs(&jobs, &mut ok);
                for ((_, s), verdict) in fleet.iter_mut().zip(&ok) {
                    let actions = s.on_verified(&env, *verdict, now);
                    assert!(common::routed(&actions), "{actions:?}");
                }
                total += common::clock::clock_now() - start;
            }
            total
        })
    });
    g.finish();
}

fn handshake_v2(c: &mut Criterion<BenchClock>) {
    let mut g = c.benchmark_group("handshake_v2");
    let input = common::HandshakeInput::new();
    g.bench_function("crypto_floor", |b| b.iter(|| input.floor(false)));
    g.bench_function("crypto_floor_3_signatures", |b| {
        b.iter(|| input.floor(true))
    });

    // A registered agent reconnecting: M1 → signature check → R1 (reconnect storms are this).
    let gw = Gateway::new();
    let mut reg = Registered::new(&gw);
    g.bench_function("session_m1_to_r1", |b| {
        b.iter_batched(
            || (reg.session(T0_MS), reg.m1(T0_MS)),
            |(mut session, mut m1)| {
                let actions = common::m1_to_r1(&gw, &mut session, &mut m1, T0_MS);
                assert!(session.is_authenticated(), "{actions:?}");
                (session, actions)
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::clock::config_cpu();
    targets = envelope_parse, v2_frame, inbound_v2, handshake_v2
}
criterion_main!(benches);
