//! Connections live on the owner shard of their identity (socket hand-off over the mesh); after
//! registration, a uid owned by another shard is reached through a presence pointer; a reconnect
//! lands on the owner and replaces the old connection across shards.

mod common;
use aegis_gateway::protocol::channel::BackendKind;
use aegis_gateway::protocol::session::unregistered_identity;
use aegis_gateway::shard::owner_of;
use common::*;

#[test]
fn sockets_are_handed_to_their_owner_shard() {
    let gw = TestGateway::start();
    let handle = gw.running.as_ref().unwrap().handle();
    let mut clients = Vec::new();
    let mut per_owner = [0usize; 2];
    for i in 0..32 {
        let mut a = gw.agent(&format!("shard-test-{i}"), V2);
        let mut c = connect(gw.addr, &a, None);
        authenticate(&mut c, &mut a);
        per_owner[owner_of(&unregistered_identity(a.agent_id(), a.public_b64()), 2)] += 1;
        clients.push((c, a));
    }
    let stats = block_on(handle.stats());
    assert_eq!(stats.len(), 2);
    for s in &stats {
        assert_eq!(
            s.connections, per_owner[s.shard],
            "shard {} hosts exactly its own agents: {stats:?}",
            s.shard
        );
        assert_eq!(s.pointers, 0);
    }
    let handed: u64 = stats.iter().map(|s| s.handoffs_out).sum();
    let received: u64 = stats.iter().map(|s| s.handoffs_in).sum();
    assert!(
        handed > 0,
        "SO_REUSEPORT spread some sockets to non-owners: {stats:?}"
    );
    assert_eq!(handed, received);
    assert!(stats.iter().map(|s| s.verify_signatures).sum::<u64>() >= 32);
}

#[test]
fn presence_pointer_after_registration_and_cross_shard_replace() {
    let gw = TestGateway::start();
    let handle = gw.running.as_ref().unwrap().handle();
    // Register agents until one's uid is owned by another shard than its first-connection identity.
    let mut found = None;
    for i in 0..64 {
        let mut a = gw.agent(&format!("ptr-{i}"), if i % 2 == 0 { V1 } else { V2 });
        let first = owner_of(&unregistered_identity(a.agent_id(), a.public_b64()), 2);
        let (c, uid, token) = onboard(&gw, &mut a, &format!("host-ptr-{i}"));
        if owner_of(&uid, 2) != first {
            found = Some((c, a, uid, token));
            break;
        }
    }
    let (mut c, mut a, uid, token) = found.expect("a uid owned by the other shard within 64 tries");
    let stats = block_on(handle.stats());
    assert_eq!(
        stats.iter().map(|s| s.pointers).sum::<usize>(),
        1,
        "{stats:?}"
    );
    // Delivery follows the pointer.
    let out = block_on(handle.deliver(
        &uid,
        command("via-pointer", BackendKind::Policies, r#"{"p":1}"#),
    ));
    assert!(out.is_ok(), "{out:?}");
    assert_eq!(
        a.open(c.recv_text().as_bytes()).unwrap().body,
        br#"{"p":1}"#
    );
    assert!(block_on(handle.is_connected(&uid)));
    // Reconnect: lands on the owner, the old socket (other shard) is replaced with 4010.
    a.reset_session();
    let mut c2 = connect(gw.addr, &a, Some((&uid, &token)));
    authenticate(&mut c2, &mut a);
    assert_eq!(c.recv_close(&mut Vec::new()), 4010);
    let stats = block_on(handle.stats());
    assert_eq!(
        stats.iter().map(|s| s.pointers).sum::<usize>(),
        0,
        "{stats:?}"
    );
    let out = block_on(handle.deliver(&uid, command("on-owner", BackendKind::Threats, "{}")));
    assert!(out.is_ok(), "{out:?}");
    assert_eq!(
        a.open(c2.recv_text().as_bytes()).unwrap().envelope.id,
        "on-owner"
    );
    // After the connection ends, presence is gone.
    drop(c2);
    gw.wait_offline(&uid);
}
