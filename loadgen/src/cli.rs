//! Command line: the run flags (no subcommand), `merge` and `verify`, and their value parsers;
//! the protocol flags' defaults and the combinations that cannot work are in `cli/protocol.rs`.

mod protocol;

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

pub use protocol::FlagError;

use crate::limits::{
    CONNECTIONS_DEFAULT, CONNECTIONS_MAX, PAYLOAD_SIZES_MAX, PIPELINE_MAX, THREADS_MAX, TOTAL_MAX,
};
use crate::mix::CloseMix;
use crate::wire::{HttpWorkload, WireProtocol};

/// Load generator and verdict checker for the engine.
///
/// Without a subcommand it runs traffic against --target, in one of four shapes:
///   closed loop (default)  --connections C each keep --pipeline D requests in flight for
///                          --duration (default 10s, as for open loop and hold)
///   open loop              --rate R requests/s over all connections; latency from each
///                          request's intended send time (coordinated omission corrected)
///   churn                  --total N connections, opened at --connect-rate, each doing
///                          --requests-per-conn M requests, then ending as drawn from --close-mix
///   hold                   --hold N idle connections (after their tag) kept for --duration
/// --protocol frame (default): ECHO frames of --payload sizes; every connection first sends
/// HELLO with a unique tag; every reply is checked byte for byte.
/// --protocol http (against engine --protocol http): the requests of --http-workload; the tag
/// rides on each connection's first request (x-client-tag); every response's status,
/// Content-Type, Content-Length and exact body (the expected sum) are checked.
/// --verify-log and --verify-metrics check the engine's close records and counters afterwards.
/// A run with --rate (open loop) or churn with --connect-rate reports the rate it reached next
/// to the rate asked; more than 10% short does not pass.
/// Exit status:
///   0    everything checked out (and the asked rate was reached)
///   1    a mismatch, lost or corrupt reply, unexpected close or failed connect
///   2    bad flags or a setup error (fd limit, io_uring, CPU, --verify-log file missing, ...)
///   3    everything checked out, but the run fell more than 10% short of its asked rate
///   130  interrupted (Ctrl-C or SIGTERM): the report covers what ran until then; a second
///        Ctrl-C or SIGTERM ends the loadgen at once
/// Durations take units: 500ms, 10s, 2m.
#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    verbatim_doc_comment,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub run: RunArgs,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Merge the JSON reports of runs that ran side by side into one report.
    Merge {
        /// Reports written by --json.
        #[arg(required = true, num_args = 1..)]
        reports: Vec<PathBuf>,
        /// Write the merged report here (the table goes to stdout either way).
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
    },
    /// Check a saved report's connections against an engine close log, without traffic.
    Verify {
        /// A report written by --json (it lists every tag and its close mode).
        #[arg(long, value_name = "PATH")]
        report: PathBuf,
        /// The engine's --close-log file.
        #[arg(long, value_name = "PATH")]
        log: PathBuf,
        /// Write the report with the new verification here.
        #[arg(long, value_name = "PATH")]
        json: Option<PathBuf>,
        /// How long to wait for the log to hold every tag.
        #[arg(long, default_value = "0s", value_parser = parse_duration)]
        verify_wait: Duration,
    },
}

#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// The engine's listen address, HOST:PORT (a name such as localhost:7000 is resolved, IPv4
    /// first).
    #[arg(long, required = true, value_name = "HOST:PORT", value_parser = parse_target)]
    pub target: Option<SocketAddr>,
    /// The protocol the engine serves: frame (its default) or http (engine --protocol http).
    #[arg(long, value_enum, default_value_t = WireProtocol::Frame)]
    pub protocol: WireProtocol,
    /// The HTTP requests (needs --protocol http) [default: baseline].
    #[arg(long, value_enum, value_name = "WORKLOAD")]
    pub http_workload: Option<HttpWorkload>,
    /// Concurrent connections (closed/open loop: all of them; churn: at most this many at once)
    /// [default: 1; churn with --connect-rate: as many as the rate needs, rate x (5s connect
    /// timeout + --end-timeout), at most 65536 and what RLIMIT_NOFILE allows].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=CONNECTIONS_MAX as u64))]
    pub connections: Option<u64>,
    /// Requests in flight per connection, pipelined (open loop: the most it may have in flight).
    /// HTTP answers them in order.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=PIPELINE_MAX as u64))]
    pub pipeline: u64,
    /// Frame protocol: ECHO payload sizes in bytes, used in turn (e.g. 16,1024); at most 65535
    /// each [default: 64].
    #[arg(long, value_parser = parse_payloads)]
    pub payload: Option<PayloadSizes>,
    /// How long to run (closed/open loop, hold); churn: stop opening connections after it
    /// [default: 10s; churn: none, it ends once its --total connections have]. No run lasts
    /// for ever.
    #[arg(long, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Worker threads, one io_uring each.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=THREADS_MAX as u64))]
    pub threads: u64,
    /// Pin worker i to the i-th CPU of this list (e.g. 2,3 or 4-7).
    #[arg(long, value_name = "LIST", value_parser = parse_cpus)]
    pub cpus: Option<CpuList>,
    /// Bind connection i to the (i mod n)-th of these addresses before connecting.
    #[arg(long, value_name = "IP,IP..", value_delimiter = ',')]
    pub source_ips: Vec<IpAddr>,
    /// New connections per second over all threads [default: as fast as --connections allows].
    /// Churn: the report shows the connect rate reached; more than 10% short does not pass
    /// (exit 3).
    #[arg(long, value_name = "N", value_parser = parse_connect_rate)]
    pub connect_rate: Option<f64>,
    /// Churn: open this many connections in all (at most 2^32 - 1), then stop.
    #[arg(long, value_name = "N", conflicts_with_all = ["hold", "rate"],
          value_parser = clap::value_parser!(u64).range(1..=TOTAL_MAX))]
    pub total: Option<u64>,
    /// Churn: requests per connection before it ends (HTTP: at least 1, it carries the tag).
    #[arg(long, value_name = "M", default_value_t = 10, requires = "total")]
    pub requests_per_conn: u64,
    /// Churn: how connections end, as weights (fin, reset, mid-frame, half-close, close-request,
    /// bad-frame, idle, stall), e.g. fin=5,reset=1,idle=1. Over HTTP: mid-frame and stall send
    /// a request cut in its head or its body (in turn), bad-frame a malformed request (answered
    /// 400), close-request asks Connection: close on the last request.
    #[arg(long, default_value = "fin=1", requires = "total")]
    pub close_mix: CloseMix,
    /// Seed of the close-mode draw (the same seed draws the same modes).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Open N idle connections (after HELLO; HTTP: after one tagged GET) and keep them for
    /// --duration.
    #[arg(long, value_name = "N", conflicts_with = "rate",
          value_parser = clap::value_parser!(u64).range(1..=CONNECTIONS_MAX as u64))]
    pub hold: Option<u64>,
    /// Open loop: requests per second over all connections (> 0; without --rate the run is a
    /// closed loop). The report shows the rate reached; more than 10% short does not pass
    /// (exit 3).
    #[arg(long, value_name = "R", value_parser = parse_request_rate)]
    pub rate: Option<f64>,
    /// How long a connection waits for the engine to close it (idle, stall, half-close, ...).
    /// Idle and stall need more than the engine's --idle-timeout / --read-timeout.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub end_timeout: Duration,
    /// After the run, check the engine's close log (its --close-log file) for every tag. A
    /// missing file is a setup error (exit 2), found before any traffic.
    #[arg(long, value_name = "PATH")]
    pub verify_log: Option<PathBuf>,
    /// Scrape this /metrics URL before and after the run and check the close counters' deltas.
    #[arg(long, value_name = "URL")]
    pub verify_metrics: Option<String>,
    /// How long to wait for the close log (and counters) to account for every connection.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub verify_wait: Duration,
    /// Write the JSON report here (schema in loadgen/README.md).
    #[arg(long, value_name = "PATH")]
    pub json: Option<PathBuf>,
    /// No progress lines (otherwise on stderr: replies, connections open now, done, errors).
    #[arg(long)]
    pub quiet: bool,
}

/// The shape of a run, chosen from the flags.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Shape {
    ClosedLoop,
    OpenLoop { rate: f64 },
    Churn { total: u64 },
    Hold { count: u64 },
}

impl Shape {
    pub fn name(self) -> &'static str {
        match self {
            Shape::ClosedLoop => "closed-loop",
            Shape::OpenLoop { .. } => "open-loop",
            Shape::Churn { .. } => "churn",
            Shape::Hold { .. } => "hold",
        }
    }
}

/// Closed loop, open loop and hold run this long without --duration (churn ends with its
/// --total connections), so no run lasts for ever; --help states it.
pub const DURATION_DEFAULT: Duration = Duration::from_secs(10);

impl RunArgs {
    pub fn shape(&self) -> Shape {
        match (self.hold, self.total, self.rate) {
            (Some(count), _, _) => Shape::Hold { count },
            (_, Some(total), _) => Shape::Churn { total },
            (_, _, Some(rate)) => Shape::OpenLoop { rate },
            _ => Shape::ClosedLoop,
        }
    }

    /// The run's length; `None` for churn without --duration (it ends when every connection has).
    pub fn run_for(&self) -> Option<Duration> {
        match self.shape() {
            Shape::Churn { .. } => self.duration,
            _ => Some(self.duration.unwrap_or(DURATION_DEFAULT)),
        }
    }

    /// `--connections`, or its default.
    pub fn connections(&self) -> u64 {
        self.connections.unwrap_or(CONNECTIONS_DEFAULT)
    }
}

/// `--payload`: a non-empty list of sizes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadSizes(pub Vec<u16>);

fn parse_payloads(text: &str) -> Result<PayloadSizes, String> {
    let sizes = text
        .split(',')
        .map(|part| {
            part.trim()
                .parse::<u16>()
                .map_err(|_| format!("`{part}` is not a payload size between 0 and 65535"))
        })
        .collect::<Result<Vec<u16>, String>>()?;
    if sizes.len() > PAYLOAD_SIZES_MAX {
        return Err(format!("at most {PAYLOAD_SIZES_MAX} sizes"));
    }
    Ok(PayloadSizes(sizes))
}

/// `--cpus`: CPU numbers, from a list of numbers and ranges.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

/// The largest CPU number accepted (cpu_set_t holds 1024).
pub const CPU_MAX: usize = 1023;

fn parse_cpus(text: &str) -> Result<CpuList, String> {
    let mut cpus = Vec::new();
    for part in text.split(',').map(str::trim) {
        let number = |s: &str| {
            s.parse::<usize>()
                .ok()
                .filter(|&cpu| cpu <= CPU_MAX)
                .ok_or_else(|| format!("`{s}` is not a CPU number (0..={CPU_MAX})"))
        };
        match part.split_once('-') {
            Some((low, high)) => {
                let (low, high) = (number(low)?, number(high)?);
                if low > high {
                    return Err(format!("range `{part}` is backwards"));
                }
                cpus.extend(low..=high);
            }
            None => cpus.push(number(part)?),
        }
    }
    Ok(CpuList(cpus))
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text).map_err(|error| format!("{error} (use units: 500ms, 10s, 2m)"))
}

/// The largest rate either rate flag takes, per second.
pub const RATE_MAX: f64 = 1e9;

/// A rate in (0, RATE_MAX]; `flag`, `unit` and `without` make the message.
fn parse_rate(text: &str, flag: &str, unit: &str, without: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(rate) if rate.is_finite() && rate > 0.0 && rate <= RATE_MAX => Ok(rate),
        Ok(rate) if rate.is_finite() && rate > RATE_MAX => {
            Err(format!("{flag} must be at most {RATE_MAX:e} {unit}/s"))
        }
        Ok(rate) if rate.is_finite() => Err(format!("{flag} must be > 0 ({without})")),
        _ => Err(format!("`{text}` is not a number of {unit} per second")),
    }
}

fn parse_request_rate(text: &str) -> Result<f64, String> {
    parse_rate(text, "--rate", "requests", "omit --rate for a closed loop")
}

fn parse_connect_rate(text: &str) -> Result<f64, String> {
    parse_rate(
        text,
        "--connect-rate",
        "connections",
        "omit --connect-rate to open as fast as --connections allows",
    )
}

/// `--target`: HOST:PORT, resolved; the first IPv4 address if there is one.
fn parse_target(text: &str) -> Result<SocketAddr, String> {
    resolve(text)
}

/// Resolves HOST:PORT (numeric or a name) to one address, IPv4 first.
pub fn resolve(text: &str) -> Result<SocketAddr, String> {
    let addrs: Vec<SocketAddr> = text
        .to_socket_addrs()
        .map_err(|error| format!("`{text}` is not a HOST:PORT that resolves ({error})"))?
        .collect();
    ipv4_first(&addrs).ok_or_else(|| format!("`{text}` resolves to no address"))
}

/// The first IPv4 address of `addrs`, else the first of any family.
fn ipv4_first(addrs: &[SocketAddr]) -> Option<SocketAddr> {
    addrs
        .iter()
        .find(|addr| addr.is_ipv4())
        .or(addrs.first())
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("loadgen").chain(extra.iter().copied()))
    }

    #[test]
    fn shapes_follow_the_flags() {
        let cli = parse(&["--target", "127.0.0.1:1"]).unwrap();
        assert_eq!(cli.run.shape(), Shape::ClosedLoop);
        assert_eq!(cli.run.run_for(), Some(DURATION_DEFAULT));
        assert_eq!(cli.run.end_timeout, crate::limits::END_TIMEOUT_DEFAULT);
        assert_eq!(cli.run.verify_wait, crate::limits::VERIFY_WAIT_DEFAULT);
        let cli = parse(&[
            "--target",
            "127.0.0.1:1",
            "--total",
            "5",
            "--close-mix",
            "idle=1",
        ])
        .unwrap();
        assert_eq!(cli.run.shape(), Shape::Churn { total: 5 });
        assert_eq!(cli.run.run_for(), None);
        let cli = parse(&["--target", "127.0.0.1:1", "--rate", "100"]).unwrap();
        assert_eq!(cli.run.shape(), Shape::OpenLoop { rate: 100.0 });
        let cli = parse(&["--target", "127.0.0.1:1", "--hold", "7"]).unwrap();
        assert_eq!(cli.run.shape(), Shape::Hold { count: 7 });
        assert_eq!(cli.run.connections(), CONNECTIONS_DEFAULT);
    }

    /// Defect: `--rate 0` said "`0` is not a rate between 0 and 1e9": 0 is rejected, and the
    /// message says why and what to do instead.
    #[test]
    fn a_zero_rate_is_rejected_with_a_message_that_holds() {
        for (flag, says) in [
            (
                "--rate",
                "--rate must be > 0 (omit --rate for a closed loop)",
            ),
            ("--connect-rate", "--connect-rate must be > 0"),
        ] {
            for zero in ["0", "0.0", "-3"] {
                let error = parse(&["--target", "127.0.0.1:1", &format!("{flag}={zero}")])
                    .unwrap_err()
                    .to_string();
                assert!(error.contains(says), "{flag} {zero}: {error}");
                assert!(!error.contains("between 0"), "{flag} {zero}: {error}");
            }
        }
        let error = parse(&["--target", "127.0.0.1:1", "--rate", "2e9"])
            .unwrap_err()
            .to_string();
        assert!(error.contains("--rate must be at most 1e9"), "{error}");
        let error = parse(&["--target", "127.0.0.1:1", "--rate", "fast"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("not a number of requests per second"),
            "{error}"
        );
        assert_eq!(
            parse(&["--target", "127.0.0.1:1", "--rate", "0.5"])
                .unwrap()
                .run
                .rate,
            Some(0.5)
        );
    }

    /// The numbers --help spells out are the named limits.
    #[test]
    fn help_states_the_limits_it_is_built_on() {
        use crate::limits::{CHURN_OPEN_MAX, CONNECT_TIMEOUT, RATE_TOLERANCE_PERCENT};
        use crate::report::{EXIT_INTERRUPTED, EXIT_RATE_NOT_REACHED};
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for needle in [
            format!("more than {RATE_TOLERANCE_PERCENT}% short"),
            format!("at most {CHURN_OPEN_MAX}"),
            format!(
                "{} connect timeout",
                humantime::format_duration(CONNECT_TIMEOUT)
            ),
            format!("  {EXIT_RATE_NOT_REACHED}    everything checked out"),
            format!("  {EXIT_INTERRUPTED}  interrupted (Ctrl-C or SIGTERM)"),
        ] {
            assert!(help.contains(&needle), "--help lacks {needle:?}:\n{help}");
        }
    }

    /// Defect: --help showed no default for --duration, so a run without it looked endless.
    /// Every shape is bounded without it: the default duration, or churn's --total; --help
    /// states the default.
    #[test]
    fn no_run_lasts_for_ever_and_help_says_the_default_duration() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        let default = humantime::format_duration(DURATION_DEFAULT).to_string();
        for needle in [
            format!("[default: {default}; churn: none, it ends once its --total"),
            format!("--duration (default {default}, as for open loop and hold)"),
        ] {
            assert!(help.contains(&needle), "--help lacks {needle:?}:\n{help}");
        }
        for shape in [
            &[][..],
            &["--rate", "10"],
            &["--hold", "2"],
            &["--total", "3"],
        ] {
            let cli = parse(&[&["--target", "127.0.0.1:1"][..], shape].concat()).unwrap();
            match cli.run.shape() {
                Shape::Churn { total } => {
                    assert_eq!(cli.run.run_for(), None);
                    assert_eq!(total, 3, "churn is bounded by --total");
                }
                other => assert_eq!(cli.run.run_for(), Some(DURATION_DEFAULT), "{other:?}"),
            }
        }
    }

    /// Defect: `--target localhost:7000` was refused; names resolve, IPv4 first.
    #[test]
    fn a_target_name_resolves_ipv4_first() {
        let cli = parse(&["--target", "localhost:7000"]).unwrap();
        assert_eq!(cli.run.target, Some("127.0.0.1:7000".parse().unwrap()));
        let v6: SocketAddr = "[::1]:7".parse().unwrap();
        let v4: SocketAddr = "127.0.0.1:7".parse().unwrap();
        assert_eq!(ipv4_first(&[v6, v4]), Some(v4));
        assert_eq!(ipv4_first(&[v6]), Some(v6));
        assert_eq!(ipv4_first(&[]), None);
        let error = parse(&["--target", "localhost"]).unwrap_err().to_string();
        assert!(error.contains("not a HOST:PORT that resolves"), "{error}");
    }

    #[test]
    fn subcommands_need_no_target() {
        let cli = parse(&["merge", "a.json", "b.json"]).unwrap();
        assert!(
            matches!(cli.command, Some(Command::Merge { ref reports, .. }) if reports.len() == 2)
        );
    }

    #[test]
    fn bad_flags_are_errors_not_panics() {
        for bad in [
            &[][..],
            &["--target", "nowhere"],
            &["--target", "127.0.0.1:1", "--connections", "0"],
            &["--target", "127.0.0.1:1", "--payload", "70000"],
            &["--target", "127.0.0.1:1", "--payload", ""],
            &["--target", "127.0.0.1:1", "--cpus", "3-1"],
            &["--target", "127.0.0.1:1", "--duration", "ten"],
            &["--target", "127.0.0.1:1", "--rate", "-5"],
            &["--target", "127.0.0.1:1", "--close-mix", "fin=1"],
            &[
                "--target",
                "127.0.0.1:1",
                "--total",
                "5",
                "--close-mix",
                "bogus",
            ],
            &["--target", "127.0.0.1:1", "--total", "5", "--hold", "3"],
            &["--target", "127.0.0.1:1", "--source-ips", "1.2.3"],
            &["merge"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
        let ok = parse(&[
            "--target",
            "127.0.0.1:1",
            "--cpus",
            "0,2-3",
            "--payload",
            "0,16,65535",
        ])
        .unwrap();
        assert_eq!(ok.run.cpus, Some(CpuList(vec![0, 2, 3])));
        assert_eq!(ok.run.payload, Some(PayloadSizes(vec![0, 16, 65535])));
        assert_eq!(ok.run.payloads(), [0, 16, 65535]);
    }
}
