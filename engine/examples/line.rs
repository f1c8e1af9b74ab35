//! A newline-delimited line protocol served by the engine, written only against its public API:
//! what a user of the library writes to get io_uring I/O and a close cause for every connection.
//!
//! | line          | reply                         |
//! |---------------|-------------------------------|
//! | `PING`        | `PONG`                        |
//! | `TAG <u64>`   | `OK` (the close record's tag) |
//! | `QUIT`        | `BYE`, then close (`local_close`) |
//! | anything else | `ERR unknown command`         |
//!
//! A line longer than `--max-line` is a protocol violation: `ERR line too long`, then close
//! (`protocol_error`). Lines end with `\n` (a `\r` before it is ignored).
//!
//!     cargo run --release -p engine --example line -- --listen 127.0.0.1:7100
//!     printf 'TAG 7\nPING\nQUIT\n' | nc 127.0.0.1 7100

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use engine::{Config, Context, MessagePhase, Output, Protocol, Server, Step};

/// The longest line accepted by default, in bytes (newline included).
const MAX_LINE_DEFAULT: usize = 1024;

struct Lines {
    max_line: usize,
}

/// One connection: the tag its `TAG` line set.
#[derive(Default)]
struct Session {
    tag: Option<u64>,
}

/// What one complete line asks for.
enum Reply {
    Answer(&'static [u8]),
    Quit,
}

impl Lines {
    fn answer(&self, session: &mut Session, line: &[u8]) -> Reply {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match line {
            b"PING" => Reply::Answer(b"PONG\n"),
            b"QUIT" => Reply::Quit,
            _ => match line.strip_prefix(b"TAG ").and_then(parse_u64) {
                Some(tag) => {
                    session.tag = Some(tag);
                    Reply::Answer(b"OK\n")
                }
                None => Reply::Answer(b"ERR unknown command\n"),
            },
        }
    }
}

impl Protocol for Lines {
    type Session = Session;

    fn open(&self, _peer: Option<SocketAddr>) -> Session {
        Session::default()
    }

    fn on_input(
        &self,
        session: &mut Session,
        input: &[u8],
        out: &mut Output<'_>,
        _: &Context,
    ) -> Step {
        let (mut used, mut lines) = (0, 0);
        while let Some(end) = input[used..].iter().position(|&byte| byte == b'\n') {
            if end + 1 > self.max_line {
                break;
            }
            let line = &input[used..used + end];
            used += end + 1;
            lines += 1;
            match self.answer(session, line) {
                Reply::Answer(text) => out.push(text),
                Reply::Quit => {
                    out.push(b"BYE\n");
                    return Step::close(used, lines);
                }
            }
        }
        if input.len() - used >= self.max_line {
            // A line that cannot end within the bound: answer, then close.
            out.push(b"ERR line too long\n");
            return Step::violation(used, lines);
        }
        Step::more(used, lines) // the engine keeps the incomplete line
    }

    fn partial_phase(&self, _: &Session, _tail: &[u8]) -> MessagePhase {
        MessagePhase::Header // a line has no body
    }

    fn tag(&self, session: &Session) -> Option<u64> {
        session.tag
    }

    fn message_max(&self) -> usize {
        self.max_line
    }
}

fn parse_u64(text: &[u8]) -> Option<u64> {
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// The line protocol on the engine.
#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:7100")]
    listen: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:7101")]
    admin: SocketAddr,
    #[arg(long)]
    cores: Option<u16>,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    idle_timeout: Duration,
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    read_timeout: Duration,
    #[arg(long)]
    close_log: Option<PathBuf>,
    /// The longest line, in bytes, newline included.
    #[arg(long, default_value_t = MAX_LINE_DEFAULT, value_parser = clap::value_parser!(usize))]
    max_line: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = Config::new()
        .listen(args.listen)
        .admin(Some(args.admin))
        .idle_timeout(args.idle_timeout)
        .read_timeout(args.read_timeout)
        .close_log(args.close_log);
    if let Some(cores) = args.cores {
        config = config.cores(cores);
    }
    let proto = Lines {
        max_line: args.max_line.max(2),
    };
    let server = match Server::start(config, proto) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("line: {error}");
            return ExitCode::FAILURE;
        }
    };
    let admin = server
        .admin_addr()
        .expect("an admin address was configured");
    println!("engine ready listen={} admin={admin}", server.local_addr());
    match server.wait() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("line: {error}");
            ExitCode::FAILURE
        }
    }
}
