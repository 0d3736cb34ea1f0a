//! Logging set-up: a `tracing` subscriber writing to stderr (pretty or JSON), filtered by
//! `RUST_LOG` (default `info`), plus the `log` → `tracing` bridge so records of crates that use
//! `log` (glommio's warnings, e.g. a failed io_uring buffer registration) are not lost.

use std::io::IsTerminal;
use std::sync::Once;

use tracing::Dispatch;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub use crate::config::LogFormat;

/// Filter used when `RUST_LOG` is unset, empty or invalid.
pub const DEFAULT_FILTER: LevelFilter = LevelFilter::INFO;

/// Installs the global subscriber and the `log` bridge. Safe to call more than once: only the
/// first call in the process has an effect. If another global subscriber was installed first
/// (by a test harness, say), it is kept and this call does nothing.
///
/// An invalid `RUST_LOG` does not stop the gateway: the default filter is used and a warning
/// is logged once the subscriber is up.
pub fn init(format: LogFormat) {
    let (filter, warning) = match std::env::var_os("RUST_LOG") {
        None => build_filter(None),
        Some(value) => match value.into_string() {
            Ok(spec) => build_filter(Some(&spec)),
            Err(_) => (
                default_filter(),
                Some("ignoring RUST_LOG: not valid UTF-8; using \"info\"".to_string()),
            ),
        },
    };
    let ansi = std::io::stderr().is_terminal();
    install(format, filter, warning, std::io::stderr, ansi);
}

/// Installs once per process; later calls are no-ops whatever their arguments.
fn install<W>(format: LogFormat, filter: EnvFilter, warning: Option<String>, writer: W, ansi: bool)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // `try_init` sets the global dispatcher, then the `log` bridge (LogTracer) with the
        // filter's max level; it fails harmlessly if a global subscriber already exists.
        if dispatch(format, filter, writer, ansi).try_init().is_ok() {
            if let Some(warning) = warning {
                tracing::warn!("{warning}");
            }
        }
    });
}

/// The subscriber for `format`, as a type-erased [`Dispatch`].
fn dispatch<W>(format: LogFormat, filter: EnvFilter, writer: W, ansi: bool) -> Dispatch
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    match format {
        LogFormat::Pretty => Dispatch::new(builder.compact().with_ansi(ansi).finish()),
        LogFormat::Json => Dispatch::new(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(true)
                .with_ansi(false)
                .finish(),
        ),
    }
}

/// Dependencies whose `info` lines are per-flush noise for an operator.
const QUIET: &str = "lsm_tree=warn,fjall=warn";

fn default_filter() -> EnvFilter {
    EnvFilter::builder()
        .with_default_directive(DEFAULT_FILTER.into())
        .parse_lossy(format!("{DEFAULT_FILTER},{QUIET}"))
}

/// Filter from a `RUST_LOG` value: `None` or empty gives `info`; an invalid value gives `info`
/// and the warning to log.
fn build_filter(spec: Option<&str>) -> (EnvFilter, Option<String>) {
    let Some(spec) = spec else {
        return (default_filter(), None);
    };
    let parsed = EnvFilter::builder()
        .with_default_directive(DEFAULT_FILTER.into())
        .parse(spec);
    match parsed {
        Ok(filter) => (filter, None),
        Err(e) => (
            default_filter(),
            Some(format!("ignoring RUST_LOG={spec:?}: {e}; using \"info\"")),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    /// A writer that keeps everything in memory.
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Buffer {
        fn text(&self) -> String {
            let bytes = self.0.lock().map(|b| b.clone()).unwrap_or_default();
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'w> MakeWriter<'w> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'w self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn filter_defaults_to_info() {
        for spec in [None, Some("")] {
            let (filter, warning) = build_filter(spec);
            assert_eq!(filter.max_level_hint(), Some(LevelFilter::INFO), "{spec:?}");
            assert!(warning.is_none());
        }
    }

    #[test]
    fn filter_follows_a_valid_rust_log() {
        let (filter, warning) = build_filter(Some("warn,aegis_gateway=debug"));
        assert_eq!(filter.max_level_hint(), Some(LevelFilter::DEBUG));
        assert!(warning.is_none());
    }

    #[test]
    fn invalid_rust_log_falls_back_with_a_warning() {
        let (filter, warning) = build_filter(Some("aegis=loud"));
        assert_eq!(filter.max_level_hint(), Some(LevelFilter::INFO));
        let warning = warning.unwrap_or_default();
        assert!(
            warning.contains("RUST_LOG") && warning.contains("aegis=loud"),
            "{warning}"
        );
    }

    #[test]
    fn json_format_writes_one_object_per_line() {
        let buf = Buffer::default();
        let d = dispatch(LogFormat::Json, default_filter(), buf.clone(), false);
        tracing::dispatcher::with_default(&d, || {
            tracing::info!(agent = "a1", "connected");
            tracing::debug!("filtered out");
        });
        let text = buf.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let v: serde_json::Value = serde_json::from_str(lines[0]).unwrap_or_default();
        assert_eq!(v["level"], "INFO", "{text}");
        assert_eq!(v["message"], "connected", "{text}");
        assert_eq!(v["agent"], "a1", "{text}");
    }

    #[test]
    fn pretty_format_is_one_plain_line() {
        let buf = Buffer::default();
        let d = dispatch(LogFormat::Pretty, default_filter(), buf.clone(), false);
        tracing::dispatcher::with_default(&d, || tracing::warn!(shard = 3, "slow fsync"));
        let text = buf.text();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(text.contains("WARN") && text.contains("slow fsync") && text.contains("shard=3"));
        assert!(
            !text.contains('\u{1b}'),
            "no ANSI escapes when ansi=false: {text:?}"
        );
    }

    /// The only test touching the global subscriber: it installs, checks that `log` records
    /// reach it, then checks that further calls are no-ops.
    #[test]
    fn global_install_bridges_log_and_is_idempotent() {
        let buf = Buffer::default();
        let (filter, _) = build_filter(Some("info"));
        install(LogFormat::Json, filter, None, buf.clone(), false);
        log::warn!(target: "glommio", "io_memory registration failed");
        let text = buf.text();
        assert!(text.contains("io_memory registration failed"), "{text}");
        assert!(text.contains("glommio"), "{text}");

        init(LogFormat::Pretty);
        init(LogFormat::Json);
        log::warn!("second");
        assert!(
            buf.text().contains("second"),
            "first subscriber still installed"
        );

        struct Nop;
        impl log::Log for Nop {
            fn enabled(&self, _: &log::Metadata<'_>) -> bool {
                false
            }
            fn log(&self, _: &log::Record<'_>) {}
            fn flush(&self) {}
        }
        static NOP: Nop = Nop;
        assert!(
            log::set_logger(&NOP).is_err(),
            "the log bridge holds the logger slot"
        );
    }
}
