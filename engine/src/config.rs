//! Command line and the validated settings every core shares. Every limit is a named constant.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Ring depth (SQ entries) per core: default and bounds (the kernel caps the SQ at 32768).
pub const RING_ENTRIES_DEFAULT: u32 = 4096;
pub const RING_ENTRIES_MIN: u32 = 8;
pub const RING_ENTRIES_MAX: u32 = 32_768;
/// CQ entries per SQ entry: generous, so that overflow (handled, but slower) stays rare.
pub const CQ_PER_SQ: u32 = 4;
/// Provided buffers per core: default and the kernel's cap.
pub const BUFFERS_DEFAULT: u16 = 1024;
pub const BUFFERS_MAX: u16 = 1 << 15;
/// Bytes per provided buffer: default and bounds.
pub const BUFFER_SIZE_DEFAULT: u32 = 16 * 1024;
pub const BUFFER_SIZE_MIN: u32 = 64;
pub const BUFFER_SIZE_MAX: u32 = 1024 * 1024;
/// Connections per core: default and the bound of the user_data index.
pub const CONNECTIONS_PER_CORE_DEFAULT: u32 = 65_536;
pub const CONNECTIONS_PER_CORE_MAX: u32 = 1 << 22;
/// Frame payload: default; the wire format caps it at u16::MAX.
pub const MAX_FRAME_DEFAULT: usize = 16 * 1024;
/// Reply bytes queued per connection before the engine stops reading from it.
pub const QUEUED_BYTES_DEFAULT: usize = 256 * 1024;
/// Cores: the user_data layout and the metrics array bound it.
pub const CORES_MAX: usize = 256;
/// Completions a batched wait gathers at most before it returns (see --batch-wait).
pub const BATCH_WANT: u32 = 64;
/// The longest --batch-wait accepted: it is added latency.
pub const BATCH_WAIT_MAX: Duration = Duration::from_millis(1);
/// The longest timeout accepted on the command line.
pub const TIMEOUT_MAX: Duration = Duration::from_secs(7 * 24 * 3600);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ClassifyMode {
    /// No close records, no per-cause counters (to measure what classification costs).
    Off,
    /// Per-cause counters only.
    Count,
    /// Counters, one tracing event per close, and the close log if --close-log is given.
    Log,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A per-core io_uring TCP server that records why every connection closed.
///
/// Serves the length-prefixed frame protocol (ECHO, CLOSE, HELLO) on --listen and Prometheus
/// metrics on --admin (GET /metrics). Each close is classified (peer_fin, peer_fin_mid_frame,
/// peer_reset, idle_timeout, read_timeout, local_close, protocol_error, shutdown, tcp_timeout,
/// aborted, error), logged as a tracing event (target engine::close) and, with --close-log, as
/// one JSON line. SIGINT/SIGTERM drains: stop accepting, flush replies, close every connection
/// as `shutdown`, exit 0. Durations take units: 500ms, 30s, 2m.
#[derive(Debug, Parser)]
#[command(name = "engine", version, verbatim_doc_comment)]
pub struct Args {
    /// Address to serve the frame protocol on (one SO_REUSEPORT listener per core).
    #[arg(long, default_value = "127.0.0.1:7000")]
    pub listen: SocketAddr,
    /// Address of the metrics endpoint (GET /metrics).
    #[arg(long, default_value = "127.0.0.1:7001")]
    pub admin: SocketAddr,
    /// Worker threads, one io_uring each, pinned one per CPU [default: CPUs this process may use].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=CORES_MAX as i64))]
    pub cores: Option<u16>,
    /// Close a connection that sent nothing for this long at a frame boundary (restarts on traffic).
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    pub idle_timeout: Duration,
    /// Close a connection whose started frame is not complete this long after its first byte.
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    pub read_timeout: Duration,
    /// Largest frame payload accepted, in bytes; longer frames are a protocol error.
    #[arg(long, default_value_t = MAX_FRAME_DEFAULT, value_parser = parse_max_frame)]
    pub max_frame: usize,
    /// Write one JSON line per closed connection to this file (appended; each line within ~20 ms
    /// of its close, written by a separate thread).
    #[arg(long, value_name = "PATH")]
    pub close_log: Option<PathBuf>,
    /// What to do with each close's classification.
    #[arg(long, value_enum, default_value_t = ClassifyMode::Log)]
    pub classify: ClassifyMode,
    /// TCP_USER_TIMEOUT for accepted sockets: unacknowledged data this old aborts the connection.
    #[arg(long, value_parser = parse_timeout)]
    pub tcp_user_timeout: Option<Duration>,
    /// Format of the log lines on stderr (filter them with RUST_LOG; default: info without the
    /// per-close events, which RUST_LOG=info shows).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// After the first completion, gather more for up to this long before handling them: fewer
    /// wake-ups at moderate load for at most this much added latency (e.g. 50us; Linux 6.12+,
    /// ignored on older kernels). Off by default.
    #[arg(long, value_parser = parse_batch_wait)]
    pub batch_wait: Option<Duration>,
    /// io_uring SQ entries per core (a power of two); the CQ gets four times as many.
    #[arg(long, default_value_t = RING_ENTRIES_DEFAULT, value_parser = parse_ring_entries)]
    pub ring_entries: u32,
    /// Provided receive buffers per core (a power of two, at most 32768).
    #[arg(long, default_value_t = BUFFERS_DEFAULT, value_parser = parse_buffers)]
    pub buffers: u16,
    /// Bytes per provided receive buffer.
    #[arg(long, default_value_t = BUFFER_SIZE_DEFAULT,
          value_parser = clap::value_parser!(u32).range(BUFFER_SIZE_MIN as i64..=BUFFER_SIZE_MAX as i64))]
    pub buffer_size: u32,
    /// Open connections per core; further ones are accepted and closed at once, and counted.
    #[arg(long, default_value_t = CONNECTIONS_PER_CORE_DEFAULT,
          value_parser = clap::value_parser!(u32).range(1..=CONNECTIONS_PER_CORE_MAX as i64))]
    pub max_connections: u32,
    /// Reply bytes queued per connection before the engine stops reading from it.
    #[arg(long, default_value_t = QUEUED_BYTES_DEFAULT, value_parser = parse_queued_bytes)]
    pub max_queued_bytes: usize,
    /// On SIGINT/SIGTERM, how long to wait for replies to drain before closing anyway.
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    pub shutdown_timeout: Duration,
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if duration < Duration::from_millis(1) {
        return Err("must be at least 1ms".into());
    }
    if duration > TIMEOUT_MAX {
        return Err(format!(
            "must be at most {}",
            humantime::format_duration(TIMEOUT_MAX)
        ));
    }
    Ok(duration)
}

fn parse_max_frame(text: &str) -> Result<usize, String> {
    let value: usize = text
        .parse()
        .map_err(|_| format!("`{text}` is not a byte count"))?;
    let range = protocol::HELLO_LEN..=protocol::PAYLOAD_LEN_MAX;
    if !range.contains(&value) {
        return Err(format!(
            "must be between {} and {}",
            range.start(),
            range.end()
        ));
    }
    Ok(value)
}

fn parse_buffers(text: &str) -> Result<u16, String> {
    let value: u32 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a count"))?;
    if value == 0 || !value.is_power_of_two() || value > u32::from(BUFFERS_MAX) {
        return Err(format!(
            "must be a power of two between 1 and {BUFFERS_MAX}"
        ));
    }
    Ok(value as u16)
}

fn parse_batch_wait(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text).map_err(|error| error.to_string())?;
    if duration.is_zero() || duration > BATCH_WAIT_MAX {
        return Err(format!(
            "must be between 1us and {}",
            humantime::format_duration(BATCH_WAIT_MAX)
        ));
    }
    Ok(duration)
}

fn parse_ring_entries(text: &str) -> Result<u32, String> {
    let value: u32 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a count"))?;
    if !value.is_power_of_two() || !(RING_ENTRIES_MIN..=RING_ENTRIES_MAX).contains(&value) {
        return Err(format!(
            "must be a power of two between {RING_ENTRIES_MIN} and {RING_ENTRIES_MAX}"
        ));
    }
    Ok(value)
}

fn parse_queued_bytes(text: &str) -> Result<usize, String> {
    let value: usize = text
        .parse()
        .map_err(|_| format!("`{text}` is not a byte count"))?;
    let min = protocol::encoded_len(protocol::PAYLOAD_LEN_MAX);
    if value < min {
        return Err(format!("must be at least {min} (one largest reply)"));
    }
    Ok(value)
}

/// The settings every core reads, in the units the hot path uses.
#[derive(Clone, Debug)]
pub struct Settings {
    pub idle_timeout_us: u64,
    pub read_timeout_us: u64,
    pub shutdown_timeout_us: u64,
    pub max_frame: usize,
    pub classify: ClassifyMode,
    pub ring_entries: u32,
    /// Microseconds a wait gathers completions (0: off).
    pub batch_wait_us: u32,
    pub buffers: u16,
    pub buffer_size: u32,
    pub max_connections: u32,
    pub max_queued_bytes: usize,
    pub tcp_user_timeout: Option<Duration>,
}

impl Settings {
    pub fn from_args(args: &Args) -> Settings {
        let us = |d: Duration| u64::try_from(d.as_micros()).expect("bounded by TIMEOUT_MAX");
        Settings {
            idle_timeout_us: us(args.idle_timeout),
            read_timeout_us: us(args.read_timeout),
            shutdown_timeout_us: us(args.shutdown_timeout),
            max_frame: args.max_frame,
            classify: args.classify,
            ring_entries: args.ring_entries,
            batch_wait_us: args.batch_wait.map_or(0, |d| d.as_micros() as u32),
            buffers: args.buffers,
            buffer_size: args.buffer_size,
            max_connections: args.max_connections,
            max_queued_bytes: args.max_queued_bytes,
            tcp_user_timeout: args.tcp_user_timeout,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("engine").chain(extra.iter().copied()))
    }

    #[test]
    fn defaults_suit_a_user_who_just_runs_it() {
        let args = parse(&[]).unwrap();
        assert_eq!(args.listen, "127.0.0.1:7000".parse().unwrap());
        assert_eq!(args.idle_timeout, Duration::from_secs(60));
        assert_eq!(args.read_timeout, Duration::from_secs(10));
        assert_eq!(args.max_frame, 16384);
        assert_eq!(args.classify, ClassifyMode::Log);
    }

    #[test]
    fn bad_flags_are_errors_not_panics() {
        for bad in [
            &["--idle-timeout", "0s"][..],
            &["--idle-timeout", "soon"],
            &["--max-frame", "70000"],
            &["--max-frame", "4"],
            &["--buffers", "1000"],
            &["--buffers", "65536"],
            &["--ring-entries", "4"],
            &["--batch-wait", "5ms"],
            &["--batch-wait", "0us"],
            &["--ring-entries", "100"],
            &["--buffer-size", "1"],
            &["--cores", "0"],
            &["--max-queued-bytes", "10"],
            &["--classify", "maybe"],
            &["--listen", "nowhere"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let ok = parse(&[
            "--idle-timeout",
            "200ms",
            "--buffers",
            "4",
            "--max-frame",
            "65535",
        ])
        .unwrap();
        assert_eq!(ok.idle_timeout, Duration::from_millis(200));
        assert_eq!(ok.buffers, 4);
    }
}
