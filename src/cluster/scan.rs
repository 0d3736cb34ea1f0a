//! Reading many records at once: the last value of every subject matching a filter, in one pass
//! of an ephemeral ordered consumer (no consumer outlives the call, none per agent). Used for
//! listings (agents, channels of an agent, deliveries of a message) and for the event stream.

use super::bridge::unavailable;
use crate::store::StoreError;
use async_nats::jetstream::{consumer, stream};
use futures_util::StreamExt;

/// One message of a scan.
pub struct Found {
    /// Its subject (for a KV bucket `$KV.<bucket>.<key>`).
    pub subject: String,
    /// Its stream sequence.
    pub seq: u64,
    /// Its payload.
    pub payload: bytes::Bytes,
}

/// Whether a KV message is a delete or purge marker.
fn is_tombstone(m: &async_nats::Message) -> bool {
    m.headers
        .as_ref()
        .and_then(|h| h.get("KV-Operation"))
        .is_some_and(|op| matches!(op.as_str(), "DEL" | "PURGE"))
}

/// The messages of `stream` matching `filter` from `policy`, at most `limit`, stopping once
/// the consumer has caught up with the stream (tombstones skipped).
pub async fn scan(
    client: &async_nats::Client,
    stream: &stream::Stream,
    filter: String,
    policy: consumer::DeliverPolicy,
    limit: usize,
) -> Result<Vec<Found>, StoreError> {
    let consumer = stream
        .create_consumer(consumer::push::OrderedConfig {
            deliver_subject: client.new_inbox(),
            filter_subject: filter,
            deliver_policy: policy,
            replay_policy: consumer::ReplayPolicy::Instant,
            ..Default::default()
        })
        .await
        .map_err(unavailable)?;
    let mut out = Vec::new();
    if consumer.cached_info().num_pending == 0 || limit == 0 {
        return Ok(out);
    }
    let mut messages = consumer.messages().await.map_err(unavailable)?;
    while let Some(m) = messages.next().await {
        let m = m.map_err(unavailable)?;
        let info = m.info().map_err(unavailable)?;
        let (seq, pending) = (info.stream_sequence, info.pending);
        if !is_tombstone(&m.message) {
            out.push(Found {
                subject: m.message.subject.to_string(),
                seq,
                payload: m.message.payload.clone(),
            });
        }
        if pending == 0 || out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// The last value of every key of `bucket` matching `keys` (a key filter, wildcards allowed).
pub async fn bucket(
    client: &async_nats::Client,
    bucket: &async_nats::jetstream::kv::Store,
    keys: &str,
) -> Result<Vec<(String, bytes::Bytes)>, StoreError> {
    let found = scan(
        client,
        &bucket.stream,
        format!("{}{keys}", bucket.prefix),
        consumer::DeliverPolicy::LastPerSubject,
        usize::MAX,
    )
    .await?;
    Ok(found
        .into_iter()
        .filter_map(|f| {
            let key = f.subject.strip_prefix(bucket.prefix.as_str())?.to_string();
            Some((key, f.payload))
        })
        .collect())
}
