//! The `engine` command: parse flags, set up logging, serve the chosen protocol until drained.
//! A thin CLI over the library: everything it does goes through `engine`'s public API.

mod arena;
mod args;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use engine::frame::FrameProtocol;
use engine::http::Http;
use engine::{Config, Protocol, Server};
use tracing_subscriber::EnvFilter;

use arena::Arena;
use args::{Args, LogFormat, ProtocolName};

/// Without RUST_LOG: info, except the per-close events. Formatting one costs a core ~6 µs, about
/// 15% of a short connection's whole cost (measured in churn), while the close log's JSON is
/// written by its own thread; `RUST_LOG=info` shows them.
const DEFAULT_LOG_FILTER: &str = "info,engine::close=warn";

fn main() -> ExitCode {
    let args = Args::parse();
    // Lossy: a stalled stderr must never stall the cores. Drops are counted on /metrics; the
    // close log (--close-log) is the lossless record.
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
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
    let config = args
        .config()
        .log_drops(Arc::new(move || log_drops.dropped_lines() as u64));
    let result = match args.protocol {
        ProtocolName::Frame => {
            let proto = FrameProtocol::new(args.max_frame).expect("checked by the flag parser");
            run(config, proto, args.protocol)
        }
        ProtocolName::Http => match args.http_limits() {
            Ok(limits) => run(config, Http::new(Arena, limits), args.protocol),
            Err(error) => Err(error.into()),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Flush the log lines before the one line that says why.
            drop(guard);
            eprintln!("engine: {error}");
            ExitCode::FAILURE
        }
    }
}

fn run<P: Protocol>(
    config: Config,
    proto: P,
    name: ProtocolName,
) -> Result<(), Box<dyn std::error::Error>> {
    let server = Server::start(config, proto)?;
    let admin = server
        .admin_addr()
        .map_or_else(|| "off".to_owned(), |addr| addr.to_string());
    // The one ready line, on stdout: scripts and tests read the bound addresses from it.
    println!(
        "engine ready listen={} admin={admin} protocol={} cores={} max_connections={}",
        server.local_addr(),
        name.label(),
        server.cores(),
        server.max_connections()
    );
    server.wait()?;
    Ok(())
}
