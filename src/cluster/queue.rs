//! The durable command queue in JetStream (DESIGN §7).
//!
//! A command for agent `uid` is one message on `aegis.cmd.<uid>` in the [`names::CMD_STREAM`]
//! stream: limits retention, at most `MESSAGE_QUEUE_SIZE` per subject (discard new per
//! subject: the 429), `max_age = MESSAGE_TTL`, deduplicated by `Nats-Msg-Id = <message id>:<uid>`.
//! Its stream sequence is its queue seq. Its delivery status is a record in the
//! [`names::MESSAGES`] bucket under `<message id>.<uid>`, created right after the publish (a
//! second create fails, so an id is one command even past the dedup window) and changed by
//! compare-and-swap on its revision, so two nodes never count one attempt twice. A final status
//! (delivered, failed, expired, revoked) deletes the command from the stream. A command is
//! deliverable only while its status record exists and is pending: one whose enqueue was never
//! answered (its node died between the publish and the record) is never delivered.
//!
//! An agent's backlog is read with message gets (`next_by_subj`), one per pending command: no
//! consumer per agent (the server's default limit is 1,000 consumers, each ≈ 46 KB). Reads that
//! decide something go to the stream leader, not to a possibly lagging replica (see `setup`).

use super::bridge::unavailable;
use super::names;
use super::read;
use super::scan;
use super::setup::Nats;
use crate::store::{
    clip_reason, Attempt, Command, MessageStatus, NewMessage, QueueError, QueuedMessage,
    StoreError, MAX_ATTEMPTS_KEPT,
};
use async_nats::jetstream::kv;
use async_nats::jetstream::stream::LastRawMessageErrorKind;

/// Attempts at a compare-and-swap before giving up (each loses only to a concurrent change).
const CAS_TRIES: usize = 8;

fn encode(rec: &QueuedMessage) -> Result<bytes::Bytes, StoreError> {
    serde_json::to_vec(rec)
        .map(bytes::Bytes::from)
        .map_err(|source| StoreError::Encode {
            what: "queued message",
            source,
        })
}

fn decode(key: &str, bytes: &[u8]) -> Result<QueuedMessage, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        what: "queued message",
        key: key.chars().take(128).collect(),
        source,
    })
}

/// The record of a new command for `uid`, before it has a seq.
fn new_record(uid: &str, msg: &NewMessage, now: i64, max_ttl: i64) -> QueuedMessage {
    QueuedMessage {
        message_id: msg.message_id.clone(),
        agent_uid: uid.to_string(),
        seq: 0,
        kind: msg.kind.clone(),
        message_type: msg.message_type.clone(),
        payload: msg.payload.clone(),
        priority: msg.priority,
        created_at: now,
        // The stream drops commands older than MESSAGE_TTL, so no command outlives it.
        expires_at: now.saturating_add(msg.ttl_s.min(max_ttl)),
        retry_count: 0,
        max_retries: msg.max_retries.max(1),
        status: MessageStatus::Queued,
        attempts: Vec::new(),
        updated_at: now,
        error: None,
    }
}

/// Enqueues one command (see the module docs); resolves once the publish is acknowledged and
/// the status record exists.
pub async fn enqueue(
    n: &Nats,
    uid: &str,
    msg: &NewMessage,
    now: i64,
    max_queue: usize,
    max_ttl: i64,
) -> Result<QueuedMessage, QueueError> {
    if !n.is_connected() {
        return Err(unavailable("not connected").into());
    }
    let mut rec = new_record(uid, msg, now, max_ttl);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", names::msg_id(&msg.message_id, uid).as_str());
    let ack =
        n.js.publish_with_headers(names::cmd_subject(uid), headers, encode(&rec)?)
            .await
            .map_err(unavailable)?
            .await
            .map_err(|e| {
                if e.to_string().contains("maximum messages per subject") {
                    QueueError::Full { depth: max_queue }
                } else {
                    QueueError::from(unavailable(e))
                }
            })?;
    rec.seq = ack.sequence;
    let key = names::status_key(&msg.message_id, uid);
    let status = QueuedMessage {
        payload: String::new(),
        ..rec.clone()
    };
    match n.messages.create(&key, encode(&status)?).await {
        Ok(_) => Ok(rec),
        Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
            // Ours already (the create was retried for this very publish), or the id was taken
            // (a second publish of the same message id: JetStream deduplicated it to the first
            // one's sequence, `ack.duplicate`, so equal sequences do not mean "ours").
            let existing = read::entry(&n.messages, &key).await?;
            match existing.map(|(v, _)| decode(&key, &v)).transpose()? {
                Some(r) if r.seq == rec.seq && !ack.duplicate => Ok(rec),
                _ => {
                    if !ack.duplicate {
                        let _ = n.cmd.delete_message(rec.seq).await;
                    }
                    Err(QueueError::Duplicate)
                }
            }
        }
        Err(e) => {
            // Not answered as stored. Without its status record the command is never
            // delivered (see `update`); take it out of the stream too (best effort).
            let _ = n.cmd.delete_message(rec.seq).await;
            Err(unavailable(e).into())
        }
    }
}

/// The pending commands of `uid` in delivery order, with payloads; expired ones are moved to
/// `expired` and left out.
pub async fn pending(n: &Nats, uid: &str, now: i64) -> Result<Vec<QueuedMessage>, StoreError> {
    let subject = names::cmd_subject(uid);
    let mut out = Vec::new();
    let mut next = 1;
    loop {
        // From the stream leader (not a direct get, which a lagging replica may answer).
        let got = n
            .cmd
            .raw_message_builder()
            .sequence(next)
            .next_by_subject(subject.clone())
            .send()
            .await;
        let m = match got {
            Ok(m) => m,
            Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => break,
            Err(e) => return Err(unavailable(e)),
        };
        next = m.sequence + 1;
        let Ok(mut rec) = decode(&subject, &m.payload) else {
            tracing::warn!(seq = m.sequence, "skipping an undecodable queued command");
            continue;
        };
        rec.seq = m.sequence;
        if rec.is_expired(now) {
            let cmd = Command::of_queued(&rec);
            if let Some(cmd) = cmd {
                finish(n, uid, &cmd, MessageStatus::Expired, None, now).await?;
            }
            continue;
        }
        out.push(rec);
    }
    out.sort_by_key(|r| (std::cmp::Reverse(r.priority), r.seq));
    Ok(out)
}

/// What a compare-and-swap on a status record does with it.
enum Change {
    /// Leave it.
    Keep,
    /// Write it back changed (still pending).
    Update(QueuedMessage),
    /// Move it to a final status (and the command out of the stream).
    Final(QueuedMessage, MessageStatus, Option<String>),
}

/// Reads the status record of `cmd` and applies `change` by compare-and-swap. Returns the
/// record written (`None` if the command is not pending or nothing changed).
async fn update(
    n: &Nats,
    uid: &str,
    cmd: &Command,
    now: i64,
    mut change: impl FnMut(QueuedMessage) -> Change,
) -> Result<Option<QueuedMessage>, StoreError> {
    let key = names::status_key(&cmd.message_id, uid);
    for _ in 0..CAS_TRIES {
        let (rec, revision) = match read::entry(&n.messages, &key).await? {
            Some((value, revision)) => (decode(&key, &value)?, revision),
            // No status record: a command whose enqueue was never answered (its node died, or
            // the record is being created right now): not deliverable.
            _ => return Ok(None),
        };
        if rec.status.is_terminal() {
            let _ = n.cmd.delete_message(rec.seq).await;
            return Ok(None);
        }
        let (value, done) = match change(rec) {
            Change::Keep => return Ok(None),
            Change::Update(r) => (r.clone(), r),
            Change::Final(mut r, status, error) => {
                r.status = status;
                r.updated_at = now;
                r.error = error.map(|e| clip_reason(&e));
                r.payload = String::new();
                (r.clone(), r)
            }
        };
        match n.messages.update(&key, encode(&value)?, revision).await {
            Ok(_) => {
                if done.status.is_terminal() {
                    if let Err(e) = n.cmd.delete_message(done.seq).await {
                        tracing::debug!(error = %e, "a final command stays in the stream until its max age");
                    }
                }
                return Ok(Some(done));
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
            Err(e) => return Err(unavailable(e)),
        }
    }
    Err(unavailable(
        "too many concurrent changes of one delivery status",
    ))
}

/// Records one write of `cmd` before it is made (see `Fleet::record_attempt`).
pub async fn record_attempt(
    n: &Nats,
    uid: &str,
    cmd: &Command,
    conn: u64,
    now: i64,
) -> Result<Option<QueuedMessage>, StoreError> {
    let done = update(n, uid, cmd, now, |mut rec| {
        if rec.is_expired(now) {
            Change::Final(rec, MessageStatus::Expired, None)
        } else if rec.attempts_left() == 0 {
            Change::Final(rec, MessageStatus::Failed, Some("retries exhausted".into()))
        } else {
            rec.retry_count = rec.retry_count.saturating_add(1);
            rec.status = MessageStatus::Sent;
            rec.updated_at = now;
            rec.attempts.push(Attempt { at: now, conn });
            let excess = rec.attempts.len().saturating_sub(MAX_ATTEMPTS_KEPT);
            rec.attempts.drain(..excess);
            Change::Update(rec)
        }
    })
    .await?;
    Ok(done.filter(|r| r.status == MessageStatus::Sent))
}

/// Moves `cmd` to a final `status` (if it is still pending); `true` if this call did.
pub async fn finish(
    n: &Nats,
    uid: &str,
    cmd: &Command,
    status: MessageStatus,
    error: Option<&str>,
    now: i64,
) -> Result<bool, StoreError> {
    let error = error.map(str::to_string);
    let done = update(n, uid, cmd, now, |rec| {
        Change::Final(rec, status, error.clone())
    })
    .await?;
    Ok(done.is_some_and(|r| r.status == status))
}

/// A written, unconfirmed command goes back to `queued` (its connection ended).
pub async fn requeue(n: &Nats, uid: &str, cmd: &Command, now: i64) -> Result<bool, StoreError> {
    let done = update(n, uid, cmd, now, |mut rec| {
        if rec.status == MessageStatus::Sent {
            rec.status = MessageStatus::Queued;
            rec.updated_at = now;
            Change::Update(rec)
        } else {
            Change::Keep
        }
    })
    .await?;
    Ok(done.is_some())
}

/// Marks command `message_id` of `uid` delivered; `false` if it was not pending.
pub async fn mark_delivered(
    n: &Nats,
    uid: &str,
    message_id: &str,
    now: i64,
) -> Result<bool, StoreError> {
    let key = names::status_key(message_id, uid);
    let Some((value, _)) = read::entry(&n.messages, &key).await? else {
        return Ok(false);
    };
    let rec = decode(&key, &value)?;
    let Some(cmd) = Command::of_queued(&rec) else {
        return Ok(false);
    };
    finish(n, uid, &cmd, MessageStatus::Delivered, None, now).await
}

/// Pending commands of `uid`: the messages on its subject.
pub async fn depth(n: &Nats, uid: &str) -> Result<usize, StoreError> {
    let subject = names::cmd_subject(uid);
    let info = n
        .cmd
        .info_with_subjects(&subject)
        .await
        .map_err(unavailable)?;
    let mut total = 0;
    futures_util::pin_mut!(info);
    use futures_util::TryStreamExt;
    while let Some((s, count)) = info.try_next().await.map_err(unavailable)? {
        if s == subject {
            total += count;
        }
    }
    Ok(total)
}

/// Every delivery record of `message_id`. A queued record past its expiry reads `expired`
/// (the stream dropped the command; no node was there to say so).
pub async fn status_of(
    n: &Nats,
    message_id: &str,
    now: i64,
) -> Result<Vec<QueuedMessage>, StoreError> {
    let filter = format!("{}.*", names::token(message_id));
    let found = scan::bucket(&n.client, &n.messages, &filter).await?;
    let mut out = Vec::with_capacity(found.len());
    for (key, value) in found {
        let mut rec = decode(&key, &value)?;
        if !rec.status.is_terminal() && rec.is_expired(now) {
            rec.status = MessageStatus::Expired;
        }
        out.push(rec);
    }
    out.sort_by(|a, b| a.agent_uid.cmp(&b.agent_uid));
    Ok(out)
}

/// Revokes every pending command of `uid` and empties its subject.
pub async fn revoke_all(n: &Nats, uid: &str, now: i64) -> Result<usize, StoreError> {
    let pending = pending(n, uid, now).await?;
    for rec in &pending {
        if let Some(cmd) = Command::of_queued(rec) {
            finish(n, uid, &cmd, MessageStatus::Revoked, None, now).await?;
        }
    }
    n.cmd
        .purge()
        .filter(names::cmd_subject(uid))
        .await
        .map_err(unavailable)?;
    Ok(pending.len())
}
