//! Admission of admin connections, so that slow clients cannot shut the admin API for everyone.
//!
//! - At most `max_total` connections in all and `max_per_ip` per client IP.
//! - A connection is *evictable* while it waits for the client (TLS handshake, request head or
//!   body, writing a response, idle keep-alive) and not while the backend works on its request
//!   or it streams events. A new connection that finds its IP (or the whole listener) at the cap
//!   takes the slot of the oldest evictable connection of that IP (of the IP holding the most
//!   connections, for the whole listener), which is closed. A slow-loris attacker therefore only
//!   ever holds its own IP's share, and even a health probe from the attacker's IP gets in.
//! - Under pressure (half of either cap reached) a request head must arrive within the short
//!   head deadline instead of the full read timeout.
//! - A connection that finds no evictable slot is served only if it is a health probe
//!   (`/healthz`, `/readyz`), within [`PROBE_TIMEOUT`]; at most [`PROBE_RESERVE`] such at once.

use futures_channel::oneshot;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::rc::Rc;
use std::time::Duration;

/// Connections beyond the caps served as health probes at once; more are closed at once.
pub const PROBE_RESERVE: usize = 16;
/// How long a connection beyond the caps has to send its (health probe) request head.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What a connection is doing, for eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Waiting for or writing to the client: may be evicted.
    Client,
    /// The backend is working on its request, or it streams events: never evicted.
    Busy,
}

struct Entry {
    ip: IpAddr,
    state: State,
    evict: Option<oneshot::Sender<()>>,
}

/// The admitted connections of one listener (single-threaded: the admin executor).
pub struct Registry {
    max_total: usize,
    max_per_ip: usize,
    next: Cell<u64>,
    /// By admission order: the first evictable entry of an IP is its oldest.
    conns: RefCell<BTreeMap<u64, Entry>>,
    per_ip: RefCell<HashMap<IpAddr, usize>>,
    probes: Cell<usize>,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// Its IP holds `max_per_ip` connections, none evictable.
    PerIp,
    /// The listener holds `max_total` connections, none evictable.
    Total,
}

/// What [`Registry::admit`] decided.
pub enum Admission {
    /// Served normally; the slot is freed when the [`Slot`] drops, and the [`Eviction`]
    /// resolves if another connection takes it.
    Admitted(Slot, Eviction),
    /// Beyond the caps: serve a health probe only, then close; the probe reserve is freed
    /// when the [`Probe`] drops.
    ProbeOnly(Full, Probe),
    /// Beyond the caps and the probe reserve: close at once.
    Refused(Full),
}

impl Registry {
    /// A registry with these caps (each at least 1).
    pub fn new(max_total: usize, max_per_ip: usize) -> Rc<Registry> {
        Rc::new(Registry {
            max_total: max_total.max(1),
            max_per_ip: max_per_ip.max(1),
            next: Cell::new(0),
            conns: RefCell::new(BTreeMap::new()),
            per_ip: RefCell::new(HashMap::new()),
            probes: Cell::new(0),
        })
    }

    /// Admits a connection from `ip`, evicting the oldest evictable one of the fullest IP if
    /// a cap is reached.
    pub fn admit(self: &Rc<Self>, ip: IpAddr) -> Admission {
        let ip_count = self.count(ip);
        let full = if ip_count >= self.max_per_ip {
            Some(Full::PerIp)
        } else if self.conns.borrow().len() >= self.max_total {
            Some(Full::Total)
        } else {
            None
        };
        if let Some(full) = full {
            let victim = match full {
                Full::PerIp => self.oldest_evictable(|e| e.ip == ip),
                Full::Total => self.fullest_ip_victim(),
            };
            match victim {
                Some(id) => self.evict(id),
                None if self.probes.get() < PROBE_RESERVE => {
                    self.probes.set(self.probes.get() + 1);
                    return Admission::ProbeOnly(full, Probe(Rc::clone(self)));
                }
                None => return Admission::Refused(full),
            }
        }
        let id = self.next.get();
        self.next.set(id + 1);
        let (tx, rx) = oneshot::channel();
        self.conns.borrow_mut().insert(
            id,
            Entry {
                ip,
                state: State::Client,
                evict: Some(tx),
            },
        );
        *self.per_ip.borrow_mut().entry(ip).or_insert(0) += 1;
        Admission::Admitted(
            Slot {
                registry: Rc::clone(self),
                id,
            },
            Eviction(rx),
        )
    }

    /// Connections held by `ip`.
    pub fn count(&self, ip: IpAddr) -> usize {
        self.per_ip.borrow().get(&ip).copied().unwrap_or(0)
    }

    /// Connections held in all.
    pub fn total(&self) -> usize {
        self.conns.borrow().len()
    }

    /// Whether half of the listener's cap or of `ip`'s share is taken.
    pub fn under_pressure(&self, ip: IpAddr) -> bool {
        self.total() * 2 >= self.max_total || self.count(ip) * 2 >= self.max_per_ip
    }

    fn oldest_evictable(&self, pick: impl Fn(&Entry) -> bool) -> Option<u64> {
        self.conns
            .borrow()
            .iter()
            .find(|(_, e)| e.state == State::Client && pick(e))
            .map(|(id, _)| *id)
    }

    /// The oldest evictable connection of the IP holding the most connections (ties: the
    /// oldest such connection).
    fn fullest_ip_victim(&self) -> Option<u64> {
        let per_ip = self.per_ip.borrow();
        let conns = self.conns.borrow();
        let mut best: Option<(usize, u64)> = None;
        for (id, e) in conns.iter().filter(|(_, e)| e.state == State::Client) {
            let n = per_ip.get(&e.ip).copied().unwrap_or(0);
            if best.is_none_or(|(bn, _)| n > bn) {
                best = Some((n, *id));
            }
        }
        best.map(|(_, id)| id)
    }

    fn evict(&self, id: u64) {
        if let Some(mut e) = self.remove(id) {
            tracing::debug!(ip = %e.ip, "admin connection evicted for a new one");
            if let Some(tx) = e.evict.take() {
                let _ = tx.send(());
            }
        }
    }

    fn remove(&self, id: u64) -> Option<Entry> {
        let e = self.conns.borrow_mut().remove(&id)?;
        let mut per_ip = self.per_ip.borrow_mut();
        if let Some(n) = per_ip.get_mut(&e.ip) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                per_ip.remove(&e.ip);
            }
        }
        Some(e)
    }
}

/// An admitted connection's slot; dropping it frees the slot.
pub struct Slot {
    registry: Rc<Registry>,
    id: u64,
}

impl Slot {
    /// Marks the connection evictable ([`State::Client`]) or not ([`State::Busy`]).
    pub fn set(&self, state: State) {
        if let Some(e) = self.registry.conns.borrow_mut().get_mut(&self.id) {
            e.state = state;
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.registry.remove(self.id);
    }
}

/// Tells a connection that another one took its slot.
pub struct Eviction(oneshot::Receiver<()>);

impl Eviction {
    /// Resolves once another connection took the slot (never otherwise).
    pub async fn wait(self) {
        if self.0.await.is_err() {
            // The sender went without a send: the entry was removed by its own slot, which
            // only happens once the connection is over. Never close a live connection.
            std::future::pending::<()>().await;
        }
    }
}

/// A connection served from the probe reserve; dropping it frees its place.
pub struct Probe(Rc<Registry>);

impl Drop for Probe {
    fn drop(&mut self) {
        self.0.probes.set(self.0.probes.get().saturating_sub(1));
    }
}
