//! The agent's acks for commands (PROTOCOL §7).

use super::{Agent, AgentError};
use crate::protocol::envelope::MsgType;
use crate::protocol::payloads::{to_json, AckPayload};

impl Agent {
    /// A v2 ack for command `id` (PROTOCOL §7): type and channel `ack`, `headers.ack` = `id`,
    /// payload `{"ack":id}` (sealed in v2), from which the gateway takes the id.
    pub fn ack(&mut self, id: &str, timestamp: i64) -> Result<String, AgentError> {
        let body = to_json(&AckPayload {
            ack: id.to_string(),
        });
        self.message(
            "ack",
            MsgType::Ack,
            body.as_bytes(),
            timestamp,
            vec![("ack".to_string(), id.to_string())],
        )
    }

    /// An ack as agents built before PROTOCOL §7's rule send it: payload `{}`, the id only in
    /// `headers.ack` (accepted for one release, counted in `aegis_gateway_legacy_acks_total`).
    pub fn legacy_ack(&mut self, id: &str, timestamp: i64) -> Result<String, AgentError> {
        self.message(
            "ack",
            MsgType::Ack,
            b"{}",
            timestamp,
            vec![("ack".to_string(), id.to_string())],
        )
    }
}
