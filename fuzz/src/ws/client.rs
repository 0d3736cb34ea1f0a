//! The client side of RFC 6455 framing, written here independently of `protocol::ws` (no
//! tungstenite, no `apply_mask`): a masking encoder for the frames a browser or agent sends, and
//! a strict reader of the unmasked frames the gateway sends.

/// Continuation frame opcode (RFC 6455 §5.2).
pub const CONT: u8 = 0x0;
/// Text frame opcode.
pub const TEXT: u8 = 0x1;
/// Binary frame opcode.
pub const BINARY: u8 = 0x2;
/// Close frame opcode.
pub const CLOSE: u8 = 0x8;
/// Ping frame opcode.
pub const PING: u8 = 0x9;
/// Pong frame opcode.
pub const PONG: u8 = 0xA;

/// How a payload length is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LenForm {
    /// The shortest form (RFC 6455 §5.2: "the minimal number of bytes MUST be used").
    Minimal,
    /// The 7-bit form (the length is cut to 125).
    Short,
    /// The 16-bit form (`126`, then two bytes; the length is cut to 65535).
    Medium,
    /// The 64-bit form (`127`, then eight bytes).
    Long,
}

/// Appends the second header byte (with `mask_bit`) and the extended length of `len`.
pub fn push_len(out: &mut Vec<u8>, mask_bit: u8, len: u64, form: LenForm) {
    let form = match form {
        LenForm::Minimal if len < 126 => LenForm::Short,
        LenForm::Minimal if len <= 0xffff => LenForm::Medium,
        LenForm::Minimal => LenForm::Long,
        other => other,
    };
    match form {
        LenForm::Short => out.push(mask_bit | len.min(125) as u8),
        LenForm::Medium => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len.min(0xffff) as u16).to_be_bytes());
        }
        LenForm::Long | LenForm::Minimal => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
}

/// XORs `payload` with `mask` byte by byte (RFC 6455 §5.3, the obvious way), appending to `out`.
pub fn push_masked(out: &mut Vec<u8>, mask: [u8; 4], payload: &[u8]) {
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
}

/// Appends one masked client frame: FIN, no reserved bits, `opcode`, the minimal length form,
/// `mask` and the masked payload.
pub fn frame(out: &mut Vec<u8>, fin: bool, opcode: u8, mask: [u8; 4], payload: &[u8]) {
    out.push(u8::from(fin) << 7 | opcode);
    push_len(out, 0x80, payload.len() as u64, LenForm::Minimal);
    out.extend_from_slice(&mask);
    push_masked(out, mask, payload);
}

/// A data message cut into frames: the first carries `opcode`, the others are continuations;
/// `between(i)` is called after every frame but the last (to interleave control frames).
/// `sizes` are the sizes of the first fragments (the last one takes the rest); at most 32 are
/// used.
pub fn message(
    out: &mut Vec<u8>,
    opcode: u8,
    mask: [u8; 4],
    payload: &[u8],
    sizes: &[u8],
    mut between: impl FnMut(&mut Vec<u8>, usize),
) {
    let mut rest = payload;
    let mut first = true;
    for (i, size) in sizes.iter().take(32).enumerate() {
        let size = usize::from(*size).min(rest.len());
        if size == rest.len() {
            break;
        }
        let (now, later) = rest.split_at(size);
        frame(out, false, if first { opcode } else { CONT }, mask, now);
        between(out, i);
        first = false;
        rest = later;
    }
    frame(out, true, if first { opcode } else { CONT }, mask, rest);
}

/// A server frame read strictly: FIN set, no reserved bits, unmasked, the minimal length form,
/// and exactly `frame.len()` bytes. Returns the opcode and the payload, or why it is not one.
pub fn read_server_frame(frame: &[u8]) -> Result<(u8, &[u8]), &'static str> {
    let [first, second, rest @ ..] = frame else {
        return Err("shorter than two bytes");
    };
    if first & 0x80 == 0 {
        return Err("FIN not set");
    }
    if first & 0x70 != 0 {
        return Err("reserved bits set");
    }
    if second & 0x80 != 0 {
        return Err("masked server frame");
    }
    let (len, payload) = match second & 0x7f {
        126 => {
            let [a, b, payload @ ..] = rest else {
                return Err("16-bit length cut");
            };
            (u64::from(u16::from_be_bytes([*a, *b])), payload)
        }
        127 => {
            let (len, payload) = rest.split_at_checked(8).ok_or("64-bit length cut")?;
            let mut b = [0u8; 8];
            b.copy_from_slice(len);
            (u64::from_be_bytes(b), payload)
        }
        n => (u64::from(n), rest),
    };
    let minimal = match second & 0x7f {
        126 => len >= 126,
        127 => len > 0xffff,
        _ => true,
    };
    if !minimal {
        return Err("length not in its minimal form");
    }
    if len != payload.len() as u64 {
        return Err("length does not match the payload");
    }
    Ok((first & 0x0f, payload))
}

/// The masked client copy of a strictly valid server frame (what a client would have sent).
pub fn remask(server_frame: &[u8], mask: [u8; 4]) -> Result<Vec<u8>, &'static str> {
    let (opcode, payload) = read_server_frame(server_frame)?;
    let mut out = Vec::with_capacity(server_frame.len() + 4);
    frame(&mut out, true, opcode, mask, payload);
    Ok(out)
}
