//! Store tests on temporary directories.

use super::*;
use serde_json::json;

fn agent(uid: &str, host: &str) -> AgentRecord {
    AgentRecord {
        agent_uid: uid.into(),
        public_key: "MCowBQYDK2VwAyEA".into(),
        host_id: host.into(),
        agent_id: format!("agent-{host}"),
        org_id: "org-1".into(),
        platform: json!({"os": "linux", "arch": "amd64"}),
        version: "1.4.2".into(),
        capabilities: json!({"exec": true}),
        network: json!({"ip": "10.0.0.7"}),
        token_hash: hash_token("bootstrap-token-0123456789abcdef0123"),
        registered_at: 1_700_000_000,
        last_seen: 1_700_000_000,
        profile: 2,
    }
}

fn registration(id: &str, conn_id: u64, expires_at: i64) -> Registration {
    Registration {
        registration_id: id.into(),
        conn_id,
        agent_id: "aegis-agent".into(),
        request: crate::protocol::payloads::RegistrationRequest {
            org_id: "org-1".into(),
            host_id: "web-1".into(),
            agent_pubkey: "MCowBQYDK2VwAyEA".into(),
            agent_version: "1.4.2".into(),
            capabilities: json!([]),
            platform: json!({"os": "linux"}),
            network: json!({}),
            machine_id_hash: None,
        },
        nonce: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=".into(),
        server_time: "2024-01-01T00:00:00Z".into(),
        expires_at,
    }
}

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    (dir, store)
}

#[test]
fn store_and_waiter_are_thread_safe() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    fn send<T: Send + Unpin + 'static>() {}
    check::<Store>();
    send::<SyncWaiter>();
}

#[test]
fn put_get_remove_agent() {
    let (_dir, store) = open();
    let a = agent("uid-1", "web-1");
    assert_eq!(store.get_agent("uid-1").unwrap(), None);
    store.put_agent(&a).unwrap();
    assert_eq!(store.get_agent("uid-1").unwrap(), Some(a.clone()));
    assert_eq!(store.agent_count(), 1);
    assert_eq!(store.remove_agent("uid-1").unwrap(), Some(a));
    assert_eq!(store.get_agent("uid-1").unwrap(), None);
    assert_eq!(store.uids_for_host("web-1").unwrap(), Vec::<String>::new());
    assert_eq!(store.remove_agent("uid-1").unwrap(), None);
    assert_eq!(store.agent_count(), 0);
}

#[test]
fn host_index_maps_one_host_to_several_uids() {
    let (_dir, store) = open();
    store.put_agent(&agent("uid-b", "web-1")).unwrap();
    store.put_agent(&agent("uid-a", "web-1")).unwrap();
    store.put_agent(&agent("uid-c", "web-10")).unwrap();
    assert_eq!(store.uids_for_host("web-1").unwrap(), ["uid-a", "uid-b"]);
    assert_eq!(store.uids_for_host("web-10").unwrap(), ["uid-c"]);
    assert!(store.uids_for_host("web").unwrap().is_empty());
    store.remove_agent("uid-a").unwrap();
    assert_eq!(store.uids_for_host("web-1").unwrap(), ["uid-b"]);
}

#[test]
fn replacing_an_agent_moves_its_host_index_entry() {
    let (_dir, store) = open();
    store.put_agent(&agent("uid-1", "old-host")).unwrap();
    store.put_agent(&agent("uid-1", "new-host")).unwrap();
    assert!(store.uids_for_host("old-host").unwrap().is_empty());
    assert_eq!(store.uids_for_host("new-host").unwrap(), ["uid-1"]);
    assert_eq!(store.agent_count(), 1);
}

#[test]
fn keys_that_cannot_be_stored_are_refused_or_absent() {
    let (_dir, store) = open();
    let bad_host = agent("uid-1", "a\0b");
    assert!(matches!(
        store.put_agent(&bad_host),
        Err(StoreError::InvalidKey {
            field: "host_id",
            ..
        })
    ));
    let long_uid = "u".repeat(codec::MAX_KEY_PART + 1);
    assert!(store.put_agent(&agent(&long_uid, "h")).is_err());
    assert_eq!(store.get_agent(&long_uid).unwrap(), None);
    assert_eq!(store.get_agent("").unwrap(), None);
    assert!(store.uids_for_host("a\0").unwrap().is_empty());
    assert_eq!(store.agent_count(), 0);
}

#[test]
fn last_seen_moves_forward_and_never_revives_a_revoked_agent() {
    let (_dir, store) = open();
    let a = agent("uid-1", "web-1");
    store.put_agent(&a).unwrap();
    assert!(store.set_last_seen("uid-1", a.last_seen + 60).unwrap());
    assert!(store.set_last_seen("uid-1", a.last_seen + 5).unwrap());
    let got = store.get_agent("uid-1").unwrap().unwrap();
    assert_eq!(got.last_seen, a.last_seen + 60);
    assert_eq!(got.host_id, a.host_id);
    store.remove_agent("uid-1").unwrap();
    assert!(!store.set_last_seen("uid-1", a.last_seen + 120).unwrap());
    assert_eq!(store.get_agent("uid-1").unwrap(), None);
}

#[test]
fn list_agents_pages_in_uid_order() {
    let (_dir, store) = open();
    let mut uids: Vec<String> = [7, 3, 9, 1, 5, 2, 8]
        .iter()
        .map(|n| format!("uid-{n}"))
        .collect();
    for uid in &uids {
        store.put_agent(&agent(uid, "h")).unwrap();
    }
    uids.sort();
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list_agents(cursor.as_deref(), 3).unwrap();
        assert!(page.len() <= 3);
        if page.is_empty() {
            break;
        }
        cursor = page.last().map(|r| r.agent_uid.clone());
        seen.extend(page.into_iter().map(|r| r.agent_uid));
    }
    assert_eq!(seen, uids);
    // A cursor that is not a stored uid starts right after it.
    let page = store.list_agents(Some("uid-4"), 2).unwrap();
    let got: Vec<_> = page.iter().map(|r| r.agent_uid.as_str()).collect();
    assert_eq!(got, ["uid-5", "uid-7"]);
    assert!(store.list_agents(None, 0).unwrap().is_empty());
}

#[test]
fn registrations_put_get_take_and_purge() {
    let (_dir, store) = open();
    let now = 1_700_000_000;
    store
        .put_registration(&registration("r-live", 11, now + 300))
        .unwrap();
    store
        .put_registration(&registration("r-old", 12, now - 1))
        .unwrap();
    store
        .put_registration(&registration("r-edge", 13, now))
        .unwrap();
    let live = store.get_registration("r-live").unwrap().unwrap();
    assert_eq!(live, registration("r-live", 11, now + 300));
    assert!(!live.is_expired(now));

    assert_eq!(store.purge_expired_registrations(now).unwrap(), 2);
    assert_eq!(store.get_registration("r-old").unwrap(), None);
    assert_eq!(store.get_registration("r-edge").unwrap(), None);

    // Another connection cannot take it, and leaves it untouched.
    assert_eq!(store.take_registration("r-live", 99).unwrap(), None);
    assert!(store.get_registration("r-live").unwrap().is_some());
    assert_eq!(store.take_registration("r-live", 11).unwrap(), Some(live));
    assert_eq!(store.take_registration("r-live", 11).unwrap(), None);

    store
        .put_registration(&registration("r-x", 1, now))
        .unwrap();
    assert!(store.remove_registration("r-x").unwrap());
    assert!(!store.remove_registration("r-x").unwrap());
}

#[test]
fn the_periodic_sweep_purges_expired_registrations() {
    let (_dir, store) = open();
    let now = 1_700_000_040; // a multiple of the retention period: this sweep runs retention
    assert_eq!(now % 60, 0);
    store
        .put_registration(&registration("r-gone", 1, now - 1))
        .unwrap();
    store
        .put_registration(&registration("r-kept", 2, now + 300))
        .unwrap();
    super::embedded::sweep(&store, now);
    assert_eq!(store.get_registration("r-gone").unwrap(), None);
    assert!(store.get_registration("r-kept").unwrap().is_some());
}

#[test]
fn purge_handles_more_than_one_chunk_and_corrupt_records() {
    let (_dir, store) = open();
    let now = 1_000;
    for i in 0..(registrations::PURGE_CHUNK + 10) {
        store
            .put_registration(&registration(&format!("r-{i:05}"), 1, now - 1))
            .unwrap();
    }
    store
        .put_registration(&registration("r-keep", 1, now + 1))
        .unwrap();
    store
        .keyspaces()
        .unwrap()
        .registrations
        .insert("r-junk", "{not json")
        .unwrap();
    let expected = registrations::PURGE_CHUNK + 11;
    assert_eq!(store.purge_expired_registrations(now).unwrap(), expected);
    assert_eq!(store.keyspaces().unwrap().registrations.len().unwrap(), 1);
    assert!(store.get_registration("r-keep").unwrap().is_some());
}

#[test]
fn corrupt_agent_record_is_an_error_not_a_panic() {
    let (_dir, store) = open();
    store
        .keyspaces()
        .unwrap()
        .agents
        .insert("uid-x", "[1,2")
        .unwrap();
    assert!(matches!(
        store.get_agent("uid-x"),
        Err(StoreError::Decode { what: "agent", .. })
    ));
    assert!(store.list_agents(None, 10).is_err());
    // Revocation still removes it.
    assert_eq!(store.remove_agent("uid-x").unwrap(), None);
    assert!(!store
        .keyspaces()
        .unwrap()
        .agents
        .contains_key("uid-x")
        .unwrap());
    assert_eq!(store.agent_count(), 0);
}

#[test]
fn synced_data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let a = agent("uid-1", "web-1");
    {
        let store = Store::open(dir.path()).unwrap();
        store.put_agent(&a).unwrap();
        store.put_agent(&agent("uid-2", "web-1")).unwrap();
        store.remove_agent("uid-2").unwrap();
        store.put_registration(&registration("r-1", 5, 10)).unwrap();
        store.sync_blocking().unwrap();
        let (fsyncs, requests) = store.commit_stats();
        assert_eq!((fsyncs, requests), (1, 1));
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.get_agent("uid-1").unwrap(), Some(a));
    assert_eq!(store.get_agent("uid-2").unwrap(), None);
    assert_eq!(store.uids_for_host("web-1").unwrap(), ["uid-1"]);
    assert_eq!(store.agent_count(), 1);
    assert!(store.get_registration("r-1").unwrap().is_some());
}

#[test]
fn reopen_after_drop_without_sync_or_close() {
    let dir = tempfile::tempdir().unwrap();
    let a = agent("uid-1", "web-1");
    {
        let store = Store::open(dir.path()).unwrap();
        let clone = store.clone();
        store.put_agent(&a).unwrap();
        drop(store);
        clone.set_last_seen("uid-1", a.last_seen + 1).unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(
        store.get_agent("uid-1").unwrap().map(|r| r.last_seen),
        Some(a.last_seen + 1)
    );
}

#[test]
fn concurrent_waiters_from_several_threads_share_fsyncs() {
    let dir = tempfile::tempdir().unwrap();
    let (open_gate, gate) = crossbeam_channel::bounded::<()>(0);
    let store = Store::open_inner(dir.path(), &StoreOptions::default(), Some(gate)).unwrap();
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let waiters: Vec<_> = (0..50)
                    .map(|i| {
                        store
                            .put_agent(&agent(&format!("uid-{t}-{i}"), "h"))
                            .unwrap();
                        store.sync()
                    })
                    .collect();
                waiters
                    .into_iter()
                    .map(futures_lite::future::block_on)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    // Wait (no timing assertion) until all 200 requests are queued, then let the thread run.
    while store.committer.queued() < 200 {
        std::thread::yield_now();
    }
    drop(open_gate);
    for t in threads {
        for outcome in t.join().unwrap() {
            outcome.unwrap();
        }
    }
    let (fsyncs, requests) = store.commit_stats();
    assert_eq!(requests, 200);
    assert!(fsyncs < requests, "fsyncs={fsyncs} requests={requests}");
    assert_eq!(store.agent_count(), 200);
}

#[test]
fn ungated_concurrent_syncs_all_complete() {
    let (_dir, store) = open();
    let threads: Vec<_> = (0..3)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                for i in 0..20 {
                    store
                        .put_agent(&agent(&format!("uid-{t}-{i}"), "h"))
                        .unwrap();
                    store.sync_blocking().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let (fsyncs, requests) = store.commit_stats();
    assert_eq!(requests, 60);
    assert!(fsyncs >= 1 && fsyncs <= requests);
}

#[test]
fn pending_waiter_is_answered_when_the_store_drops() {
    let (_dir, store) = open();
    store.put_agent(&agent("uid-1", "h")).unwrap();
    let waiter = store.sync();
    drop(store);
    futures_lite::future::block_on(waiter).unwrap();
}

#[test]
fn sync_completes_on_a_glommio_executor() {
    let (_dir, store) = open();
    let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
        .io_memory(64 << 10)
        .name("store-test")
        .spawn(move || async move {
            store.put_agent(&agent("uid-g", "h")).unwrap();
            store.sync().await.unwrap();
            store.commit_stats()
        })
        .unwrap();
    let (fsyncs, requests) = handle.join().unwrap();
    assert_eq!((fsyncs, requests), (1, 1));
}

#[test]
fn token_hash_is_sha256_hex() {
    // FIPS 180-2 test vector for "abc".
    assert_eq!(
        hash_token("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn token_matching() {
    let token = "q2Jt0x9Q-Vb3yLz7hK1sNw4eRf6uTg8pAa5cXdE0";
    let stored = hash_token(token);
    assert!(token_matches(&stored, token));
    assert!(!token_matches(
        &stored,
        "q2Jt0x9Q-Vb3yLz7hK1sNw4eRf6uTg8pAa5cXdE1"
    ));
    assert!(!token_matches(&stored, ""));
    assert!(!token_matches("zz", token));
    assert!(!token_matches(&stored[..62], token));
    assert!(token_matches(&stored.to_uppercase(), token));
}

#[test]
fn a_flush_writes_the_memtables_out_to_tables_and_keeps_everything() {
    let (dir, store) = open();
    for i in 0..100 {
        store.put_agent(&agent(&format!("uid-{i}"), "h")).unwrap();
    }
    let ks = store.keyspaces().unwrap();
    assert_eq!(ks.agents.table_count(), 0, "still in the memtable");
    store.flush_blocking().unwrap();
    assert!(ks.agents.table_count() >= 1, "written out to a table");
    drop(ks);
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.agent_count(), 100);
    assert!(store.get_agent("uid-99").unwrap().is_some());
}
