//! Tests of `envelope.rs` (kept apart to keep both files short).

use super::*;

fn p(s: &str) -> Result<Envelope, EnvelopeError> {
    parse(&mut s.as_bytes().to_vec())
}

/// What the Go agent writes for M1: no nonce or signature, `{}` headers, and a newline.
const GO_M1: &str = "{\"channel\":\"auth\",\"headers\":{},\"id\":\"auth_1700000000123456789\",\
\"payload\":\"eyJhIjoxfQ==\",\"timestamp\":1700000000,\"type\":\"request\"}\n";

const FULL: &str = r#"{"id":"m-1.x_y","type":"event","channel":"agent.host@corp.logs","payload":"cGF5","timestamp":1700000000,"nonce":"Tk9OQ0U=","signature":"c2ln","headers":{"seq":"7","ack":"cmd-1"}}"#;

#[test]
fn parses_the_go_agent_m1_with_trailing_newline() {
    let e = p(GO_M1).expect("valid");
    assert_eq!(e.id, "auth_1700000000123456789");
    assert_eq!(e.msg_type, MsgType::Request);
    assert_eq!(e.channel, "auth");
    assert_eq!(e.payload, "eyJhIjoxfQ==");
    assert_eq!(e.timestamp, 1_700_000_000);
    assert_eq!(e.nonce, None);
    assert_eq!(e.signature, None);
    assert!(e.headers.is_empty());
    // Other trailing whitespace is fine too.
    assert!(p(&format!("{}\r\n \t", GO_M1.trim_end())).is_ok());
    assert!(p(&format!("  \n{}", GO_M1)).is_ok());
}

#[test]
fn parses_every_field_and_keeps_header_order() {
    let e = p(FULL).expect("valid");
    assert_eq!(e.id, "m-1.x_y");
    assert_eq!(e.msg_type, MsgType::Event);
    assert_eq!(e.channel, "agent.host@corp.logs");
    assert_eq!(e.nonce.as_deref(), Some("Tk9OQ0U="));
    assert_eq!(e.signature.as_deref(), Some("c2ln"));
    let names: Vec<&str> = e.headers.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["seq", "ack"]);
    assert_eq!(e.header("seq"), Some("7"));
    assert_eq!(e.header("ack"), Some("cmd-1"));
    assert_eq!(e.header("SEQ"), None);
}

#[test]
fn null_and_empty_optionals_are_absent() {
    let s = r#"{"id":"a","type":"ack","channel":"ack","payload":"","timestamp":-5,"nonce":null,"signature":"","headers":null}"#;
    let e = p(s).expect("valid");
    assert_eq!((e.nonce, e.signature), (None, None));
    assert!(e.headers.is_empty());
    assert_eq!(e.payload, "");
    assert_eq!(e.timestamp, -5);
}

#[test]
fn unknown_fields_are_ignored_even_nested() {
    let s = r#"{"x":{"a":[1,{"b":null}],"id":"zz"},"id":"a","y":[[],{}],"type":"event","channel":"c","payload":"p","timestamp":1,"z":1.5}"#;
    let e = p(s).expect("valid");
    assert_eq!(e.id, "a");
    assert_eq!(e.payload, "p");
}

#[test]
fn escaped_strings_are_unescaped() {
    let s = r#"{"id":"a","type":"event","channel":"c","payload":"q\"b\\n\n\u00e9\ud83d\ude00","timestamp":1}"#;
    assert_eq!(p(s).expect("valid").payload, "q\"b\\n\n\u{e9}\u{1F600}");
}

fn with(field: &str, value: &str) -> String {
    let mut fields = vec![
        ("id", "\"a\""),
        ("type", "\"event\""),
        ("channel", "\"c\""),
        ("payload", "\"p\""),
        ("timestamp", "1"),
    ];
    fields.retain(|(k, _)| *k != field);
    if !value.is_empty() {
        fields.push((field, value));
    }
    let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", body.join(","))
}

#[test]
fn rejects_what_it_must() {
    use EnvelopeError::*;
    let long = |n: usize, c: char| format!("\"{}\"", c.to_string().repeat(n));
    let cases: Vec<(String, EnvelopeError)> = vec![
        ("".into(), NotJson),
        ("{".into(), NotJson),
        ("{} x".into(), NotJson),
        ("{}{}".into(), NotJson),
        ("[1,2]".into(), NotObject),
        ("\"s\"".into(), NotObject),
        ("5".into(), NotObject),
        (with("id", ""), MissingField("id")),
        (with("type", ""), MissingField("type")),
        (with("channel", ""), MissingField("channel")),
        (with("payload", ""), MissingField("payload")),
        (with("timestamp", ""), MissingField("timestamp")),
        (with("id", "1"), WrongType("id")),
        (with("payload", "null"), WrongType("payload")),
        (with("payload", "{}"), WrongType("payload")),
        (with("timestamp", "1.5"), WrongType("timestamp")),
        (with("timestamp", "1.0"), WrongType("timestamp")),
        (with("timestamp", "1e3"), WrongType("timestamp")),
        (with("timestamp", "\"1\""), WrongType("timestamp")),
        (
            with("timestamp", "9223372036854775808"),
            WrongType("timestamp"),
        ),
        (with("nonce", "7"), WrongType("nonce")),
        (with("signature", "[]"), WrongType("signature")),
        (with("headers", "[]"), WrongType("headers")),
        (with("headers", "{\"a\":1}"), WrongType("headers")),
        (with("headers", "{\"a\":null}"), WrongType("headers")),
        (with("id", "\"\""), BadId),
        (with("id", "\"a b\""), BadId),
        (with("id", "\"a@b\""), BadId),
        (with("id", "\"a:b\""), BadId),
        (with("id", "\"\\u00e9\""), BadId),
        (with("id", &long(129, 'a')), BadId),
        (with("type", "\"Event\""), BadType),
        (with("type", "\"\""), BadType),
        (with("channel", "\"\""), BadChannel),
        (with("channel", "\"a/b\""), BadChannel),
        (with("channel", &long(257, 'c')), BadChannel),
        (with("headers", "{\"\":\"v\"}"), BadHeader),
        (
            with("headers", &format!("{{{}:\"v\"}}", long(65, 'k'))),
            BadHeader,
        ),
        (
            with("headers", &format!("{{\"k\":{}}}", long(257, 'v'))),
            BadHeader,
        ),
        (
            with("headers", "{\"k\":\"1\",\"k\":\"2\"}"),
            DuplicateHeader,
        ),
    ];
    for (input, want) in cases {
        assert_eq!(p(&input), Err(want), "input: {input}");
    }
    for field in [
        "id",
        "type",
        "channel",
        "payload",
        "timestamp",
        "nonce",
        "signature",
        "headers",
    ] {
        let s = FULL.replacen('{', &format!("{{\"{field}\":null,"), 1);
        let got = p(&s).expect_err(field);
        assert!(
            got == DuplicateField(field) || got == WrongType(field),
            "{field}: {got:?}"
        );
    }
    let dup = FULL.replacen('{', "{\"id\":\"other\",", 1);
    assert_eq!(p(&dup), Err(DuplicateField("id")));
    let dup = FULL.replacen('{', "{\"nonce\":null,", 1);
    assert_eq!(p(&dup), Err(DuplicateField("nonce")));
    assert_eq!(parse(&mut b"{\"id\":\"\xff\"}".to_vec()), Err(NotJson));
}

#[test]
fn limits_are_inclusive() {
    let headers = |n: usize| {
        let h: Vec<String> = (0..n).map(|i| format!("\"h{i}\":\"v\"")).collect();
        format!("{{{}}}", h.join(","))
    };
    assert_eq!(
        p(&with("headers", &headers(32))).expect("32").headers.len(),
        32
    );
    assert_eq!(
        p(&with("headers", &headers(33))),
        Err(EnvelopeError::TooManyHeaders)
    );
    let id = "i".repeat(128);
    let channel = "c".repeat(256);
    let key = "k".repeat(64);
    let value = "v".repeat(256);
    let s = with("id", &format!("\"{id}\"")).replace("\"c\"", &format!("\"{channel}\""));
    let s = s.replacen('{', &format!("{{\"headers\":{{\"{key}\":\"{value}\"}},"), 1);
    let e = p(&s).expect("at the limits");
    assert_eq!((e.id.len(), e.channel.len()), (128, 256));
    assert_eq!(e.header(&key), Some(value.as_str()));
    assert_eq!(
        p(&with("timestamp", "-9223372036854775808")).map(|e| e.timestamp),
        Ok(i64::MIN)
    );
    assert_eq!(
        p(&with("timestamp", "9223372036854775807")).map(|e| e.timestamp),
        Ok(i64::MAX)
    );
}

fn sample() -> Envelope {
    Envelope {
        id: "r1-abc".into(),
        msg_type: MsgType::Response,
        channel: "auth".into(),
        payload: "quote \" backslash \\ nl \n tab \t ctl \u{1} nul \u{0} é 😀 </script>".into(),
        timestamp: -1_700_000_000,
        nonce: Some("AAAAAAAAAAAAAAAA".into()),
        signature: Some("sig+/=".into()),
        headers: vec![("z".into(), "1".into()), ("a".into(), "\"x\"".into())],
    }
}

#[test]
fn to_json_writes_all_fields_in_wire_order() {
    let e = Envelope {
        id: "g1".into(),
        msg_type: MsgType::Error,
        channel: "error".into(),
        payload: "a\"b".into(),
        timestamp: 42,
        nonce: None,
        signature: None,
        headers: vec![],
    };
    assert_eq!(
        e.to_json(),
        r#"{"id":"g1","type":"error","channel":"error","payload":"a\"b","timestamp":42,"nonce":"","signature":"","headers":{}}"#
    );
    let mut e = e;
    e.set_header("seq", "1");
    e.set_header("ack", "x");
    e.set_header("seq", "2");
    assert!(e.to_json().ends_with(r#""headers":{"seq":"2","ack":"x"}}"#));
}

#[test]
fn round_trips() {
    let e = sample();
    let json = e.to_json();
    // serde_json agrees that it is valid JSON with these values.
    let v: serde_json::Value = serde_json::from_str(&json).expect("valid JSON");
    assert_eq!(v["payload"], e.payload.as_str());
    assert_eq!(p(&json), Ok(e.clone()));
    let mut bare = e;
    bare.nonce = None;
    bare.signature = None;
    bare.headers.clear();
    assert_eq!(p(&bare.to_json()), Ok(bare));
}

#[test]
fn buffer_reuse_across_sizes_is_correct() {
    let mut big = sample();
    big.payload = "x".repeat(100_000);
    let small = sample();
    for e in [&small, &big, &small, &small, &big] {
        assert_eq!(p(&e.to_json()).as_ref(), Ok(e));
    }
}

/// Deterministic xorshift, so failures reproduce.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

#[test]
fn truncations_and_mutations_never_panic() {
    let valid = FULL.as_bytes();
    // Every proper prefix is missing the closing brace, so it must be rejected.
    for cut in 0..valid.len() {
        assert!(parse(&mut valid[..cut].to_vec()).is_err(), "prefix {cut}");
    }
    let alphabet = b"{}[]\":,\\ 0123456789.-eEtrufalsn\x00\xff\xc3\xa9abc";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..4000 {
        let mut m = valid.to_vec();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(m.len());
            let byte = alphabet[rng.below(alphabet.len())];
            match rng.below(3) {
                0 => m[at] = byte,
                1 => m.insert(at, byte),
                _ => {
                    m.remove(at);
                }
            }
        }
        if let Ok(e) = parse(&mut m) {
            // Whatever was accepted satisfies the invariants.
            assert!(!e.id.is_empty() && e.id.len() <= MAX_ID_LEN);
            assert!(!e.channel.is_empty() && e.channel.len() <= MAX_CHANNEL_LEN);
            assert!(e.headers.len() <= MAX_HEADERS);
        }
    }
}

#[test]
fn msg_type_names() {
    let names = ["request", "response", "event", "heartbeat", "ack", "error"];
    for (t, name) in MsgType::ALL.into_iter().zip(names) {
        assert_eq!(t.as_str(), name);
        assert_eq!(MsgType::parse(name), Some(t));
    }
    assert_eq!(MsgType::parse("REQUEST"), None);
}
