//! The driver itself must reach the interesting states, or the fuzzer cannot.

use super::ops::*;
use super::{run, Summary};
use aegis_gateway::protocol::session::Profile;

const REAL: Ctx = Ctx {
    verify: Verify::Real,
    delay_ms: 1,
    commit_ok: true,
};

fn scenario(start: Start, ops: Vec<Op>) -> Scenario {
    Scenario {
        start,
        rate: RatePick::Default,
        jitter_ms: 0,
        ops,
    }
}

fn m1() -> Op {
    Op::M1 {
        ts: Ts::Now,
        nonce: [5; 16],
        ctx: REAL,
    }
}

fn full_handshake() -> Vec<Op> {
    vec![
        m1(),
        Op::Heartbeat(Ts::Now, REAL),
        Op::M3 {
            host: Name::Valid(1),
            right_key: true,
            ts: Ts::Now,
            ctx: REAL,
        },
        Op::M4(M4Pick::Last, Ts::Now, REAL),
        Op::Message {
            channel: ChannelPick::Own(2),
            msg_type: 2,
            body: Body::Json(7),
            ts: Ts::Now,
            headers: Vec::new(),
            ctx: REAL,
        },
        Op::Command {
            kind: 0,
            msg_type: 0,
            body: Body::Json(1),
        },
        Op::Tick(TimeStep::Secs(10)),
    ]
}

#[test]
fn both_profiles_authenticate_and_register() {
    for profile in [Profile::V1, Profile::V2] {
        let s = run(profile, scenario(Start::Fresh, full_handshake()));
        assert_eq!(
            s,
            Summary {
                authed: true,
                synced: true,
                closed: false,
                registered: true,
                sent: 4, // R1, R2, R3, the command
            },
            "{profile:?}"
        );
    }
}

#[test]
fn reconnect_authenticates_registered() {
    for profile in [Profile::V1, Profile::V2] {
        let s = run(profile, scenario(Start::Reconnect, vec![m1()]));
        assert!(s.authed && s.synced && s.registered && !s.closed, "{s:?}");
        let s = run(profile, scenario(Start::ReconnectWrongToken, vec![m1()]));
        assert!(!s.authed && s.closed, "{s:?}");
    }
}

#[test]
fn closes_are_final() {
    let ops = vec![
        m1(),
        Op::Terminate(9),
        Op::Terminate(0),
        Op::Tick(TimeStep::Hours(30)),
        Op::Replay(0, REAL),
        Op::Command {
            kind: 1,
            msg_type: 1,
            body: Body::Raw(vec![0xff]),
        },
    ];
    for profile in [Profile::V1, Profile::V2] {
        let s = run(profile, scenario(Start::Fresh, ops_clone(&ops)));
        assert!(s.authed && s.closed, "{s:?}");
    }
}

#[test]
fn custom_m1_with_a_valid_signature_authenticates() {
    let m1 = CustomM1 {
        agent_id: Name::Own,
        public_key: KeyPick::Own,
        ts: Ts::Skew(-3),
        nonce: Ok([1; 16]),
        v: VPick::Absent,
        kx: None,
        sig: SigPick::Valid,
        msg_type: 0,
    };
    let s = run(
        Profile::V1,
        scenario(Start::Fresh, vec![Op::CustomM1(Box::new(m1), REAL)]),
    );
    assert!(s.authed && s.synced, "{s:?}");
}

fn ops_clone(ops: &[Op]) -> Vec<Op> {
    // `Op` is not `Clone` (it holds a boxed M1); rebuild the list from its debug-free parts.
    ops.iter()
        .map(|op| match op {
            Op::M1 { ts, nonce, ctx } => Op::M1 {
                ts: *ts,
                nonce: *nonce,
                ctx: *ctx,
            },
            Op::Terminate(k) => Op::Terminate(*k),
            Op::Tick(t) => Op::Tick(*t),
            Op::Replay(i, c) => Op::Replay(*i, *c),
            Op::Command {
                kind,
                msg_type,
                body,
            } => Op::Command {
                kind: *kind,
                msg_type: *msg_type,
                body: body.clone(),
            },
            _ => Op::Tick(TimeStep::Ms(0)),
        })
        .collect()
}
