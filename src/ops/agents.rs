//! Agents in the admin API: status, listing, revocation.

use super::{now_s, store_error, GatewayBackend};
use crate::admin::api::{AgentPage, AgentStatus, ApiError, ListQuery, RevokeResponse};
use crate::protocol::payloads::server_time;
use crate::store::{AgentRecord, SessionInfo};

impl GatewayBackend {
    /// `GET /api/v1/agents/{id}/status`.
    pub(super) async fn status(&self, id: &str) -> Result<AgentStatus, ApiError> {
        let rec = self.resolve(id).await?;
        let live = self
            .sessions(std::slice::from_ref(&rec.agent_uid))
            .await
            .pop()
            .flatten();
        Ok(self.status_of(rec, live).await)
    }

    /// `GET /api/v1/agents`.
    pub(super) async fn list(&self, q: ListQuery) -> Result<AgentPage, ApiError> {
        let page = self
            .fleet
            .list_agents(q.cursor.as_deref(), q.limit)
            .await
            .map_err(|e| self.read_error(e))?;
        let next_cursor = (page.len() == q.limit)
            .then(|| page.last().map(|r| r.agent_uid.clone()))
            .flatten();
        let uids: Vec<String> = page.iter().map(|r| r.agent_uid.clone()).collect();
        let live = self.sessions(&uids).await;
        let mut agents = Vec::with_capacity(page.len());
        for (rec, live) in page.into_iter().zip(live) {
            if q.connected.is_some_and(|want| want != live.is_some()) {
                continue;
            }
            agents.push(self.status_of(rec, live).await);
        }
        Ok(AgentPage {
            agents,
            next_cursor,
        })
    }

    /// `DELETE /api/v1/agents/{id}`: forget the registration (durably), then close the agent's
    /// connection wherever it is.
    pub(super) async fn revoke_agent(&self, id: &str) -> Result<RevokeResponse, ApiError> {
        let rec = self.resolve(id).await?;
        let uid = rec.agent_uid;
        self.fleet.revoke_agent(&uid, now_s()).await.map_err(|e| {
            store_error(
                &*self.fleet,
                &e,
                "the revocation is not durable (it may be partly applied); retry it",
            )
        })?;
        let here = self.handle.revoke(&uid).await;
        let disconnected = here || self.fleet.revoke_elsewhere(&uid).await;
        Ok(RevokeResponse {
            agent_uid: uid,
            revoked: true,
            disconnected,
        })
    }

    /// The status of a registered agent given its live session, if any.
    async fn status_of(&self, rec: AgentRecord, live: Option<SessionInfo>) -> AgentStatus {
        let channels = self
            .fleet
            .channels_of(&rec.agent_uid)
            .await
            .unwrap_or_default();
        let queue_depth = self.fleet.queue_depth(&rec.agent_uid).await.unwrap_or(0);
        AgentStatus {
            agent_id: rec.agent_uid,
            host_id: rec.host_id,
            connected: live.is_some(),
            last_seen: server_time(rec.last_seen),
            channels,
            session_expires: live.map(|s| server_time(s.session_expires)),
            protocol: live.map(|s| format!("v{}", s.profile)),
            queue_depth,
        }
    }
}
