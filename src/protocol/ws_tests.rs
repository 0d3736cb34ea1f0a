use super::*;

const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame.
fn client(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    out.extend_from_slice(&MASK);
    let at = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[at..], MASK);
    out
}

fn decode_all(d: &mut Decoder, bytes: &[u8]) -> (Vec<Incoming>, Result<(), WsError>) {
    let mut out = Vec::new();
    let r = d.feed(bytes, &mut out);
    (out, r)
}

#[test]
fn rfc6455_masked_hello() {
    // RFC 6455 §5.7: a single-frame masked text message "Hello".
    let frame = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    let mut d = Decoder::new(1024);
    let (out, r) = decode_all(&mut d, &frame);
    assert_eq!(r, Ok(()));
    assert_eq!(out, vec![Incoming::Text(b"Hello".to_vec())]);
    assert!(d.is_idle());
}

#[test]
fn server_frames_match_rfc6455_examples() {
    // §5.7: unmasked "Hello", and an unmasked ping with "Hello".
    assert_eq!(text(b"Hello"), [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]);
    assert_eq!(
        control(Control::Pong, b"Hello"),
        [0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
    );
    // 256 bytes take the 16-bit length form, 65536 the 64-bit one.
    assert_eq!(&text(&[0; 256])[..4], &[0x81, 0x7e, 0x01, 0x00]);
    assert_eq!(
        &text(&vec![0; 65536])[..10],
        &[0x81, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0]
    );
    assert_eq!(
        close_frame(1000, "bye"),
        [0x88, 0x05, 0x03, 0xe8, b'b', b'y', b'e']
    );
}

#[test]
fn close_reason_is_cut_at_a_char_boundary() {
    let long = "é".repeat(100);
    let f = close_frame(4001, &long);
    assert!(f.len() <= 2 + 125);
    let payload = &f[2..];
    assert!(std::str::from_utf8(&payload[2..]).is_ok());
    let mut d = Decoder::new(1024);
    // A server frame is not masked: the decoder (server side) must refuse it.
    assert_eq!(
        decode_all(&mut d, &f).1,
        Err(WsError::Protocol("unmasked client frame"))
    );
}

#[test]
fn mask_is_its_own_inverse_at_every_length_and_phase() {
    for len in 0..40 {
        let orig: Vec<u8> = (0..len as u8).collect();
        let mut buf = orig.clone();
        apply_mask(&mut buf, MASK);
        for (i, (a, b)) in buf.iter().zip(&orig).enumerate() {
            assert_eq!(*a, b ^ MASK[i % 4]);
        }
        apply_mask(&mut buf, MASK);
        assert_eq!(buf, orig);
    }
}

#[test]
fn frames_split_at_every_byte_decode_the_same() {
    let mut stream = client(true, 0x1, b"first message");
    stream.extend(client(true, 0x9, b"ping!"));
    stream.extend(client(false, 0x2, &[1, 2, 3]));
    stream.extend(client(true, 0xA, b""));
    stream.extend(client(true, 0x0, &[4, 5]));
    let want = vec![
        Incoming::Text(b"first message".to_vec()),
        Incoming::Ping(b"ping!".to_vec()),
        Incoming::Pong,
        Incoming::Binary(vec![1, 2, 3, 4, 5]),
    ];
    for cut in 0..=stream.len() {
        let mut d = Decoder::new(1024);
        let (mut out, r1) = decode_all(&mut d, &stream[..cut]);
        let (rest, r2) = decode_all(&mut d, &stream[cut..]);
        out.extend(rest);
        assert_eq!((r1, r2), (Ok(()), Ok(())), "cut at {cut}");
        assert_eq!(out, want, "cut at {cut}");
        assert!(
            d.is_idle(),
            "nothing held after the last frame (cut at {cut})"
        );
    }
    // And one byte at a time.
    let mut d = Decoder::new(1024);
    let mut out = Vec::new();
    for b in &stream {
        d.feed(std::slice::from_ref(b), &mut out).unwrap();
    }
    assert_eq!(out, want);
}

#[test]
fn partial_frame_is_held_until_complete() {
    let f = client(true, 0x1, b"abcdef");
    let mut d = Decoder::new(1024);
    let (out, r) = decode_all(&mut d, &f[..4]);
    assert!(out.is_empty() && r.is_ok());
    assert!(!d.is_idle());
    let (out, _) = decode_all(&mut d, &f[4..]);
    assert_eq!(out, vec![Incoming::Text(b"abcdef".to_vec())]);
    assert!(d.is_idle());
}

#[test]
fn violations_map_to_their_close_codes() {
    let cases: Vec<(Vec<u8>, WsError)> = vec![
        // RSV1 set.
        (
            {
                let mut f = client(true, 0x1, b"x");
                f[0] |= 0x40;
                f
            },
            WsError::Protocol("reserved bits set"),
        ),
        // Reserved data and control opcodes.
        (
            client(true, 0x3, b""),
            WsError::Protocol("invalid frame header"),
        ),
        (
            client(true, 0xB, b""),
            WsError::Protocol("invalid frame header"),
        ),
        // Unmasked.
        (text(b"x"), WsError::Protocol("unmasked client frame")),
        // Fragmented and oversize control frames.
        (
            client(false, 0x9, b""),
            WsError::Protocol("fragmented control frame"),
        ),
        (
            client(true, 0x9, &[0; 126]),
            WsError::Protocol("control frame too long"),
        ),
        // Continuation with nothing to continue.
        (
            client(true, 0x0, b"x"),
            WsError::Protocol("continuation without a message"),
        ),
        // A new message while one is fragmented.
        (
            [client(false, 0x1, b"a"), client(true, 0x1, b"b")].concat(),
            WsError::Protocol("new message inside a fragmented one"),
        ),
        // Bad UTF-8, whole and fragmented (fails at the bad fragment, not at the end).
        (client(true, 0x1, &[0xff]), WsError::Utf8),
        (
            [client(false, 0x1, b"ok"), client(false, 0x0, &[0xc0, 0x80])].concat(),
            WsError::Utf8,
        ),
        // An incomplete sequence at the end of the final fragment.
        (
            [client(false, 0x1, b"ok"), client(true, 0x0, &[0xe2, 0x82])].concat(),
            WsError::Utf8,
        ),
        // Close: one byte, a reserved code, a bad reason.
        (
            client(true, 0x8, &[0x03]),
            WsError::Protocol("close frame of one byte"),
        ),
        (
            client(true, 0x8, &1005u16.to_be_bytes()),
            WsError::Protocol("invalid close code"),
        ),
        (client(true, 0x8, &[0x03, 0xe8, 0xff]), WsError::Utf8),
        // Over the limit: one frame, and fragments adding up.
        (client(true, 0x2, &[0; 65]), WsError::TooBig),
        (
            [client(false, 0x2, &[0; 40]), client(true, 0x0, &[0; 40])].concat(),
            WsError::TooBig,
        ),
    ];
    for (bytes, want) in cases {
        let mut d = Decoder::new(64);
        let (_, r) = decode_all(&mut d, &bytes);
        assert_eq!(r, Err(want), "{bytes:02x?}");
        // After a violation nothing more is decoded (the framing is only followed).
        let (out, r) = decode_all(&mut d, &client(true, 0x1, b"later"));
        assert!(out.is_empty() && r.is_ok());
        assert!(
            d.is_idle(),
            "{bytes:02x?}: a payload held after the violation"
        );
    }
    assert_eq!(WsError::Protocol("x").close_code(), 1002);
    assert_eq!(WsError::Utf8.close_code(), 1007);
    assert_eq!(WsError::TooBig.close_code(), 1009);
}

#[test]
fn oversize_header_is_refused_before_its_payload_arrives() {
    // A header announcing 2^40 bytes: refused on the header alone, nothing buffered.
    let mut f = vec![0x82, 0x80 | 127];
    f.extend_from_slice(&(1u64 << 40).to_be_bytes());
    f.extend_from_slice(&MASK);
    let mut d = Decoder::new(256 * 1024);
    assert_eq!(decode_all(&mut d, &f).1, Err(WsError::TooBig));
    assert!(d.is_idle());
}

#[test]
fn frames_before_a_violation_are_delivered_and_nothing_after_a_close() {
    let bytes = [
        client(true, 0x1, b"one"),
        client(true, 0x8, &[0x03, 0xe8, b'o', b'k']),
        client(true, 0x1, b"after close"),
    ]
    .concat();
    let mut d = Decoder::new(64);
    let (out, r) = decode_all(&mut d, &bytes);
    assert_eq!(r, Ok(()));
    assert_eq!(
        out,
        vec![
            Incoming::Text(b"one".to_vec()),
            Incoming::Close(Some((1000, "ok".to_string())))
        ]
    );
    let bytes = [client(true, 0x1, b"one"), client(true, 0x1, &[0xff])].concat();
    let mut d = Decoder::new(64);
    let (out, r) = decode_all(&mut d, &bytes);
    assert_eq!(out, vec![Incoming::Text(b"one".to_vec())]);
    assert_eq!(r, Err(WsError::Utf8));
}

#[test]
fn utf8_split_across_fragments_is_accepted() {
    let euro = "€".as_bytes();
    let bytes = [
        client(false, 0x1, &euro[..1]),
        client(true, 0x9, b"p"),
        client(false, 0x0, &euro[1..2]),
        client(true, 0x0, &euro[2..]),
    ]
    .concat();
    let mut d = Decoder::new(64);
    let (out, r) = decode_all(&mut d, &bytes);
    assert_eq!(r, Ok(()));
    assert_eq!(
        out,
        vec![Incoming::Ping(b"p".to_vec()), Incoming::Text(euro.to_vec())]
    );
    assert!(d.is_idle());
}

#[test]
fn header_violations_are_refused_before_the_payload_arrives() {
    // Only the header of each frame is fed: the verdict must not wait for the payload.
    let cases: Vec<(Vec<u8>, WsError)> = vec![
        (
            vec![0x81 | 0x40, 0x80 | 100, 1, 2, 3, 4],
            WsError::Protocol("reserved bits set"),
        ),
        (vec![0x82, 100], WsError::Protocol("unmasked client frame")),
        (
            vec![0x80, 0x80 | 100, 1, 2, 3, 4],
            WsError::Protocol("continuation without a message"),
        ),
    ];
    for (header, want) in cases {
        let mut d = Decoder::new(1024);
        assert_eq!(decode_all(&mut d, &header).1, Err(want), "{header:02x?}");
        assert_eq!(d.buffered(), 0);
    }
    // A new message inside a fragmented one, and fragments adding up past the limit.
    let mut d = Decoder::new(64);
    decode_all(&mut d, &client(false, 0x1, b"part")).1.unwrap();
    assert_eq!(
        decode_all(&mut d, &[0x81, 0x80 | 10, 1, 2, 3, 4]).1,
        Err(WsError::Protocol("new message inside a fragmented one"))
    );
    let mut d = Decoder::new(64);
    decode_all(&mut d, &client(false, 0x2, &[0; 40])).1.unwrap();
    assert_eq!(
        decode_all(&mut d, &[0x80, 0x80 | 40, 1, 2, 3, 4]).1,
        Err(WsError::TooBig)
    );
}

#[test]
fn held_memory_is_the_partial_frame_and_nothing_after_a_close() {
    // A large read ending in a partial frame: the decoder keeps about the partial frame only.
    let mut stream: Vec<u8> = (0..50)
        .flat_map(|_| client(true, 0x2, &[7; 1000]))
        .collect();
    let last = client(true, 0x2, &[9; 1000]);
    stream.extend_from_slice(&last[..100]);
    let mut d = Decoder::new(4096);
    let mut out = Vec::new();
    // First a split frame so the second feed goes through the pending path.
    d.feed(&stream[..10], &mut out).unwrap();
    d.feed(&stream[10..], &mut out).unwrap();
    assert_eq!(out.len(), 50);
    assert!(d.buffered() < 2 * 100, "held {} bytes", d.buffered());
    // A close in the middle of a read: the bytes after it are not kept.
    let bytes = [
        client(true, 0x8, &[0x03, 0xe8]),
        client(true, 0x1, b"after"),
    ]
    .concat();
    let mut d = Decoder::new(64);
    decode_all(&mut d, &bytes[..3]).1.unwrap();
    decode_all(&mut d, &bytes[3..]).1.unwrap();
    assert!(d.is_idle());
}

/// A masked client frame header announcing `len` bytes in the 64-bit length form.
fn long_header(first: u8, len: u64) -> Vec<u8> {
    let mut f = vec![first, 0x80 | 127];
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&MASK);
    f
}

#[test]
fn continuation_with_the_largest_length_is_a_protocol_error_not_an_overflow() {
    // Found by the `ws_frames` fuzz target: `held + len` overflowed (a panic with overflow
    // checks, 1009 only by wrapping in release). The top bit of a 64-bit length must be 0
    // (RFC 6455 §5.2): 1002, decided on the header.
    let mut d = Decoder::new(256 * 1024);
    decode_all(&mut d, &client(false, 0x1, b"a")).1.unwrap();
    let r = decode_all(&mut d, &long_header(0x80, u64::MAX)).1;
    assert_eq!(
        r,
        Err(WsError::Protocol("64-bit length with the top bit set"))
    );
    assert_eq!(r.unwrap_err().close_code(), 1002);
    // Any top-bit length, first frame or continuation, at any limit.
    for (limit, first, len) in [
        (0, 0x82, 1u64 << 63),
        (usize::MAX, 0x81, u64::MAX),
        (64, 0x89, 1 << 63),
    ] {
        let mut d = Decoder::new(limit);
        assert_eq!(
            decode_all(&mut d, &long_header(first, len)).1,
            Err(WsError::Protocol("64-bit length with the top bit set"))
        );
        assert!(d.is_closed(), "the framing is lost: nothing to wait for");
    }
    // Just below: an ordinary 1009, fragments adding up to it included (saturating).
    let mut d = Decoder::new(usize::MAX);
    decode_all(&mut d, &client(false, 0x2, b"a")).1.unwrap();
    assert_eq!(
        decode_all(&mut d, &long_header(0x80, i64::MAX as u64)).1,
        Ok(()),
        "under an unlimited limit the frame is awaited"
    );
    let mut d = Decoder::new(1 << 20);
    decode_all(&mut d, &client(false, 0x2, b"a")).1.unwrap();
    assert_eq!(
        decode_all(&mut d, &long_header(0x80, i64::MAX as u64)).1,
        Err(WsError::TooBig)
    );
}

/// The peer's answer to a close: a close frame with code 1000.
fn answer() -> Vec<u8> {
    client(true, 0x8, &1000u16.to_be_bytes())
}

#[test]
fn after_a_violation_the_peers_close_frame_ends_the_handshake() {
    // Invalid UTF-8 (1007), then what the peer still sends: a message, a fragment, a ping and
    // its answering close. Nothing is decoded after the violation, but the close is seen, at
    // every split of the stream.
    let bad = client(true, 0x1, &[0xff]);
    let after = [
        client(true, 0x1, b"in flight"),
        client(false, 0x2, &[1; 300]),
        client(true, 0x9, b"ping"),
        answer(),
    ]
    .concat();
    let stream = [bad.clone(), after.clone()].concat();
    for cut in 0..=stream.len() {
        let mut d = Decoder::new(64);
        let (mut out, r1) = decode_all(&mut d, &stream[..cut]);
        let (more, r2) = decode_all(&mut d, &stream[cut..]);
        out.extend(more);
        assert!(out.is_empty(), "cut {cut}: decoded {out:?}");
        let first_err = if cut < bad.len() { r2 } else { r1 };
        assert_eq!(first_err, Err(WsError::Utf8), "cut {cut}");
        assert!(d.is_closed(), "cut {cut}: the peer's close was not seen");
        assert!(d.is_idle(), "cut {cut}: nothing held after the close");
    }
    // Before the close arrives the decoder is still waiting for it, holding no payload.
    let mut d = Decoder::new(64);
    assert_eq!(decode_all(&mut d, &bad).1, Err(WsError::Utf8));
    assert!(!d.is_closed());
    let cut = after.len() - 1;
    assert_eq!(decode_all(&mut d, &after[..cut]), (vec![], Ok(())));
    assert!(!d.is_closed(), "a close frame is seen only when complete");
    assert!(d.buffered() <= 14, "draining holds at most a header");
    assert_eq!(decode_all(&mut d, &after[cut..]), (vec![], Ok(())));
    assert!(d.is_closed());
    // Once closed, input is ignored.
    assert_eq!(
        decode_all(&mut d, &client(true, 0x1, b"x")),
        (vec![], Ok(()))
    );
    assert!(d.is_idle());
}

#[test]
fn every_violation_leaves_the_framing_in_step_for_the_peers_close() {
    // Each violation of `violations_map_to_their_close_codes` that is not itself a close frame,
    // followed by the peer's close (its payload fed in pieces): the close is recognised.
    let cases: Vec<Vec<u8>> = vec![
        {
            let mut f = client(true, 0x1, b"x");
            f[0] |= 0x40;
            f
        },
        client(true, 0x3, b"abc"),
        client(true, 0xB, b""),
        text(b"unmasked"),
        client(false, 0x9, b"frag"),
        client(true, 0x9, &[0; 126]),
        client(true, 0x0, b"x"),
        [client(false, 0x1, b"a"), client(true, 0x1, b"b")].concat(),
        [client(false, 0x1, b"ok"), client(false, 0x0, &[0xc0, 0x80])].concat(),
        client(true, 0x2, &[0; 65]),
        [client(false, 0x2, &[0; 40]), client(true, 0x0, &[0; 40])].concat(),
    ];
    for bad in cases {
        let mut d = Decoder::new(64);
        assert!(decode_all(&mut d, &bad).1.is_err(), "{bad:02x?}");
        assert!(!d.is_closed(), "{bad:02x?}: closed before the peer's close");
        let close = answer();
        decode_all(&mut d, &close[..3]).1.unwrap();
        assert!(!d.is_closed());
        decode_all(&mut d, &close[3..]).1.unwrap();
        assert!(d.is_closed(), "{bad:02x?}: the peer's close was not seen");
    }
}

#[test]
fn an_oversize_frame_is_skipped_unbuffered_until_the_close_behind_it() {
    // A 1009 on a header announcing 100 000 bytes: the payload is counted off, never held, and
    // a close frame inside it is payload, not a close.
    let mut d = Decoder::new(64);
    let mut head = vec![0x82, 0x80 | 127];
    head.extend_from_slice(&100_000u64.to_be_bytes());
    head.extend_from_slice(&MASK);
    assert_eq!(decode_all(&mut d, &head).1, Err(WsError::TooBig));
    let mut payload = answer();
    payload.resize(100_000, 0);
    for chunk in payload.chunks(4096) {
        assert_eq!(decode_all(&mut d, chunk), (vec![], Ok(())));
        assert!(!d.is_closed());
        assert_eq!(d.buffered(), 0);
    }
    decode_all(&mut d, &answer()).1.unwrap();
    assert!(d.is_closed());
}

#[test]
fn a_violating_close_frame_or_a_close_in_the_same_read_ends_at_once() {
    // The peer's own close was the violation (bad code, bad reason, one byte): it has closed.
    for bad in [
        client(true, 0x8, &1005u16.to_be_bytes()),
        client(true, 0x8, &[0x03, 0xe8, 0xff]),
        client(true, 0x8, &[0x03]),
    ] {
        let mut d = Decoder::new(64);
        assert!(decode_all(&mut d, &bad).1.is_err());
        assert!(d.is_closed(), "{bad:02x?}");
    }
    // The violation and the peer's close in one read: the error is returned (so it is
    // answered with its code), and the close is already seen.
    let mut d = Decoder::new(64);
    let bytes = [
        client(true, 0x1, b"ok"),
        client(true, 0x1, &[0xff]),
        answer(),
    ]
    .concat();
    let (out, r) = decode_all(&mut d, &bytes);
    assert_eq!(out, vec![Incoming::Text(b"ok".to_vec())]);
    assert_eq!(r, Err(WsError::Utf8));
    assert!(d.is_closed());
    // A close decoded normally closes too.
    let mut d = Decoder::new(64);
    assert!(!d.is_closed());
    decode_all(&mut d, &answer()).1.unwrap();
    assert!(d.is_closed());
}
