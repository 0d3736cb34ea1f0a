//! Reads the gateway decides on (authentication, delivery, presence) go to the stream leader.
//! The KV client's own `get`/`entry` use direct gets when the bucket allows them, and a direct
//! get may be answered by a replica that is behind: a record written a moment ago on another
//! node would look missing, a status just changed would look old. Writes are checked by the
//! leader anyway (compare-and-swap on the revision); these reads make the decisions match.

use super::bridge::unavailable;
use crate::store::StoreError;
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::LastRawMessageErrorKind;

/// The current value of `key` and its revision, from the leader; `None` if it was never
/// written or is deleted.
pub async fn entry(
    store: &kv::Store,
    key: &str,
) -> Result<Option<(bytes::Bytes, u64)>, StoreError> {
    Ok(latest(store, key)
        .await?
        .and_then(|(value, revision, live)| live.then_some((value, revision))))
}

/// Like [`entry`], but a deleted key still gives its revision (to create or update over it):
/// `(value if live, revision)`.
pub async fn revision(
    store: &kv::Store,
    key: &str,
) -> Result<Option<(Option<bytes::Bytes>, u64)>, StoreError> {
    Ok(latest(store, key)
        .await?
        .map(|(value, revision, live)| (live.then_some(value), revision)))
}

async fn latest(
    store: &kv::Store,
    key: &str,
) -> Result<Option<(bytes::Bytes, u64, bool)>, StoreError> {
    let subject = format!("{}{key}", store.prefix);
    match store.stream.get_last_raw_message_by_subject(&subject).await {
        Ok(m) => {
            let op = m
                .headers
                .get("KV-Operation")
                .map(|v| v.as_str().to_string());
            let live = !matches!(op.as_deref(), Some("DEL" | "PURGE"));
            Ok(Some((m.payload, m.sequence, live)))
        }
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}
