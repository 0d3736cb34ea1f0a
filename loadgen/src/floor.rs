//! The crypto floor of the messages a run sends, measured in the same run as the gateway's CPU
//! per message (DESIGN §6 and §9 set the targets as their ratio): `throughput` runs
//! [`aegis_gateway::testkit::floor::InboundFloor`] — parse, one batch verify of 64, open — on
//! frames like the ones it sends; `fleet` runs [`HeartbeatFloor`] — each heartbeat parsed and
//! verified alone, as the shard does at a fleet's rate. Rounds are timed in this thread's CPU
//! time, once before the agents start and once after the window when the gateway has gone idle
//! (its flushes and compactions would otherwise share the cores with the floor). The median of
//! all rounds is the floor.

use crate::options::{Options, ProfileChoice, Scenario};
use aegis_gateway::protocol::session::Profile;
use aegis_gateway::testkit::floor::{Floor, HeartbeatFloor, InboundFloor, EVENT_BODY_LEN};
use std::time::{Duration, Instant};

/// Messages per floor round (the shard's batch size under load).
pub const BATCH: usize = 64;

/// Unrecorded rounds before the first measured one.
const WARMUP: usize = 200;

/// Rounds measured at each of the two points.
pub const ROUNDS: usize = 100;

/// One round of `floor`: its CPU µs per message.
fn round(floor: &mut dyn Floor) -> f64 {
    let mut bufs = floor.inputs();
    let start = crate::sys::thread_cpu();
    std::hint::black_box(floor.run(&mut bufs));
    (crate::sys::thread_cpu() - start).as_secs_f64() * 1e6 / floor.len().max(1) as f64
}

/// Floor rounds of one run: one floor per kind of message the run sends (a `mix` fleet has a
/// v1 and a v2 one; the run's floor is their mean, as half its agents are each).
pub struct Measure {
    floors: Vec<(Box<dyn Floor>, Vec<f64>)>,
}

impl Measure {
    /// The floor of `opts`'s run (`None` for scenarios without one).
    pub fn of(opts: &Options) -> Option<Self> {
        match opts.scenario {
            Scenario::Throughput => Some(Measure::new(opts.payload)),
            Scenario::Fleet => Some(Measure::heartbeats(opts.profile)),
            _ => None,
        }
    }

    /// A floor on sealed events of `body_len` bytes (the gateway default of 300 when 0).
    pub fn new(body_len: usize) -> Self {
        let len = if body_len == 0 {
            EVENT_BODY_LEN
        } else {
            body_len
        };
        Measure::warmed(vec![Box::new(InboundFloor::new(BATCH, len))])
    }

    /// A floor on heartbeats of `profile`'s agents.
    pub fn heartbeats(profile: ProfileChoice) -> Self {
        let profiles = match profile {
            ProfileChoice::V1 => vec![Profile::V1],
            ProfileChoice::V2 => vec![Profile::V2],
            ProfileChoice::Mix => vec![Profile::V1, Profile::V2],
        };
        let floors = profiles
            .into_iter()
            .map(|p| Box::new(HeartbeatFloor::new(p, BATCH)) as Box<dyn Floor>)
            .collect();
        Measure::warmed(floors)
    }

    fn warmed(mut floors: Vec<Box<dyn Floor>>) -> Self {
        // Warm up caches, the allocator and the core's clock (≈ 0.3 s), unrecorded.
        for f in floors.iter_mut() {
            for _ in 0..WARMUP {
                round(f.as_mut());
            }
        }
        Measure {
            floors: floors.into_iter().map(|f| (f, Vec::new())).collect(),
        }
    }

    /// Measures `rounds` more rounds of each floor.
    pub fn sample(&mut self, rounds: usize) {
        for _ in 0..rounds {
            for (f, us) in self.floors.iter_mut() {
                us.push(round(f.as_mut()));
            }
        }
    }

    /// CPU µs per message: the mean over the floors of the median of each one's rounds
    /// (`None` before any round).
    pub fn median(&self) -> Option<f64> {
        let medians: Option<Vec<f64>> = self
            .floors
            .iter()
            .map(|(_, us)| {
                let mut v = us.clone();
                v.sort_by(f64::total_cmp);
                v.get(v.len() / 2).copied()
            })
            .collect();
        let m = medians?;
        (!m.is_empty()).then(|| m.iter().sum::<f64>() / m.len() as f64)
    }
}

/// Waits (at most `limit`) until process `pid` uses under 5 % of a core over 200 ms.
pub fn wait_idle(pid: u32, limit: Duration) {
    let deadline = Instant::now() + limit;
    let step = Duration::from_millis(200);
    let mut last = crate::procfs::sample(pid).map(|s| s.cpu_s);
    while Instant::now() < deadline {
        std::thread::sleep(step);
        let now = crate::procfs::sample(pid).map(|s| s.cpu_s);
        match (last, now) {
            (Some(a), Some(b)) if b - a < 0.05 * step.as_secs_f64() => return,
            (_, None) => return,
            _ => last = now,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn floor_is_a_positive_time_per_message() {
        let mut m = super::Measure::new(100);
        assert_eq!(m.median(), None);
        m.sample(3);
        let us = m.median().unwrap();
        // Thread CPU time moved: the floor measured something.
        assert!(us > 0.0 && us.is_finite(), "{us}");
    }

    #[test]
    fn the_fleet_floor_is_the_heartbeats_of_its_profiles() {
        use crate::options::{Options, ProfileChoice, Scenario};
        let mut o = Options::new(Scenario::Fleet);
        o.profile = ProfileChoice::Mix;
        let mut m = super::Measure::of(&o).expect("fleet has a floor");
        assert_eq!(m.floors.len(), 2, "v1 and v2");
        m.sample(2);
        let us = m.median().unwrap();
        // One verify alone per heartbeat: more than a batch share, far below a millisecond.
        assert!(us > 1.0 && us < 1000.0, "{us}");
        assert!(super::Measure::of(&Options::new(Scenario::Connect)).is_none());
    }
}
