//! Command-line flags overriding the environment: one `--kebab-name` per variable.

use std::fmt;

/// Declares [`ConfigArgs`], its `overrides()` and [`VARIABLES`] from one table, so a flag, its
/// variable name and the list of known variables cannot drift apart.
macro_rules! config_args {
    ($( $field:ident => $env:literal, $value_name:literal, $help:literal; )*) => {
        /// Configuration flags, each overriding the environment variable of the same name
        /// (`--session-timeout 1h` wins over `SESSION_TIMEOUT`). Flatten into a clap command with
        /// `#[command(flatten)]`, then build the config with
        /// `Config::from_env_with(args.overrides())`.
        ///
        /// Values stay strings here: [`Config::from_vars`](super::Config::from_vars) parses
        /// them, so a bad flag is reported exactly like a bad variable.
        #[derive(clap::Args, Default, Clone, PartialEq, Eq)]
        pub struct ConfigArgs {
            $(
                #[doc = $help]
                #[arg(long, value_name = $value_name, help = concat!($help, " [env: ", $env, "]"))]
                pub $field: Option<String>,
            )*
        }

        impl ConfigArgs {
            /// The flags that were given, as `(VARIABLE_NAME, value)` pairs to append after the
            /// environment (later pairs win).
            pub fn overrides(&self) -> Vec<(String, String)> {
                let mut pairs = Vec::new();
                $(
                    if let Some(value) = &self.$field {
                        pairs.push(($env.to_string(), value.clone()));
                    }
                )*
                pairs
            }
        }

        /// Every environment variable the configuration reads, in documentation order.
        pub const VARIABLES: &[&str] = &[$($env),*];
    };
}

config_args! {
    websocket_addr => "WEBSOCKET_ADDR", "IP[:PORT]", "Agent listener address; overrides the 0.0.0.0 default of --websocket-port";
    websocket_port => "WEBSOCKET_PORT", "PORT", "Agent listener port on all interfaces (0 = any free port) [default: 8080]";
    websocket_path => "WEBSOCKET_PATH", "PATH", "HTTP path of the WebSocket upgrade [default: /ws/agent]";
    websocket_read_buffer_size => "WEBSOCKET_READ_BUFFER_SIZE", "BYTES", "Kernel receive buffer per agent socket, SO_RCVBUF (e.g. 16KiB; 0 = kernel default) [default: 0]";
    websocket_write_buffer_size => "WEBSOCKET_WRITE_BUFFER_SIZE", "BYTES", "Kernel send buffer per agent socket, SO_SNDBUF (0 = kernel default) [default: 0]";
    auth_private_key_path => "AUTH_PRIVATE_KEY_PATH", "FILE", "Gateway Ed25519 private key, PKCS#8 PEM [default: DATA_DIR/keys/private.pem]";
    auth_public_key_path => "AUTH_PUBLIC_KEY_PATH", "FILE", "Gateway Ed25519 public key, SPKI PEM [default: DATA_DIR/keys/public.pem]";
    session_timeout => "SESSION_TIMEOUT", "DURATION", "Session token lifetime (e.g. 24h, 1h30m) [default: 24h]";
    encryption_algorithm => "ENCRYPTION_ALGORITHM", "NAME", "Message encryption; only chacha20poly1305 [default: chacha20poly1305]";
    key_rotation_interval => "KEY_ROTATION_INTERVAL", "DURATION", "Session re-key interval [default: SESSION_TIMEOUT]";
    message_queue_size => "MESSAGE_QUEUE_SIZE", "N", "Durable queue bound per agent [default: 10000]";
    message_retry_attempts => "MESSAGE_RETRY_ATTEMPTS", "N", "Delivery attempts per command [default: 3]";
    message_ttl => "MESSAGE_TTL", "DURATION", "Lifetime of a queued command [default: 1h]";
    data_dir => "DATA_DIR", "DIR", "Storage directory [default: ./data]";
    database_url => "DATABASE_URL", "URL", "Alias of DATA_DIR written fjall:///absolute/path";
    store_min_free => "STORE_MIN_FREE", "BYTES", "Free space kept on DATA_DIR: below it commands are refused with 507 (0 disables) [default: 64MiB]";
    admin_addr => "ADMIN_ADDR", "IP:PORT", "Admin HTTP listener [default: 127.0.0.1:9090]";
    admin_token => "ADMIN_TOKEN", "TOKEN", "Admin API bearer token (prefer the env var: flags show in ps) [default: generated into DATA_DIR]";
    admin_tls => "ADMIN_TLS", "BOOL", "Serve the admin API over TLS with TLS_CERT_PATH/TLS_KEY_PATH [default: false]";
    tls_cert_path => "TLS_CERT_PATH", "FILE", "TLS certificate chain, PEM; needs --tls-key-path";
    tls_key_path => "TLS_KEY_PATH", "FILE", "TLS private key, PEM; needs --tls-cert-path";
    max_connections => "MAX_CONNECTIONS", "N", "Concurrent agent connections [default: 100000]";
    max_message_size => "MAX_MESSAGE_SIZE", "BYTES", "Largest WebSocket message (e.g. 256KiB) [default: 256KiB]";
    shards => "SHARDS", "N", "Executor count, 1-256 or auto [default: auto = one per core]";
    auth_timeout => "AUTH_TIMEOUT", "DURATION", "Time from upgrade to M1 [default: 10s]";
    upgrade_timeout => "UPGRADE_TIMEOUT", "DURATION", "Time from accept to a complete upgrade request [default: 10s]";
    handshake_grace => "HANDSHAKE_GRACE", "DURATION", "Wait after the last handshake reply [default: 5s]";
    ack_timeout => "ACK_TIMEOUT", "DURATION", "Wait for a command ack before retrying [default: 30s]";
    ping_interval => "PING_INTERVAL", "DURATION", "Gateway ping period [default: 30s]";
    idle_timeout => "IDLE_TIMEOUT", "DURATION", "Close a silent connection after this; > ping interval [default: 90s]";
    timestamp_window => "TIMESTAMP_WINDOW", "DURATION", "Accepted message timestamp skew, ± [default: 300s]";
    handover_drain => "HANDOVER_DRAIN", "DURATION", "Cluster mode: after a hand-over, close the old process's connections spread over this; 0s at once [default: 5m]";
    connect_rate => "CONNECT_RATE", "N", "New connections per second per client IP; 0 disables [default: 100]";
    connect_burst => "CONNECT_BURST", "N", "Connection burst per client IP; 0 disables [default: 1000]";
    message_rate => "MESSAGE_RATE", "N", "Messages per second per agent; 0 disables [default: 500]";
    message_burst => "MESSAGE_BURST", "N", "Message burst per agent; 0 disables [default: 1000]";
    log_format => "LOG_FORMAT", "FORMAT", "Log format: pretty or json [default: pretty]";
    nats_url => "NATS_URL", "URLS", "NATS servers, comma-separated nats://host:port: cluster mode and AegisFlux [default: none]";
    fleet_store => "FLEET_STORE", "NAME", "Where the fleet state lives: jetstream or fjall [default: jetstream with NATS_URL, else fjall]";
    nats_creds => "NATS_CREDS", "FILE", "NATS credentials file (.creds)";
    nats_tls_ca => "NATS_TLS_CA", "FILE", "CA certificate of the NATS servers, PEM";
    nats_tls_cert => "NATS_TLS_CERT", "FILE", "NATS client certificate, PEM; needs --nats-tls-key";
    nats_tls_key => "NATS_TLS_KEY", "FILE", "NATS client key, PEM; needs --nats-tls-cert";
    node_id => "NODE_ID", "NAME", "This node's name in the cluster, [A-Za-z0-9_-] [default: the host name]";
    nats_replicas => "NATS_REPLICAS", "N", "Replicas of the streams the gateway creates, 1-5 [default: 3]";
    nats_commands_subject => "NATS_COMMANDS_SUBJECT", "SUBJECT", "AegisFlux command subject [default: websocket.messages]";
    nats_commands_queue => "NATS_COMMANDS_QUEUE", "NAME", "Queue group of the command subscription [default: aegis-gateway]";
    nats_publish_events => "NATS_PUBLISH_EVENTS", "BOOL", "Publish verified agent messages on aegis.agent.<uid>.<kind> [default: true]";
    nats_publish_heartbeats => "NATS_PUBLISH_HEARTBEATS", "BOOL", "Publish heartbeats on aegis.agent.<uid>.heartbeat [default: false]";
}

impl fmt::Debug for ConfigArgs {
    /// Lists the flags that were given; the admin token is redacted.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_map();
        for (name, value) in self.overrides() {
            if name == "ADMIN_TOKEN" {
                list.entry(&name, &"<redacted>");
            } else {
                list.entry(&name, &value);
            }
        }
        list.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command, FromArgMatches};

    fn parse(argv: &[&str]) -> ConfigArgs {
        let cmd = ConfigArgs::augment_args(Command::new("t"));
        let matches = cmd
            .try_get_matches_from(std::iter::once("t").chain(argv.iter().copied()))
            .expect("valid test argv");
        ConfigArgs::from_arg_matches(&matches).expect("matches build ConfigArgs")
    }

    #[test]
    fn every_variable_has_a_kebab_flag_mapping_back_to_it() {
        for (i, var) in VARIABLES.iter().enumerate() {
            let flag = format!("--{}", var.to_ascii_lowercase().replace('_', "-"));
            let value = format!("value-{i}");
            let args = parse(&[&flag, &value]);
            assert_eq!(
                args.overrides(),
                vec![(var.to_string(), value)],
                "flag {flag}"
            );
        }
    }

    #[test]
    fn no_flags_no_overrides() {
        assert!(parse(&[]).overrides().is_empty());
        assert!(ConfigArgs::default().overrides().is_empty());
    }

    #[test]
    fn variables_are_unique() {
        let mut sorted = VARIABLES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), VARIABLES.len());
    }

    #[test]
    fn debug_redacts_the_token() {
        let args = parse(&["--admin-token", "s3cr3t-t0ken", "--shards", "2"]);
        let text = format!("{args:?}");
        assert!(!text.contains("s3cr3t-t0ken"), "{text}");
        assert!(
            text.contains("<redacted>") && text.contains("SHARDS"),
            "{text}"
        );
    }

    #[test]
    fn help_names_the_env_variable() {
        let mut cmd = ConfigArgs::augment_args(Command::new("t"));
        let help = cmd.render_help().to_string();
        assert!(help.contains("[env: SESSION_TIMEOUT]"), "{help}");
    }
}
