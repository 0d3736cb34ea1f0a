//! Caps on pending registrations (between the challenge and its completion), over every shard:
//! per client IP and in total, for the WebSocket path and the HTTP fallback alike. A peer that
//! repeats "fresh key, register, disconnect" — or floods `POST /agents/register/init` — cannot
//! grow the store: past a cap, new registrations are refused until older ones complete, are
//! removed with their connection, or expire. Touched once per registration, never per message.

use crate::protocol::registration::RegistrationGate;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};

/// Pending registrations one client IP may hold.
pub const PER_IP: usize = 256;
/// Pending registrations in all.
pub const TOTAL: usize = 10_000;

#[derive(Default)]
struct Held {
    /// Registration id → (client IP, expiry Unix s).
    by_id: HashMap<String, (IpAddr, i64)>,
    per_ip: HashMap<IpAddr, usize>,
}

impl Held {
    fn forget(&mut self, id: &str) {
        if let Some((ip, _)) = self.by_id.remove(id) {
            if let Some(n) = self.per_ip.get_mut(&ip) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    self.per_ip.remove(&ip);
                }
            }
        }
    }

    fn prune(&mut self, now_s: i64) {
        let expired: Vec<String> = self
            .by_id
            .iter()
            .filter(|(_, (_, exp))| *exp <= now_s)
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            self.forget(&id);
        }
    }
}

/// The caps, shared by the shards.
#[derive(Default)]
pub struct PendingCaps {
    held: Mutex<Held>,
    per_ip: Option<usize>,
    total: Option<usize>,
}

impl PendingCaps {
    /// Caps of `per_ip` and `total` (tests use small ones); [`PER_IP`] and [`TOTAL`] by default.
    pub fn new(per_ip: usize, total: usize) -> PendingCaps {
        PendingCaps {
            held: Mutex::default(),
            per_ip: Some(per_ip),
            total: Some(total),
        }
    }

    fn limits(&self) -> (usize, usize) {
        (self.per_ip.unwrap_or(PER_IP), self.total.unwrap_or(TOTAL))
    }

    /// Admits registration `id` of client `ip` (expiring at `expires_at`) if both caps allow.
    pub fn admit(&self, id: &str, ip: IpAddr, expires_at: i64, now_s: i64) -> bool {
        let (per_ip, total) = self.limits();
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let full =
            |h: &Held| h.by_id.len() >= total || h.per_ip.get(&ip).copied().unwrap_or(0) >= per_ip;
        if full(&held) {
            held.prune(now_s);
            if full(&held) {
                return false;
            }
        }
        held.by_id.insert(id.to_string(), (ip, expires_at));
        *held.per_ip.entry(ip).or_insert(0) += 1;
        true
    }

    /// Registration `id` completed, was removed or replaced.
    pub fn release(&self, id: &str) {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .forget(id);
    }

    /// Pending registrations held now (for tests and metrics).
    pub fn len(&self) -> usize {
        self.held
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .by_id
            .len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The gate of one client for the session.
    pub fn gate(&self, ip: IpAddr, now_s: i64) -> Gate<'_> {
        Gate {
            caps: self,
            ip,
            now_s,
        }
    }
}

/// [`PendingCaps`] as seen by one client at one time.
pub struct Gate<'a> {
    caps: &'a PendingCaps,
    ip: IpAddr,
    now_s: i64,
}

impl RegistrationGate for Gate<'_> {
    fn admit(&self, id: &str, expires_at: i64) -> bool {
        self.caps.admit(id, self.ip, expires_at, self.now_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_per_ip_and_total_with_release_and_expiry() {
        let caps = PendingCaps::new(2, 3);
        let (a, b) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert!(caps.admit("r1", a, 100, 0));
        assert!(caps.admit("r2", a, 100, 0));
        assert!(!caps.admit("r3", a, 100, 0), "per-IP cap");
        assert!(caps.admit("r4", b, 50, 0));
        assert!(!caps.admit("r5", b, 100, 0), "total cap");
        caps.release("r1");
        assert!(caps.admit("r6", a, 100, 0), "a released slot is free again");
        // r4 expires at 50: at 50 its slot is free.
        assert!(!caps.admit("r7", b, 100, 49));
        assert!(caps.admit("r7", b, 100, 50));
        assert_eq!(caps.len(), 3);
    }
}
