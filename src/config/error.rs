//! Configuration errors: every problem names its variable and the offending value.

use std::fmt;
use std::path::PathBuf;

/// One configuration problem. The `Display` form starts with the variable name, e.g.
/// `WEBSOCKET_PORT: "99999" is not a valid port (1-65535, or 0 for any free port)`.
///
/// All of these are operator mistakes (never peer input); secrets are never echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The value could not be parsed as the expected kind of value.
    #[error("{var}: {value:?} is not {expected}")]
    Invalid {
        /// Environment variable name.
        var: &'static str,
        /// The value as given (with any credentials masked).
        value: String,
        /// What was expected, e.g. `a duration (examples: 30s, 24h, 1h30m)`.
        expected: &'static str,
    },
    /// The value parsed but lies outside the accepted range.
    #[error("{var}: {value:?} is out of range ({range})")]
    OutOfRange {
        /// Environment variable name.
        var: &'static str,
        /// The value, formatted as it would be written in the environment.
        value: String,
        /// The accepted range, e.g. `1-256`.
        range: String,
    },
    /// The value is well-formed but not acceptable, or conflicts with another variable.
    #[error("{var}: {reason}")]
    Rejected {
        /// Environment variable name.
        var: &'static str,
        /// Why, naming the value and any other variable involved.
        reason: String,
    },
    /// A configured file does not exist.
    #[error("{var}: {} does not exist", path.display())]
    MissingFile {
        /// Environment variable name.
        var: &'static str,
        /// The configured path.
        path: PathBuf,
    },
    /// A configured path exists but is not of the required kind or cannot be opened.
    #[error("{var}: {} {reason}", path.display())]
    BadPath {
        /// Environment variable name.
        var: &'static str,
        /// The configured path.
        path: PathBuf,
        /// What is wrong, e.g. `is not a regular file` or `cannot be read: permission denied`.
        reason: String,
    },
}

impl ConfigError {
    /// The environment variable this error is about.
    pub fn var(&self) -> &'static str {
        match self {
            Self::Invalid { var, .. }
            | Self::OutOfRange { var, .. }
            | Self::Rejected { var, .. }
            | Self::MissingFile { var, .. }
            | Self::BadPath { var, .. } => var,
        }
    }
}

/// Every problem found in one configuration; never empty when returned as an error.
/// `Display` writes one problem per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// The individual problems, in variable order.
    pub fn iter(&self) -> std::slice::Iter<'_, ConfigError> {
        self.0.iter()
    }

    /// `Ok(())` when `errors` is empty, else `Err` carrying them all.
    pub(crate) fn check(errors: Vec<ConfigError>) -> Result<(), ConfigErrors> {
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigErrors(errors))
        }
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl<'a> IntoIterator for &'a ConfigErrors {
    type Item = &'a ConfigError;
    type IntoIter = std::slice::Iter<'a, ConfigError>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_one_problem_per_line() {
        let errs = ConfigErrors(vec![
            ConfigError::Invalid {
                var: "WEBSOCKET_PORT",
                value: "99999".into(),
                expected: "a valid port (1-65535)",
            },
            ConfigError::MissingFile {
                var: "TLS_CERT_PATH",
                path: "/x/cert.pem".into(),
            },
        ]);
        let text = errs.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                r#"WEBSOCKET_PORT: "99999" is not a valid port (1-65535)"#,
                "TLS_CERT_PATH: /x/cert.pem does not exist",
            ]
        );
        assert_eq!(errs.iter().map(ConfigError::var).count(), 2);
    }

    #[test]
    fn control_characters_are_escaped() {
        let e = ConfigError::Invalid {
            var: "SHARDS",
            value: "1\n2".into(),
            expected: "a number",
        };
        assert!(!e.to_string().contains('\n'));
    }
}
