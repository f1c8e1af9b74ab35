//! The `engine` command: parse flags, set up logging, run until drained. The binary is a
//! one-line `main` around [`main`], so integration tests can build the same program.

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::config::{Args, LogFormat};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Without RUST_LOG: info, except the per-close events. Formatting one costs a core ~6 µs, about
/// 15% of a short connection's whole cost (measured in churn), while the close log's JSON is
/// written by its own thread; `RUST_LOG=info` shows them.
const DEFAULT_LOG_FILTER: &str = "info,engine::close=warn";

pub fn main() -> ExitCode {
    let args = Args::parse();
    // Lossy: a stalled stderr must never stall the cores. Drops are counted on /metrics; the
    // close log (--close-log) is the lossless record.
    let (writer, _guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(true)
        .finish(std::io::stderr());
    let log_drops = writer.error_counter();
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_LOG_FILTER));
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colour codes only for a terminal, never into a file or a log collector.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(writer);
    match args.log_format {
        LogFormat::Text => subscriber.init(),
        LogFormat::Json => subscriber.json().init(),
    }
    match crate::server::run(&args, move || log_drops.dropped_lines() as u64) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Flush the log lines before the one line that says why.
            drop(_guard);
            eprintln!("engine: {error}");
            ExitCode::FAILURE
        }
    }
}
