//! Pending registrations (`registrations`): M3 data kept until M4 completes it or it expires.

use super::{
    codec::{self, check_key_part, valid_key_part},
    FjallContext, LockDomain, Store, StoreError,
};
use crate::protocol::payloads::RegistrationRequest;
use crate::protocol::session::PendingRecord;
use serde::{Deserialize, Serialize};
use std::ops::Bound;

/// Expired registrations removed per scan chunk in [`Store::purge_expired_registrations`]
/// (bounds the memory of one purge whatever the number of pending registrations).
pub(crate) const PURGE_CHUNK: usize = 1_024;

/// A pending registration (after R2, before R3), stored under its `registration_id`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Registration {
    /// Gateway-issued id (uuid); the key.
    pub registration_id: String,
    /// The connection that sent M3; M4 must come on it.
    pub conn_id: u64,
    /// agent_id of the connection.
    pub agent_id: String,
    /// The M3 as received (its `agent_pubkey` is the session key).
    #[serde(flatten)]
    pub request: RegistrationRequest,
    /// The R2 nonce, base64 of 32 bytes.
    pub nonce: String,
    /// The R2 `server_time` string, as signed in M4.
    pub server_time: String,
    /// Expiry, Unix seconds; expired when `expires_at <= now`.
    pub expires_at: i64,
}

impl Registration {
    /// The `conn_id` of a registration made over HTTP (PROTOCOL §9); connection ids start at 1.
    pub const HTTP: u64 = 0;

    /// The stored form of `p`, made by connection `conn_id` (or [`Registration::HTTP`]).
    pub fn pending(p: &PendingRecord, conn_id: u64) -> Registration {
        Registration {
            registration_id: p.registration_id.clone(),
            conn_id,
            agent_id: p.agent_id.clone(),
            request: p.request.clone(),
            nonce: p.nonce.clone(),
            server_time: p.server_time.clone(),
            expires_at: p.expires_at,
        }
    }

    /// The pending registration this record stores (to check its completion).
    pub fn to_pending(&self) -> PendingRecord {
        PendingRecord {
            registration_id: self.registration_id.clone(),
            request: self.request.clone(),
            agent_id: self.agent_id.clone(),
            nonce: self.nonce.clone(),
            server_time: self.server_time.clone(),
            expires_at: self.expires_at,
        }
    }

    /// Whether the registration has expired at `now` (Unix seconds).
    pub fn is_expired(&self, now: i64) -> bool {
        self.expires_at <= now
    }
}

const WHAT: &str = "registration";

impl Store {
    /// Stores (or replaces) a pending registration. Not durable until [`Store::sync`]; a
    /// pending registration lost in a crash only makes the agent register again.
    ///
    /// # Errors
    /// Invalid id, oversized record, storage error.
    pub fn put_registration(&self, reg: &Registration) -> Result<(), StoreError> {
        check_key_part("registration_id", &reg.registration_id)?;
        let value = codec::encode(WHAT, reg)?;
        let _guard = self
            .inner
            .locks
            .lock(LockDomain::Registration, &reg.registration_id);
        self.engine()?
            .ks
            .registrations
            .insert(reg.registration_id.as_bytes(), value)
            .ctx("writing a registration")
    }

    /// The pending registration `id`, if any. Expired ones may still be returned until purged:
    /// check [`Registration::is_expired`].
    ///
    /// # Errors
    /// Storage error, or a corrupt stored record.
    pub fn get_registration(&self, id: &str) -> Result<Option<Registration>, StoreError> {
        if !valid_key_part(id) {
            return Ok(None);
        }
        let bytes = self
            .engine()?
            .ks
            .registrations
            .get(id)
            .ctx("reading a registration")?;
        bytes
            .map(|b| codec::decode(WHAT, id.as_bytes(), &b))
            .transpose()
    }

    /// Removes registration `id`; `true` if it existed.
    ///
    /// # Errors
    /// Storage error.
    pub fn remove_registration(&self, id: &str) -> Result<bool, StoreError> {
        if !valid_key_part(id) {
            return Ok(false);
        }
        let _guard = self.inner.locks.lock(LockDomain::Registration, id);
        let engine = self.engine()?;
        let ks = &engine.ks.registrations;
        if !ks.contains_key(id).ctx("reading a registration")? {
            return Ok(false);
        }
        ks.remove(id.as_bytes()).ctx("removing a registration")?;
        Ok(true)
    }

    /// Atomically removes and returns registration `id` if it belongs to connection `conn_id`,
    /// so one registration completes at most once. A registration of another connection is
    /// left untouched and `None` is returned, as for an unknown id. The caller still checks
    /// [`Registration::is_expired`].
    ///
    /// # Errors
    /// Storage error, or a corrupt stored record.
    pub fn take_registration(
        &self,
        id: &str,
        conn_id: u64,
    ) -> Result<Option<Registration>, StoreError> {
        if !valid_key_part(id) {
            return Ok(None);
        }
        let _guard = self.inner.locks.lock(LockDomain::Registration, id);
        match self.get_registration(id)? {
            Some(reg) if reg.conn_id == conn_id => {
                self.engine()?
                    .ks
                    .registrations
                    .remove(id.as_bytes())
                    .ctx("removing a registration")?;
                Ok(Some(reg))
            }
            _ => Ok(None),
        }
    }

    /// Removes every registration expired at `now` (Unix seconds), and any record that no
    /// longer decodes. Returns how many were removed.
    ///
    /// # Errors
    /// Storage error.
    pub fn purge_expired_registrations(&self, now: i64) -> Result<usize, StoreError> {
        let engine = self.engine()?;
        let ks = &engine.ks.registrations;
        let mut removed = 0;
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let start = match &cursor {
                Some(key) => Bound::Excluded(key.as_slice()),
                None => Bound::Unbounded,
            };
            let mut expired = Vec::new();
            let mut last = None;
            for guard in ks.range::<&[u8], _>((start, Bound::Unbounded)) {
                let (key, value) = guard.into_inner().ctx("scanning registrations")?;
                if stale(&key, &value, now) {
                    expired.push(key.to_vec());
                }
                last = Some(key);
                if expired.len() >= PURGE_CHUNK {
                    break;
                }
            }
            for key in &expired {
                // Re-check under the lock: the record may have been replaced meanwhile.
                let id = String::from_utf8_lossy(key);
                let _guard = self.inner.locks.lock(LockDomain::Registration, &id);
                let current = ks.get(key).ctx("reading a registration")?;
                if current.is_some_and(|v| stale(key, &v, now)) {
                    ks.remove(key.as_slice()).ctx("removing a registration")?;
                    removed += 1;
                }
            }
            match last {
                Some(key) if expired.len() >= PURGE_CHUNK => cursor = Some(key.to_vec()),
                _ => return Ok(removed),
            }
        }
    }
}

/// Expired at `now`, or undecodable (logged, then purged as garbage).
fn stale(key: &[u8], value: &[u8], now: i64) -> bool {
    match codec::decode::<Registration>(WHAT, key, value) {
        Ok(reg) => reg.is_expired(now),
        Err(e) => {
            tracing::warn!(error = %e, "purging an undecodable registration");
            true
        }
    }
}
