//! Connection-level limits: the per-client-IP connect rate (429) and the live-connection slot
//! counted against `MAX_CONNECTIONS` (503).

use super::Shared;
use crate::config::Config;
use crate::protocol::ratelimit::TokenBucket;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Buckets above which idle (full) ones are forgotten.
const PURGE_ABOVE: usize = 10_000;

/// Token buckets per client IP.
pub struct ConnectLimiter {
    rate: u32,
    burst: u32,
    buckets: HashMap<IpAddr, TokenBucket>,
}

impl ConnectLimiter {
    /// `None` when `CONNECT_RATE` or `CONNECT_BURST` is 0.
    pub fn from_config(c: &Config) -> Option<Self> {
        c.connect_limit().map(|(rate, burst)| ConnectLimiter {
            rate,
            burst,
            buckets: HashMap::new(),
        })
    }

    /// Counts a connection attempt from `ip`; `false` when over the limit.
    pub fn allow(&mut self, ip: IpAddr, now_ms: i64) -> bool {
        if self.buckets.len() > PURGE_ABOVE {
            self.buckets.retain(|_, b| !b.is_full(now_ms));
        }
        let (rate, burst) = (self.rate, self.burst);
        self.buckets
            .entry(ip)
            .or_insert_with(|| TokenBucket::new(rate, burst, now_ms))
            .take(now_ms)
    }
}

/// A counted live connection; released on drop.
pub struct Slot(Arc<Shared>);

impl Slot {
    /// Takes a slot, or `None` at `MAX_CONNECTIONS`.
    pub fn take(shared: &Arc<Shared>) -> Option<Slot> {
        let max = shared.config.max_connections;
        let prev = shared.live.fetch_add(1, Ordering::AcqRel);
        if prev >= max {
            shared.live.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Slot(Arc::clone(shared)))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.live.fetch_sub(1, Ordering::AcqRel);
    }
}
