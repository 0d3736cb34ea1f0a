//! Aegis Gateway: the backend side of the Aegis agent fleet.
//!
//! Module map (this branch carries only `protocol`):
//! - [`protocol`]: sans-IO wire protocol pieces (upgrade, envelope, payloads, signed strings,
//!   channels, error kinds).

pub mod protocol;
