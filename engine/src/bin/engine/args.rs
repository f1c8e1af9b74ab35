//! The `engine` command line: every flag, checked as it is parsed, turned into a [`Config`].

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use engine::frame::MAX_FRAME_DEFAULT;
use engine::sys::Consumption;
use engine::{
    Batching, ClassifyMode, Config, BATCH_TARGET_DEFAULT, BATCH_TARGET_MAX, BATCH_TARGET_MIN,
    BATCH_WAIT_MAX, BUFFERS_DEFAULT, BUFFERS_MAX, BUFFER_SIZE_DEFAULT, BUFFER_SIZE_MAX,
    BUFFER_SIZE_MIN, CONNECTIONS_PER_CORE_MAX, CORES_MAX, QUEUED_BYTES_DEFAULT, QUEUED_BYTES_MIN,
    RING_ENTRIES_DEFAULT, RING_ENTRIES_MAX, RING_ENTRIES_MIN, TIMEOUT_MAX, TIMEOUT_MIN,
};
use protocol::http;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ProtocolName {
    /// The length-prefixed frame protocol (ECHO, CLOSE, HELLO).
    Frame,
    /// HTTP/1.1 with HttpArena's H1 workload: GET /pipeline, GET and POST /baseline11.
    Http,
}

impl ProtocolName {
    pub fn label(self) -> &'static str {
        match self {
            ProtocolName::Frame => "frame",
            ProtocolName::Http => "http",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Classify {
    /// No close records, no per-cause counters (to measure what classification costs).
    Off,
    /// Per-cause counters only.
    Count,
    /// Counters, one tracing event per close, and the close log if --close-log is given.
    Log,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BufferMode {
    /// One provided buffer per completion.
    Whole,
    /// Recv bundles: one completion for several buffers (Linux 6.10+).
    Bundle,
    /// Incremental consumption: buffers filled in pieces (Linux 6.12+).
    Incremental,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RingFd {
    /// Enter the ring through its registered fd (IORING_REGISTER_RING_FDS, Linux 5.18+).
    Registered,
    /// Enter the ring by its fd.
    Plain,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// A per-core io_uring TCP server that records why every connection closed.
///
/// Serves a protocol (--protocol) on --listen and Prometheus metrics on --admin (GET /metrics).
/// Each close is classified (peer_fin, peer_fin_mid_frame, peer_reset, idle_timeout,
/// read_timeout, peer_close, local_close, protocol_error, slow_consumer, shutdown, tcp_timeout,
/// aborted, error), counted, logged as a tracing event (target engine::close) and, with
/// --close-log, written as one JSON line. SIGINT/SIGTERM drains: stop accepting, let started
/// messages finish and replies flush, close every connection as `shutdown`, exit 0. Durations
/// take units: 500ms, 30s, 2m. Sizes take binary units: 4096, 64KiB, 1MiB.
#[derive(Debug, Parser)]
#[command(name = "engine", version, verbatim_doc_comment)]
pub struct Args {
    /// Protocol to serve.
    #[arg(long, value_enum, default_value_t = ProtocolName::Frame)]
    pub protocol: ProtocolName,
    /// Address to serve on, HOST:PORT (one SO_REUSEPORT listener per core).
    #[arg(long, default_value = "127.0.0.1:7000", value_parser = parse_addr)]
    pub listen: SocketAddr,
    /// Address of the metrics endpoint (GET /metrics), HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:7001", value_parser = parse_addr)]
    pub admin: SocketAddr,
    /// Worker threads, one io_uring each, pinned one per CPU [default: CPUs this process may use].
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=i64::from(CORES_MAX)))]
    pub cores: Option<u16>,
    /// Close a connection that sent nothing for this long between messages (restarts on traffic).
    #[arg(long, default_value = "60s", value_parser = parse_timeout)]
    pub idle_timeout: Duration,
    /// Close a connection whose started message is not complete this long after its first byte.
    #[arg(long, default_value = "10s", value_parser = parse_timeout)]
    pub read_timeout: Duration,
    /// Frame protocol: largest frame payload accepted, in bytes; longer frames are a protocol
    /// error.
    #[arg(long, default_value_t = MAX_FRAME_DEFAULT, value_parser = parse_max_frame)]
    pub max_frame: usize,
    /// HTTP: longest request line, CRLF included (longer: 414).
    #[arg(long, default_value_t = http::REQUEST_LINE_MAX, value_parser = parse_http_bytes)]
    pub max_request_line: usize,
    /// HTTP: largest request head — request line, headers, blank line — in bytes (larger: 431).
    #[arg(long, default_value_t = http::HEAD_MAX, value_parser = parse_http_bytes)]
    pub max_header_bytes: usize,
    /// HTTP: most header fields in one request (more: 431).
    #[arg(long, default_value_t = http::HEADERS_MAX, value_parser = parse_max_headers)]
    pub max_headers: usize,
    /// HTTP: largest request body in bytes, by Content-Length or chunked (larger: 413).
    #[arg(long, default_value_t = http::BODY_MAX, value_parser = parse_http_bytes)]
    pub max_body: usize,
    /// Write one JSON line per closed connection to this file (appended; each line within ~20 ms
    /// of its close, written by a separate thread).
    #[arg(long, value_name = "PATH")]
    pub close_log: Option<PathBuf>,
    /// What to do with each close's classification.
    #[arg(long, value_enum, default_value_t = Classify::Log)]
    pub classify: Classify,
    /// TCP_USER_TIMEOUT for accepted sockets: unacknowledged data this old aborts the connection.
    #[arg(long, value_parser = parse_timeout)]
    pub tcp_user_timeout: Option<Duration>,
    /// Format of the log lines on stderr (filter them with RUST_LOG; default: info without the
    /// per-close events, which RUST_LOG=info shows).
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Whether a wait gathers completions before handling them (fewer wake-ups at moderate
    /// load, for added latency; Linux 6.12+, ignored on older kernels): `off`; `adaptive`, a
    /// window sized from the arrival rate each core sees, at most --batch-budget, and none when
    /// idle, for a lone client, or when busy; or a fixed DURATION such as 200us.
    #[arg(long, default_value = "off", value_parser = parse_batch_wait)]
    pub batch_wait: BatchWait,
    /// The longest an adaptive window gathers (its added latency at most).
    #[arg(long, default_value = "100us", value_parser = parse_batch_budget)]
    pub batch_budget: Duration,
    /// How many completions an adaptive window waits for.
    #[arg(long, default_value_t = BATCH_TARGET_DEFAULT,
          value_parser = clap::value_parser!(u32).range(BATCH_TARGET_MIN as i64..=BATCH_TARGET_MAX as i64))]
    pub batch_target: u32,
    /// io_uring SQ entries per core (a power of two); the CQ gets four times as many.
    #[arg(long, default_value_t = RING_ENTRIES_DEFAULT, value_parser = parse_ring_entries)]
    pub ring_entries: u32,
    /// Provided receive buffers per core (a power of two, at most 32768).
    #[arg(long, default_value_t = BUFFERS_DEFAULT, value_parser = parse_buffers)]
    pub buffers: u16,
    /// How recvs take provided buffers (a kernel without the mode asked for gets `whole`).
    #[arg(long, value_enum, default_value_t = BufferMode::Whole)]
    pub buffer_mode: BufferMode,
    /// How each core enters its ring.
    #[arg(long, value_enum, default_value_t = RingFd::Plain)]
    pub ring_fd: RingFd,
    /// Bytes per provided receive buffer.
    #[arg(long, default_value_t = BUFFER_SIZE_DEFAULT, value_parser = parse_buffer_size)]
    pub buffer_size: u32,
    /// Open connections per core; further ones are accepted, closed at once, and counted
    /// [default: what RLIMIT_NOFILE allows, at most 65536].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=i64::from(CONNECTIONS_PER_CORE_MAX)))]
    pub max_connections: Option<u32>,
    /// Reply bytes queued per connection before the engine stops reading from it.
    #[arg(long, default_value_t = QUEUED_BYTES_DEFAULT, value_parser = parse_queued_bytes)]
    pub max_queued_bytes: usize,
    /// On SIGINT/SIGTERM, how long to wait for started messages and replies before closing anyway.
    #[arg(long, default_value = "5s", value_parser = parse_timeout)]
    pub shutdown_timeout: Duration,
}

impl Args {
    /// The HTTP protocol's limits (checked together: a request line cannot exceed the head).
    pub fn http_limits(&self) -> Result<http::Limits, String> {
        let limits = http::Limits {
            request_line_max: self.max_request_line,
            head_max: self.max_header_bytes,
            headers_max: self.max_headers,
            body_max: self.max_body,
            ..http::Limits::default()
        };
        limits
            .validate()
            .map(|()| limits)
            .map_err(|error| format!("--max-request-line/--max-header-bytes/--max-body: {error}"))
    }

    /// The engine's configuration (the protocol's own flags are read by `main`).
    pub fn config(&self) -> Config {
        let classify = match self.classify {
            Classify::Off => ClassifyMode::Off,
            Classify::Count => ClassifyMode::Count,
            Classify::Log => ClassifyMode::Log,
        };
        let mut config = Config::new()
            .listen(self.listen)
            .admin(Some(self.admin))
            .idle_timeout(self.idle_timeout)
            .read_timeout(self.read_timeout)
            .shutdown_timeout(self.shutdown_timeout)
            .tcp_user_timeout(self.tcp_user_timeout)
            .close_log(self.close_log.clone())
            .classify(classify)
            .batching(match self.batch_wait {
                BatchWait::Off => Batching::Off,
                BatchWait::Adaptive => Batching::Adaptive {
                    budget_us: self.batch_budget.as_micros() as u32,
                    target: self.batch_target,
                },
                BatchWait::Fixed(wait) => Batching::Fixed {
                    wait_us: wait.as_micros() as u32,
                },
            })
            .ring_entries(self.ring_entries)
            .buffers(self.buffers, self.buffer_size)
            .max_queued_bytes(self.max_queued_bytes)
            .receive(match self.buffer_mode {
                BufferMode::Whole => Consumption::Whole,
                BufferMode::Bundle => Consumption::Bundles,
                BufferMode::Incremental => Consumption::Incremental,
            })
            .register_ring_fd(self.ring_fd == RingFd::Registered);
        if let Some(cores) = self.cores {
            config = config.cores(cores);
        }
        if let Some(per_core) = self.max_connections {
            config = config.max_connections(per_core);
        }
        config
    }
}

/// `HOST:PORT`: an IP address, or a name resolved now (`localhost:7000`; IPv4 first).
fn parse_addr(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse() {
        return Ok(addr);
    }
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|error| format!("`{text}` is not HOST:PORT ({error})"))?
        .collect();
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| format!("`{text}` resolves to no address"))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text)
        .map_err(|error| format!("`{text}` is not a duration like 200ms or 30s ({error})"))
}

fn parse_timeout(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if !(TIMEOUT_MIN..=TIMEOUT_MAX).contains(&duration) {
        return Err(format!(
            "must be between {} and {}",
            humantime::format_duration(TIMEOUT_MIN),
            humantime::format_duration(TIMEOUT_MAX)
        ));
    }
    Ok(duration)
}

fn parse_max_frame(text: &str) -> Result<usize, String> {
    let value = parse_bytes(text)?;
    engine::frame::FrameProtocol::new(value)
        .map(|proto| proto.max_frame())
        .map_err(|error| error.to_string())
}

fn parse_http_bytes(text: &str) -> Result<usize, String> {
    let value = parse_bytes(text)?;
    if !(1..=http::BYTES_MAX_CAP).contains(&value) {
        return Err(format!("must be between 1 and {}", http::BYTES_MAX_CAP));
    }
    Ok(value)
}

/// A byte count: a number with an optional binary unit, `B`, `K`/`KiB`/`KB` (1024), `M`/`MiB`/
/// `MB` or `G`/`GiB`/`GB` (`64KiB`, `1MiB`, `1048576`).
fn parse_bytes(text: &str) -> Result<usize, String> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return Err(format!("`{text}`: the unit is one of B, KiB, MiB, GiB")),
    };
    let count: usize = number
        .parse()
        .map_err(|_| format!("`{text}` is not a byte count (like 4096, 64KiB, 1MiB)"))?;
    count
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

fn parse_buffer_size(text: &str) -> Result<u32, String> {
    let value = parse_bytes(text)?;
    let range = BUFFER_SIZE_MIN as usize..=BUFFER_SIZE_MAX as usize;
    if !range.contains(&value) {
        return Err(format!(
            "must be between {BUFFER_SIZE_MIN} and {BUFFER_SIZE_MAX}"
        ));
    }
    Ok(value as u32)
}

fn parse_max_headers(text: &str) -> Result<usize, String> {
    let value: usize = text
        .parse()
        .map_err(|_| format!("`{text}` is not a count"))?;
    if !(1..=http::HEADERS_MAX_CAP).contains(&value) {
        return Err(format!("must be between 1 and {}", http::HEADERS_MAX_CAP));
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

/// `--batch-wait`: off, adaptive, or a fixed window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchWait {
    Off,
    Adaptive,
    Fixed(Duration),
}

fn parse_batch_wait(text: &str) -> Result<BatchWait, String> {
    match text {
        "off" => Ok(BatchWait::Off),
        "adaptive" => Ok(BatchWait::Adaptive),
        _ => parse_batch_budget(text).map(BatchWait::Fixed),
    }
}

fn parse_batch_budget(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
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
    let value = parse_bytes(text)?;
    if value < QUEUED_BYTES_MIN {
        return Err(format!("must be at least {QUEUED_BYTES_MIN}"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_units() {
        let cases = [
            ("4096", Ok(4096)),
            ("64KiB", Ok(65536)),
            ("64k", Ok(65536)),
            ("1MiB", Ok(1 << 20)),
            ("2 MB", Ok(2 << 20)),
            ("1GiB", Ok(1 << 30)),
            ("12B", Ok(12)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_bytes(text), expected, "{text}");
        }
        for bad in ["", "MiB", "1.5MiB", "1TiB", "-1", "99999999999999999999GiB"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }

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
        assert_eq!(args.classify, Classify::Log);
        assert_eq!(args.max_connections, None, "sized from the file limit");
        args.config().validate().unwrap();
    }

    #[test]
    fn hostnames_are_resolved() {
        let args = parse(&["--listen", "localhost:7100"]).unwrap();
        assert_eq!(args.listen.port(), 7100);
        assert!(args.listen.ip().is_loopback());
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
            &["--max-connections", "0"],
            &["--classify", "maybe"],
            &["--protocol", "gopher"],
            &["--max-body", "0"],
            &["--max-headers", "1000"],
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
        ok.config().validate().unwrap();
        let http = parse(&["--protocol", "http", "--max-body", "100"]).unwrap();
        assert_eq!(http.http_limits().unwrap().body_max, 100);
        let inverted =
            parse(&["--max-request-line", "20000", "--max-header-bytes", "1000"]).unwrap();
        assert!(
            inverted.http_limits().is_err(),
            "a request line cannot exceed the head"
        );
    }
}
