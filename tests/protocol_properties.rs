//! Property tests (proptest) of the sans-IO protocol pieces (the durable queue's are in
//! `queue_properties.rs`):
//!
//! - the envelope `to_json` → `parse` round trip for arbitrary valid envelopes;
//! - v2 sealing between an [`Agent`] and a [`Session`]: frames of arbitrary bodies and types are
//!   accepted in order in both directions, and any single-byte corruption of a field is refused;
//! - the channel parser agrees with an independent reference implementation;
//! - a [`TokenBucket`] never allows more than `burst + rate × elapsed`.
//!
//! Case counts are kept moderate so the file runs in seconds in a debug build.

use aegis_gateway::protocol::channel::{self, AgentKind, BackendKind, Channel};
use aegis_gateway::protocol::envelope::{self, Envelope, MsgType};
use aegis_gateway::protocol::ratelimit::TokenBucket;
use aegis_gateway::protocol::session::{Action, Profile};
use aegis_gateway::testkit::pair::{Pair, T0};
use proptest::prelude::*;
use proptest::sample::select;

// ---- envelope round trip --------------------------------------------------------------------

/// Text with JSON's hard cases: quotes, backslashes, control characters, non-ASCII, emoji.
fn tricky_text(max_chars: usize) -> impl Strategy<Value = String> {
    let chars = prop_oneof![
        any::<char>(),
        select(vec![
            '"', '\\', '/', '\n', '\t', '\u{0}', '\u{1f}', '\u{7f}', 'é', '😀'
        ]),
    ];
    prop::collection::vec(chars, 0..=max_chars).prop_map(|v| v.into_iter().collect())
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    // Names 1..=16 chars (≤ 64 bytes), values ≤ 64 chars (≤ 256 bytes), unique names, any order.
    let name = tricky_text(16).prop_filter("non-empty name", |s| !s.is_empty());
    prop::collection::btree_map(name, tricky_text(64), 0..=32)
        .prop_flat_map(|m| Just(m.into_iter().collect::<Vec<_>>()).prop_shuffle())
}

fn envelope_strategy() -> impl Strategy<Value = Envelope> {
    let non_empty = || tricky_text(40).prop_filter("non-empty", |s| !s.is_empty());
    (
        "[A-Za-z0-9._-]{1,128}",
        select(MsgType::ALL.to_vec()),
        "[A-Za-z0-9._@-]{1,256}",
        tricky_text(200),
        any::<i64>(),
        prop::option::of(non_empty()),
        prop::option::of(non_empty()),
        headers(),
    )
        .prop_map(
            |(id, msg_type, channel, payload, timestamp, nonce, signature, headers)| Envelope {
                id,
                msg_type,
                channel,
                payload,
                timestamp,
                nonce,
                signature,
                headers,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn envelope_round_trips(e in envelope_strategy()) {
        let json = e.to_json();
        prop_assert!(json.starts_with("{\"id\":"), "wire order: {}", json);
        let parsed = envelope::parse(&mut json.clone().into_bytes());
        prop_assert_eq!(parsed.as_ref(), Ok(&e));
        // The Go agent's trailing newline is accepted too.
        let parsed = envelope::parse(&mut format!("{json}\n").into_bytes());
        prop_assert_eq!(parsed, Ok(e));
    }
}

// ---- v2 sealing between agent and session ------------------------------------------------------

/// An authenticated v2 pair without a rate limit (property runs send many frames).
fn v2_pair() -> Pair {
    let mut p = Pair::new(Profile::V2);
    p.limits.message_rate = None;
    p.authenticate();
    p
}

fn verified(actions: &[Action]) -> bool {
    actions.iter().any(|a| matches!(a, Action::Verified))
}

/// One message: a type, an agent kind, and a body that is JSON (a string) or raw bytes.
fn message() -> impl Strategy<Value = (MsgType, AgentKind, Vec<u8>)> {
    let body = prop_oneof![
        tricky_text(100).prop_map(|s| serde_json::to_vec(&s).unwrap()),
        prop::collection::vec(any::<u8>(), 0..300),
    ];
    (
        select(MsgType::ALL.to_vec()),
        select(AgentKind::ALL.to_vec()),
        body,
    )
}

/// The fields a corruption may hit, and the byte range of each field's value in `json`.
fn value_span(json: &str, field: &str) -> (usize, usize) {
    if field == "seq" {
        let start = json.find("\"seq\":\"").unwrap() + 7;
        let len = json[start..].find('"').unwrap();
        return (start, len);
    }
    let key = format!("\"{field}\":");
    let mut start = json.find(&key).unwrap() + key.len();
    if json.as_bytes()[start] == b'"' {
        start += 1;
        (start, json[start..].find('"').unwrap())
    } else {
        (start, json[start..].find(',').unwrap())
    }
}

/// Replaces the byte at `index` (wrapped) of `field`'s value by another byte.
fn corrupt(json: &str, field: &str, index: usize, byte: u8) -> Vec<u8> {
    let (start, len) = value_span(json, field);
    let mut out = json.as_bytes().to_vec();
    let at = start + index % len.max(1);
    out[at] = if out[at] == byte { byte ^ 1 } else { byte };
    out
}

const FIELDS: [&str; 8] = [
    "id",
    "type",
    "channel",
    "payload",
    "timestamp",
    "nonce",
    "signature",
    "seq",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sealed_frames_round_trip_and_corruption_is_refused(
        msgs in prop::collection::vec(message(), 1..6),
        field in select(FIELDS.to_vec()),
        index in any::<usize>(),
        byte in any::<u8>(),
    ) {
        let mut p = v2_pair();
        let ident = p.agent.ident().to_string();
        for (t, kind, body) in &msgs {
            // Agent → gateway, accepted in order with the body intact.
            let ch = channel::agent_channel(&ident, *kind);
            let f = p.agent.message(&ch, *t, body, T0 / 1000, Vec::new()).unwrap();
            let actions = p.feed_bytes(f.as_bytes(), false);
            prop_assert!(verified(&actions), "refused: {:?}", actions);
            let inbound = actions.iter().find_map(|a| match a {
                Action::Inbound { body, .. } => Some(body.as_bytes().to_vec()),
                _ => None,
            });
            if *kind != AgentKind::Heartbeat && serde_json::from_slice::<serde_json::Value>(body).is_ok() {
                prop_assert_eq!(inbound.as_deref(), Some(body.as_slice()));
            }
            // Gateway → agent.
            let f = p.command("cmd-1", BackendKind::Threats, *t, body);
            prop_assert_eq!(&p.agent.open(f.as_bytes()).unwrap().body, body);
        }
        let (t, kind, body) = &msgs[0];

        // A corrupted gateway frame is refused by the agent, which still opens the original.
        let f = p.command("cmd-1", BackendKind::Tests, *t, body);
        let bad = corrupt(&f, field, index, byte);
        prop_assert!(p.agent.open(&bad).is_err(), "agent accepted {}", String::from_utf8_lossy(&bad));
        prop_assert_eq!(&p.agent.open(f.as_bytes()).unwrap().body, body);

        // A corrupted agent frame is refused by the session.
        let ch = channel::agent_channel(&ident, *kind);
        let f = p.agent.message(&ch, *t, body, T0 / 1000, Vec::new()).unwrap();
        let bad = corrupt(&f, field, index, byte);
        let actions = p.feed_bytes(&bad, false);
        prop_assert!(!verified(&actions), "session accepted {}", String::from_utf8_lossy(&bad));
        let routed = actions
            .iter()
            .any(|a| matches!(a, Action::Inbound { .. } | Action::Heartbeat));
        prop_assert!(!routed, "routed a corrupted frame");
    }
}

// ---- channel parser vs a reference ------------------------------------------------------------

/// An independent reading of PROTOCOL §7: split on every dot; the first part is the prefix,
/// the last the kind, the parts between (joined back with dots) the id.
fn reference_channel(s: &str) -> Option<Channel<'_>> {
    let special = [
        ("auth", Channel::Auth),
        ("ack", Channel::Ack),
        ("error", Channel::Error),
        ("agent.registration", Channel::Registration),
        ("agent.registration.complete", Channel::RegistrationComplete),
    ];
    if let Some((_, c)) = special.iter().find(|(name, _)| *name == s) {
        return Some(*c);
    }
    let parts: Vec<&str> = s.split('.').collect();
    let id_ok = |id: &str| {
        (1..=128).contains(&id.len())
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
    };
    // The id is the text between the first dot and the last one.
    let id_of = || {
        let first = parts[0].len() + 1;
        let last = s.len() - parts[parts.len() - 1].len() - 1;
        &s[first..last]
    };
    let kind = *parts.last()?;
    match (parts[0], parts.len()) {
        ("agent", n) if n >= 3 => {
            let kind = AgentKind::ALL.into_iter().find(|k| k.as_str() == kind)?;
            let id = id_of();
            id_ok(id).then_some(Channel::Agent { id, kind })
        }
        ("backend", 2) => {
            let kind = BackendKind::ALL.into_iter().find(|k| k.as_str() == kind)?;
            Some(Channel::Backend { id: None, kind })
        }
        ("backend", n) if n >= 3 => {
            let kind = BackendKind::ALL.into_iter().find(|k| k.as_str() == kind)?;
            let id = id_of();
            id_ok(id).then_some(Channel::Backend { id: Some(id), kind })
        }
        _ => None,
    }
}

/// Strings near the grammar: prefixes, ids with dots and odd characters, real and fake kinds.
fn channel_like() -> impl Strategy<Value = String> {
    let words = || {
        let mut w: Vec<String> = ["agent", "backend", "auth", "ack", "error", "registration"]
            .iter()
            .chain(&["complete", "Agent", "", "x"])
            .map(|s| s.to_string())
            .collect();
        w.extend(AgentKind::ALL.iter().map(|k| k.as_str().to_string()));
        w.extend(BackendKind::ALL.iter().map(|k| k.as_str().to_string()));
        w
    };
    let prefix = prop_oneof![
        4 => select(vec!["agent".to_string(), "backend".to_string()]),
        1 => select(words()),
        1 => "[a-z]{0,8}",
    ];
    let middle = prop::collection::vec(
        prop_oneof![
            4 => "[A-Za-z0-9_@-]{0,6}",
            1 => select(words()),
            1 => "[ #é:/]{1,2}",
            1 => "a{60,130}",
        ],
        0..4,
    );
    let kind = prop_oneof![3 => select(words()), 1 => "[A-Za-z]{0,8}"];
    prop_oneof![
        6 => (prefix, middle, kind).prop_map(|(p, m, k)| {
            let mut parts = vec![p];
            parts.extend(m);
            parts.push(k);
            parts.join(".")
        }),
        1 => select(words()),
        1 => any::<String>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn channel_parser_matches_reference(s in channel_like()) {
        prop_assert_eq!(channel::parse(&s).ok(), reference_channel(&s), "{:?}", s);
    }
}

// ---- token bucket ----------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn token_bucket_never_exceeds_burst_plus_rate(
        rate in 0u32..2000,
        burst in 0u32..50,
        steps in prop::collection::vec((-200i64..5000, 1usize..5), 1..60),
    ) {
        let t0 = 1_000_000i64;
        let mut b = TokenBucket::new(rate, burst, t0);
        let capacity = i64::from(burst.max(1));
        // A new bucket is full: exactly `max(burst, 1)` takes succeed at once.
        for _ in 0..capacity {
            prop_assert!(b.take(t0));
        }
        // No time passed, nothing was refilled.
        prop_assert!(!b.take(t0));
        // The clock of every successful take (a clock going backwards counts as standing still).
        let mut taken: Vec<i64> = vec![t0; usize::try_from(capacity).unwrap()];
        let (mut now, mut clock) = (t0, t0);
        for (dt, tries) in steps {
            now += dt;
            clock = clock.max(now);
            for _ in 0..tries {
                if b.take(now) {
                    taken.push(clock);
                }
            }
        }
        // Over every window [taken[i], taken[j]]: at most the burst plus what the window's time
        // minted (in milli-tokens: one take costs 1000, one ms mints `rate`).
        for i in 0..taken.len() {
            for j in i..taken.len() {
                let count = i64::try_from(j - i + 1).unwrap();
                let minted = capacity * 1000 + i64::from(rate) * (taken[j] - taken[i]);
                prop_assert!(
                    count * 1000 <= minted,
                    "{} takes in {} ms (rate {}, burst {})",
                    count, taken[j] - taken[i], rate, burst
                );
            }
        }
    }
}
