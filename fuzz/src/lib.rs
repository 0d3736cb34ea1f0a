//! Shared harness code of the aegis-gateway fuzz targets (see `README.md`).
//!
//! - [`mutate`]: byte-level and field-level mutations of envelope frames.
//! - [`session`]: a runtime-like driver of `protocol::session::Session` with invariant checks.
//! - [`sealed`]: the v2 seal/open tamper target.
//! - [`ws`]: the `ws_frames` target, with a masking client encoder.
//! - [`admin`]: the `admin_request` target, with a backend that never waits.
//! - [`keys`]: fixed keys and constants.

pub mod admin;
pub mod keys;
pub mod mutate;
pub mod sealed;
pub mod session;
pub mod ws;
