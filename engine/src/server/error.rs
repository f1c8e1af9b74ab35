//! Why an engine could not start, and why a running one stopped: each printed as one line.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use crate::config::ConfigError;
use crate::sys::RingError;

/// Why an engine could not start. Printed as one line.
#[derive(Debug)]
pub enum StartError {
    Config(ConfigError),
    Listen {
        addr: SocketAddr,
        error: io::Error,
    },
    Admin {
        addr: SocketAddr,
        error: io::Error,
    },
    CloseLog {
        path: String,
        error: io::Error,
    },
    Ring(RingError),
    Io {
        what: &'static str,
        error: io::Error,
    },
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Config(error) => error.fmt(f),
            StartError::Listen { addr, error } => write!(f, "cannot listen on {addr}: {error}"),
            StartError::Admin { addr, error } => {
                write!(f, "cannot serve metrics on {addr}: {error}")
            }
            StartError::CloseLog { path, error } => {
                write!(f, "cannot open close log {path}: {error}")
            }
            StartError::Ring(error) => error.fmt(f),
            StartError::Io { what, error } => write!(f, "{what}: {error}"),
        }
    }
}

impl std::error::Error for StartError {}

impl From<ConfigError> for StartError {
    fn from(error: ConfigError) -> StartError {
        StartError::Config(error)
    }
}

/// Why a running engine stopped abnormally. Printed as one line.
#[derive(Debug)]
pub enum RunError {
    /// A core panicked; its connections were recorded as `error`, the others drained.
    CorePanicked { core: u16, message: String },
    /// An io_uring call of a core failed; the other cores drained.
    CoreFailed { core: u16, error: io::Error },
    /// The close log could not be written.
    CloseLog(io::Error),
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::CorePanicked { core, message } => write!(
                f,
                "core {core} panicked ({message}); its connections were closed and recorded as \
                 `error`, the other cores drained"
            ),
            RunError::CoreFailed { core, error } => {
                write!(f, "core {core} failed: {error}; the other cores drained")
            }
            RunError::CloseLog(error) => write!(f, "close log: {error}"),
        }
    }
}

impl std::error::Error for RunError {}
