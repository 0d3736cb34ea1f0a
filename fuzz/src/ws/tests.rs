//! The harness must build well-formed streams the decoder accepts, and its own encoder and
//! server-frame reader must be right, or the round-trip invariant tests nothing.

use super::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

fn input(limit: usize, pieces: Vec<Piece>) -> Input {
    Input {
        limit: LIMITS
            .iter()
            .position(|l| *l == limit)
            .expect("a listed limit") as u8,
        cuts: vec![1, 3, 9, 200],
        pieces,
    }
}

fn ping(p: &[u8]) -> Ctl {
    Ctl::Ping(p.to_vec(), [1, 2, 3, 4])
}

#[test]
fn client_frame_matches_rfc6455_example() {
    // RFC 6455 §5.7: a single-frame masked text message "Hello".
    let mut out = Vec::new();
    client::frame(&mut out, true, client::TEXT, MASK, b"Hello");
    assert_eq!(
        out,
        [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
    );
}

#[test]
fn server_frame_reader_is_strict() {
    assert_eq!(
        client::read_server_frame(&ws::text(b"Hello")),
        Ok((1, &b"Hello"[..]))
    );
    let big = ws::text(&[7; 70_000]);
    assert_eq!(
        client::read_server_frame(&big).map(|(_, p)| p.len()),
        Ok(70_000)
    );
    // 5 bytes in the 16-bit form, an unmasked-bit violation, a short payload.
    assert!(client::read_server_frame(&[0x81, 126, 0, 5, 1, 2, 3, 4, 5]).is_err());
    assert!(client::read_server_frame(&[0x81, 0x81, 0, 0, 0, 0, 1]).is_err());
    assert!(client::read_server_frame(&[0x81, 3, 1, 2]).is_err());
    assert!(client::read_server_frame(&[0x01, 0]).is_err());
}

#[test]
fn fragmented_text_with_interleaved_controls_round_trips() {
    // "é" and "€" cut inside their bytes; a ping and a pong between fragments.
    let body = "aé€z".to_string();
    let pieces = vec![
        Piece::Text {
            body: body.clone(),
            sizes: vec![2, 0, 2, 1],
            between: vec![ping(b"p1"), Ctl::Pong(b"x".to_vec(), MASK)],
            mask: MASK,
        },
        Piece::Binary {
            body: vec![0, 1, 2, 3],
            sizes: vec![1],
            between: Vec::new(),
            mask: [0; 4],
        },
        Piece::Control(ping(b"")),
    ];
    let s = build(&pieces, 1000);
    assert!(s.exact);
    assert_eq!(
        s.expected,
        vec![
            Incoming::Ping(b"p1".to_vec()),
            Incoming::Pong,
            Incoming::Text(body.into_bytes()),
            Incoming::Binary(vec![0, 1, 2, 3]),
            Incoming::Ping(Vec::new()),
        ]
    );
    run(&input(1000, pieces));
}

#[test]
fn messages_are_cut_to_the_limit_and_a_close_ends_the_model() {
    let pieces = vec![
        Piece::Text {
            body: "éééé".into(),
            sizes: Vec::new(),
            between: Vec::new(),
            mask: MASK,
        },
        Piece::Close {
            code: 0,
            reason: "bye".into(),
            mask: MASK,
        },
        Piece::Raw(vec![0xff; 40], MASK),
    ];
    let s = build(&pieces, 7);
    assert!(s.exact, "a close before the raw bytes: the model is exact");
    assert_eq!(
        s.expected,
        vec![
            Incoming::Text("ééé".as_bytes().to_vec()),
            Incoming::Close(Some((1000, "bye".into()))),
        ]
    );
    run(&input(7, pieces));
    // Under a limit of 1 the close has no room for a code.
    let s = build(
        &[Piece::Close {
            code: 3,
            reason: "x".into(),
            mask: MASK,
        }],
        1,
    );
    assert_eq!(s.expected, vec![Incoming::Close(None)]);
}

#[test]
fn malformed_pieces_only_keep_the_prefix() {
    let pieces = vec![
        Piece::Control(ping(b"a")),
        // Unmasked text frame: a protocol error.
        Piece::Frame {
            first: 0x81,
            mask: None,
            form: 0,
            len: None,
            payload: b"hi".to_vec(),
        },
        Piece::Control(ping(b"b")),
    ];
    let s = build(&pieces, 64);
    assert!(!s.exact);
    assert_eq!(s.expected, vec![Incoming::Ping(b"a".to_vec())]);
    let (fed, _) = feed_chunks(64, &s.bytes, &[]);
    assert_eq!(fed.result, Err(WsError::Protocol("unmasked client frame")));
    run(&input(64, pieces));
}

#[test]
fn long_length_forms_and_oversize_frames() {
    // A 64-bit length over the limit is refused on the header; a 16-bit form of a short
    // payload (not minimal) is accepted by the decoder.
    for (form, len, limit) in [(3, Some(1u64 << 40), 1000), (2, None, 1000), (0, None, 0)] {
        let pieces = vec![Piece::Frame {
            first: 0x82,
            mask: Some(MASK),
            form,
            len,
            payload: vec![9; 5],
        }];
        run(&input(limit, pieces));
    }
    let (fed, _) = feed_chunks(
        1000,
        &build(
            &[Piece::Frame {
                first: 0x82,
                mask: Some(MASK),
                form: 3,
                len: Some(1 << 40),
                payload: Vec::new(),
            }],
            1000,
        )
        .bytes,
        &[],
    );
    assert_eq!(fed.result, Err(WsError::TooBig));
}

#[test]
fn every_close_code_picked_is_accepted() {
    for pick in (0..=u16::MAX).step_by(97) {
        let s = build(
            &[Piece::Close {
                code: pick,
                reason: String::new(),
                mask: MASK,
            }],
            125,
        );
        let (fed, _) = feed_chunks(125, &s.bytes, &[]);
        assert_eq!(fed.messages, s.expected, "code pick {pick}");
    }
}

/// A raw frame piece: `first` byte, masked, in length form `form`, declaring `len`.
fn raw(first: u8, form: u8, len: Option<u64>, payload: &[u8]) -> Piece {
    Piece::Frame {
        first,
        mask: Some(MASK),
        form,
        len,
        payload: payload.to_vec(),
    }
}

#[test]
fn continuation_length_overflow_input_is_a_protocol_error() {
    // The input `ws_frames` crashed on with overflow checks (≈ 100 s in): a text frame with
    // FIN=0 and one byte, then a continuation declaring 2^64 − 1 bytes.
    for limit in LIMITS {
        let pieces = vec![raw(0x01, 0, None, b"a"), raw(0x80, 3, Some(u64::MAX), b"")];
        run(&input(limit, pieces.clone()));
        if limit == 0 {
            continue; // the first byte is already over the limit
        }
        let (fed, d) = feed_chunks(limit, &build(&pieces, limit).bytes, &[]);
        assert_eq!(
            fed.result,
            Err(WsError::Protocol("64-bit length with the top bit set")),
            "limit {limit}"
        );
        assert!(d.is_closed());
    }
}

#[test]
fn the_peers_close_after_a_violation_closes_the_decoder() {
    // Invalid UTF-8, a message and a ping still in flight, then the peer's close: the decoder
    // reports the 1007 only, and ends closed; without the close it keeps waiting.
    let mut pieces = vec![
        raw(0x81, 0, None, &[0xff]),
        Piece::Text {
            body: "late".into(),
            sizes: vec![2],
            between: vec![ping(b"p")],
            mask: MASK,
        },
    ];
    let s = build(&pieces, 1000);
    let (fed, _) = feed_chunks(1000, &s.bytes, &[3, 5]);
    assert_eq!(
        (fed.messages.len(), fed.result, fed.closed),
        (0, Err(WsError::Utf8), false)
    );
    pieces.push(Piece::EmptyClose(MASK));
    run(&input(1000, pieces.clone()));
    let s = build(&pieces, 1000);
    let (fed, d) = feed_chunks(1000, &s.bytes, &[3, 5]);
    assert_eq!(
        (fed.messages.len(), fed.result, fed.closed),
        (0, Err(WsError::Utf8), true)
    );
    assert!(d.is_idle());
}
