//! Delivery status of a message and the event stream of verified agent messages.

use super::{GatewayBackend, NOT_READ};
use crate::admin::api::{ApiError, Delivery, ErrorKind, EventItem, MessageStatusResponse};
use crate::protocol::payloads::server_time;
use crate::shard::rt;
use crate::store::channel_matches;
use std::time::{Duration, Instant};

/// How often a waiting event-stream call looks for new events.
const EVENTS_POLL: Duration = Duration::from_millis(25);

impl GatewayBackend {
    /// `GET /api/v1/messages/{message_id}`.
    pub(super) async fn status_of_message(
        &self,
        message_id: &str,
    ) -> Result<MessageStatusResponse, ApiError> {
        let records = self
            .fleet
            .message_status(message_id)
            .await
            .map_err(|e| super::store_error(&*self.fleet, &e, NOT_READ))?;
        if records.is_empty() {
            return Err(ApiError::new(
                ErrorKind::MessageNotFound,
                format!("no message {message_id:?}"),
            ));
        }
        Ok(MessageStatusResponse {
            message_id: message_id.to_string(),
            deliveries: records
                .into_iter()
                .map(|q| Delivery {
                    agent_uid: q.agent_uid,
                    status: q.status.as_str().to_string(),
                    retry_count: q.retry_count,
                    max_retries: q.max_retries,
                    attempts: q.attempts.iter().map(|a| server_time(a.at)).collect(),
                    created_at: server_time(q.created_at),
                    expires_at: server_time(q.expires_at),
                    updated_at: server_time(q.updated_at),
                    error: q.error,
                })
                .collect(),
        })
    }

    /// Events after `after` matching `pattern`, waiting up to `wait` for at least one.
    pub(super) async fn events(
        &self,
        after: u64,
        pattern: &str,
        limit: usize,
        wait: Duration,
    ) -> Result<Vec<EventItem>, ApiError> {
        let deadline = Instant::now() + wait;
        let mut cursor = after;
        loop {
            let batch = self
                .fleet
                .events_after(cursor, limit.max(1) * 4)
                .await
                .map_err(|e| self.read_error(e))?;
            let scanned_to = batch.last().map(|e| e.seq);
            let items: Vec<EventItem> = batch
                .into_iter()
                .filter(|e| channel_matches(pattern, &e.channel))
                .take(limit)
                .map(|e| EventItem {
                    seq: e.seq,
                    channel: e.channel,
                    agent_uid: e.agent_uid,
                    message_type: e.message_type,
                    id: e.id,
                    body: serde_json::from_str(&e.body)
                        .unwrap_or(serde_json::Value::String(e.body)),
                    at: server_time(e.at),
                })
                .collect();
            if !items.is_empty() {
                return Ok(items);
            }
            if let Some(s) = scanned_to {
                cursor = s;
                continue;
            }
            if Instant::now() >= deadline {
                return Ok(Vec::new());
            }
            rt::sleep(EVENTS_POLL).await;
        }
    }
}
