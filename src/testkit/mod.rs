//! Test and measurement support, not part of the gateway binary: the agent side of the
//! protocol ([`agent`], used by the tests, the load generator and the fuzz harnesses), the
//! deployed agent's reconnect behaviour ([`reconnect`]) and the crypto floor of an inbound
//! message ([`floor`], used by `benches/` and the load generator).
//!
//! Compiled for the crate's own unit tests and with the `testkit` feature, which `loadgen/`,
//! `fuzz/` and the crate's dev-dependency on itself (tests, benches) enable.

pub mod agent;
pub mod floor;
pub mod pair;
pub mod reconnect;
