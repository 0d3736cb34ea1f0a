//! Agents, their host index, pending registrations and channels in JetStream buckets.
//!
//! Every read-modify-write is a compare-and-swap on the key's revision, so a revocation on one
//! node is never undone by a `last_seen` written on another (it only updates records that still
//! exist). A key that cannot be a uid (an `agent_id` with `@` or `.`, say) is simply not there.

use super::bridge::unavailable;
use super::names;
use super::read;
use super::scan;
use super::setup::Nats;
use crate::store::{AgentRecord, ChannelRecord, Registration, StoreError, MAX_UIDS_PER_HOST};
use async_nats::jetstream::kv;

/// Attempts at a compare-and-swap.
const CAS_TRIES: usize = 8;

fn encode<T: serde::Serialize>(what: &'static str, v: &T) -> Result<bytes::Bytes, StoreError> {
    serde_json::to_vec(v)
        .map(bytes::Bytes::from)
        .map_err(|source| StoreError::Encode { what, source })
}

fn decode<T: serde::de::DeserializeOwned>(
    what: &'static str,
    key: &str,
    bytes: &[u8],
) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Decode {
        what,
        key: key.chars().take(128).collect(),
        source,
    })
}

/// The registered agent `uid`.
pub async fn get_agent(n: &Nats, uid: &str) -> Result<Option<AgentRecord>, StoreError> {
    if !names::is_plain(uid) {
        return Ok(None);
    }
    match read::entry(&n.agents, uid).await? {
        Some((v, _)) => decode("agent", uid, &v).map(Some),
        None => Ok(None),
    }
}

/// Every registered agent, in uid order, after `after`, at most `limit`.
pub async fn list_agents(
    n: &Nats,
    after: Option<&str>,
    limit: usize,
) -> Result<Vec<AgentRecord>, StoreError> {
    let mut all: Vec<AgentRecord> = scan::bucket(&n.client, &n.agents, ">")
        .await?
        .into_iter()
        .filter_map(|(k, v)| decode("agent", &k, &v).ok())
        .collect();
    all.sort_by(|a, b| a.agent_uid.cmp(&b.agent_uid));
    Ok(all
        .into_iter()
        .filter(|r| after.is_none_or(|a| r.agent_uid.as_str() > a))
        .take(limit.min(crate::store::MAX_LIST_LIMIT))
        .collect())
}

/// The uids registered with `host_id`.
pub async fn uids_for_host(n: &Nats, host_id: &str) -> Result<Vec<String>, StoreError> {
    let key = names::token(host_id);
    match read::entry(&n.hosts, &key).await? {
        Some((v, _)) => decode("host index", &key, &v),
        None => Ok(Vec::new()),
    }
}

/// Adds or removes `uid` under `host_id` by compare-and-swap.
async fn change_host(n: &Nats, host_id: &str, uid: &str, add: bool) -> Result<(), StoreError> {
    let key = names::token(host_id);
    for _ in 0..CAS_TRIES {
        let (mut uids, revision): (Vec<String>, Option<u64>) =
            match read::revision(&n.hosts, &key).await? {
                Some((Some(v), r)) => (decode("host index", &key, &v)?, Some(r)),
                Some((None, r)) => (Vec::new(), Some(r)),
                None => (Vec::new(), None),
            };
        let had = uids.iter().any(|u| u == uid);
        if had == add {
            return Ok(());
        }
        if add {
            if uids.len() >= MAX_UIDS_PER_HOST {
                uids.remove(0);
            }
            uids.push(uid.to_string());
        } else {
            uids.retain(|u| u != uid);
        }
        let value = encode("host index", &uids)?;
        let written = match revision {
            Some(r) => n.hosts.update(&key, value, r).await.map(drop).map_err(|e| {
                (
                    e.kind() == kv::UpdateErrorKind::WrongLastRevision,
                    e.to_string(),
                )
            }),
            None => n.hosts.create(&key, value).await.map(drop).map_err(|e| {
                (
                    e.kind() == kv::CreateErrorKind::AlreadyExists,
                    e.to_string(),
                )
            }),
        };
        match written {
            Ok(()) => return Ok(()),
            Err((true, _)) => continue,
            Err((false, e)) => return Err(unavailable(e)),
        }
    }
    Err(unavailable("too many concurrent changes of one host index"))
}

/// Stores a newly registered agent and indexes its host; durable once it resolves.
pub async fn register_agent(n: &Nats, record: &AgentRecord) -> Result<(), StoreError> {
    if !names::is_plain(&record.agent_uid) {
        return Err(StoreError::InvalidKey {
            field: "agent_uid",
            reason: "not a uid",
        });
    }
    n.agents
        .put(&record.agent_uid, encode("agent", record)?)
        .await
        .map_err(unavailable)?;
    change_host(n, &record.host_id, &record.agent_uid, true).await
}

/// Forgets agent `uid` (and its host index entry); `false` if it was not registered.
pub async fn remove_agent(n: &Nats, uid: &str) -> Result<bool, StoreError> {
    let Some(rec) = get_agent(n, uid).await? else {
        return Ok(false);
    };
    n.agents.delete(uid).await.map_err(unavailable)?;
    change_host(n, &rec.host_id, uid, false).await?;
    Ok(true)
}

/// Updates `last_seen` of an agent that is still registered.
pub async fn set_last_seen(n: &Nats, uid: &str, now: i64) -> Result<(), StoreError> {
    if !names::is_plain(uid) {
        return Ok(());
    }
    for _ in 0..CAS_TRIES {
        let Some((value, revision)) = read::entry(&n.agents, uid).await? else {
            return Ok(());
        };
        let mut rec: AgentRecord = decode("agent", uid, &value)?;
        if rec.last_seen >= now {
            return Ok(());
        }
        rec.last_seen = now;
        match n.agents.update(uid, encode("agent", &rec)?, revision).await {
            Ok(_) => return Ok(()),
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
            Err(err) => return Err(unavailable(err)),
        }
    }
    Ok(())
}

/// Stores a pending registration (it expires with its bucket).
pub async fn put_registration(n: &Nats, reg: &Registration) -> Result<(), StoreError> {
    let key = names::token(&reg.registration_id);
    n.registrations
        .put(&key, encode("registration", reg)?)
        .await
        .map(drop)
        .map_err(unavailable)
}

/// Removes a pending registration; `false` if there was none.
pub async fn remove_registration(n: &Nats, id: &str) -> Result<bool, StoreError> {
    let key = names::token(id);
    let existed = read::entry(&n.registrations, &key).await?.is_some();
    if existed {
        n.registrations.delete(&key).await.map_err(unavailable)?;
    }
    Ok(existed)
}

/// Removes and returns an HTTP registration (see `Fleet::take_http_registration`): deleted
/// only at the revision read, so two nodes completing it at once cannot both succeed.
pub async fn take_http_registration(
    n: &Nats,
    id: &str,
) -> Result<Option<Registration>, StoreError> {
    let key = names::token(id);
    let Some((value, revision)) = read::entry(&n.registrations, &key).await? else {
        return Ok(None);
    };
    let reg: Registration = decode("registration", &key, &value)?;
    if reg.conn_id != Registration::HTTP {
        return Ok(None);
    }
    match n
        .registrations
        .delete_expect_revision(&key, Some(revision))
        .await
    {
        Ok(()) => Ok(Some(reg)),
        // Taken by someone else in between.
        Err(e) if e.kind() == kv::DeleteErrorKind::WrongLastRevision => Ok(None),
        Err(e) => Err(unavailable(e)),
    }
}

/// Records that `uid` used `channel`.
pub async fn touch_channel(
    n: &Nats,
    uid: &str,
    channel: &str,
    kind: &str,
    now: i64,
) -> Result<(), StoreError> {
    let key = names::channel_key(uid, channel);
    let created_at = match read::entry(&n.channels, &key).await? {
        Some((v, _)) => decode::<ChannelRecord>("channel", &key, &v).map_or(now, |c| c.created_at),
        None => now,
    };
    let rec = ChannelRecord {
        kind: kind.to_string(),
        active: true,
        created_at,
        updated_at: now,
    };
    n.channels
        .put(&key, encode("channel", &rec)?)
        .await
        .map(drop)
        .map_err(unavailable)
}

/// The active channels of `uid`, sorted.
pub async fn channels_of(n: &Nats, uid: &str) -> Result<Vec<String>, StoreError> {
    let filter = format!("{}.*", names::token(uid));
    let mut out: Vec<String> = scan::bucket(&n.client, &n.channels, &filter)
        .await?
        .into_iter()
        .filter_map(|(k, v)| {
            let rec: ChannelRecord = decode("channel", &k, &v).ok()?;
            let token = k.split_once('.')?.1;
            rec.active.then(|| names::untoken(token)).flatten()
        })
        .collect();
    out.sort();
    out.truncate(crate::store::MAX_CHANNELS_LISTED);
    Ok(out)
}
