//! Channel names (PROTOCOL.md §7).
//!
//! A channel is the prefix, the kind after the **last** dot, and the id in between (ids may
//! contain dots). The special names `auth`, `ack`, `error`, `agent.registration` and
//! `agent.registration.complete` are matched before that generic rule.

use std::fmt;

use super::error::ErrorKind;
use super::payloads::is_agent_id;

/// Kinds of the agent→backend channels `agent.{id}.{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentKind {
    /// `policies`
    Policies,
    /// `anomalies`
    Anomalies,
    /// `threats`
    Threats,
    /// `processes`
    Processes,
    /// `dependencies`
    Dependencies,
    /// `tests`
    Tests,
    /// `rollbacks`
    Rollbacks,
    /// `heartbeat`
    Heartbeat,
    /// `status`
    Status,
    /// `logs`
    Logs,
}

impl AgentKind {
    /// Every agent kind.
    pub const ALL: [AgentKind; 10] = [
        AgentKind::Policies,
        AgentKind::Anomalies,
        AgentKind::Threats,
        AgentKind::Processes,
        AgentKind::Dependencies,
        AgentKind::Tests,
        AgentKind::Rollbacks,
        AgentKind::Heartbeat,
        AgentKind::Status,
        AgentKind::Logs,
    ];

    /// The wire spelling (also a metric label).
    pub const fn as_str(self) -> &'static str {
        match self {
            AgentKind::Policies => "policies",
            AgentKind::Anomalies => "anomalies",
            AgentKind::Threats => "threats",
            AgentKind::Processes => "processes",
            AgentKind::Dependencies => "dependencies",
            AgentKind::Tests => "tests",
            AgentKind::Rollbacks => "rollbacks",
            AgentKind::Heartbeat => "heartbeat",
            AgentKind::Status => "status",
            AgentKind::Logs => "logs",
        }
    }

    /// The kind spelled `s` (exact, lowercase), if any.
    pub fn parse(s: &str) -> Option<AgentKind> {
        AgentKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Kinds of the backend→agent channels `backend.{id}.{kind}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// `policies`
    Policies,
    /// `investigations`
    Investigations,
    /// `threats`
    Threats,
    /// `processes`
    Processes,
    /// `tests`
    Tests,
    /// `rollbacks`
    Rollbacks,
}

impl BackendKind {
    /// Every backend kind.
    pub const ALL: [BackendKind; 6] = [
        BackendKind::Policies,
        BackendKind::Investigations,
        BackendKind::Threats,
        BackendKind::Processes,
        BackendKind::Tests,
        BackendKind::Rollbacks,
    ];

    /// The wire spelling (also a metric label).
    pub const fn as_str(self) -> &'static str {
        match self {
            BackendKind::Policies => "policies",
            BackendKind::Investigations => "investigations",
            BackendKind::Threats => "threats",
            BackendKind::Processes => "processes",
            BackendKind::Tests => "tests",
            BackendKind::Rollbacks => "rollbacks",
        }
    }

    /// The kind spelled `s` (exact, lowercase), if any.
    pub fn parse(s: &str) -> Option<BackendKind> {
        BackendKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the legacy (v1) agent routes `backend.{kind}`: only `policies`,
    /// `investigations` and `threats` (§7). Other kinds are still written; the agent ignores them.
    pub const fn v1_routed(self) -> bool {
        matches!(
            self,
            BackendKind::Policies | BackendKind::Investigations | BackendKind::Threats
        )
    }
}

impl fmt::Display for AgentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed channel name, borrowing its id from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel<'a> {
    /// `auth` (M1/R1).
    Auth,
    /// `ack` (v2 command acks).
    Ack,
    /// `error` (gateway error frames).
    Error,
    /// `agent.registration` (M3/R2).
    Registration,
    /// `agent.registration.complete` (M4/R3).
    RegistrationComplete,
    /// `agent.{id}.{kind}`.
    Agent {
        /// The agent id between the prefix and the kind (may contain dots).
        id: &'a str,
        /// The kind after the last dot.
        kind: AgentKind,
    },
    /// `backend.{id}.{kind}`, or the v1 form `backend.{kind}` (`id` is `None`).
    Backend {
        /// The agent id, absent in the v1 form.
        id: Option<&'a str>,
        /// The kind after the last dot.
        kind: BackendKind,
    },
}

/// Why a channel name is not usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    /// Unknown prefix or kind, or an empty or malformed id.
    #[error("channel not found")]
    NotFound,
}

impl ChannelError {
    /// The protocol error kind: `channel_not_found`.
    pub const fn kind(&self) -> ErrorKind {
        ErrorKind::ChannelNotFound
    }
}

/// Parses a channel name. Special names are matched first; then `agent.{id}.{kind}`,
/// `backend.{id}.{kind}` and `backend.{kind}`. The id must be 1..128 chars of `[A-Za-z0-9._@-]`.
pub fn parse(s: &str) -> Result<Channel<'_>, ChannelError> {
    match s {
        "auth" => return Ok(Channel::Auth),
        "ack" => return Ok(Channel::Ack),
        "error" => return Ok(Channel::Error),
        "agent.registration" => return Ok(Channel::Registration),
        "agent.registration.complete" => return Ok(Channel::RegistrationComplete),
        _ => {}
    }
    let (prefix, rest) = s.split_once('.').ok_or(ChannelError::NotFound)?;
    match prefix {
        "agent" => {
            let (id, kind) = rest.rsplit_once('.').ok_or(ChannelError::NotFound)?;
            let kind = AgentKind::parse(kind).ok_or(ChannelError::NotFound)?;
            Ok(Channel::Agent {
                id: checked_id(id)?,
                kind,
            })
        }
        "backend" => match rest.rsplit_once('.') {
            Some((id, kind)) => Ok(Channel::Backend {
                kind: BackendKind::parse(kind).ok_or(ChannelError::NotFound)?,
                id: Some(checked_id(id)?),
            }),
            None => Ok(Channel::Backend {
                id: None,
                kind: BackendKind::parse(rest).ok_or(ChannelError::NotFound)?,
            }),
        },
        _ => Err(ChannelError::NotFound),
    }
}

fn checked_id(id: &str) -> Result<&str, ChannelError> {
    if is_agent_id(id) {
        Ok(id)
    } else {
        Err(ChannelError::NotFound)
    }
}

/// `backend.{id}.{kind}`: where a v2 command for agent `id` is sent.
pub fn backend_channel(id: &str, kind: BackendKind) -> String {
    format!("backend.{id}.{}", kind.as_str())
}

/// `backend.{kind}`: the legacy channel a v1 command is rewritten to.
pub fn v1_backend_channel(kind: BackendKind) -> String {
    format!("backend.{}", kind.as_str())
}

/// `agent.{id}.{kind}`: a channel agent `id` may publish on.
pub fn agent_channel(id: &str, kind: AgentKind) -> String {
    format!("agent.{id}.{}", kind.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_names_win_over_the_generic_rule() {
        assert_eq!(parse("auth"), Ok(Channel::Auth));
        assert_eq!(parse("ack"), Ok(Channel::Ack));
        assert_eq!(parse("error"), Ok(Channel::Error));
        assert_eq!(parse("agent.registration"), Ok(Channel::Registration));
        assert_eq!(
            parse("agent.registration.complete"),
            Ok(Channel::RegistrationComplete)
        );
        // An agent whose id is "registration" still has its own channels.
        assert_eq!(
            parse("agent.registration.logs"),
            Ok(Channel::Agent {
                id: "registration",
                kind: AgentKind::Logs
            })
        );
    }

    #[test]
    fn kind_is_after_the_last_dot_and_ids_may_contain_dots() {
        assert_eq!(
            parse("agent.host.example.com.heartbeat"),
            Ok(Channel::Agent {
                id: "host.example.com",
                kind: AgentKind::Heartbeat
            })
        );
        assert_eq!(
            parse("agent.aegis-agent-001.policies"),
            Ok(Channel::Agent {
                id: "aegis-agent-001",
                kind: AgentKind::Policies
            })
        );
        assert_eq!(
            parse("backend.u@x.y.investigations"),
            Ok(Channel::Backend {
                id: Some("u@x.y"),
                kind: BackendKind::Investigations
            })
        );
        assert_eq!(
            parse("backend.threats"),
            Ok(Channel::Backend {
                id: None,
                kind: BackendKind::Threats
            })
        );
    }

    #[test]
    fn every_kind_parses_and_formats() {
        for kind in AgentKind::ALL {
            let name = format!("agent.a1.{kind}");
            assert_eq!(agent_channel("a1", kind), name);
            assert_eq!(parse(&name), Ok(Channel::Agent { id: "a1", kind }));
        }
        for kind in BackendKind::ALL {
            let name = format!("backend.u-1.{kind}");
            assert_eq!(backend_channel("u-1", kind), name);
            assert_eq!(
                parse(&name),
                Ok(Channel::Backend {
                    id: Some("u-1"),
                    kind
                })
            );
            assert_eq!(v1_backend_channel(kind), format!("backend.{kind}"));
        }
        assert_eq!(
            backend_channel("a.b", BackendKind::Rollbacks),
            "backend.a.b.rollbacks"
        );
        assert_eq!(
            v1_backend_channel(BackendKind::Policies),
            "backend.policies"
        );
        let routed: Vec<_> = BackendKind::ALL
            .into_iter()
            .filter(|k| k.v1_routed())
            .collect();
        assert_eq!(
            routed,
            [
                BackendKind::Policies,
                BackendKind::Investigations,
                BackendKind::Threats
            ]
        );
    }

    #[test]
    fn unknown_or_malformed_is_not_found() {
        for bad in [
            "",
            ".",
            "agent",
            "agent.",
            "agent.logs",
            "agent..logs",
            "agent.a.",
            "agent.a.investigations",
            "agent.a.Logs",
            "agent.a b.logs",
            "backend",
            "backend.",
            "backend..policies",
            "backend.a.anomalies",
            "backend.heartbeat",
            "backend.a.",
            "foo.a.logs",
            "Auth",
            "auth.x",
            "agent.registration.completed",
        ] {
            assert_eq!(parse(bad), Err(ChannelError::NotFound), "{bad:?}");
        }
        let long_id = format!("agent.{}.logs", "a".repeat(129));
        assert_eq!(parse(&long_id), Err(ChannelError::NotFound));
        let max_id = format!("agent.{}.logs", "a".repeat(128));
        assert!(parse(&max_id).is_ok());
        assert_eq!(ChannelError::NotFound.kind(), ErrorKind::ChannelNotFound);
    }
}
