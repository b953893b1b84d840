//! Configuration errors and where a value came from.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Where a configuration value (or an error) came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in defaults (Seata's own defaults).
    Default,
    /// The copy of `conf/application.yml` compiled into the binary, used when no file is on disk.
    Embedded,
    /// A configuration file (`application.yml`, `registry.conf`, `file.conf`).
    File(PathBuf),
    /// The process environment.
    Env,
    /// The command line.
    CommandLine,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("built-in defaults"),
            Self::Embedded => f.write_str("embedded conf/application.yml"),
            Self::File(path) => write!(f, "{}", path.display()),
            Self::Env => f.write_str("environment"),
            Self::CommandLine => f.write_str("command line"),
        }
    }
}

/// A configuration that cannot be loaded. Every variant names the source and, where there is one, the key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A file could not be read (missing, unreadable, too large).
    #[error("{}: cannot read: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        error: io::Error,
    },
    /// A file is not valid YAML / HOCON, or uses a construct we do not support.
    #[error("{origin}: {message}")]
    Syntax {
        /// The file.
        origin: Origin,
        /// What is wrong, with the line where known.
        message: String,
    },
    /// A key that is neither one of Seata's nor one of ours (usually a typo).
    #[error("{origin}: {key}: unknown key (neither a Seata key nor one of this server's extensions)")]
    UnknownKey {
        /// Where the key was written.
        origin: Origin,
        /// The key as written.
        key: String,
    },
    /// A value of the wrong type, out of range, or not one of the allowed names.
    #[error("{origin}: {key}: {message}")]
    InvalidValue {
        /// Where the value was written.
        origin: Origin,
        /// The key (or environment variable, or flag) as written.
        key: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// Values that are valid one by one but not together (e.g. `min-conn` above `max-conn`).
    #[error("{key}: {message}")]
    Inconsistent {
        /// The key that has to change.
        key: String,
        /// What is wrong.
        message: String,
    },
}
