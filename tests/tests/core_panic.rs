//! The failure policy for a core that panics (ARCHITECTURE.md): the process does not hang with a
//! dead core. The panicking core records its connections as `error`, the other cores drain and
//! record theirs as `shutdown`, and the process exits 1 with one clear line, within a bound.
//!
//! The fault is injected the way it most often happens: the user's protocol panics
//! (`tests/src/bin/panicking_server.rs`, a server on the engine library, panics on `PANIC`).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tests::{assert_fields, Engine, WAIT};

/// Connections opened to find some on each core (SO_REUSEPORT spreads them by hash).
const CONNECTIONS: u64 = 24;
/// The process must be gone this long after the panic.
const EXIT_BOUND: Duration = Duration::from_secs(10);

struct Line {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Line {
    #[track_caller]
    fn ask(&mut self, line: &str) -> String {
        self.stream.write_all(line.as_bytes()).expect("send");
        let mut reply = String::new();
        self.reader.read_line(&mut reply).expect("reply");
        reply.trim_end().to_owned()
    }
}

#[test]
fn a_core_that_panics_fails_the_process_fast_and_every_connection_is_recorded() {
    let binary = Path::new(env!("CARGO_BIN_EXE_panicking_server"));
    let mut engine = Engine::start_program(binary, &["--cores", "2"]);
    let mut by_core: [Vec<(u64, Line)>; 2] = [Vec::new(), Vec::new()];
    for tag in 0..CONNECTIONS {
        let stream = TcpStream::connect_timeout(&engine.listen, WAIT).expect("connect");
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = Line { stream, reader };
        assert_eq!(line.ask(&format!("TAG {tag}\n")), "OK");
        let core = match line.ask("WHO\n").as_str() {
            "CORE 0" => 0,
            "CORE 1" => 1,
            other => panic!("unexpected reply {other:?}"),
        };
        by_core[core].push((tag, line));
    }
    assert!(
        by_core.iter().all(|conns| !conns.is_empty()),
        "{CONNECTIONS} connections all landed on one core"
    );

    by_core[0][0]
        .1
        .stream
        .write_all(b"PANIC\n")
        .expect("send PANIC");
    let status = engine.wait_exit(EXIT_BOUND);
    assert_eq!(status.code(), Some(1), "a failed core fails the process");
    let stderr = engine.stderr();
    let headline = stderr
        .lines()
        .find(|line| line.starts_with("engine: "))
        .unwrap_or_else(|| panic!("no one-line reason in {stderr}"));
    assert!(
        headline.contains("core 0 panicked (asked to panic)"),
        "{headline}"
    );

    let records = engine.records();
    assert_eq!(
        records.len() as u64,
        CONNECTIONS,
        "one record per connection"
    );
    for (core, conns) in by_core.iter().enumerate() {
        let cause = if core == 0 { "error" } else { "shutdown" };
        for (tag, _) in conns {
            let record = engine.wait_record_for_tag(*tag, WAIT);
            assert_fields(&record, &[("core", json!(core)), ("cause", json!(cause))]);
        }
    }
}
