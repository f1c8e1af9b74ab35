//! What an engine is started with ([`Config`], a builder with defaults a user can just run),
//! its validation, and the settings every core reads. Every limit is a named constant.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::mesh::Wake;
use crate::sys::{Consumption, BUF_RING_ENTRIES_MAX};

/// Ring depth (SQ entries) per core: default and bounds (the kernel caps the SQ at 32768).
pub const RING_ENTRIES_DEFAULT: u32 = 4096;
pub const RING_ENTRIES_MIN: u32 = 8;
pub const RING_ENTRIES_MAX: u32 = 32_768;
/// CQ entries per SQ entry: generous, so that overflow (handled, but slower) stays rare.
pub const CQ_PER_SQ: u32 = 4;
/// Provided buffers per core: default and the kernel's cap.
pub const BUFFERS_DEFAULT: u16 = 1024;
pub const BUFFERS_MAX: u16 = BUF_RING_ENTRIES_MAX;
/// Bytes per provided buffer: default and bounds.
pub const BUFFER_SIZE_DEFAULT: u32 = 16 * 1024;
pub const BUFFER_SIZE_MIN: u32 = 64;
pub const BUFFER_SIZE_MAX: u32 = 1024 * 1024;
/// Connections per core: the most the default sizing picks, and the bound of the slot index.
pub const CONNECTIONS_PER_CORE_DEFAULT_MAX: u32 = 65_536;
pub const CONNECTIONS_PER_CORE_MAX: u32 = 1 << 22;
/// Reply bytes queued per connection before the engine stops reading from it.
pub const QUEUED_BYTES_DEFAULT: usize = 256 * 1024;
pub const QUEUED_BYTES_MIN: usize = 64 * 1024;
/// Cores: the metrics array and the user_data layout bound it.
pub const CORES_MAX: u16 = 256;
/// Completions a batched wait gathers at most before it returns (see [`Config::batching`], fixed windows).
pub const BATCH_WANT: u32 = 64;
/// The longest batch wait accepted: it is added latency.
pub const BATCH_WAIT_MAX: Duration = Duration::from_millis(1);
/// Timeouts: the shortest and the longest accepted.
pub const TIMEOUT_MIN: Duration = Duration::from_millis(1);
pub const TIMEOUT_MAX: Duration = Duration::from_secs(7 * 24 * 3600);
pub const IDLE_TIMEOUT_DEFAULT: Duration = Duration::from_secs(60);
pub const READ_TIMEOUT_DEFAULT: Duration = Duration::from_secs(10);
pub const SHUTDOWN_TIMEOUT_DEFAULT: Duration = Duration::from_secs(5);
/// Whether waits gather completions by default (see README: measured).
pub const BATCHING_DEFAULT: Batching = Batching::Off;
/// How recvs take provided buffers by default (see README, design notes: measured).
pub const CONSUMPTION_DEFAULT: Consumption = Consumption::Whole;
/// Whether rings are entered through a registered fd by default (see README: measured).
pub const REGISTER_RING_FD_DEFAULT: bool = false;
/// Descriptors kept back from the connection budget for listeners, rings, eventfds, the log and
/// the admin endpoint.
pub const FD_RESERVE: u64 = 1024;

const _: () = assert!(CONNECTIONS_PER_CORE_DEFAULT_MAX <= CONNECTIONS_PER_CORE_MAX);
const _: () = assert!(BUFFERS_DEFAULT <= BUFFERS_MAX && BUFFERS_DEFAULT.is_power_of_two());
const _: () = assert!(RING_ENTRIES_DEFAULT.is_power_of_two());

/// Whether and how a core's wait gathers completions before handling them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batching {
    /// Every wait returns at the first completion.
    Off,
    /// Every wait gathers for `wait_us` (fewer wake-ups, that much added latency).
    Fixed { wait_us: u32 },
    /// A window sized from the arrival rate each core sees, at most `budget_us`, and none when
    /// it would gather too little (see `core::batch`).
    Adaptive { budget_us: u32, target: u32 },
}

/// The adaptive window's default latency budget.
pub const BATCH_BUDGET_DEFAULT: Duration = Duration::from_micros(100);
/// Completions an adaptive window asks for: by default, and the range accepted (one is no
/// batching; more than a ring's worth never arrives in a window).
pub const BATCH_TARGET_DEFAULT: u32 = 16;
pub const BATCH_TARGET_MIN: u32 = 2;
pub const BATCH_TARGET_MAX: u32 = 1024;

/// What the engine does with each close's classification.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassifyMode {
    /// No close records, no per-cause counters (to measure what classification costs).
    Off,
    /// Per-cause counters only.
    Count,
    /// Counters, one tracing event per close, and the close log if one is configured.
    Log,
}

/// Counts log lines lost because the log writer could not keep up (shown on `/metrics`).
pub type LogDrops = Arc<dyn Fn() -> u64 + Send + Sync>;

/// How to run an engine. `Config::default()` listens on 127.0.0.1:7000 with metrics on
/// 127.0.0.1:7001, one core per CPU the process may use, and the limits below.
#[derive(Clone)]
pub struct Config {
    pub(crate) listen: SocketAddr,
    pub(crate) admin: Option<SocketAddr>,
    pub(crate) cores: Option<u16>,
    pub(crate) idle_timeout: Duration,
    pub(crate) read_timeout: Duration,
    pub(crate) shutdown_timeout: Duration,
    pub(crate) tcp_user_timeout: Option<Duration>,
    pub(crate) close_log: Option<PathBuf>,
    pub(crate) classify: ClassifyMode,
    pub(crate) batching: Batching,
    pub(crate) ring_entries: u32,
    pub(crate) buffers: u16,
    pub(crate) buffer_size: u32,
    pub(crate) max_connections: Option<u32>,
    pub(crate) max_queued_bytes: usize,
    pub(crate) signals: bool,
    pub(crate) log_drops: Option<LogDrops>,
    pub(crate) consumption: Consumption,
    pub(crate) register_ring_fd: bool,
    pub(crate) wake: Wake,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("admin", &self.admin)
            .field("cores", &self.cores)
            .field("idle_timeout", &self.idle_timeout)
            .field("read_timeout", &self.read_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("close_log", &self.close_log)
            .field("classify", &self.classify)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl Default for Config {
    fn default() -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7000)),
            admin: Some(SocketAddr::from(([127, 0, 0, 1], 7001))),
            cores: None,
            idle_timeout: IDLE_TIMEOUT_DEFAULT,
            read_timeout: READ_TIMEOUT_DEFAULT,
            shutdown_timeout: SHUTDOWN_TIMEOUT_DEFAULT,
            tcp_user_timeout: None,
            close_log: None,
            classify: ClassifyMode::Log,
            batching: BATCHING_DEFAULT,
            ring_entries: RING_ENTRIES_DEFAULT,
            buffers: BUFFERS_DEFAULT,
            buffer_size: BUFFER_SIZE_DEFAULT,
            max_connections: None,
            max_queued_bytes: QUEUED_BYTES_DEFAULT,
            signals: true,
            log_drops: None,
            consumption: CONSUMPTION_DEFAULT,
            register_ring_fd: REGISTER_RING_FD_DEFAULT,
            wake: Wake::Auto,
        }
    }
}

/// Builder methods: each sets one thing and returns the config; [`crate::Server::start`]
/// validates the whole.
impl Config {
    pub fn new() -> Config {
        Config::default()
    }

    /// Where to serve (one SO_REUSEPORT listener per core; port 0 picks one).
    pub fn listen(mut self, addr: SocketAddr) -> Config {
        self.listen = addr;
        self
    }

    /// Where to serve `GET /metrics`; `None`: nowhere.
    pub fn admin(mut self, addr: Option<SocketAddr>) -> Config {
        self.admin = addr;
        self
    }

    /// Worker threads, one io_uring each, pinned one per CPU (default: the CPUs this process may
    /// use).
    pub fn cores(mut self, cores: u16) -> Config {
        self.cores = Some(cores);
        self
    }

    /// Close a connection that sent nothing for this long at a message boundary (traffic
    /// restarts the timer).
    pub fn idle_timeout(mut self, timeout: Duration) -> Config {
        self.idle_timeout = timeout;
        self
    }

    /// Close a connection whose started message is not complete this long after its first byte.
    pub fn read_timeout(mut self, timeout: Duration) -> Config {
        self.read_timeout = timeout;
        self
    }

    /// On shutdown, how long to wait for replies to drain before closing anyway.
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Config {
        self.shutdown_timeout = timeout;
        self
    }

    /// TCP_USER_TIMEOUT on accepted sockets: unacknowledged data this old aborts the connection.
    pub fn tcp_user_timeout(mut self, timeout: Option<Duration>) -> Config {
        self.tcp_user_timeout = timeout;
        self
    }

    /// Append one JSON line per closed connection to this file.
    pub fn close_log(mut self, path: Option<PathBuf>) -> Config {
        self.close_log = path;
        self
    }

    pub fn classify(mut self, mode: ClassifyMode) -> Config {
        self.classify = mode;
        self
    }

    /// Whether waits gather completions before handling them: fewer wake-ups at moderate load
    /// for some added latency (Linux 6.12+; ignored on older kernels).
    pub fn batching(mut self, batching: Batching) -> Config {
        self.batching = batching;
        self
    }

    /// io_uring SQ entries per core (a power of two); the CQ gets four times as many.
    pub fn ring_entries(mut self, entries: u32) -> Config {
        self.ring_entries = entries;
        self
    }

    /// Provided receive buffers per core (a power of two) and their size in bytes.
    pub fn buffers(mut self, count: u16, size: u32) -> Config {
        self.buffers = count;
        self.buffer_size = size;
        self
    }

    /// Open connections per core; further ones are accepted, closed at once and counted.
    /// Default: what the process's file limit allows, at most 65536.
    pub fn max_connections(mut self, per_core: u32) -> Config {
        self.max_connections = Some(per_core);
        self
    }

    /// Output bytes queued per connection, at most: past it, the engine stops reading from a
    /// connection whose own replies piled up (and resumes below half), and closes one that
    /// others push into as `slow_consumer` ([`crate::Context::push`]).
    pub fn max_queued_bytes(mut self, bytes: usize) -> Config {
        self.max_queued_bytes = bytes;
        self
    }

    /// Drain on SIGINT/SIGTERM (default on). Off: only a [`crate::ShutdownHandle`] stops it.
    pub fn handle_signals(mut self, on: bool) -> Config {
        self.signals = on;
        self
    }

    /// How recvs take provided buffers: one per completion, bundles (Linux 6.10+) or in pieces
    /// (Linux 6.12+); a kernel without the one asked for gets one per completion.
    pub fn receive(mut self, consumption: Consumption) -> Config {
        self.consumption = consumption;
        self
    }

    /// Enter each ring through its registered fd (Linux 5.18+), skipping the fd lookup.
    /// How a core wakes another for its messages ([`crate::Context::send`]): MSG_RING where
    /// the kernel has it (default), or always the target's eventfd.
    pub fn wake(mut self, wake: Wake) -> Config {
        self.wake = wake;
        self
    }

    pub fn register_ring_fd(mut self, on: bool) -> Config {
        self.register_ring_fd = on;
        self
    }

    /// Reports log lines dropped by a lossy log writer on `/metrics`.
    pub fn log_drops(mut self, counter: LogDrops) -> Config {
        self.log_drops = Some(counter);
        self
    }

    /// Checks every value against its bounds.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let timeouts = [
            ("idle timeout", self.idle_timeout),
            ("read timeout", self.read_timeout),
            ("shutdown timeout", self.shutdown_timeout),
        ];
        for (what, value) in timeouts {
            if !(TIMEOUT_MIN..=TIMEOUT_MAX).contains(&value) {
                return Err(ConfigError::Timeout { what, value });
            }
        }
        if let Some(value) = self.tcp_user_timeout {
            if !(TIMEOUT_MIN..=TIMEOUT_MAX).contains(&value) {
                let what = "TCP user timeout";
                return Err(ConfigError::Timeout { what, value });
            }
        }
        let wait_us = match self.batching {
            Batching::Off => None,
            Batching::Fixed { wait_us }
            | Batching::Adaptive {
                budget_us: wait_us, ..
            } => Some(wait_us),
        };
        if let Some(wait_us) = wait_us {
            let wait = Duration::from_micros(u64::from(wait_us));
            if wait.is_zero() || wait > BATCH_WAIT_MAX {
                return Err(ConfigError::BatchWait { wait });
            }
        }
        if let Batching::Adaptive { target, .. } = self.batching {
            if !(BATCH_TARGET_MIN..=BATCH_TARGET_MAX).contains(&target) {
                return Err(ConfigError::BatchTarget { target });
            }
        }
        if matches!(self.cores, Some(cores) if cores == 0 || cores > CORES_MAX) {
            return Err(ConfigError::Cores {
                cores: self.cores.unwrap_or(0),
            });
        }
        let entries = self.ring_entries;
        if !entries.is_power_of_two() || !(RING_ENTRIES_MIN..=RING_ENTRIES_MAX).contains(&entries) {
            return Err(ConfigError::RingEntries { entries });
        }
        if !self.buffers.is_power_of_two() {
            return Err(ConfigError::Buffers {
                count: self.buffers,
            });
        }
        if !(BUFFER_SIZE_MIN..=BUFFER_SIZE_MAX).contains(&self.buffer_size) {
            return Err(ConfigError::BufferSize {
                size: self.buffer_size,
            });
        }
        if matches!(self.max_connections, Some(n) if n == 0 || n > CONNECTIONS_PER_CORE_MAX) {
            return Err(ConfigError::MaxConnections {
                per_core: self.max_connections.unwrap_or(0),
            });
        }
        if self.max_queued_bytes < QUEUED_BYTES_MIN {
            return Err(ConfigError::MaxQueuedBytes {
                bytes: self.max_queued_bytes,
            });
        }
        Ok(())
    }
}

/// A [`Config`] value out of its bounds. Says which and what the bounds are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    Timeout { what: &'static str, value: Duration },
    BatchWait { wait: Duration },
    BatchTarget { target: u32 },
    Cores { cores: u16 },
    RingEntries { entries: u32 },
    Buffers { count: u16 },
    BufferSize { size: u32 },
    MaxConnections { per_core: u32 },
    MaxQueuedBytes { bytes: usize },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let human = |d: &Duration| humantime::format_duration(*d).to_string();
        match self {
            ConfigError::Timeout { what, value } => write!(
                f,
                "{what} {} must be between {} and {}",
                human(value),
                human(&TIMEOUT_MIN),
                human(&TIMEOUT_MAX)
            ),
            ConfigError::BatchWait { wait } => write!(
                f,
                "batch wait {} must be between 1us and {}",
                human(wait),
                human(&BATCH_WAIT_MAX)
            ),
            ConfigError::BatchTarget { target } => write!(
                f,
                "batch target {target} must be between {BATCH_TARGET_MIN} and {BATCH_TARGET_MAX}"
            ),
            ConfigError::Cores { cores } => {
                write!(f, "cores {cores} must be between 1 and {CORES_MAX}")
            }
            ConfigError::RingEntries { entries } => write!(
                f,
                "ring entries {entries} must be a power of two between {RING_ENTRIES_MIN} and {RING_ENTRIES_MAX}"
            ),
            ConfigError::Buffers { count } => write!(
                f,
                "buffers {count} must be a power of two between 1 and {BUFFERS_MAX}"
            ),
            ConfigError::BufferSize { size } => write!(
                f,
                "buffer size {size} must be between {BUFFER_SIZE_MIN} and {BUFFER_SIZE_MAX} bytes"
            ),
            ConfigError::MaxConnections { per_core } => write!(
                f,
                "max connections {per_core} per core must be between 1 and {CONNECTIONS_PER_CORE_MAX}"
            ),
            ConfigError::MaxQueuedBytes { bytes } => write!(
                f,
                "max queued bytes {bytes} must be at least {QUEUED_BYTES_MIN}"
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The settings every core reads, in the units the hot path uses.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    pub idle_timeout_us: u64,
    pub read_timeout_us: u64,
    pub shutdown_timeout_us: u64,
    pub classify: ClassifyMode,
    pub ring_entries: u32,
    pub batching: Batching,
    pub buffers: u16,
    pub buffer_size: u32,
    pub max_connections: u32,
    pub max_queued_bytes: usize,
    pub consumption: Consumption,
    pub register_ring_fd: bool,
    pub wake: Wake,
}

impl Settings {
    /// From a validated config; `max_connections` is the per-core bound already decided.
    pub fn new(config: &Config, max_connections: u32) -> Settings {
        let us = |d: Duration| u64::try_from(d.as_micros()).expect("bounded by TIMEOUT_MAX");
        Settings {
            idle_timeout_us: us(config.idle_timeout),
            read_timeout_us: us(config.read_timeout),
            shutdown_timeout_us: us(config.shutdown_timeout),
            classify: config.classify,
            ring_entries: config.ring_entries,
            batching: config.batching,
            buffers: config.buffers,
            buffer_size: config.buffer_size,
            max_connections,
            max_queued_bytes: config.max_queued_bytes,
            consumption: config.consumption,
            register_ring_fd: config.register_ring_fd,
            wake: config.wake,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::default().validate().unwrap();
    }

    #[test]
    fn every_bound_is_checked_and_named() {
        let cases: [(Config, &str); 11] = [
            (Config::new().idle_timeout(Duration::ZERO), "idle timeout"),
            (
                Config::new().read_timeout(Duration::from_secs(8 * 24 * 3600)),
                "read timeout",
            ),
            (
                Config::new().batching(Batching::Fixed { wait_us: 5000 }),
                "batch wait",
            ),
            (
                Config::new().batching(Batching::Adaptive {
                    budget_us: 0,
                    target: 16,
                }),
                "batch wait",
            ),
            (
                Config::new().batching(Batching::Adaptive {
                    budget_us: 100,
                    target: 1,
                }),
                "batch target 1",
            ),
            (Config::new().cores(0), "cores 0"),
            (Config::new().ring_entries(100), "ring entries 100"),
            (Config::new().buffers(1000, 4096), "buffers 1000"),
            (Config::new().buffers(8, 1), "buffer size 1"),
            (Config::new().max_connections(0), "max connections 0"),
            (Config::new().max_queued_bytes(10), "max queued bytes 10"),
        ];
        for (config, needle) in cases {
            let error = config.validate().expect_err(needle).to_string();
            assert!(error.contains(needle), "{error:?} should name {needle:?}");
        }
    }
}
