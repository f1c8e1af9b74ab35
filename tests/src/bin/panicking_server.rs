//! A server on the engine library whose protocol panics on demand: the fault the core-panic
//! test injects (a bug in a user's protocol is the likeliest panic on a core).
//!
//! Lines: `WHO` → `CORE <n>` (the core serving this connection), `TAG <u64>` → `OK`,
//! `PANIC` → the core panics. Flags: `--listen`, `--admin`, `--cores`, `--close-log`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use engine::{Config, Context, MessagePhase, Protocol, Server, Step};

struct Faulty;

#[derive(Default)]
struct Session {
    tag: Option<u64>,
}

impl Protocol for Faulty {
    type Session = Session;
    type CoreState = ();
    type Message = ();

    fn core_state(&self, _core: u16) {}

    fn open(&self, _peer: Option<SocketAddr>, _cx: &mut Context<'_, Self>) -> Session {
        Session::default()
    }

    fn on_input(&self, session: &mut Session, input: &[u8], cx: &mut Context<'_, Self>) -> Step {
        let (mut used, mut lines) = (0, 0);
        while let Some(end) = input[used..].iter().position(|&byte| byte == b'\n') {
            let line = &input[used..used + end];
            used += end + 1;
            lines += 1;
            if line == b"PANIC" {
                panic!("asked to panic");
            } else if line == b"WHO" {
                let core = cx.core();
                cx.output().push(format!("CORE {core}\n").as_bytes());
            } else if let Some(tag) = line.strip_prefix(b"TAG ") {
                session.tag = std::str::from_utf8(tag).ok().and_then(|t| t.parse().ok());
                cx.output().push(b"OK\n");
            }
        }
        Step::more(used, lines)
    }

    fn partial_phase(&self, _: &Session, _: &[u8]) -> MessagePhase {
        MessagePhase::Header
    }

    fn tag(&self, session: &Session) -> Option<u64> {
        session.tag
    }
}

fn config_from_args() -> Result<Config, String> {
    let mut config = Config::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        let addr = || {
            value
                .parse::<SocketAddr>()
                .map_err(|e| format!("{flag}: {e}"))
        };
        config = match flag.as_str() {
            "--listen" => config.listen(addr()?),
            "--admin" => config.admin(Some(addr()?)),
            "--cores" => config.cores(value.parse().map_err(|e| format!("{flag}: {e}"))?),
            "--close-log" => config.close_log(Some(PathBuf::from(value))),
            _ => return Err(format!("unknown flag {flag}")),
        };
    }
    Ok(config)
}

fn main() -> ExitCode {
    let result = config_from_args()
        .map_err(|error| error.to_string())
        .and_then(|config| Server::start(config, Faulty).map_err(|error| error.to_string()));
    let server = match result {
        Ok(server) => server,
        Err(error) => {
            eprintln!("panicking_server: {error}");
            return ExitCode::from(2);
        }
    };
    let admin = server.admin_addr().expect("admin configured");
    println!("engine ready listen={} admin={admin}", server.local_addr());
    match server.wait() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("engine: {error}");
            ExitCode::FAILURE
        }
    }
}
