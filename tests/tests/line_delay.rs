//! The line example's `DELAY`, a reply that comes later, run as a real process: it keeps the
//! order of the replies on its connection, never blocks the core's other connections, is still
//! sent after `QUIT` or the peer's half-close, and keeps its connection from being closed as
//! idle while it is owed.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use tests::{assert_fields, example_binary, Engine, WAIT};

/// The delays asked for, and how much earlier than asked a reply may come (the engine's clock
/// is read once per loop turn).
const DELAY: Duration = Duration::from_millis(1000);
const SHORT_DELAY: Duration = Duration::from_millis(300);
const EARLY_MAX: Duration = Duration::from_millis(5);
/// The bound asserted on a `PING` answered during another connection's `DELAY` (expected:
/// well under 10 ms on loopback).
const PONG_MAX: Duration = Duration::from_millis(100);
/// `PING`s sent during the delay.
const PINGS: usize = 5;

/// A line client: writes lines, reads replies, each read bounded by [`WAIT`].
struct Lines {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Lines {
    /// Connects, and tags the connection `tag` (the close record's `tag`).
    #[track_caller]
    fn connect(engine: &Engine, tag: u64) -> Lines {
        let stream = TcpStream::connect_timeout(&engine.listen, WAIT).expect("connect");
        stream.set_nodelay(true).expect("TCP_NODELAY");
        stream.set_read_timeout(Some(WAIT)).expect("SO_RCVTIMEO");
        stream.set_write_timeout(Some(WAIT)).expect("SO_SNDTIMEO");
        let reader = BufReader::new(stream.try_clone().expect("clone stream"));
        let mut lines = Lines { stream, reader };
        lines.send(&format!("TAG {tag}\n"));
        lines.expect("OK");
        lines
    }

    #[track_caller]
    fn send(&mut self, text: &str) {
        self.stream.write_all(text.as_bytes()).expect("send");
    }

    #[track_caller]
    fn expect(&mut self, expected: &str) {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(_) => assert_eq!(line.trim_end(), expected),
            Err(error) => panic!("no {expected:?} within {WAIT:?}: {error} ({line:?})"),
        }
    }

    /// Reads to the end of the stream, which must be an orderly FIN with nothing before it.
    #[track_caller]
    fn expect_fin(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "nothing more: {rest:?}"),
            Err(error) if error.kind() == ErrorKind::ConnectionReset => panic!("RST, not FIN"),
            Err(error) => panic!("expected FIN: {error}"),
        }
    }
}

fn line_server(args: &[&str]) -> Engine {
    Engine::start_program(&example_binary("line"), args)
}

#[track_caller]
fn assert_not_early(elapsed: Duration, asked: Duration, what: &str) {
    assert!(
        elapsed + EARLY_MAX >= asked,
        "{what} after {elapsed:?}, {asked:?} was asked"
    );
}

#[test]
fn a_delay_keeps_the_order_of_its_connection_and_blocks_no_other() {
    let engine = line_server(&[]); // one core: the other connection is on the delayed one's core
    let mut delayed = Lines::connect(&engine, 1);
    let mut other = Lines::connect(&engine, 2);

    let started = Instant::now();
    delayed.send(&format!("DELAY {}\nPING\n", DELAY.as_millis()));
    let mut latencies = Vec::with_capacity(PINGS);
    for _ in 0..PINGS {
        thread::sleep(DELAY / (PINGS as u32 + 2));
        let sent = Instant::now();
        other.send("PING\n");
        other.expect("PONG");
        latencies.push(sent.elapsed());
    }
    assert!(
        started.elapsed() < DELAY,
        "the PINGs ran past the delay: {latencies:?}"
    );
    let slowest = latencies.iter().max().copied().unwrap_or_default();
    println!("PING during another connection's DELAY: {latencies:?} (slowest {slowest:?})");
    assert!(slowest < PONG_MAX, "PONGs took {latencies:?}");

    delayed.expect("DONE");
    let done = started.elapsed();
    delayed.expect("PONG");
    println!("DONE after {done:?} (DELAY {DELAY:?})");
    assert_not_early(done, DELAY, "DONE");
    assert!(done < DELAY + WAIT, "DONE after {done:?}");
}

#[test]
fn quit_after_a_delay_waits_for_done_then_closes_as_peer_close() {
    let engine = line_server(&[]);
    let mut client = Lines::connect(&engine, 3);
    let started = Instant::now();
    client.send(&format!("DELAY {}\nQUIT\n", SHORT_DELAY.as_millis()));
    client.expect("DONE");
    assert_not_early(started.elapsed(), SHORT_DELAY, "DONE");
    client.expect("BYE");
    client.expect_fin();
    let record = engine.wait_record_for_tag(3, WAIT);
    assert_fields(
        &record,
        &[
            ("cause", json!("peer_close")),
            ("frames_in", json!(3)),
            ("frames_out", json!(3)),
        ],
    );
}

#[test]
fn a_half_closed_peer_still_gets_its_delayed_reply() {
    let engine = line_server(&[]);
    let mut client = Lines::connect(&engine, 4);
    let started = Instant::now();
    client.send(&format!("DELAY {}\n", SHORT_DELAY.as_millis()));
    client.stream.shutdown(Shutdown::Write).expect("SHUT_WR");
    client.expect("DONE");
    assert_not_early(started.elapsed(), SHORT_DELAY, "DONE");
    client.expect_fin();
    let record = engine.wait_record_for_tag(4, WAIT);
    assert_fields(
        &record,
        &[
            ("cause", json!("peer_fin")),
            ("frames_in", json!(2)),
            ("frames_out", json!(2)),
        ],
    );
}

#[test]
fn a_connection_owed_a_reply_is_not_closed_as_idle() {
    let idle = Duration::from_millis(300);
    let engine = line_server(&["--idle-timeout", "300ms"]);
    let mut client = Lines::connect(&engine, 5);
    let started = Instant::now();
    client.send(&format!("DELAY {}\n", DELAY.as_millis()));
    client.expect("DONE");
    assert_not_early(started.elapsed(), DELAY, "DONE");
    // Once the reply is sent, the idle clock runs again: the connection ends idle.
    client.expect_fin();
    let closed = started.elapsed();
    println!("closed {closed:?} after the DELAY line");
    let record = engine.wait_record_for_tag(5, WAIT);
    assert_fields(&record, &[("cause", json!("idle_timeout"))]);
    let duration = Duration::from_micros(record["duration_us"].as_u64().expect("duration_us"));
    assert_not_early(duration, DELAY + idle, "the idle close");
}
