//! Fixed keys and the other constants every target shares. Signing is deterministic, so
//! fixed seeds keep the agent's signatures reproducible (only nonces and ephemeral keys are
//! random).

use std::sync::OnceLock;

use aegis_gateway::crypto::SigningKey;
use aegis_gateway::protocol::session::Profile;
use aegis_gateway::protocol::upgrade::UpgradeRequest;
use aegis_gateway::testkit::agent::Agent;

/// Start time of every run (ms).
pub const T0: i64 = 1_700_000_000_000;
/// The agent id of the simulated agent (the Go agent's default).
pub const AGENT_ID: &str = "aegis-agent-001";
/// The path the upgrade target expects.
pub const PATH: &str = "/ws/agent";

/// The gateway's long-term key.
pub fn gateway_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::from_seed(&[0x47; 32]))
}

/// The simulated agent's key.
pub fn agent_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::from_seed(&[0xA6; 32]))
}

/// Another valid key (a thief, or a key that does not match the upgrade).
pub fn other_key() -> &'static SigningKey {
    static K: OnceLock<SigningKey> = OnceLock::new();
    K.get_or_init(|| SigningKey::from_seed(&[0x07; 32]))
}

/// A fresh simulated agent that checks the gateway's signatures.
pub fn new_agent(agent_id: &str, profile: Profile) -> Agent {
    Agent::new(
        agent_key().clone(),
        agent_id,
        profile,
        Some(gateway_key().public()),
    )
}

/// The upgrade request `agent` would send.
pub fn upgrade_for(
    agent: &Agent,
    agent_id: &str,
    reconnect: Option<(&str, &str)>,
    protocol: Option<u8>,
) -> UpgradeRequest {
    UpgradeRequest {
        path: PATH.into(),
        ws_key: "dGhlIHNhbXBsZSBub25jZQ==".into(),
        user_agent: "Aegis-Agent/1.0".into(),
        agent_id: agent_id.to_string(),
        public_key: agent.key().public(),
        public_key_b64: agent.public_b64().to_string(),
        agent_uid: reconnect.map(|(uid, _)| uid.to_string()),
        bootstrap_token: reconnect.map(|(_, token)| token.to_string()),
        protocol,
    }
}
