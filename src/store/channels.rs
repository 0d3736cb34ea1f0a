//! The channels each agent used (`channels`): key `agent_uid ‖ 0x00 ‖ channel` →
//! [`ChannelRecord`] JSON (the seed's `communication_channels`).
//!
//! Writes of one agent are serialized by the agent's queue stripe lock. [`Store::touch_channel`]
//! skips the write when the record is active, of the same kind and was updated less than
//! [`TOUCH_INTERVAL_S`] ago, so calling it per message costs a point read, not a write.

use super::{
    codec::{self, check_key_part, valid_key_part},
    FjallContext, Store, StoreError,
};
use serde::{Deserialize, Serialize};

/// Most channels listed per agent, whatever is stored.
pub const MAX_CHANNELS_LISTED: usize = 1_024;

/// A touch within this many seconds of the last write of an unchanged record writes nothing.
pub const TOUCH_INTERVAL_S: i64 = 60;

const WHAT: &str = "channel";

/// State of one channel of one agent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ChannelRecord {
    /// Channel kind (the part after the last dot), e.g. `threats`.
    pub kind: String,
    /// Whether the channel is in use (false after [`Store::deactivate_channels`]).
    pub active: bool,
    /// First use, Unix seconds.
    pub created_at: i64,
    /// Last write, Unix seconds.
    pub updated_at: i64,
}

fn prefix(uid: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(uid.len() + 1);
    key.extend_from_slice(uid.as_bytes());
    key.push(0);
    key
}

fn channel_key(uid: &str, channel: &str) -> Vec<u8> {
    let mut key = prefix(uid);
    key.extend_from_slice(channel.as_bytes());
    key
}

impl Store {
    /// Records that `agent_uid` uses `channel` of `kind` at `now`: creates the record, or marks
    /// it active and updated (keeping `created_at`). Returns whether anything was written. Not
    /// durable until [`Store::sync`].
    ///
    /// # Errors
    /// Invalid uid or channel ([`StoreError::InvalidKey`]), storage error.
    pub fn touch_channel(
        &self,
        agent_uid: &str,
        channel: &str,
        kind: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        check_key_part("agent_uid", agent_uid)?;
        check_key_part("channel", channel)?;
        let engine = self.engine()?;
        let ks = &engine.ks.channels;
        let key = channel_key(agent_uid, channel);
        let _guard = self.inner.queues.lock(agent_uid);
        let old = match ks.get(&key).ctx("reading a channel")? {
            // A damaged record is simply replaced.
            Some(v) => codec::decode::<ChannelRecord>(WHAT, &key, &v).ok(),
            None => None,
        };
        if let Some(old) = &old {
            let fresh = now.saturating_sub(old.updated_at) < TOUCH_INTERVAL_S;
            if old.active && old.kind == kind && fresh && now >= old.updated_at {
                return Ok(false);
            }
        }
        let record = ChannelRecord {
            kind: kind.to_owned(),
            active: true,
            created_at: old.as_ref().map_or(now, |o| o.created_at),
            updated_at: now,
        };
        ks.insert(key, codec::encode(WHAT, &record)?)
            .ctx("writing a channel")?;
        Ok(true)
    }

    /// The agent's active channels, in name order (at most [`MAX_CHANNELS_LISTED`]).
    ///
    /// # Errors
    /// Storage error.
    pub fn channels_of(&self, agent_uid: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .channel_records(agent_uid)?
            .into_iter()
            .filter(|(_, r)| r.active)
            .map(|(name, _)| name)
            .collect())
    }

    /// Every channel record of the agent, active or not, in name order (at most
    /// [`MAX_CHANNELS_LISTED`]). Undecodable records are skipped.
    ///
    /// # Errors
    /// Storage error.
    pub fn channel_records(
        &self,
        agent_uid: &str,
    ) -> Result<Vec<(String, ChannelRecord)>, StoreError> {
        if !valid_key_part(agent_uid) {
            return Ok(Vec::new());
        }
        let p = prefix(agent_uid);
        let mut out = Vec::new();
        let engine = self.engine()?;
        for guard in engine.ks.channels.prefix(&p).take(MAX_CHANNELS_LISTED) {
            let (key, value) = guard.into_inner().ctx("listing channels")?;
            let name = key
                .get(p.len()..)
                .and_then(|n| std::str::from_utf8(n).ok())
                .map(str::to_owned);
            match (name, codec::decode::<ChannelRecord>(WHAT, &key, &value)) {
                (Some(name), Ok(record)) => out.push((name, record)),
                (_, Err(e)) => tracing::warn!(error = %e, "skipping an undecodable channel"),
                (None, Ok(_)) => tracing::warn!("skipping a channel with a non-UTF-8 name"),
            }
        }
        Ok(out)
    }

    /// Marks every active channel of the agent inactive (e.g. when it disconnects); returns how
    /// many changed.
    ///
    /// # Errors
    /// Storage error.
    pub fn deactivate_channels(&self, agent_uid: &str, now: i64) -> Result<usize, StoreError> {
        self.rewrite_channels(agent_uid, |record| {
            if !record.active {
                return None;
            }
            record.active = false;
            record.updated_at = now;
            Some(true)
        })
    }

    /// Deletes every channel record of the agent (revocation); returns how many.
    ///
    /// # Errors
    /// Storage error.
    pub fn remove_channels(&self, agent_uid: &str) -> Result<usize, StoreError> {
        self.rewrite_channels(agent_uid, |_| Some(false))
    }

    /// Applies `f` to each record of the agent in one batch: `Some(true)` rewrites it,
    /// `Some(false)` deletes it, `None` leaves it. Returns the number rewritten or deleted.
    fn rewrite_channels(
        &self,
        agent_uid: &str,
        mut f: impl FnMut(&mut ChannelRecord) -> Option<bool>,
    ) -> Result<usize, StoreError> {
        if !valid_key_part(agent_uid) {
            return Ok(0);
        }
        let engine = self.engine()?;
        let ks = &engine.ks.channels;
        let _guard = self.inner.queues.lock(agent_uid);
        let mut batch = engine.db.batch();
        for guard in ks.prefix(prefix(agent_uid)) {
            let (key, value) = guard.into_inner().ctx("reading channels")?;
            let Ok(mut record) = codec::decode::<ChannelRecord>(WHAT, &key, &value) else {
                batch.remove(ks, key); // damaged: drop it
                continue;
            };
            match f(&mut record) {
                Some(true) => batch.insert(ks, key, codec::encode(WHAT, &record)?),
                Some(false) => batch.remove(ks, key),
                None => {}
            }
        }
        let changed = batch.len();
        batch.commit().ctx("updating channels")?;
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use crate::store::Store;

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        (dir, store)
    }

    #[test]
    fn touch_creates_refreshes_and_keeps_created_at() {
        let (_dir, store) = open();
        assert!(store
            .touch_channel("u1", "agent.u1.threats", "threats", 100)
            .unwrap());
        assert!(!store
            .touch_channel("u1", "agent.u1.threats", "threats", 130)
            .unwrap());
        assert!(store
            .touch_channel("u1", "agent.u1.threats", "threats", 200)
            .unwrap());
        store
            .touch_channel("u1", "agent.u1.heartbeat", "heartbeat", 200)
            .unwrap();
        store
            .touch_channel("u10", "agent.u10.logs", "logs", 200)
            .unwrap();
        let records = store.channel_records("u1").unwrap();
        assert_eq!(records.len(), 2);
        let (name, threats) = &records[1];
        assert_eq!(name, "agent.u1.threats");
        assert_eq!((threats.created_at, threats.updated_at), (100, 200));
        assert_eq!(
            store.channels_of("u1").unwrap(),
            ["agent.u1.heartbeat", "agent.u1.threats"]
        );
    }

    #[test]
    fn deactivate_hides_and_touch_revives_then_remove_forgets() {
        let (_dir, store) = open();
        store
            .touch_channel("u1", "agent.u1.threats", "threats", 100)
            .unwrap();
        store
            .touch_channel("u1", "agent.u1.logs", "logs", 100)
            .unwrap();
        assert_eq!(store.deactivate_channels("u1", 110).unwrap(), 2);
        assert_eq!(store.deactivate_channels("u1", 111).unwrap(), 0);
        assert!(store.channels_of("u1").unwrap().is_empty());
        assert_eq!(store.channel_records("u1").unwrap().len(), 2);
        // Inactive: a touch within the interval still writes.
        assert!(store
            .touch_channel("u1", "agent.u1.logs", "logs", 112)
            .unwrap());
        assert_eq!(store.channels_of("u1").unwrap(), ["agent.u1.logs"]);
        assert_eq!(store.remove_channels("u1").unwrap(), 2);
        assert!(store.channel_records("u1").unwrap().is_empty());
    }

    #[test]
    fn bad_keys_are_refused_or_empty() {
        let (_dir, store) = open();
        assert!(store.touch_channel("u\0", "c", "k", 1).is_err());
        assert!(store.touch_channel("u", "", "k", 1).is_err());
        assert!(store.channels_of("").unwrap().is_empty());
        assert_eq!(store.remove_channels("a\0b").unwrap(), 0);
    }
}
