//! Event log tests.

use super::*;

fn ev(channel: &str, n: i64) -> NewEvent {
    NewEvent {
        channel: channel.into(),
        agent_uid: "u1".into(),
        message_type: "event".into(),
        id: format!("msg-{n}"),
        body: format!(r#"{{"n":{n}}}"#),
        at: 1_700_000_000 + n,
    }
}

fn seqs(list: &[StoredEvent]) -> Vec<u64> {
    list.iter().map(|e| e.seq).collect()
}

#[test]
fn events_get_one_global_order_and_resume_after_a_seq() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.last_event_seq(), 0);
    assert_eq!(store.append_event(&ev("agent.u1.threats", 1)).unwrap(), 1);
    assert_eq!(store.append_event(&ev("agent.u2.logs", 2)).unwrap(), 2);
    let more = [ev("agent.u1.threats", 3), ev("agent.u1.logs", 4)];
    assert_eq!(store.append_events(&more).unwrap(), 3..5);
    assert_eq!(store.append_events(&[]).unwrap(), 5..5);
    assert_eq!(store.last_event_seq(), 4);

    let all = store.events_after(0, 100).unwrap();
    assert_eq!(seqs(&all), [1, 2, 3, 4]);
    assert_eq!(all[2].channel, "agent.u1.threats");
    assert_eq!(all[2].body, r#"{"n":3}"#);
    assert_eq!(seqs(&store.events_after(2, 100).unwrap()), [3, 4]);
    assert_eq!(seqs(&store.events_after(0, 2).unwrap()), [1, 2]);
    assert!(store.events_after(4, 100).unwrap().is_empty());

    let scan = store.events_matching(0, "agent.u1.*", 100, 100).unwrap();
    assert_eq!(seqs(&scan.events), [1, 3, 4]);
    assert_eq!(scan.scanned_to, 4);
    // Bounded scan: a pattern that matches nothing still advances the cursor.
    let scan = store.events_matching(0, "agent.nobody.>", 100, 3).unwrap();
    assert!(scan.events.is_empty());
    assert_eq!(scan.scanned_to, 3);
    let scan = store.events_matching(0, "", 1, 100).unwrap();
    assert_eq!((seqs(&scan.events), scan.scanned_to), (vec![1], 1));
    let scan = store.events_matching(1, "", 0, 10).unwrap();
    assert_eq!((scan.events.len(), scan.scanned_to), (0, 1));
    let scan = store.events_matching(4, "", 10, 10).unwrap();
    assert_eq!((scan.events.len(), scan.scanned_to), (0, 4));
}

#[test]
fn trim_keeps_the_newest_and_the_counter_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let batch: Vec<NewEvent> = (0..(TRIM_CHUNK as i64 + 10))
            .map(|n| ev("agent.u1.logs", n))
            .collect();
        let seqs = store.append_events(&batch).unwrap();
        assert_eq!(seqs, 1..(TRIM_CHUNK as u64 + 11));
        assert_eq!(store.trim_events(5).unwrap(), TRIM_CHUNK + 5);
        let left = store.events_after(0, 100).unwrap();
        assert_eq!(left.len(), 5);
        assert_eq!(left[0].seq, TRIM_CHUNK as u64 + 6);
        // keep_last 0 still keeps the newest event.
        assert_eq!(store.trim_events(0).unwrap(), 4);
        assert_eq!(store.trim_events(0).unwrap(), 0);
        store.sync_blocking().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let last = TRIM_CHUNK as u64 + 10;
    assert_eq!(store.last_event_seq(), last);
    assert_eq!(
        store.append_event(&ev("agent.u1.logs", 0)).unwrap(),
        last + 1
    );
    assert_eq!(seqs(&store.events_after(0, 10).unwrap()), [last, last + 1]);
}

#[test]
fn channel_patterns_follow_nats_rules() {
    let cases = [
        ("", "agent.u1.threats", true),
        ("agent.u1.threats", "agent.u1.threats", true),
        ("agent.u1.threats", "agent.u1.logs", false),
        ("agent.*.threats", "agent.u1.threats", true),
        ("agent.*.threats", "agent.u1.x.threats", false),
        ("agent.*", "agent.u1.threats", false),
        ("agent.>", "agent.u1.threats", true),
        ("agent.>", "agent.u1", true),
        ("agent.>", "agent", false),
        ("agent.u1.>", "agent.u10.logs", false),
        ("*.*.*", "backend.u1.policies", true),
        ("*", "agent", true),
        ("agent.u1", "agent.u1.threats", false),
        ("agent.u1.threats.x", "agent.u1.threats", false),
        (">", "anything.at.all", true),
        ("a.>.c", "a.b.c", false),
        ("a.>.c", "a.>.c", true),
    ];
    for (pattern, channel, want) in cases {
        assert_eq!(
            channel_matches(pattern, channel),
            want,
            "{pattern:?} vs {channel:?}"
        );
    }
}

#[test]
fn records_round_trip_every_field_and_body_bytes_as_sent() {
    let body = r#"{"q":"a \"quoted\" \\ value","u":"é€"}"#;
    let r = EventRecord::new("agent.u9.threats", "u9", "event", "m-1", body, -5).unwrap();
    assert_eq!(&r.0[..2], &RECORD_MAGIC);
    // The body is stored as it came (no JSON escaping): it is the tail of the value.
    assert!(r.0.ends_with(body.as_bytes()));
    let ev = decode_event(b"k", 42, &r.0).unwrap();
    assert_eq!(
        ev,
        StoredEvent {
            seq: 42,
            channel: "agent.u9.threats".into(),
            agent_uid: "u9".into(),
            message_type: "event".into(),
            id: "m-1".into(),
            body: body.into(),
            at: -5,
        }
    );
}

#[test]
fn json_values_from_before_the_binary_layout_are_still_read() {
    let legacy = br#"{"seq":7,"channel":"agent.u1.logs","agent_uid":"u1","message_type":"event","id":"m","body":"{}","at":1}"#;
    let ev = decode_event(b"k", 7, legacy).unwrap();
    assert_eq!(
        (ev.seq, ev.channel.as_str(), ev.body.as_str()),
        (7, "agent.u1.logs", "{}")
    );
}

#[test]
fn damaged_records_are_errors_not_panics() {
    let good = EventRecord::new("c", "a", "event", "i", "{}", 1).unwrap().0;
    for cut in 0..good.len() - 2 {
        // Every truncation inside the header is refused.
        assert!(
            decode_event(b"k", 1, &good[..cut.max(2)]).is_err(),
            "cut {cut}"
        );
    }
    let mut bad_len = good.clone();
    bad_len[10] = 0xff; // type length far past the end
    assert!(matches!(
        decode_event(b"k", 1, &bad_len),
        Err(StoreError::CorruptValue { .. })
    ));
    let mut bad_utf8 = good;
    let last = bad_utf8.len() - 1;
    bad_utf8[last] = 0xff;
    assert!(decode_event(b"k", 1, &bad_utf8).is_err());
}

#[test]
fn oversized_records_are_refused() {
    let big = "x".repeat(codec::MAX_VALUE_LEN);
    assert!(matches!(
        EventRecord::new("c", "a", "event", "i", &big, 1),
        Err(StoreError::TooLarge { .. })
    ));
    let long_field = "y".repeat(70_000);
    assert!(matches!(
        EventRecord::new(&long_field, "a", "event", "i", "{}", 1),
        Err(StoreError::TooLarge { .. })
    ));
}
