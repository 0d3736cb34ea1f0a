//! Recent agent→backend messages for the admin event stream (`events`).
//!
//! Key: one **global** event seq (u64 BE), not `channel ‖ seq`. A client follows a channel
//! *pattern* (`agent.*.threats`, `agent.>`) and resumes with `Last-Event-ID`: that needs one
//! order across all channels, which per-channel seqs cannot give. Filtering by pattern is done
//! while reading ([`Store::events_matching`], [`channel_matches`]).
//!
//! A value is an [`EventRecord`]: a compact binary layout (the body is stored as it came, not
//! escaped into JSON), encoded where the event is recorded; the seq is the key. Values written
//! before that layout existed (JSON) are still read.
//!
//! Seqs start at 1, are assigned under a mutex held across the (buffered) insert so an event is
//! visible before any later one (a reader resuming after seq `n` never skips one), and are
//! recovered from the last key at open. [`Store::trim_events`] always keeps the newest event so
//! the counter survives a restart.

use super::{codec, FjallContext, Store, StoreError};
use fjall::Keyspace;
use serde::{Deserialize, Serialize};
use std::{
    ops::{Bound, Range},
    sync::{Mutex, PoisonError},
};

/// Most events one read returns, whatever `limit` asks.
pub const MAX_EVENTS_PAGE: usize = 10_000;

/// Keys removed per batch by [`Store::trim_events`].
const TRIM_CHUNK: usize = 4_096;

const WHAT: &str = "event";

/// An agent message to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The channel it came on, e.g. `agent.{uid}.threats`.
    pub channel: String,
    /// The sending agent (its uid, or its agent_id before registration).
    pub agent_uid: String,
    /// The envelope's `type`.
    pub message_type: String,
    /// The envelope's message id.
    pub id: String,
    /// The (decrypted) payload, JSON text.
    pub body: String,
    /// Receive time, Unix seconds.
    pub at: i64,
}

/// A recorded agent message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Global event seq (the SSE `id`).
    pub seq: u64,
    /// See [`NewEvent::channel`].
    pub channel: String,
    /// See [`NewEvent::agent_uid`].
    pub agent_uid: String,
    /// See [`NewEvent::message_type`].
    pub message_type: String,
    /// See [`NewEvent::id`].
    pub id: String,
    /// See [`NewEvent::body`].
    pub body: String,
    /// See [`NewEvent::at`].
    pub at: i64,
}

/// The result of [`Store::events_matching`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EventScan {
    /// Matching events, in seq order.
    pub events: Vec<StoredEvent>,
    /// The last seq examined (matching or not), or `after` if none: resume from here.
    pub scanned_to: u64,
}

/// The event counter of a [`Store`].
pub(crate) struct EventLog {
    /// Seq of the next event; the lock is held across the insert.
    next: Mutex<u64>,
}

impl EventLog {
    /// Recovers the counter from the last key of `events`.
    pub(crate) fn recover(events: &Keyspace) -> Result<Self, StoreError> {
        let next = match events.last_key_value() {
            Some(guard) => seq_of(&guard.key().ctx("reading the last event")?)?.saturating_add(1),
            None => 1,
        };
        Ok(Self {
            next: Mutex::new(next),
        })
    }

    /// After a reopen: continues after the last stored event, never reusing a seq handed out
    /// before (an event written but lost with the failed database keeps its seq).
    pub(crate) fn resync(&self, events: &Keyspace) -> Result<(), StoreError> {
        let recovered = Self::recover(events)?
            .next
            .into_inner()
            .unwrap_or_else(PoisonError::into_inner);
        let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
        *next = (*next).max(recovered);
        Ok(())
    }
}

/// First two bytes of a binary event value (a JSON value starts with `{`).
const RECORD_MAGIC: [u8; 2] = [0x00, 0x01];

/// One event, encoded for the `events` keyspace:
/// `00 01 ‖ at (i64 BE) ‖ for type, channel, agent, id: len (u16 BE) ‖ bytes ‖ body`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventRecord(Vec<u8>);

impl EventRecord {
    /// Encodes an event (one allocation, one copy of each field).
    ///
    /// # Errors
    /// [`StoreError::TooLarge`] past [`codec::MAX_VALUE_LEN`] or for a field over 64 KiB.
    pub fn new(
        channel: &str,
        agent_uid: &str,
        message_type: &str,
        id: &str,
        body: &str,
        at: i64,
    ) -> Result<Self, StoreError> {
        let fields = [message_type, channel, agent_uid, id];
        let len = 10 + fields.iter().map(|f| 2 + f.len()).sum::<usize>() + body.len();
        let too_large = StoreError::TooLarge {
            what: WHAT,
            len,
            max: codec::MAX_VALUE_LEN,
        };
        if len > codec::MAX_VALUE_LEN {
            return Err(too_large);
        }
        let mut v = Vec::with_capacity(len);
        v.extend_from_slice(&RECORD_MAGIC);
        v.extend_from_slice(&at.to_be_bytes());
        for f in fields {
            let Ok(n) = u16::try_from(f.len()) else {
                return Err(too_large);
            };
            v.extend_from_slice(&n.to_be_bytes());
            v.extend_from_slice(f.as_bytes());
        }
        v.extend_from_slice(body.as_bytes());
        Ok(EventRecord(v))
    }

    /// The event's fields (its seq is 0: the log assigns it).
    ///
    /// # Errors
    /// [`StoreError::CorruptValue`] for bytes that are not a record (never for one made by
    /// [`EventRecord::new`]).
    pub fn decode(&self) -> Result<StoredEvent, StoreError> {
        decode_event(b"", 0, &self.0)
    }

    /// Size of the encoded value.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the encoding is empty (never: the header is always there).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl NewEvent {
    /// This event as a record.
    ///
    /// # Errors
    /// See [`EventRecord::new`].
    pub fn record(&self) -> Result<EventRecord, StoreError> {
        EventRecord::new(
            &self.channel,
            &self.agent_uid,
            &self.message_type,
            &self.id,
            &self.body,
            self.at,
        )
    }
}

/// Decodes the value stored under `key` (binary, or JSON from before the binary layout).
fn decode_event(key: &[u8], seq: u64, value: &[u8]) -> Result<StoredEvent, StoreError> {
    let Some(rest) = value.strip_prefix(&RECORD_MAGIC) else {
        return codec::decode::<StoredEvent>(WHAT, key, value);
    };
    let corrupt = || StoreError::CorruptValue {
        what: WHAT,
        key: codec::printable(key),
    };
    let (at, mut rest) = rest.split_first_chunk::<8>().ok_or_else(corrupt)?;
    let mut field = || -> Result<String, StoreError> {
        let (n, tail) = rest.split_first_chunk::<2>().ok_or_else(corrupt)?;
        let n = usize::from(u16::from_be_bytes(*n));
        let (f, tail) = tail.split_at_checked(n).ok_or_else(corrupt)?;
        rest = tail;
        String::from_utf8(f.to_vec()).map_err(|_| corrupt())
    };
    let (message_type, channel, agent_uid, id) = (field()?, field()?, field()?, field()?);
    let body = std::str::from_utf8(rest).map_err(|_| corrupt())?.to_owned();
    Ok(StoredEvent {
        seq,
        channel,
        agent_uid,
        message_type,
        id,
        body,
        at: i64::from_be_bytes(*at),
    })
}

fn seq_of(key: &[u8]) -> Result<u64, StoreError> {
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| StoreError::CorruptKey {
            keyspace: "events",
            key: codec::printable(key),
        })
}

impl Store {
    /// Records one agent message and returns its seq. Not durable until [`Store::sync`].
    ///
    /// # Errors
    /// Oversized record ([`StoreError::TooLarge`]), storage error.
    pub fn append_event(&self, ev: &NewEvent) -> Result<u64, StoreError> {
        self.append_events(std::slice::from_ref(ev))
            .map(|seqs| seqs.start)
    }

    /// Records several agent messages in one batch; returns their (consecutive) seqs. Nothing
    /// is written if any is oversized.
    ///
    /// # Errors
    /// Oversized record ([`StoreError::TooLarge`]), storage error.
    pub fn append_events(&self, evs: &[NewEvent]) -> Result<Range<u64>, StoreError> {
        let records = evs
            .iter()
            .map(NewEvent::record)
            .collect::<Result<Vec<_>, _>>()?;
        self.append_records(records)
    }

    /// Records encoded events in one batch; returns their (consecutive) seqs.
    ///
    /// # Errors
    /// Storage error.
    pub fn append_records(&self, records: Vec<EventRecord>) -> Result<Range<u64>, StoreError> {
        let engine = self.engine()?;
        let ks = &engine.ks.events;
        let mut next = self
            .inner
            .events
            .next
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let first = *next;
        let mut batch = engine.db.batch();
        let mut seq = first;
        for record in records {
            batch.insert(ks, seq.to_be_bytes(), record.0);
            seq = seq.saturating_add(1);
        }
        batch.commit().ctx("appending events")?;
        *next = seq;
        Ok(first..seq)
    }

    /// Seq of the newest event (0 if none yet): a stream that starts "now" resumes after it.
    pub fn last_event_seq(&self) -> u64 {
        let next = self
            .inner
            .events
            .next
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        next.saturating_sub(1)
    }

    /// Events with seq > `after`, in order, at most `limit` (≤ [`MAX_EVENTS_PAGE`]). If older
    /// ones were trimmed the first seq returned is larger than `after + 1`. Undecodable events
    /// are skipped.
    ///
    /// # Errors
    /// Storage error.
    pub fn events_after(&self, after: u64, limit: usize) -> Result<Vec<StoredEvent>, StoreError> {
        let mut out = Vec::new();
        self.scan_events(after, limit, |ev| {
            out.push(ev);
            true
        })?;
        Ok(out)
    }

    /// Events with seq > `after` whose channel matches `pattern` ([`channel_matches`]), at most
    /// `limit`, examining at most `scan_limit` events (both ≤ [`MAX_EVENTS_PAGE`]), so a rare
    /// pattern costs bounded work per call; continue from [`EventScan::scanned_to`].
    ///
    /// # Errors
    /// Storage error.
    pub fn events_matching(
        &self,
        after: u64,
        pattern: &str,
        limit: usize,
        scan_limit: usize,
    ) -> Result<EventScan, StoreError> {
        let limit = limit.min(MAX_EVENTS_PAGE);
        if limit == 0 {
            return Ok(EventScan {
                events: Vec::new(),
                scanned_to: after,
            });
        }
        let mut events = Vec::new();
        let scanned_to = self.scan_events(after, scan_limit, |ev| {
            if channel_matches(pattern, &ev.channel) {
                events.push(ev);
            }
            events.len() < limit
        })?;
        Ok(EventScan { events, scanned_to })
    }

    /// Feeds events after `after` (at most `limit`) to `keep_going` until it returns false;
    /// returns the last seq read (or `after`).
    fn scan_events(
        &self,
        after: u64,
        limit: usize,
        mut keep_going: impl FnMut(StoredEvent) -> bool,
    ) -> Result<u64, StoreError> {
        let range = (Bound::Excluded(after.to_be_bytes()), Bound::Unbounded);
        let mut last = after;
        if limit == 0 {
            return Ok(last);
        }
        let engine = self.engine()?;
        let events = &engine.ks.events;
        for guard in events.range(range).take(limit.min(MAX_EVENTS_PAGE)) {
            let (key, value) = guard.into_inner().ctx("reading events")?;
            last = seq_of(&key)?;
            match decode_event(&key, last, &value) {
                Ok(ev) => {
                    if !keep_going(ev) {
                        break;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "skipping an undecodable event"),
            }
        }
        Ok(last)
    }

    /// Deletes all but the newest `keep_last` events (at least one is always kept, so the seq
    /// counter survives a restart); returns how many were deleted.
    ///
    /// # Errors
    /// Storage error.
    pub fn trim_events(&self, keep_last: u64) -> Result<usize, StoreError> {
        let cutoff = self.last_event_seq().saturating_sub(keep_last.max(1));
        let engine = self.engine()?;
        let events = &engine.ks.events;
        let end = Bound::Included(cutoff.to_be_bytes());
        let mut start: Bound<[u8; 8]> = Bound::Unbounded;
        let mut removed = 0;
        loop {
            let mut batch = engine.db.batch();
            let mut last = None;
            for guard in events.range((start, end)).take(TRIM_CHUNK) {
                let key = guard.key().ctx("reading events")?;
                batch.remove(events, key.clone());
                last = Some(key);
            }
            let n = batch.len();
            batch.commit().ctx("trimming events")?;
            removed += n;
            match last {
                Some(key) if n == TRIM_CHUNK => {
                    start = Bound::Excluded(seq_of(&key)?.to_be_bytes())
                }
                _ => return Ok(removed),
            }
        }
    }
}

/// Whether `channel` matches `pattern` (NATS style): segments are separated by `.`, `*`
/// matches exactly one segment, a final `>` matches one or more segments, anything else must be
/// equal. An empty pattern matches every channel. (`>` elsewhere is a literal segment.)
pub fn channel_matches(pattern: &str, channel: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    let mut pat = pattern.split('.').peekable();
    let mut chan = channel.split('.');
    loop {
        match (pat.next(), chan.next()) {
            (Some(">"), Some(_)) if pat.peek().is_none() => return true,
            (Some("*"), Some(_)) => {}
            (Some(p), Some(c)) if p == c => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
#[path = "events_tests.rs"]
mod tests;
