//! Metric names in one place (DESIGN §5) and their table [`METRICS`], the Prometheus recorder,
//! and per-shard handles.
//!
//! Every metric is `aegis_gateway_*`. Hot-path updates go through handles cached per shard
//! ([`ShardMetrics`]): a cached handle update is a relaxed atomic add on a cell that only that
//! shard's thread touches, never a registry lookup (≈ 12 ns vs ≈ 155 ns measured here).

use crate::protocol::channel::{AgentKind, BackendKind};
use crate::protocol::ErrorKind;
use metrics::{Counter, Gauge, Histogram, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;

/// Prefix of every metric.
pub const PREFIX: &str = "aegis_gateway_";

/// Live connections by shard and profile (`v1`, `v2`, `none` before authentication).
pub const CONNECTIONS: &str = "aegis_gateway_connections";
/// Live v1 (legacy) sessions.
pub const LEGACY_SESSIONS: &str = "aegis_gateway_legacy_sessions";
/// Handshakes by result (`success`, `failure`) and profile.
pub const HANDSHAKES: &str = "aegis_gateway_handshakes_total";
/// Agent→gateway messages by channel kind and result.
pub const MESSAGES_IN: &str = "aegis_gateway_messages_in_total";
/// Gateway→agent commands by channel kind and result (`written`, `failed`).
pub const MESSAGES_OUT: &str = "aegis_gateway_messages_out_total";
/// Signatures per verify batch.
pub const VERIFY_BATCH_SIZE: &str = "aegis_gateway_verify_batch_size";
/// Time to verify one batch.
pub const VERIFY_SECONDS: &str = "aegis_gateway_verify_seconds";
/// Time to open (AEAD) and classify one verified message.
pub const DECRYPT_SECONDS: &str = "aegis_gateway_decrypt_seconds";
/// Time to carry out a message's routing actions (event stream, store, replies).
pub const ROUTE_SECONDS: &str = "aegis_gateway_route_seconds";
/// Pending commands (all agents).
pub const QUEUE_DEPTH: &str = "aegis_gateway_queue_depth";
/// Command delivery events by status (`sent`, `delivered`, `retried`, `expired`, `failed`).
pub const DELIVERIES: &str = "aegis_gateway_deliveries_total";
/// 1 while the NATS client is connected (cluster mode, AegisFlux).
pub const NATS_CONNECTED: &str = "aegis_gateway_nats_connected";
/// NATS connections lost.
pub const NATS_DISCONNECTS: &str = "aegis_gateway_nats_disconnects_total";
/// AegisFlux commands taken from `websocket.messages`, by status (queued, sent, duplicate).
pub const AEGISFLUX_COMMANDS: &str = "aegis_gateway_aegisflux_commands_total";
/// AegisFlux messages not taken, by reason.
pub const AEGISFLUX_REJECTED: &str = "aegis_gateway_aegisflux_rejected_total";
/// Agent messages published northbound on `aegis.agent.<id>.<kind>`.
pub const AEGISFLUX_PUBLISHED: &str = "aegis_gateway_aegisflux_published_total";
/// Agent messages not published northbound (buffer full, or the publish failed).
pub const AEGISFLUX_DROPPED: &str = "aegis_gateway_aegisflux_dropped_total";
/// Protocol errors by kind (PROTOCOL §7).
pub const ERRORS: &str = "aegis_gateway_errors_total";
/// Group-commit fsync latency.
pub const FSYNC_SECONDS: &str = "aegis_gateway_fsync_seconds";
/// Durable enqueues.
pub const ENQUEUES: &str = "aegis_gateway_enqueues_total";
/// Connections refused before the upgrade, by reason.
pub const REJECTED_CONNECTIONS: &str = "aegis_gateway_rejected_connections_total";
/// Sockets handed to their owner shard.
pub const HANDOFFS: &str = "aegis_gateway_handoffs_total";
/// 1 when ready, 0 when starting or draining.
pub const READY: &str = "aegis_gateway_ready";
/// 1 while the store accepts writes, 0 while it is failed (full disk, IO error) or reopening.
pub const STORE_AVAILABLE: &str = "aegis_gateway_store_available";
/// Acks whose sealed payload was `{}` (agents built before the acked id moved into it, PROTOCOL
/// §7), accepted with `headers.ack` for one release.
pub const LEGACY_ACKS: &str = "aegis_gateway_legacy_acks_total";
/// Reopens of the store after a failure, by result (`ok`, `error`).
pub const STORE_RECOVERIES: &str = "aegis_gateway_store_recoveries_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide Prometheus recorder once and returns its handle.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let seconds = [
            0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5,
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
        ];
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &seconds)
            .and_then(|b| {
                b.set_buckets_for_metric(
                    Matcher::Full(VERIFY_BATCH_SIZE.into()),
                    &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0],
                )
            });
        let builder = match builder {
            Ok(b) => b,
            Err(_) => PrometheusBuilder::new(),
        };
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        if metrics::set_global_recorder(recorder).is_err() {
            tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
        }
        describe();
        handle
    })
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let h = install();
    h.run_upkeep();
    h.render()
}

/// The Prometheus type of a metric (`# TYPE` in the exposition).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up; exported as is (`_total` names).
    Counter,
    /// Goes up and down.
    Gauge,
    /// Distribution; exported as `_bucket`, `_sum` and `_count` series.
    Histogram,
}

impl Kind {
    /// The `# TYPE` word.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// One metric the gateway registers: name (one of the constants above), type, unit, help.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// Full name, `aegis_gateway_*`.
    pub name: &'static str,
    /// Prometheus type.
    pub kind: Kind,
    /// Unit, when it has one (the `_seconds` histograms).
    pub unit: Option<Unit>,
    /// The `# HELP` text.
    pub help: &'static str,
}

impl MetricDef {
    /// Whether `series` (a name as it appears in the exposition or in PromQL) is this metric:
    /// its name, or for a histogram its `_bucket`, `_sum` or `_count` series.
    pub fn exports(&self, series: &str) -> bool {
        series == self.name
            || (self.kind == Kind::Histogram
                && ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                    series
                        .strip_suffix(suffix)
                        .is_some_and(|base| base == self.name)
                }))
    }
}

const fn def(name: &'static str, kind: Kind, help: &'static str) -> MetricDef {
    MetricDef {
        name,
        kind,
        unit: None,
        help,
    }
}

const fn counter(name: &'static str, help: &'static str) -> MetricDef {
    def(name, Kind::Counter, help)
}

const fn gauge(name: &'static str, help: &'static str) -> MetricDef {
    def(name, Kind::Gauge, help)
}

const fn seconds(name: &'static str, help: &'static str) -> MetricDef {
    MetricDef {
        unit: Some(Unit::Seconds),
        ..def(name, Kind::Histogram, help)
    }
}

/// Every metric the gateway registers (and describes at [`install`]): the single list the
/// operator files in `tuning/` (dashboard, alert rules) are checked against.
#[rustfmt::skip]
pub const METRICS: &[MetricDef] = &[
    gauge(CONNECTIONS, "Live agent connections by shard and profile"),
    gauge(LEGACY_SESSIONS, "Live v1 (legacy profile) sessions"),
    counter(HANDSHAKES, "Agent authentications by result and profile"),
    counter(MESSAGES_IN, "Agent messages by channel kind and result"),
    counter(MESSAGES_OUT, "Commands written to agents by channel kind and result"),
    def(VERIFY_BATCH_SIZE, Kind::Histogram, "Signatures per verify batch"),
    seconds(VERIFY_SECONDS, "Ed25519 batch verification time"),
    seconds(DECRYPT_SECONDS, "AEAD open and classification time per message"),
    seconds(ROUTE_SECONDS, "Routing time per message"),
    gauge(QUEUE_DEPTH, "Pending commands"),
    counter(DELIVERIES, "Command delivery events by status"),
    counter(ERRORS, "Protocol errors by kind and by who is at fault (blame)"),
    gauge(NATS_CONNECTED, "1 while the NATS client is connected"),
    counter(NATS_DISCONNECTS, "NATS connections lost"),
    counter(AEGISFLUX_COMMANDS, "AegisFlux commands taken, by status"),
    counter(AEGISFLUX_REJECTED, "AegisFlux messages not taken, by reason"),
    counter(AEGISFLUX_PUBLISHED, "Agent messages published to AegisFlux"),
    counter(AEGISFLUX_DROPPED, "Agent messages not published to AegisFlux (buffer full or publish failed)"),
    seconds(FSYNC_SECONDS, "Group-commit fsync latency"),
    counter(ENQUEUES, "Durable command enqueues"),
    counter(REJECTED_CONNECTIONS, "Connections refused before upgrade by reason"),
    counter(HANDOFFS, "Sockets handed to their owner shard"),
    gauge(READY, "1 when the gateway is ready, 0 otherwise"),
    gauge(STORE_AVAILABLE, "1 while the store accepts writes, 0 while failed or reopening"),
    counter(
        LEGACY_ACKS,
        "Acks taken from headers.ack because their sealed payload was {} (older agents)",
    ),
    counter(STORE_RECOVERIES, "Store reopens after a failure by result"),
];

/// The entry of [`METRICS`] that exports `series` (see [`MetricDef::exports`]).
pub fn lookup(series: &str) -> Option<&'static MetricDef> {
    METRICS.iter().find(|m| m.exports(series))
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram};
    for m in METRICS {
        match (m.kind, m.unit) {
            (Kind::Counter, Some(unit)) => describe_counter!(m.name, unit, m.help),
            (Kind::Counter, None) => describe_counter!(m.name, m.help),
            (Kind::Gauge, Some(unit)) => describe_gauge!(m.name, unit, m.help),
            (Kind::Gauge, None) => describe_gauge!(m.name, m.help),
            (Kind::Histogram, Some(unit)) => describe_histogram!(m.name, unit, m.help),
            (Kind::Histogram, None) => describe_histogram!(m.name, m.help),
        }
    }
}

/// Why a connection was refused before the upgrade.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    /// Per-IP connect rate exceeded (429).
    RateLimited = 0,
    /// `MAX_CONNECTIONS` reached (503).
    MaxConnections = 1,
    /// Draining (503).
    Draining = 2,
    /// Malformed upgrade (4xx).
    BadRequest = 3,
}

impl Rejection {
    const LABELS: [&'static str; 4] =
        ["rate_limited", "max_connections", "draining", "bad_request"];
}

/// Handles cached by one shard.
pub struct ShardMetrics {
    connections: [Gauge; 3],
    legacy: Gauge,
    handshakes: [Counter; 4],
    messages_in: Vec<Counter>,
    messages_in_rejected: Counter,
    messages_out: Vec<[Counter; 2]>,
    errors: Vec<Counter>,
    rejected: Vec<Counter>,
    /// Signatures per batch.
    pub verify_batch: Histogram,
    /// Batch verification time.
    pub verify_seconds: Histogram,
    /// Open + classify time.
    pub decrypt_seconds: Histogram,
    /// Routing time.
    pub route_seconds: Histogram,
    /// Hand-offs sent.
    pub handoffs: Counter,
    deliveries: [Counter; 5],
    legacy_acks: Counter,
}

/// Delivery events counted in `deliveries_total{status}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// Written to the agent.
    Sent = 0,
    /// Confirmed (ack, or v1 verified frame).
    Delivered = 1,
    /// Written again after an ack timeout.
    Retried = 2,
    /// TTL passed.
    Expired = 3,
    /// Attempts exhausted.
    Failed = 4,
}

/// Profile label of a connection: 0 none (unauthenticated), 1 v1, 2 v2.
pub type ProfileSlot = usize;

impl ShardMetrics {
    /// Handles for shard `shard`.
    pub fn new(shard: usize) -> Self {
        install();
        let s = shard.to_string();
        let connections = ["none", "v1", "v2"]
            .map(|p| metrics::gauge!(CONNECTIONS, "shard" => s.clone(), "profile" => p));
        let handshakes = [
            ("success", "v1"),
            ("failure", "v1"),
            ("success", "v2"),
            ("failure", "v2"),
        ]
        .map(|(r, p)| metrics::counter!(HANDSHAKES, "result" => r, "profile" => p));
        let mut kinds: Vec<&'static str> = AgentKind::ALL.iter().map(|k| k.as_str()).collect();
        kinds.extend(["ack", "registration"]);
        let messages_in = kinds
            .iter()
            .map(|k| metrics::counter!(MESSAGES_IN, "kind" => *k, "result" => "ok"))
            .collect();
        let messages_out = BackendKind::ALL
            .iter()
            .map(|k| {
                [
                    metrics::counter!(MESSAGES_OUT, "kind" => k.as_str(), "result" => "written"),
                    metrics::counter!(MESSAGES_OUT, "kind" => k.as_str(), "result" => "failed"),
                ]
            })
            .collect();
        ShardMetrics {
            connections,
            legacy: metrics::gauge!(LEGACY_SESSIONS),
            handshakes,
            messages_in,
            messages_in_rejected: metrics::counter!(MESSAGES_IN, "kind" => "any", "result" => "rejected"),
            messages_out,
            errors: ErrorKind::ALL
                .iter()
                .map(|k| metrics::counter!(ERRORS, "kind" => k.as_str(), "blame" => k.blame().as_str()))
                .collect(),
            rejected: Rejection::LABELS
                .iter()
                .map(|r| metrics::counter!(REJECTED_CONNECTIONS, "reason" => *r))
                .collect(),
            verify_batch: metrics::histogram!(VERIFY_BATCH_SIZE),
            verify_seconds: metrics::histogram!(VERIFY_SECONDS),
            decrypt_seconds: metrics::histogram!(DECRYPT_SECONDS),
            route_seconds: metrics::histogram!(ROUTE_SECONDS),
            handoffs: metrics::counter!(HANDOFFS),
            deliveries: ["sent", "delivered", "retried", "expired", "failed"]
                .map(|s| metrics::counter!(DELIVERIES, "status" => s)),
            legacy_acks: metrics::counter!(LEGACY_ACKS),
        }
    }

    /// A connection moved from profile slot `from` to `to` (or opened / closed with `None`).
    pub fn connection(&self, from: Option<ProfileSlot>, to: Option<ProfileSlot>) {
        if let Some(g) = from.and_then(|i| self.connections.get(i)) {
            g.decrement(1.0);
        }
        if let Some(g) = to.and_then(|i| self.connections.get(i)) {
            g.increment(1.0);
        }
        if from == Some(1) {
            self.legacy.decrement(1.0);
        }
        if to == Some(1) {
            self.legacy.increment(1.0);
        }
    }

    /// A handshake ended.
    pub fn handshake(&self, ok: bool, profile: u8) {
        let i = usize::from(profile == 2) * 2 + usize::from(!ok);
        if let Some(c) = self.handshakes.get(i) {
            c.increment(1);
        }
    }

    /// A verified agent message of channel kind `kind` (None: ack or registration).
    pub fn message_in(&self, kind: Option<AgentKind>, registration: bool) {
        let i = match kind {
            Some(k) => AgentKind::ALL.iter().position(|x| *x == k).unwrap_or(0),
            None if registration => AgentKind::ALL.len() + 1,
            None => AgentKind::ALL.len(),
        };
        if let Some(c) = self.messages_in.get(i) {
            c.increment(1);
        }
    }

    /// A message was rejected with `kind`.
    pub fn error(&self, kind: ErrorKind) {
        self.messages_in_rejected.increment(1);
        if let Some(c) = ErrorKind::ALL
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.errors.get(i))
        {
            c.increment(1);
        }
    }

    /// A command write of `kind` succeeded or failed.
    pub fn message_out(&self, kind: BackendKind, written: bool) {
        if let Some(pair) = BackendKind::ALL
            .iter()
            .position(|k| *k == kind)
            .and_then(|i| self.messages_out.get(i))
        {
            pair[usize::from(!written)].increment(1);
        }
    }

    /// Counts `n` delivery events of one status.
    pub fn delivery(&self, what: Delivery, n: u32) {
        if n > 0 {
            self.deliveries[what as usize].increment(u64::from(n));
        }
    }

    /// An ack was taken from `headers.ack` (sealed payload `{}`).
    pub fn legacy_ack(&self) {
        self.legacy_acks.increment(1);
    }

    /// A connection was refused before the upgrade.
    pub fn rejected(&self, why: Rejection) {
        if let Some(c) = self.rejected.get(why as usize) {
            c.increment(1);
        }
    }
}

/// Records the size of a verified signature batch (for callers without shard handles).
pub fn verify_batch_size(n: usize) {
    metrics::histogram!(VERIFY_BATCH_SIZE).record(n as f64);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_lists_every_name_constant_once() {
        // Every `pub const X: &str = "aegis_gateway_…"` of this file is a metric of the table.
        let source = include_str!("metrics.rs");
        let constants: Vec<&str> = source
            .lines()
            .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \"aegis_gateway_"))
            .filter_map(|l| l.split('"').nth(1))
            .filter(|name| *name != PREFIX)
            .collect();
        assert!(constants.len() >= 19, "{constants:?}");
        for name in &constants {
            let n = METRICS.iter().filter(|m| m.name == *name).count();
            assert_eq!(n, 1, "{name} is in METRICS {n} times");
        }
        assert_eq!(
            METRICS.len(),
            constants.len(),
            "METRICS lists only the constants"
        );
    }

    #[test]
    fn names_follow_the_prometheus_conventions() {
        for m in METRICS {
            assert!(m.name.starts_with(PREFIX), "{}", m.name);
            assert!(!m.help.is_empty(), "{} has no help", m.name);
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}: only counters end in _total",
                m.name
            );
            assert_eq!(
                m.unit == Some(Unit::Seconds),
                m.name.ends_with("_seconds"),
                "{}: the unit is in the name",
                m.name
            );
        }
    }

    #[test]
    fn lookup_maps_series_to_their_metric() {
        assert_eq!(lookup(READY).map(|m| m.name), Some(READY));
        assert_eq!(
            lookup("aegis_gateway_fsync_seconds_bucket").map(|m| m.name),
            Some(FSYNC_SECONDS)
        );
        assert_eq!(
            lookup("aegis_gateway_verify_batch_size_count").map(|m| m.kind),
            Some(Kind::Histogram)
        );
        assert!(
            lookup("aegis_gateway_ready_bucket").is_none(),
            "a gauge has no buckets"
        );
        assert!(lookup("aegis_gateway_connection").is_none());
        assert!(lookup("up").is_none());
    }
}
