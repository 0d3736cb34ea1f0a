//! Names in NATS: streams, buckets, subjects and keys, and how ids are written into them.
//!
//! KV keys and subject tokens allow `[-_=A-Za-z0-9]` here (dots separate tokens). Ids made only
//! of those characters are used as they are; anything else is written `=` + hex of its bytes
//! (`=` never starts a plain id), so every id has exactly one key.

/// The command queue: one subject per agent, `aegis.cmd.<uid>`.
pub const CMD_STREAM: &str = "AEGIS_CMD";
/// Subjects of [`CMD_STREAM`].
pub const CMD_SUBJECTS: &str = "aegis.cmd.*";
/// Where the stream republishes each stored command (core NATS), for the node holding the agent.
pub const NOTIFY_SUBJECTS: &str = "aegis.notify.cmd.*";
/// [`NOTIFY_SUBJECTS`] as the republish destination (a subject mapping of the uid token).
pub const NOTIFY_DESTINATION: &str = "aegis.notify.cmd.{{wildcard(1)}}";
/// The event log northbound: verified agent messages on `aegis.agent.<id>.<kind>`.
pub const EVENTS_STREAM: &str = "AEGIS_EVENTS";
/// Subjects of [`EVENTS_STREAM`].
pub const EVENTS_SUBJECTS: &str = "aegis.agent.>";

/// Registered agents: uid → agent record.
pub const AGENTS: &str = "aegis_agents";
/// Host index: host_id → uids.
pub const HOSTS: &str = "aegis_hosts";
/// Pending registrations: registration id → record (expire with the bucket's max age).
pub const REGISTRATIONS: &str = "aegis_registrations";
/// Delivery status: `<message id>.<uid>` → record.
pub const MESSAGES: &str = "aegis_messages";
/// Channels used: `<uid>.<channel>` → record.
pub const CHANNELS: &str = "aegis_channels";
/// Presence: uid → the node and connection holding it.
pub const PRESENCE: &str = "aegis_presence";
/// Node leases: node id → lease, refreshed while the node lives.
pub const NODES: &str = "aegis_nodes";

/// Whether `id` can be a key or subject token as it is.
pub fn is_plain(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('=')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'=')
}

/// `id` as one key or subject token.
pub fn token(id: &str) -> String {
    if is_plain(id) {
        id.to_string()
    } else {
        format!("={}", hex::encode(id.as_bytes()))
    }
}

/// The id a [`token`] stands for (`None` for a malformed one).
pub fn untoken(t: &str) -> Option<String> {
    match t.strip_prefix('=') {
        Some(h) => String::from_utf8(hex::decode(h).ok()?).ok(),
        None => Some(t.to_string()),
    }
}

/// The queue subject of agent `uid`.
pub fn cmd_subject(uid: &str) -> String {
    format!("aegis.cmd.{}", token(uid))
}

/// The status key of command `message_id` for agent `uid`.
pub fn status_key(message_id: &str, uid: &str) -> String {
    format!("{}.{}", token(message_id), token(uid))
}

/// The channel key of `channel` for agent `uid`.
pub fn channel_key(uid: &str, channel: &str) -> String {
    format!("{}.{}", token(uid), token(channel))
}

/// The northbound subject of an agent message on `channel` (`agent.<id>.<kind>`).
pub fn event_subject(channel: &str) -> String {
    format!("aegis.{channel}")
}

/// The subject a node's control requests arrive on (`op`: replace, revoke, deliver). Each run of
/// a node has its own: during a hand-over the predecessor (still holding its agents) and the
/// successor share a `NODE_ID`.
pub fn node_subject(node: &str, run: u64, op: &str) -> String {
    format!("aegis.node.{node}.{run}.{op}")
}

/// The key of a node run's lease in the [`NODES`] bucket.
pub fn lease_key(node: &str, run: u64) -> String {
    format!("{node}.{run}")
}

/// The message id JetStream deduplicates a command by.
pub fn msg_id(message_id: &str, uid: &str) -> String {
    format!("{message_id}:{uid}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_one_token_each() {
        for id in [
            "8c6f1c8e-1d7c-4bb8-9d0a-7d0d2c1e9f00",
            "a_b",
            "host.example",
            "x@y",
            "=41",
            "",
        ] {
            let t = token(id);
            assert!(
                t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_=".contains(&b)),
                "{t}"
            );
            assert_eq!(untoken(&t).as_deref(), Some(id), "{id}");
        }
        assert_ne!(token("=41"), token("A"));
        assert_eq!(status_key("m-1", "u-1"), "m-1.u-1");
        assert_eq!(cmd_subject("u-1"), "aegis.cmd.u-1");
        assert_eq!(untoken("=zz"), None);
    }
}
