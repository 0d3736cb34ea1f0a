//! The exact byte strings that are signed, or used as AEAD associated data (PROTOCOL.md §2, §4,
//! §5, §6).
//!
//! Fields are written exactly as they travel: base64 fields as their base64 text, numbers in
//! decimal without leading zeros (negative numbers with a leading `-`), separated by literal
//! colons. The callers pass text that was already validated (ids, channels and base64 never
//! contain `:`), so the strings are unambiguous.

/// v1 M1 signature input: `"agent_id:public_key:timestamp:nonce"`.
pub fn v1_auth(agent_id: &str, public_key_b64: &str, timestamp: i64, nonce_b64: &str) -> Vec<u8> {
    format!("{agent_id}:{public_key_b64}:{timestamp}:{nonce_b64}").into_bytes()
}

/// v2 M1 signature input: `"aegis/2:auth:agent_id:public_key:timestamp:nonce:kx"`.
pub fn v2_auth(
    agent_id: &str,
    public_key_b64: &str,
    timestamp: i64,
    nonce_b64: &str,
    kx_b64: &str,
) -> Vec<u8> {
    format!("aegis/2:auth:{agent_id}:{public_key_b64}:{timestamp}:{nonce_b64}:{kx_b64}")
        .into_bytes()
}

/// v2 R1 signature input (gateway key):
/// `"aegis/2:auth-ok:nonce:kx:backend_key:server_nonce:session_token:expires_at"`, where `nonce`
/// and `kx` are the ones of M1.
pub fn v2_auth_ok(
    nonce_b64: &str,
    kx_b64: &str,
    backend_key_b64: &str,
    server_nonce_b64: &str,
    session_token: &str,
    expires_at: i64,
) -> Vec<u8> {
    format!(
        "aegis/2:auth-ok:{nonce_b64}:{kx_b64}:{backend_key_b64}:{server_nonce_b64}:\
         {session_token}:{expires_at}"
    )
    .into_bytes()
}

/// v2 sealed message signature input (sender's long-term key):
/// `"aegis/2:msg:id:type:channel:timestamp:nonce:seq:payload"` (payload as sent, base64 text).
pub fn v2_msg(
    id: &str,
    msg_type: &str,
    channel: &str,
    timestamp: i64,
    nonce_b64: &str,
    seq: u64,
    payload_b64: &str,
) -> Vec<u8> {
    format!("aegis/2:msg:{id}:{msg_type}:{channel}:{timestamp}:{nonce_b64}:{seq}:{payload_b64}")
        .into_bytes()
}

/// v2 sealed message AEAD associated data: `"id:type:channel:timestamp:seq"`.
pub fn v2_aad(id: &str, msg_type: &str, channel: &str, timestamp: i64, seq: u64) -> Vec<u8> {
    format!("{id}:{msg_type}:{channel}:{timestamp}:{seq}").into_bytes()
}

/// Signature input of gateway frames outside the v2 sealed path (gateway key):
/// `"aegis/1:msg:id:type:channel:timestamp:nonce:payload"`.
pub fn gateway_msg(
    id: &str,
    msg_type: &str,
    channel: &str,
    timestamp: i64,
    nonce_b64: &str,
    payload: &str,
) -> Vec<u8> {
    format!("aegis/1:msg:{id}:{msg_type}:{channel}:{timestamp}:{nonce_b64}:{payload}").into_bytes()
}

/// v1 agent→gateway message signature input: `"ident:public_key:timestamp:nonce"`, where
/// `ident` is the uid (or the M1 `agent_id` before registration) and `nonce` the envelope nonce
/// as sent.
pub fn v1_msg(ident: &str, public_key_b64: &str, timestamp: i64, nonce_b64: &str) -> Vec<u8> {
    format!("{ident}:{public_key_b64}:{timestamp}:{nonce_b64}").into_bytes()
}

/// M4 signature input: the decoded R2 nonce bytes ‖ ASCII `server_time` ‖ ASCII `host_id`.
pub fn registration(nonce_bytes: &[u8], server_time: &str, host_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(nonce_bytes.len() + server_time.len() + host_id.len());
    out.extend_from_slice(nonce_bytes);
    out.extend_from_slice(server_time.as_bytes());
    out.extend_from_slice(host_id.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(v: Vec<u8>) -> String {
        String::from_utf8(v).expect("ascii")
    }

    // Every expected value below was written by hand from the spec text.

    #[test]
    fn v1_strings() {
        assert_eq!(
            text(v1_auth("aegis-agent-001", "UEs=", 1700000000, "Tk9OQ0U=")),
            "aegis-agent-001:UEs=:1700000000:Tk9OQ0U="
        );
        assert_eq!(
            text(v1_msg("u-1", "UEs=", 1700000001, "aGVhcnRiZWF0X25vbmNl")),
            "u-1:UEs=:1700000001:aGVhcnRiZWF0X25vbmNl"
        );
        assert_eq!(text(v1_auth("a", "k", 0, "n")), "a:k:0:n");
        assert_eq!(text(v1_msg("a", "k", -42, "n")), "a:k:-42:n");
    }

    #[test]
    fn v2_auth_strings() {
        assert_eq!(
            text(v2_auth("a.b@c", "UEs=", 1700000000, "Tk9OQ0U=", "S1g=")),
            "aegis/2:auth:a.b@c:UEs=:1700000000:Tk9OQ0U=:S1g="
        );
        assert_eq!(
            text(v2_auth_ok(
                "Tk9OQ0U=",
                "S1g=",
                "Qks=",
                "U04=",
                "eyJ0.eyJz.c2ln",
                1700086400
            )),
            "aegis/2:auth-ok:Tk9OQ0U=:S1g=:Qks=:U04=:eyJ0.eyJz.c2ln:1700086400"
        );
        assert_eq!(
            text(v2_auth_ok("n", "k", "b", "s", "t", -1)),
            "aegis/2:auth-ok:n:k:b:s:t:-1"
        );
    }

    #[test]
    fn v2_message_strings() {
        assert_eq!(
            text(v2_msg(
                "m1",
                "event",
                "agent.a.logs",
                1700000000,
                "Tk9OQ0U=",
                7,
                "cGF5"
            )),
            "aegis/2:msg:m1:event:agent.a.logs:1700000000:Tk9OQ0U=:7:cGF5"
        );
        assert_eq!(
            text(v2_aad("m1", "event", "agent.a.logs", 1700000000, 7)),
            "m1:event:agent.a.logs:1700000000:7"
        );
        assert_eq!(
            text(v2_aad(
                "x",
                "ack",
                "ack",
                -9223372036854775808,
                18446744073709551615
            )),
            "x:ack:ack:-9223372036854775808:18446744073709551615"
        );
        assert_eq!(
            text(v2_msg("i", "ack", "ack", 5, "n", 10, "")),
            "aegis/2:msg:i:ack:ack:5:n:10:"
        );
    }

    #[test]
    fn gateway_string() {
        assert_eq!(
            text(gateway_msg(
                "g-1",
                "response",
                "agent.registration",
                1700000000,
                "AAAAAAAAAAAAAAAA",
                r#"{"registration_id":"r"}"#
            )),
            r#"aegis/1:msg:g-1:response:agent.registration:1700000000:AAAAAAAAAAAAAAAA:{"registration_id":"r"}"#
        );
        assert_eq!(
            text(gateway_msg("g", "error", "error", 0, "n", "")),
            "aegis/1:msg:g:error:error:0:n:"
        );
    }

    #[test]
    fn registration_bytes() {
        let got = registration(&[0x00, 0xff, 0x3a], "2024-01-02T03:04:05Z", "host-1");
        let mut want = vec![0x00, 0xff, 0x3a];
        want.extend_from_slice(b"2024-01-02T03:04:05Zhost-1");
        assert_eq!(got, want);
        assert_eq!(registration(&[], "", ""), Vec::<u8>::new());
    }
}
