//! A newline-delimited line protocol served by the engine, written only against its public API:
//! what a user of the library writes to get io_uring I/O and a close cause for every connection,
//! with a reply that comes later.
//!
//! | line           | reply                                              |
//! |----------------|----------------------------------------------------|
//! | `PING`         | `PONG`                                             |
//! | `TAG <u64>`    | `OK` (the close record's tag)                      |
//! | `DELAY <ms>`   | `DONE`, after that many milliseconds (at most 60 s) |
//! | `QUIT`         | `BYE`, then close (`peer_close`)                   |
//! | anything else  | `ERR unknown command`                              |
//!
//! `DELAY` is answered through a protocol timer: the core serves its other connections
//! meanwhile, and the lines that follow on the same connection are answered after `DONE`, in
//! order. A line longer than `--max-line` is a protocol violation: `ERR line too long`, then
//! close (`protocol_error`). Lines end with `\n` (a `\r` before it is ignored).
//!
//!     cargo run --release -p engine --example line -- --listen 127.0.0.1:7100
//!     printf 'TAG 7\nDELAY 500\nPING\nQUIT\n' | nc 127.0.0.1 7100

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use engine::{Config, Context, MessagePhase, Protocol, Server, Step};

/// The longest line accepted by default, in bytes (newline included).
const MAX_LINE_DEFAULT: usize = 1024;
/// The longest `DELAY`.
const DELAY_MAX_MS: u64 = 60_000;
/// Bytes of lines kept while a `DELAY` is pending; more is a protocol violation.
const HELD_MAX: usize = 64 * 1024;
/// The connection timer a `DELAY` uses.
const DELAY_TIMER: usize = 0;

struct Lines {
    max_line: usize,
}

/// One connection: the tag its `TAG` line set, and the lines that wait for a `DELAY`.
#[derive(Default)]
struct Session {
    tag: Option<u64>,
    delaying: bool,
    /// Complete lines received while `delaying`, answered after `DONE`.
    held: Vec<u8>,
}

/// What one complete line asks for.
enum Reply {
    Answer(&'static [u8]),
    Delay(Duration),
    Quit,
}

/// How answering a run of lines ended.
enum End {
    /// Every line was answered (or held).
    Served,
    /// `QUIT`, the line ending at this many bytes, was answered: close.
    Quit(usize),
    /// More lines wait than `HELD_MAX`.
    TooMuchHeld,
}

impl Lines {
    fn reply(&self, session: &mut Session, line: &[u8]) -> Reply {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line == b"PING" {
            return Reply::Answer(b"PONG\n");
        }
        if line == b"QUIT" {
            return Reply::Quit;
        }
        if let Some(tag) = line.strip_prefix(b"TAG ").and_then(parse_u64) {
            session.tag = Some(tag);
            return Reply::Answer(b"OK\n");
        }
        match line.strip_prefix(b"DELAY ").and_then(parse_u64) {
            Some(ms) if ms <= DELAY_MAX_MS => Reply::Delay(Duration::from_millis(ms)),
            Some(_) => Reply::Answer(b"ERR delay too long\n"),
            None => Reply::Answer(b"ERR unknown command\n"),
        }
    }

    /// Answers the complete `lines` (each ending in `\n`) in order; once a `DELAY` is pending,
    /// the rest are held for later. `inline`: write with `output()` (in `on_input`), else push.
    fn answer(
        &self,
        session: &mut Session,
        lines: &[u8],
        cx: &mut Context<'_, Self>,
        inline: bool,
    ) -> End {
        let mut used = 0;
        for line in lines.split_inclusive(|&byte| byte == b'\n') {
            used += line.len();
            if session.delaying {
                if session.held.len() + line.len() > HELD_MAX {
                    return End::TooMuchHeld;
                }
                session.held.extend_from_slice(line);
                continue;
            }
            let text = match self.reply(session, &line[..line.len() - 1]) {
                Reply::Answer(text) => text,
                Reply::Quit => {
                    write(cx, inline, b"BYE\n");
                    return End::Quit(used);
                }
                Reply::Delay(after) => {
                    let conn = cx.defer();
                    cx.set_timer(conn, DELAY_TIMER, after)
                        .expect("a live connection, a timer that exists, a bounded delay");
                    session.delaying = true;
                    continue;
                }
            };
            write(cx, inline, text);
        }
        End::Served
    }
}

/// One reply, into the output of the input being handled or pushed later.
fn write(cx: &mut Context<'_, Lines>, inline: bool, text: &[u8]) {
    if inline {
        cx.output().push(text);
    } else if let Some(conn) = cx.conn() {
        // A connection that closed meanwhile does not need it.
        let _ = cx.push(conn, text);
    }
}

impl Protocol for Lines {
    type Session = Session;
    type CoreState = ();
    type Message = ();

    fn core_state(&self, _core: u16) {}

    fn open(&self, _peer: Option<SocketAddr>, _cx: &mut Context<'_, Self>) -> Session {
        Session::default()
    }

    fn on_input(&self, session: &mut Session, input: &[u8], cx: &mut Context<'_, Self>) -> Step {
        // Whole lines only (the engine keeps the incomplete last one), each within the bound.
        let mut used = 0;
        while let Some(end) = input[used..].iter().position(|&byte| byte == b'\n') {
            if end + 1 > self.max_line {
                break;
            }
            used += end + 1;
        }
        let count = |bytes: &[u8]| bytes.iter().filter(|&&byte| byte == b'\n').count() as u64;
        let lines = count(&input[..used]);
        match self.answer(session, &input[..used], cx, true) {
            End::Served => {}
            End::Quit(end) => return Step::peer_close(end, count(&input[..end])),
            End::TooMuchHeld => {
                cx.output().push(b"ERR too many lines while delayed\n");
                return Step::violation(used, lines);
            }
        }
        if input.len() - used >= self.max_line {
            // A line that cannot end within the bound: answer, then close.
            cx.output().push(b"ERR line too long\n");
            return Step::violation(used, lines);
        }
        Step::more(used, lines)
    }

    fn on_timer(&self, session: &mut Session, _timer: usize, cx: &mut Context<'_, Self>) {
        let Some(conn) = cx.conn() else { return };
        if cx.reply(conn, b"DONE\n").is_err() {
            return; // closing: the lines held do not need answers either
        }
        session.delaying = false;
        let held = std::mem::take(&mut session.held);
        match self.answer(session, &held, cx, false) {
            End::Served => {}
            End::Quit(_) => {
                let _ = cx.close_as_asked(conn);
            }
            End::TooMuchHeld => unreachable!("held lines fit HELD_MAX when they arrived"),
        }
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
