//! The `sealed_open` target: an authenticated v2 `Agent` + session pair (`testkit::pair`) (fixed key seeds,
//! built once and rebuilt only after the session closed), fed mutated sealed frames in both
//! directions.
//!
//! - agent → gateway: the session must never accept (emit [`Action::Verified`] for) a frame
//!   whose signed fields (`id type channel timestamp nonce seq payload`) differ from the frame
//!   the agent sealed; with the signature check forced to pass, never one whose AEAD fields
//!   (`id type channel timestamp seq`, the payload) differ. After a non-fatal rejection the
//!   original frame is still accepted. An ack (channel `ack`) acks only the id its sealed
//!   payload names (`{"ack":id}`), and only when `headers.ack` — which neither the signature
//!   nor the AEAD covers — says the same; a payload `{}` acks `headers.ack`, marked legacy.
//! - gateway → agent: `Agent::open` never accepts a frame whose signed fields differ, and
//!   returns the original body when it accepts; after a rejection the original still opens.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use aegis_gateway::protocol::channel::{AgentKind, BackendKind};
use aegis_gateway::protocol::envelope::Envelope;
use aegis_gateway::protocol::payloads::{from_json, AckBody};
use aegis_gateway::protocol::session::{Action, Limits, Profile};
use aegis_gateway::testkit;
use arbitrary::Arbitrary;

use crate::keys::{gateway_key, new_agent, AGENT_ID, T0};
use crate::mutate::{self, Mutation};

/// Largest body the target seals.
const MAX_BODY: usize = 2048;

/// One fuzz input.
#[derive(Arbitrary, Debug)]
pub struct Input {
    /// Which direction is attacked.
    pub to_gateway: bool,
    /// Type index.
    pub msg_type: u8,
    /// Channel kind index (agent kinds, plus `ack`).
    pub kind: u8,
    /// Plaintext.
    pub body: Vec<u8>,
    /// How the frame is changed.
    pub mutation: Mutation,
    /// Gateway side: pretend the signature verified, to test the AEAD alone.
    pub forced_ok: bool,
}

/// An authenticated pair. The session's closes are fatal, so a closed pair is rebuilt.
struct Pair {
    inner: testkit::pair::Pair,
    closed: bool,
}

/// Distinct M1 nonces across rebuilds.
static BUILDS: Mutex<u64> = Mutex::new(0);

impl Pair {
    fn build() -> Pair {
        let n = {
            let mut b = BUILDS.lock().unwrap_or_else(|p| p.into_inner());
            *b += 1;
            *b
        };
        let limits = Limits {
            message_rate: None,
            ..Limits::default()
        };
        let agent = new_agent(AGENT_ID, Profile::V2);
        let inner = testkit::pair::Pair::with_keys(gateway_key().clone(), agent, Some(2), limits);
        let mut pair = Pair {
            inner,
            closed: false,
        };
        let mut nonce = [0u8; 16];
        nonce[..8].copy_from_slice(&n.to_be_bytes());
        let m1 = pair.inner.agent.m1(T0 / 1000, nonce);
        let actions = pair.feed(m1.as_bytes(), false);
        let r1 = testkit::pair::sends(&actions).into_iter().next();
        let r1 = r1.expect("R1 sent");
        pair.inner
            .agent
            .on_r1(r1.as_bytes())
            .expect("agent accepts R1");
        pair
    }

    /// Feeds a frame with the real signature check (or a forced pass).
    fn feed(&mut self, frame: &[u8], forced_ok: bool) -> Vec<Action> {
        let actions = self.inner.feed_bytes(frame, forced_ok);
        if actions.iter().any(|a| matches!(a, Action::Close(..))) {
            self.closed = true;
        }
        actions
    }
}

fn accepted(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Verified))
}

/// `id type channel timestamp seq payload`.
type AeadFields<'a> = (&'a str, &'a str, &'a str, i64, Option<&'a str>, &'a str);

/// The fields covered by the AEAD (associated data and ciphertext).
fn aead_fields(e: &Envelope) -> AeadFields<'_> {
    (
        &e.id,
        e.msg_type.as_str(),
        &e.channel,
        e.timestamp,
        e.header("seq"),
        &e.payload,
    )
}

/// The fields covered by the v2 signature: the AEAD fields plus the nonce.
fn signed_fields(e: &Envelope) -> (AeadFields<'_>, Option<&str>) {
    (aead_fields(e), e.nonce.as_deref())
}

/// Runs one input against the shared pair.
pub fn run(input: Input) {
    static PAIR: OnceLock<Mutex<Option<Pair>>> = OnceLock::new();
    let cell = PAIR.get_or_init(|| Mutex::new(None));
    let mut guard = cell.lock().unwrap_or_else(|p| p.into_inner());
    if guard.as_ref().is_none_or(|p| p.closed) {
        *guard = Some(Pair::build());
    }
    let Some(pair) = guard.as_mut() else {
        return;
    };
    let body = input.body.get(..MAX_BODY).unwrap_or(&input.body);
    let msg_type = crate::session::ops::msg_type(input.msg_type);
    if input.to_gateway {
        to_gateway(pair, &input, msg_type, body);
    } else {
        to_agent(pair, &input, msg_type, body);
    }
}

fn to_gateway(
    pair: &mut Pair,
    input: &Input,
    msg_type: aegis_gateway::protocol::MsgType,
    body: &[u8],
) {
    let kinds = AgentKind::ALL.len();
    let k = usize::from(input.kind) % (kinds + 1);
    let (channel, headers) = match AgentKind::ALL.get(k) {
        Some(kind) => (format!("agent.{AGENT_ID}.{kind}"), Vec::new()),
        None => ("ack".to_string(), vec![("ack".into(), "cmd-1".into())]),
    };
    // Acks: the current payload, an older agent's `{}`, or the input's bytes.
    let body = match (k == kinds, usize::from(input.kind) / (kinds + 1) % 3) {
        (true, 0) => &br#"{"ack":"cmd-1"}"#[..],
        (true, 1) => b"{}",
        _ => body,
    };
    let original = pair
        .inner
        .agent
        .message(&channel, msg_type, body, T0 / 1000, headers)
        .expect("agent is authenticated");
    let orig = mutate::parse(original.as_bytes()).expect("agent frame parses");
    let mutated = mutate::mutate(&original, &input.mutation);
    let actions = pair.feed(&mutated, input.forced_ok);
    check_acks(&actions, body, &mutated);
    if accepted(&actions) {
        let m = mutate::parse(&mutated).expect("an accepted frame parses");
        if input.forced_ok {
            assert_eq!(
                aead_fields(&m),
                aead_fields(&orig),
                "AEAD accepted a change"
            );
        } else {
            assert_eq!(signed_fields(&m), signed_fields(&orig), "accepted a change");
        }
        return;
    }
    if pair.closed {
        return;
    }
    // Not accepted and not fatal (malformed envelope or seq header): nothing advanced.
    let again = pair.feed(original.as_bytes(), false);
    check_acks(&again, body, original.as_bytes());
    assert!(
        accepted(&again) || pair.closed,
        "original refused after a non-fatal rejection: {again:?}"
    );
}

/// Acks accepted so far, and how many of them legacy (for the harness tests: the driver
/// reaches acks).
static ACKS: [AtomicU64; 2] = [AtomicU64::new(0), AtomicU64::new(0)];

/// Every ack among `actions` (the session's answer to `frame`, whose plaintext was `body`) names
/// the id of the sealed payload and of `frame`'s `headers.ack`, or, for a payload `{}`, the
/// header's, marked legacy.
fn check_acks(actions: &[Action], body: &[u8], frame: &[u8]) {
    let acked: Vec<&String> = actions
        .iter()
        .filter_map(|a| match a {
            Action::Ack(id) => Some(id),
            _ => None,
        })
        .collect();
    let legacy = actions
        .iter()
        .filter(|a| matches!(a, Action::LegacyAck))
        .count();
    assert!(acked.len() <= 1 && legacy <= acked.len(), "{actions:?}");
    let Some(id) = acked.first() else {
        return;
    };
    ACKS[0].fetch_add(1, Ordering::Relaxed);
    ACKS[1].fetch_add(legacy as u64, Ordering::Relaxed);
    let header = mutate::parse(frame).and_then(|e| e.header("ack").map(str::to_string));
    assert_eq!(
        header.as_deref(),
        Some(id.as_str()),
        "acked what headers.ack does not say"
    );
    match from_json::<AckBody>(body) {
        Ok(AckBody::Id(sealed)) => {
            assert_eq!(&sealed, *id, "acked an id the sealed payload does not name");
            assert_eq!(legacy, 0, "a current ack marked legacy");
        }
        Ok(AckBody::Legacy) => assert_eq!(legacy, 1, "a legacy ack not marked"),
        Err(_) => panic!("a payload that names no ack acked {id}"),
    }
}

fn to_agent(
    pair: &mut Pair,
    input: &Input,
    msg_type: aegis_gateway::protocol::MsgType,
    body: &[u8],
) {
    let kind = BackendKind::ALL[usize::from(input.kind) % BackendKind::ALL.len()];
    let original = pair.inner.command("cmd-1", kind, msg_type, body);
    let orig = mutate::parse(original.as_bytes()).expect("gateway frame parses");
    let mutated = mutate::mutate(&original, &input.mutation);
    match pair.inner.agent.open(&mutated) {
        Ok(opened) => {
            assert_eq!(
                signed_fields(&opened.envelope),
                signed_fields(&orig),
                "agent accepted a change"
            );
            assert_eq!(opened.body, body, "agent opened another body");
            assert!(
                pair.inner.agent.open(original.as_bytes()).is_err(),
                "replay opened"
            );
        }
        Err(_) => {
            let opened = pair
                .inner
                .agent
                .open(original.as_bytes())
                .expect("original opens after a rejected copy");
            assert_eq!(opened.body, body);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mutate::FieldChange;

    fn input(to_gateway: bool, mutation: Mutation, forced_ok: bool) -> Input {
        Input {
            to_gateway,
            msg_type: 2,
            kind: 3,
            body: br#"{"k":1}"#.to_vec(),
            mutation,
            forced_ok,
        }
    }

    #[test]
    fn unchanged_frames_are_accepted_and_changed_ones_refused() {
        // Both directions, unchanged: accepted (the asserts inside `run` check it).
        for _ in 0..3 {
            run(input(true, Mutation::Bytes(Vec::new()), false));
            run(input(false, Mutation::Bytes(Vec::new()), false));
        }
        // Changed AEAD fields with the signature check forced to pass: refused by the AEAD.
        for change in [
            FieldChange::PayloadBit(3, 1),
            FieldChange::TimestampDelta(1),
            FieldChange::Type(0),
            FieldChange::IdByte(0, 7),
        ] {
            run(input(true, Mutation::Fields(vec![change.clone()]), true));
            run(input(false, Mutation::Fields(vec![change]), false));
        }
        // A header the signature does not cover, and a malformed seq (non-fatal).
        run(input(
            true,
            Mutation::Fields(vec![FieldChange::Header("x".into(), "y".into())]),
            false,
        ));
        run(input(
            true,
            Mutation::Fields(vec![FieldChange::SeqText("01".into())]),
            false,
        ));
        // Acks (kind 10 → channel `ack`; kind / 11 picks the body): the sealed id, legacy `{}`,
        // and `headers.ack` rewritten (authentic frame, acks nothing).
        let kinds = AgentKind::ALL.len() as u8 + 1;
        let seen = || ACKS.each_ref().map(|c| c.load(Ordering::Relaxed));
        let before = seen();
        for (pick, mutation) in [
            (0, Mutation::Bytes(Vec::new())),
            (1, Mutation::Bytes(Vec::new())),
            (
                0,
                Mutation::Fields(vec![FieldChange::Header("ack".into(), "cmd-2".into())]),
            ),
            (
                1,
                Mutation::Fields(vec![FieldChange::Header("ack".into(), "cmd-2".into())]),
            ),
        ] {
            let mut i = input(true, mutation, false);
            i.msg_type = 4;
            i.kind = kinds - 1 + pick * kinds;
            run(i);
        }
        // Accepted: both unchanged acks, and the legacy one with its header rewritten (the
        // one-release fallback trusts `headers.ack`), the two legacy ones marked so; the
        // current ack with a rewritten header acked nothing (`check_acks` in `run`).
        let after = seen();
        assert_eq!((after[0] - before[0], after[1] - before[1]), (3, 2));
        // The same seq number spelled differently is not the signed text.
        for prefix in ["+", "0"] {
            run(input(
                false,
                Mutation::Fields(vec![FieldChange::SeqPrefix(prefix.into())]),
                false,
            ));
            run(input(
                true,
                Mutation::Fields(vec![FieldChange::SeqPrefix(prefix.into())]),
                false,
            ));
        }
    }
}
