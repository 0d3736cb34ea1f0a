//! Aegis Gateway library (this worktree: configuration and telemetry only).

pub mod config;
pub mod telemetry;
