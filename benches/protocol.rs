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

use aegis_gateway::crypto::{AeadKey, SigningKey};
use aegis_gateway::protocol::envelope::{self, MsgType};
use aegis_gateway::protocol::frame;
use common::clock::BenchClock;
use common::work::{self, Fleet, HandshakeFloor, HandshakeSession, InboundFloor, OneSession};
use common::{BATCH, EVENT_BODY_LEN, T0_S};
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

fn envelope_parse(c: &mut Criterion<BenchClock>) {
    let frame = InboundFloor::new(1).frame().to_vec();
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
    work::bench(&mut g, "crypto_floor", &mut InboundFloor::new(BATCH));
    work::bench(&mut g, "session_one_session", &mut OneSession::new());
    work::bench(&mut g, "session_64_sessions", &mut Fleet::new());
    g.finish();
}

fn handshake_v2(c: &mut Criterion<BenchClock>) {
    let mut g = c.benchmark_group("handshake_v2");
    work::bench(&mut g, "crypto_floor", &mut HandshakeFloor::new(false, 1));
    let mut floor3 = HandshakeFloor::new(true, 1);
    work::bench(&mut g, "crypto_floor_3_signatures", &mut floor3);
    work::bench(&mut g, "session_m1_to_r1", &mut HandshakeSession::new(1));
    g.finish();
}

/// The two DESIGN.md §6 ratios measured pairwise (alternating runs), which a shared machine
/// disturbs far less than two criterion benches run one after the other. Skipped with
/// `--test`/`--list`, and when a filter is given that does not match `paired`.
fn paired_ratios(_: &mut Criterion<BenchClock>) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
    if args.iter().any(|a| a == "--test" || a == "--list")
        || !(filters.is_empty() || filters.iter().any(|f| "paired".contains(f.as_str())))
    {
        return;
    }
    let report = |what: &str, (q1, med, q3): (f64, f64, f64)| {
        println!("paired/{what:44} ratio median {med:.3} (IQR {q1:.3}-{q3:.3})");
    };
    let mut floor = InboundFloor::new(BATCH);
    report(
        "inbound session_64_sessions / crypto_floor",
        work::paired(150, &mut floor, &mut Fleet::new()),
    );
    report(
        "inbound session_one_session / crypto_floor",
        work::paired(150, &mut floor, &mut OneSession::new()),
    );
    let mut floor = HandshakeFloor::new(false, 4);
    let mut session = HandshakeSession::new(4);
    report(
        "handshake session_m1_to_r1 / crypto_floor",
        work::paired(150, &mut floor, &mut session),
    );
    report(
        "handshake session_m1_to_r1 / crypto_floor_3_sig",
        work::paired(150, &mut HandshakeFloor::new(true, 4), &mut session),
    );
}

criterion_group! {
    name = benches;
    config = common::clock::config_cpu();
    targets = envelope_parse, v2_frame, inbound_v2, handshake_v2, paired_ratios
}
criterion_main!(benches);
