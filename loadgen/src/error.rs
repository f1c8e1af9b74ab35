//! Typed errors of the load generator's library parts (the binary wraps them with anyhow).

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Why a run could not start or a report could not be read.
#[derive(Debug)]
pub enum LoadgenError {
    /// RLIMIT_NOFILE is below what the requested connections need.
    FdLimit { needed: u64, limit: u64 },
    /// The worker's io_uring or buffer ring could not be set up.
    Ring(engine::sys::RingError),
    /// A CPU in `--cpus` is not one this process may run on.
    Cpu { cpu: usize, allowed: Vec<usize> },
    /// A report file could not be read or parsed.
    Report { path: PathBuf, error: String },
    /// The close log to verify against cannot be read (missing: most likely the wrong path).
    CloseLog {
        /// The flag that named it (`--verify-log`, `--log`).
        flag: &'static str,
        path: PathBuf,
        error: io::Error,
    },
    /// The metrics endpoint could not be scraped.
    Metrics { url: String, error: String },
    /// Any other I/O failure, with what was being done.
    Io {
        what: &'static str,
        error: io::Error,
    },
}

impl fmt::Display for LoadgenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadgenError::FdLimit { needed, limit } => write!(
                f,
                "RLIMIT_NOFILE is {limit} (raised as far as this process may) but this run needs about \
                 {needed} descriptors; lower --connections/--hold or raise the hard limit \
                 (ulimit -Hn, /etc/security/limits.conf)"
            ),
            LoadgenError::Ring(error) => write!(f, "{error}"),
            LoadgenError::Cpu { cpu, allowed } => {
                write!(
                    f,
                    "CPU {cpu} is not usable by this process (allowed: {allowed:?})"
                )
            }
            LoadgenError::Report { path, error } => {
                write!(f, "report {}: {error}", path.display())
            }
            LoadgenError::CloseLog { flag, path, error } => {
                if error.kind() == io::ErrorKind::NotFound {
                    write!(
                        f,
                        "{flag} {}: no such file (the engine creates its --close-log file when \
                         it starts: is this the path it was given?)",
                        path.display()
                    )
                } else {
                    write!(f, "{flag} {}: {error}", path.display())
                }
            }
            LoadgenError::Metrics { url, error } => write!(f, "scraping {url}: {error}"),
            LoadgenError::Io { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

impl std::error::Error for LoadgenError {}

impl From<engine::sys::RingError> for LoadgenError {
    fn from(error: engine::sys::RingError) -> LoadgenError {
        LoadgenError::Ring(error)
    }
}
