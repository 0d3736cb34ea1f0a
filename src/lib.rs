//! Aegis Gateway library (this worktree: the store module only).

pub mod store;
