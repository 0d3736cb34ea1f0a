//! The workloads behind the DESIGN.md §6 ratios, each as a [`Work`]: `timed()` prepares its
//! input untimed, then returns the bench-clock time of the measured part only. Criterion runs
//! them through [`bench`]; [`paired`] runs two alternately so that the load of this shared
//! machine weighs on both sides of a ratio alike.

use std::hint::black_box;
use std::time::Duration;

use aegis_gateway::crypto::{verify_batch_parsed, ParsedItem};
use aegis_gateway::protocol::session::{Session, VerifyJob};
use criterion::BenchmarkGroup;

use super::clock::{clock_now, BenchClock};
use super::{Gateway, HandshakeInput, Registered, BATCH, EVENT_BODY_LEN, T0_MS};

/// Something measured: prepare untimed, return the time of the measured part.
pub trait Work {
    /// One measured run.
    fn timed(&mut self) -> Duration;
}

/// Registers `work` in `group` under `name`.
pub fn bench(group: &mut BenchmarkGroup<'_, BenchClock>, name: &str, work: &mut dyn Work) {
    group.bench_function(name, |b| {
        b.iter_custom(|iters| (0..iters).map(|_| work.timed()).sum())
    });
}

/// Runs `base` and `other` alternately (`rounds` times each, after a few unrecorded rounds) and
/// returns the quartiles `(q1, median, q3)` of the per-round ratios `other / base`.
pub fn paired(rounds: usize, base: &mut dyn Work, other: &mut dyn Work) -> (f64, f64, f64) {
    for _ in 0..rounds.div_ceil(20) {
        base.timed();
        other.timed();
    }
    let mut ratios: Vec<f64> = (0..rounds)
        .map(|_| {
            let b = base.timed().as_secs_f64();
            other.timed().as_secs_f64() / b
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    let q = |p: usize| {
        ratios
            .get(ratios.len() * p / 4)
            .copied()
            .unwrap_or(f64::NAN)
    };
    (q(1), q(2), q(3))
}

/// Checks the session's verify jobs in one batch, as the shard's batcher does.
fn verify_jobs(jobs: &[VerifyJob], ok: &mut Vec<bool>) {
    let items: Vec<ParsedItem<'_>> = jobs
        .iter()
        .map(|j| ParsedItem {
            public: &j.public,
            msg: &j.msg,
            sig: &j.sig,
        })
        .collect();
    verify_batch_parsed(&items, ok);
}

/// The crypto floor of 64 inbound v2 messages ([`aegis_gateway::testkit::floor::InboundFloor`]): parse
/// every envelope, verify all signatures in one batch, open every payload.
pub struct InboundFloor(aegis_gateway::testkit::floor::InboundFloor);

impl InboundFloor {
    /// `n` consecutive ~700-byte sealed events.
    pub fn new(n: usize) -> Self {
        InboundFloor(aegis_gateway::testkit::floor::InboundFloor::new(
            n,
            EVENT_BODY_LEN,
        ))
    }

    /// The first frame (a sample envelope).
    pub fn frame(&self) -> &[u8] {
        self.0.frame()
    }
}

impl Work for InboundFloor {
    fn timed(&mut self) -> Duration {
        use aegis_gateway::testkit::floor::Floor as _;
        let mut bufs = self.0.inputs();
        let start = clock_now();
        black_box(self.0.run(&mut bufs));
        clock_now() - start
    }
}

/// The gateway session path for 64 frames of ONE authenticated session (a fresh reconnect per
/// run). The session holds one outstanding signature check at a time, so each frame is
/// resumed with `on_verified(true)` at once and the 64 checks are verified afterwards in one
/// batch and asserted: the same work as the runtime's, in a different order.
pub struct OneSession {
    gw: Gateway,
    reg: Registered,
    body: Vec<u8>,
    ok: Vec<bool>,
}

impl OneSession {
    /// A registered agent of a fresh gateway.
    pub fn new() -> Self {
        let gw = Gateway::new();
        let reg = Registered::new(&gw);
        OneSession {
            gw,
            reg,
            body: super::event_body(EVENT_BODY_LEN),
            ok: Vec::with_capacity(BATCH),
        }
    }
}

impl Work for OneSession {
    fn timed(&mut self) -> Duration {
        let mut session = self.reg.connect(&self.gw, T0_MS);
        let mut frames: Vec<Vec<u8>> = (0..BATCH)
            .map(|_| self.reg.event(&self.body, T0_MS))
            .collect();
        let start = clock_now();
        let env = self.gw.env();
        let mut jobs = Vec::with_capacity(BATCH);
        for f in &mut frames {
            let step = session.on_frame(&env, f, T0_MS);
            jobs.push(step.verify.expect("a sealed frame asks for a check"));
            let actions = session.on_verified(&env, true, T0_MS);
            assert!(super::routed(&actions), "{actions:?}");
        }
        verify_jobs(&jobs, &mut self.ok);
        assert!(self.ok.len() == BATCH && self.ok.iter().all(|v| *v));
        drop(jobs);
        let elapsed = clock_now() - start;
        drop(session);
        elapsed
    }
}

/// The runtime's shape: 64 authenticated sessions with one frame each, their checks in one
/// batch, then each resumes with its verdict.
pub struct Fleet {
    gw: Gateway,
    agents: Vec<Registered>,
    sessions: Vec<Session>,
    body: Vec<u8>,
    now_ms: i64,
    ok: Vec<bool>,
}

impl Fleet {
    /// 64 registered agents, connected.
    pub fn new() -> Self {
        let gw = Gateway::new();
        let mut agents: Vec<Registered> = (0..BATCH).map(|_| Registered::new(&gw)).collect();
        let sessions = agents.iter_mut().map(|r| r.connect(&gw, T0_MS)).collect();
        Fleet {
            gw,
            agents,
            sessions,
            body: super::event_body(EVENT_BODY_LEN),
            now_ms: T0_MS,
            ok: Vec::with_capacity(BATCH),
        }
    }
}

impl Work for Fleet {
    fn timed(&mut self) -> Duration {
        // 10 ms per round keeps every session far below its message rate limit.
        self.now_ms += 10;
        let now = self.now_ms;
        let body = &self.body;
        let mut frames: Vec<Vec<u8>> = self.agents.iter_mut().map(|r| r.event(body, now)).collect();
        let start = clock_now();
        let env = self.gw.env();
        let mut jobs = Vec::with_capacity(BATCH);
        for (s, f) in self.sessions.iter_mut().zip(&mut frames) {
            jobs.push(s.on_frame(&env, f, now).verify.expect("check"));
        }
        verify_jobs(&jobs, &mut self.ok);
        for (s, verdict) in self.sessions.iter_mut().zip(&self.ok) {
            let actions = s.on_verified(&env, *verdict, now);
            assert!(super::routed(&actions), "{actions:?}");
        }
        clock_now() - start
    }
}

/// [`HandshakeInput::floor`], `per_run` times per run.
pub struct HandshakeFloor {
    input: HandshakeInput,
    envelope_sig: bool,
    per_run: usize,
}

impl HandshakeFloor {
    /// The DESIGN.md floor (`envelope_sig = false`) or the one with R1's envelope signature.
    pub fn new(envelope_sig: bool, per_run: usize) -> Self {
        HandshakeFloor {
            input: HandshakeInput::new(),
            envelope_sig,
            per_run,
        }
    }
}

impl Work for HandshakeFloor {
    fn timed(&mut self) -> Duration {
        let start = clock_now();
        for _ in 0..self.per_run {
            black_box(self.input.floor(self.envelope_sig));
        }
        clock_now() - start
    }
}

/// A registered agent reconnecting through [`Session`]: M1 → signature check → R1 (a
/// reconnect storm is this), `per_run` times per run.
pub struct HandshakeSession {
    gw: Gateway,
    reg: Registered,
    per_run: usize,
}

impl HandshakeSession {
    /// A registered agent of a fresh gateway.
    pub fn new(per_run: usize) -> Self {
        let gw = Gateway::new();
        let reg = Registered::new(&gw);
        HandshakeSession { gw, reg, per_run }
    }
}

impl Work for HandshakeSession {
    fn timed(&mut self) -> Duration {
        let mut inputs: Vec<(Session, Vec<u8>)> = (0..self.per_run)
            .map(|_| (self.reg.session(T0_MS), self.reg.m1(T0_MS)))
            .collect();
        let start = clock_now();
        let outputs: Vec<_> = inputs
            .iter_mut()
            .map(|(session, m1)| {
                let actions = super::m1_to_r1(&self.gw, session, m1, T0_MS);
                assert!(session.is_authenticated(), "{actions:?}");
                actions
            })
            .collect();
        let elapsed = clock_now() - start;
        drop((inputs, outputs));
        elapsed
    }
}
