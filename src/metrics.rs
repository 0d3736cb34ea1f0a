//! Metric names in one place (DESIGN §5). Hot-path updates go through per-shard cached handles.

/// Prefix of every metric.
pub const PREFIX: &str = "aegis_gateway_";

/// Records the size of a verified signature batch.
pub fn verify_batch_size(n: usize) {
    metrics::histogram!("aegis_gateway_verify_batch_size").record(n as f64);
}
