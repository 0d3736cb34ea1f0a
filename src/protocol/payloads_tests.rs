//! Tests of `payloads.rs`. Expected JSON and base64 texts are written by hand.

use super::*;

const Z32: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
const Z16: &str = "AAAAAAAAAAAAAAAAAAAAAA==";

#[test]
fn auth_request_v1_as_the_go_agent_sends_it() {
    // Go's encoding/json writes map keys sorted.
    let json = r#"{"agent_id":"aegis-agent-001","nonce":"bm9uY2U=","public_key":"a2V5","signature":"c2ln","timestamp":1700000000}"#;
    let r: AuthRequest = from_json(json.as_bytes()).expect("valid");
    assert_eq!(r.agent_id, "aegis-agent-001");
    assert_eq!(r.public_key, "a2V5");
    assert_eq!(r.timestamp, 1_700_000_000);
    assert_eq!(r.nonce, "bm9uY2U=");
    assert_eq!((r.v, r.kx.as_deref()), (None, None));
    assert_eq!(r.signature, "c2ln");
    // The same through base64, as M1 carries it.
    let b = b64(json.as_bytes());
    let r2: AuthRequest = from_b64_json(&b, 4096).expect("valid");
    assert_eq!(r2, r);
}

#[test]
fn auth_request_v2_and_its_serialization_order() {
    let r = AuthRequest {
        agent_id: "a".into(),
        public_key: "k".into(),
        timestamp: -3,
        nonce: "n".into(),
        v: Some(2),
        kx: Some("x".into()),
        signature: "s".into(),
    };
    let json = to_json(&r);
    assert_eq!(
        json,
        r#"{"agent_id":"a","public_key":"k","timestamp":-3,"nonce":"n","v":2,"kx":"x","signature":"s"}"#
    );
    assert_eq!(from_json::<AuthRequest>(json.as_bytes()).expect("valid"), r);
    let v1 = AuthRequest {
        v: None,
        kx: None,
        ..r
    };
    assert_eq!(
        to_json(&v1),
        r#"{"agent_id":"a","public_key":"k","timestamp":-3,"nonce":"n","signature":"s"}"#
    );
}

#[test]
fn auth_request_rejects_missing_mistyped_and_duplicate_fields() {
    let ok = r#""agent_id":"a","public_key":"k","timestamp":1,"nonce":"n","signature":"s""#;
    assert!(from_json::<AuthRequest>(format!("{{{ok}}}").as_bytes()).is_ok());
    let unknown = format!("{{{ok},\"extra\":[1,{{}}]}}");
    assert!(from_json::<AuthRequest>(unknown.as_bytes()).is_ok());
    let null_v = format!("{{{ok},\"v\":null}}");
    assert_eq!(
        from_json::<AuthRequest>(null_v.as_bytes())
            .expect("null v")
            .v,
        None
    );
    for bad in [
        r#"{"public_key":"k","timestamp":1,"nonce":"n","signature":"s"}"#.to_owned(),
        r#"{"agent_id":"a","public_key":"k","timestamp":1,"nonce":"n"}"#.to_owned(),
        r#"{"agent_id":"a","public_key":"k","timestamp":"1","nonce":"n","signature":"s"}"#
            .to_owned(),
        r#"{"agent_id":"a","public_key":"k","timestamp":1.5,"nonce":"n","signature":"s"}"#
            .to_owned(),
        r#"{"agent_id":7,"public_key":"k","timestamp":1,"nonce":"n","signature":"s"}"#.to_owned(),
        format!("{{{ok},\"v\":2.5}}"),
        format!("{{{ok},\"v\":\"2\"}}"),
        format!("{{{ok},\"kx\":1}}"),
        format!("{{{ok},\"agent_id\":\"b\"}}"),
        "[]".to_owned(),
        "".to_owned(),
    ] {
        assert!(from_json::<AuthRequest>(bad.as_bytes()).is_err(), "{bad}");
    }
    assert!(matches!(
        from_b64_json::<AuthRequest>("e30=", 3),
        Err(PayloadError::TooLarge)
    ));
    assert!(matches!(
        from_b64_json::<AuthRequest>("e30", 100),
        Err(PayloadError::Base64)
    ));
    assert!(matches!(
        from_b64_json::<AuthRequest>("e30=", 100),
        Err(PayloadError::Json(_))
    ));
}

#[test]
fn auth_response_shapes() {
    assert_eq!(
        to_json(&AuthResponse::failure("bad signature")),
        r#"{"success":false,"session_token":"","backend_key":"","expires_at":0,"message":"bad signature"}"#
    );
    let ok = AuthResponse {
        success: true,
        session_token: "t.t.t".into(),
        backend_key: "b".into(),
        expires_at: 1700086400,
        message: "ok".into(),
        v: Some(2),
        server_nonce: Some("s".into()),
        signature: Some("g".into()),
    };
    let json = to_json(&ok);
    assert_eq!(
        json,
        r#"{"success":true,"session_token":"t.t.t","backend_key":"b","expires_at":1700086400,"message":"ok","v":2,"server_nonce":"s","signature":"g"}"#
    );
    assert_eq!(
        from_json::<AuthResponse>(json.as_bytes()).expect("valid"),
        ok
    );
}

#[test]
fn registration_request_from_the_go_agent() {
    let json = r#"{"agent_pubkey":"a2V5","agent_version":"1.0.0","capabilities":{},"host_id":"aegis-agent-001","machine_id_hash":"test-machine-hash","network":{"interface":"eth0"},"org_id":"default-org","platform":{"arch":"arm64","os":"linux"}}"#;
    let r: RegistrationRequest = from_json(json.as_bytes()).expect("valid");
    assert_eq!(r.org_id, "default-org");
    assert_eq!(r.host_id, "aegis-agent-001");
    assert_eq!(r.agent_pubkey, "a2V5");
    assert_eq!(r.agent_version, "1.0.0");
    assert_eq!(r.capabilities, serde_json::json!({}));
    assert_eq!(r.platform["os"], "linux");
    assert_eq!(r.network["interface"], "eth0");
    assert_eq!(r.machine_id_hash.as_deref(), Some("test-machine-hash"));
    // machine_id_hash is optional; the opaque values may be null but not absent.
    let no_hash = r#"{"org_id":"o","host_id":"h","agent_pubkey":"k","agent_version":"v","capabilities":null,"platform":[],"network":"x"}"#;
    let r: RegistrationRequest = from_json(no_hash.as_bytes()).expect("valid");
    assert_eq!(r.machine_id_hash, None);
    assert_eq!(r.capabilities, serde_json::Value::Null);
    let no_network = r#"{"org_id":"o","host_id":"h","agent_pubkey":"k","agent_version":"v","capabilities":{},"platform":{}}"#;
    assert!(from_json::<RegistrationRequest>(no_network.as_bytes()).is_err());
    let no_org = r#"{"host_id":"h","agent_pubkey":"k","agent_version":"v","capabilities":{},"platform":{},"network":{}}"#;
    assert!(from_json::<RegistrationRequest>(no_org.as_bytes()).is_err());
}

#[test]
fn registration_replies_and_errors_serialize_in_spec_order() {
    let c = RegistrationChallenge {
        registration_id: "r-1".into(),
        nonce: Z32.into(),
        server_time: "2023-11-14T22:13:20Z".into(),
    };
    assert_eq!(
        to_json(&c),
        format!(
            r#"{{"registration_id":"r-1","nonce":"{Z32}","server_time":"2023-11-14T22:13:20Z"}}"#
        )
    );
    let r = RegistrationResult {
        agent_uid: "u".into(),
        bootstrap_token: "tok".into(),
    };
    assert_eq!(to_json(&r), r#"{"agent_uid":"u","bootstrap_token":"tok"}"#);
    assert_eq!(
        to_b64_json(&r),
        "eyJhZ2VudF91aWQiOiJ1IiwiYm9vdHN0cmFwX3Rva2VuIjoidG9rIn0="
    );
    let m4 = r#"{"host_id":"h","registration_id":"r","signature":"s"}"#;
    let m4: RegistrationComplete = from_json(m4.as_bytes()).expect("valid");
    assert_eq!(
        (m4.registration_id.as_str(), m4.host_id.as_str()),
        ("r", "h")
    );
    let e = ErrorPayload::new(ErrorKind::InvalidMessage, "bad \"frame\"", "");
    assert_eq!(
        to_json(&e),
        r#"{"error":"invalid_message","message":"bad \"frame\"","details":"","code":4008}"#
    );
}

#[test]
fn agent_ids() {
    for ok in ["a", "aegis-agent-001", "A.b_c@d-9", &"x".repeat(128)] {
        assert!(is_agent_id(ok), "{ok}");
    }
    for bad in ["", "a b", "a:b", "a/b", "é", "a\n", &"x".repeat(129)] {
        assert!(!is_agent_id(bad), "{bad}");
    }
}

#[test]
fn base64_exact_lengths() {
    assert_eq!(decode_b64_exact::<32>(Z32), Some([0u8; 32]));
    assert_eq!(decode_b64_exact::<16>(Z16), Some([0u8; 16]));
    assert_eq!(decode_b64_exact::<12>("AAAAAAAAAAAAAAAA"), Some([0u8; 12]));
    assert_eq!(decode_b64_exact::<5>("aGVsbG8="), Some(*b"hello"));
    assert_eq!(b64(b"hello"), "aGVsbG8=");
    assert_eq!(b64(&[0u8; 32]), Z32);
    // Wrong lengths, missing padding, other alphabets, non-canonical bits.
    assert_eq!(decode_b64_exact::<32>(Z16), None);
    assert_eq!(decode_b64_exact::<16>(Z32), None);
    assert_eq!(decode_b64_exact::<32>(&Z32[..43]), None);
    assert_eq!(decode_b64_exact::<31>(Z32), None);
    assert_eq!(decode_b64_exact::<33>(Z32), None);
    assert_eq!(decode_b64_exact::<16>("AAAAAAAAAAAAAAAAAAAAAB=="), None);
    assert_eq!(decode_b64_exact::<12>("AAAAAAAAAAAAAA-_"), None);
    assert_eq!(
        decode_b64_exact::<12>("AAAAAAAAAAAAAA+/"),
        Some([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x0f, 0xbf])
    );
    assert_eq!(decode_b64_exact::<32>(&"A".repeat(1 << 20)), None);
    assert_eq!(decode_b64_capped("aGVsbG8=", 5), Some(b"hello".to_vec()));
    assert_eq!(decode_b64_capped("aGVsbG8=", 4), None);
    assert_eq!(decode_b64_capped("", 4), Some(Vec::new()));
}

#[test]
fn server_time_format() {
    assert_eq!(server_time(0), "1970-01-01T00:00:00Z");
    assert_eq!(server_time(1_700_000_000), "2023-11-14T22:13:20Z");
    assert_eq!(server_time(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(server_time(4_102_444_800), "2100-01-01T00:00:00Z");
    assert_eq!(server_time(-1), "1969-12-31T23:59:59Z");
    assert_eq!(server_time(i64::MAX), "9999-12-31T23:59:59Z");
    assert_eq!(server_time(i64::MIN), "0000-01-01T00:00:00Z");
}

#[test]
fn ack_payload_carries_the_id_and_the_empty_object_is_legacy() {
    assert_eq!(
        to_json(&AckPayload { ack: "m-1".into() }),
        r#"{"ack":"m-1"}"#
    );
    let ok = |s: &str| from_json::<AckBody>(s.as_bytes()).map_err(|e| e.to_string());
    assert_eq!(ok(r#"{"ack":"m-1"}"#), Ok(AckBody::Id("m-1".into())));
    assert_eq!(
        ok(r#"{"v":1,"ack":"m\u002d1"}"#),
        Ok(AckBody::Id("m-1".into()))
    );
    assert_eq!(ok(" {\"ack\":\"\"}\n"), Ok(AckBody::Id(String::new())));
    assert_eq!(ok("{}"), Ok(AckBody::Legacy));
    assert_eq!(ok(" { }\n"), Ok(AckBody::Legacy));
    for bad in [
        r#"{"ack":"a","ack":"b"}"#,
        r#"{"ack":7}"#,
        r#"{"ack":null}"#,
        r#"{"other":"m-1"}"#,
        r#"["m-1"]"#,
        r#""m-1""#,
        "",
        "{}{}",
        r#"{"ack":"m-1""#,
    ] {
        assert!(ok(bad).is_err(), "{bad:?} accepted: {:?}", ok(bad));
    }
}
