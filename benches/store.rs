//! Durable agent writes: `Store::put_agent` then `store.sync_blocking()` after every record, every
//! 100 and every 1000 records (group commit), reported per record.
//!
//! Each criterion sample call opens a fresh store in a new temp dir (untimed), so the database
//! does not grow across the run and disk use stays bounded.
//!
//! `cargo bench --bench store -- --noplot`

mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use aegis_gateway::crypto::{hash_token, random};
use aegis_gateway::protocol::payloads::b64;
use aegis_gateway::store::{AgentRecord, Store};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

/// Records per sync.
const GROUPS: [u64; 3] = [1, 100, 1000];

/// A record as registration writes it (~480 B of JSON).
fn record() -> AgentRecord {
    AgentRecord {
        agent_uid: random::uuid_v4(),
        public_key: b64(&random::bytes::<32>()),
        host_id: String::new(),
        agent_id: common::AGENT_ID.to_string(),
        org_id: "org-7f3c2a".to_string(),
        platform: serde_json::json!({"os": "linux", "arch": "x86_64", "kernel": "6.8.0-45-generic", "distro": "ubuntu-24.04"}),
        version: "2.3.1".to_string(),
        capabilities: serde_json::json!(["ebpf", "policy", "rollback", "process-tree"]),
        network: serde_json::json!({"hostname": "web-01.prod.example.net", "ip": "10.20.30.40"}),
        token_hash: hash_token(&random::token_urlsafe(32)),
        registered_at: common::T0_S,
        last_seen: common::T0_S,
        profile: 2,
    }
}

/// Gives `rec` the `i`-th uid and host id (uuid-shaped, unique per store).
fn set_ids(rec: &mut AgentRecord, i: u64) {
    rec.agent_uid.clear();
    let _ = write!(
        rec.agent_uid,
        "{:08x}-0000-4000-8000-{:012x}",
        i >> 32,
        i & 0xffff_ffff_ffff
    );
    rec.host_id.clear();
    let _ = write!(rec.host_id, "host-{i:010}");
}

fn put_agent_sync(c: &mut Criterion) {
    let mut rec = record();
    // Check the fixture once: the record round-trips and is about the size we claim.
    {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("store opens");
        set_ids(&mut rec, 1);
        store.put_agent(&rec).expect("put");
        store.sync_blocking().expect("sync");
        assert_eq!(
            store.get_agent(&rec.agent_uid).expect("get").as_ref(),
            Some(&rec)
        );
        let len = serde_json::to_vec(&rec).expect("json").len();
        assert!((400..=600).contains(&len), "record JSON is {len} B");
    }

    let mut g = c.benchmark_group("store_put_agent_sync");
    for n in GROUPS {
        g.throughput(Throughput::Elements(n));
        g.bench_with_input(BenchmarkId::new("records_per_sync", n), &n, |b, &n| {
            b.iter_custom(|iters| {
                let dir = tempfile::tempdir().expect("temp dir");
                let store = Store::open(dir.path()).expect("store opens");
                let (fsyncs_before, _) = store.commit_stats();
                let mut i = 0u64;
                let start = Instant::now();
                for _ in 0..iters {
                    for _ in 0..n {
                        i += 1;
                        set_ids(&mut rec, i);
                        store.put_agent(&rec).expect("put");
                    }
                    store.sync_blocking().expect("sync");
                }
                let elapsed = start.elapsed();
                let (fsyncs, _) = store.commit_stats();
                assert!(
                    fsyncs - fsyncs_before >= iters,
                    "one fsync per group at least"
                );
                assert_eq!(store.agent_count(), i);
                drop(store);
                elapsed.max(Duration::from_nanos(1))
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::clock::config();
    targets = put_agent_sync
}
criterion_main!(benches);
