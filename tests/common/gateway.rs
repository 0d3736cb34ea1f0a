//! A real gateway in-process on `127.0.0.1:0` with a temp data dir, and what tests do with it
//! through the admin API and the control handle.

use super::http::http_json;
use super::poll::{eventually, poll_until, WAIT};
use aegis_gateway::config::Config;
use aegis_gateway::crypto::SigningKey;
use aegis_gateway::protocol::channel::BackendKind;
use aegis_gateway::protocol::envelope::MsgType;
use aegis_gateway::protocol::session::Profile;
use aegis_gateway::server::{self, Running};
use aegis_gateway::shard::{Command, GatewayHandle};
use aegis_gateway::testkit::agent::Agent;
use std::net::SocketAddr;

/// Admin token of in-process test gateways.
pub const TOKEN: &str = "test-token";

/// A gateway running in-process on an ephemeral port.
pub struct TestGateway {
    pub running: Option<Running>,
    pub dir: tempfile::TempDir,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    pub public_key: [u8; 32],
}

/// Test configuration: loopback, ephemeral ports, two shards, temp data dir.
pub fn test_config(dir: &std::path::Path) -> Config {
    Config {
        websocket_addr: "127.0.0.1:0".parse().unwrap(),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        admin_token: Some(TOKEN.to_string()),
        data_dir: dir.to_path_buf(),
        shards: Some(2),
        ..Config::default()
    }
}

impl TestGateway {
    /// A gateway with [`test_config`].
    pub fn start() -> TestGateway {
        Self::start_with(|_| {})
    }

    /// A gateway with [`test_config`] as changed by `edit` (short timers, small limits, TLS).
    pub fn start_with(edit: impl FnOnce(&mut Config)) -> TestGateway {
        let dir = tempfile::tempdir().unwrap();
        let mut c = test_config(dir.path());
        edit(&mut c);
        let running = server::start(c).expect("gateway starts");
        TestGateway {
            addr: running.agent_addr,
            admin: running.admin_addr,
            public_key: running.public_key,
            running: Some(running),
            dir,
        }
    }

    /// The control handle of the running shards.
    pub fn handle(&self) -> GatewayHandle {
        self.running.as_ref().expect("gateway running").handle()
    }

    /// `POST /api/v1/agents/{id}/send` with the test token; returns (status, JSON).
    pub fn send(&self, id: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        http_json(
            self.admin,
            "POST",
            &format!("/api/v1/agents/{id}/send"),
            Some(TOKEN),
            Some(&body.to_string()),
        )
    }

    /// `GET /api/v1/messages/{id}`: the per-agent delivery records.
    pub fn message(&self, id: &str) -> serde_json::Value {
        let (status, v) = http_json(
            self.admin,
            "GET",
            &format!("/api/v1/messages/{id}"),
            Some(TOKEN),
            None,
        );
        assert_eq!(status, 200, "{v}");
        v
    }

    /// Status of the first delivery record of a message.
    pub fn message_status(&self, id: &str) -> String {
        self.message(id)["deliveries"][0]["status"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Polls until the message's first delivery has `status` (bounded by [`WAIT`]).
    pub fn wait_status(&self, id: &str, status: &str) {
        poll_until(WAIT, || {
            let m = self.message(id);
            if m["deliveries"][0]["status"] == status {
                Ok(())
            } else {
                Err(format!("message {id} never reached {status}: {m}"))
            }
        })
    }

    /// Polls until `identity` has no live connection any more (the gateway saw it end).
    pub fn wait_offline(&self, identity: &str) {
        let handle = self.handle();
        eventually(&format!("{identity} disconnected"), WAIT, || {
            !block_on(handle.is_connected(identity))
        });
    }

    /// A new agent of this profile with a fresh key, that knows the gateway's key.
    pub fn agent(&self, agent_id: &str, profile: Profile) -> Agent {
        Agent::new(
            SigningKey::generate(),
            agent_id,
            profile,
            Some(self.public_key),
        )
    }
}

impl Drop for TestGateway {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.shutdown();
        }
    }
}

/// Builds a runtime command for the control handle.
pub fn command(id: &str, kind: BackendKind, json: &str) -> Command {
    Command {
        message_id: id.to_string(),
        kind,
        msg_type: MsgType::Request,
        message_json: json.as_bytes().to_vec(),
        seq: 0,
    }
}

/// Runs a future to completion on the test thread (the control handle works from any thread).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}
