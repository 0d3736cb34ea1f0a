//! Registered agents (`agents`) and the host index (`agents_by_host`).
//!
//! The record and its index entry are written in one fjall batch, so they never disagree after
//! a crash. Writes to one uid are serialized by the store's striped locks, so a revoke cannot
//! be undone by a concurrent `set_last_seen` (which only updates records that still exist).

use super::{
    codec::{self, check_key_part, valid_key_part},
    Engine, FjallContext, LockDomain, Store, StoreError,
};
use crate::protocol::session::NewAgent;
use serde::{Deserialize, Serialize};
use std::{ops::Bound, sync::atomic::Ordering};

/// Largest page [`Store::list_agents`] returns, whatever `limit` asks.
pub const MAX_LIST_LIMIT: usize = 10_000;

/// Most uids [`Store::uids_for_host`] returns for one host_id (registration is open to anyone,
/// so the number of uids sharing a host_id is peer-controlled).
pub const MAX_UIDS_PER_HOST: usize = 1_024;

/// A registered agent, stored under its `agent_uid`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AgentRecord {
    /// Gateway-issued id (uuid); the key.
    pub agent_uid: String,
    /// The agent's Ed25519 public key, base64.
    pub public_key: String,
    /// Host identifier the agent registered with (not unique).
    pub host_id: String,
    /// The `agent_id` the agent connected with.
    pub agent_id: String,
    /// Organisation id from registration.
    pub org_id: String,
    /// Platform object from registration (os, arch, ...).
    pub platform: serde_json::Value,
    /// Agent version string.
    pub version: String,
    /// Capabilities object from registration.
    pub capabilities: serde_json::Value,
    /// Network object from registration.
    pub network: serde_json::Value,
    /// Hex SHA-256 of the bootstrap token (see [`super::hash_token`]).
    pub token_hash: String,
    /// Registration time, Unix seconds.
    pub registered_at: i64,
    /// Last activity, Unix seconds.
    pub last_seen: i64,
    /// Protocol profile (1 legacy, 2 secure).
    pub profile: u8,
}

const WHAT: &str = "agent";

impl AgentRecord {
    /// The record of an agent that completed its registration (`n`) with `public_key`.
    pub fn registered(n: &NewAgent, public_key: &[u8; 32]) -> AgentRecord {
        let r = &n.request;
        AgentRecord {
            agent_uid: n.agent_uid.clone(),
            public_key: crate::protocol::payloads::b64(public_key),
            host_id: r.host_id.clone(),
            agent_id: n.agent_id.clone(),
            org_id: r.org_id.clone(),
            platform: r.platform.clone(),
            version: r.agent_version.clone(),
            capabilities: r.capabilities.clone(),
            network: r.network.clone(),
            token_hash: n.token_hash.clone(),
            registered_at: n.registered_at,
            last_seen: n.registered_at,
            profile: n.profile,
        }
    }
}

/// The record of `uid` on `engine`.
fn read_agent(engine: &Engine, uid: &str) -> Result<Option<AgentRecord>, StoreError> {
    let bytes = engine.ks.agents.get(uid).ctx("reading an agent")?;
    bytes
        .map(|b| codec::decode(WHAT, uid.as_bytes(), &b))
        .transpose()
}

impl Store {
    /// Inserts or replaces an agent record and its host index entry (atomically). Replacing a
    /// record whose host_id changed moves the index entry. Not durable until [`Store::sync`].
    ///
    /// # Errors
    /// Invalid uid or host_id ([`StoreError::InvalidKey`]), oversized record, storage error.
    pub fn put_agent(&self, record: &AgentRecord) -> Result<(), StoreError> {
        check_key_part("agent_uid", &record.agent_uid)?;
        check_key_part("host_id", &record.host_id)?;
        let value = codec::encode(WHAT, record)?;
        let engine = self.engine()?;
        let ks = &engine.ks;
        let _guard = self.inner.locks.lock(LockDomain::Agent, &record.agent_uid);
        let old = read_agent(&engine, &record.agent_uid)?;
        let mut batch = engine.db.batch();
        if let Some(old) = &old {
            if old.host_id != record.host_id {
                batch.remove(
                    &ks.agents_by_host,
                    codec::host_key(&old.host_id, &old.agent_uid),
                );
            }
        }
        batch.insert(&ks.agents, record.agent_uid.as_bytes(), value);
        batch.insert(
            &ks.agents_by_host,
            codec::host_key(&record.host_id, &record.agent_uid),
            Vec::<u8>::new(),
        );
        batch.commit().ctx("writing an agent")?;
        if old.is_none() {
            self.inner.agent_count.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The agent registered under `uid`, if any (an impossible uid is simply absent).
    ///
    /// # Errors
    /// Storage error, or a corrupt stored record.
    pub fn get_agent(&self, uid: &str) -> Result<Option<AgentRecord>, StoreError> {
        if !valid_key_part(uid) {
            return Ok(None);
        }
        read_agent(&*self.engine()?, uid)
    }

    /// Revokes `uid`: removes its record and host index entry (atomically) and returns the
    /// removed record, or `None` if it was not registered (or its record was corrupt; it is
    /// removed all the same). Not durable until [`Store::sync`].
    ///
    /// # Errors
    /// Storage error.
    pub fn remove_agent(&self, uid: &str) -> Result<Option<AgentRecord>, StoreError> {
        if !valid_key_part(uid) {
            return Ok(None);
        }
        let engine = self.engine()?;
        let ks = &engine.ks;
        let _guard = self.inner.locks.lock(LockDomain::Agent, uid);
        let old = match read_agent(&engine, uid) {
            Ok(Some(old)) => old,
            Ok(None) => return Ok(None),
            Err(e @ StoreError::Decode { .. }) => {
                // Revocation must work even on a damaged record: drop it (its host index
                // entry, unknown now, is left dangling and resolves to no record).
                tracing::warn!(error = %e, "revoking an agent whose record does not decode");
                ks.agents.remove(uid.as_bytes()).ctx("removing an agent")?;
                self.decrement_agent_count();
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let mut batch = engine.db.batch();
        batch.remove(&ks.agents, uid.as_bytes());
        batch.remove(&ks.agents_by_host, codec::host_key(&old.host_id, uid));
        batch.commit().ctx("removing an agent")?;
        self.decrement_agent_count();
        Ok(Some(old))
    }

    /// The uids registered with `host_id`, in uid order, at most [`MAX_UIDS_PER_HOST`].
    ///
    /// # Errors
    /// Storage error, or a corrupt index key.
    pub fn uids_for_host(&self, host_id: &str) -> Result<Vec<String>, StoreError> {
        if !valid_key_part(host_id) {
            return Ok(Vec::new());
        }
        let prefix = codec::host_prefix(host_id);
        let mut uids = Vec::new();
        for guard in self
            .engine()?
            .ks
            .agents_by_host
            .prefix(&prefix)
            .take(MAX_UIDS_PER_HOST)
        {
            let key = guard.key().ctx("scanning the host index")?;
            uids.push(codec::uid_from_host_key(&key, prefix.len())?);
        }
        Ok(uids)
    }

    /// Sets `last_seen` of `uid` to `ts` (never moves it backwards). Returns `false` if the
    /// agent is not registered (a revoked agent is not brought back). Callers rate-limit it.
    ///
    /// # Errors
    /// Storage error, or a corrupt stored record.
    pub fn set_last_seen(&self, uid: &str, ts: i64) -> Result<bool, StoreError> {
        if !valid_key_part(uid) {
            return Ok(false);
        }
        let engine = self.engine()?;
        let _guard = self.inner.locks.lock(LockDomain::Agent, uid);
        let Some(mut record) = read_agent(&engine, uid)? else {
            return Ok(false);
        };
        if ts <= record.last_seen {
            return Ok(true);
        }
        record.last_seen = ts;
        let value = codec::encode(WHAT, &record)?;
        engine
            .ks
            .agents
            .insert(uid.as_bytes(), value)
            .ctx("updating last_seen")?;
        Ok(true)
    }

    /// One page of agents in uid order: those after `after` (exclusive; `None` = from the
    /// start), at most `limit` (clamped to [`MAX_LIST_LIMIT`]). The last uid is the next cursor.
    ///
    /// # Errors
    /// Storage error, or a corrupt stored record.
    pub fn list_agents(
        &self,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<AgentRecord>, StoreError> {
        let limit = limit.min(MAX_LIST_LIMIT);
        let start = match after {
            Some(cursor) => Bound::Excluded(cursor.as_bytes()),
            None => Bound::Unbounded,
        };
        let range = (start, Bound::<&[u8]>::Unbounded);
        let mut page = Vec::with_capacity(limit.min(256));
        let engine = self.engine()?;
        for guard in engine.ks.agents.range::<&[u8], _>(range).take(limit) {
            let (key, value) = guard.into_inner().ctx("listing agents")?;
            page.push(codec::decode(WHAT, &key, &value)?);
        }
        Ok(page)
    }

    fn decrement_agent_count(&self) {
        // Saturating: records written behind the store's back (raw keyspace) are not counted.
        let _ = self
            .inner
            .agent_count
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                Some(n.saturating_sub(1))
            });
    }

    /// Number of registered agents (kept in memory; counted once at open).
    pub fn agent_count(&self) -> u64 {
        self.inner.agent_count.load(Ordering::Relaxed)
    }
}
