//! The engine as a library: `engine/examples/line.rs`, a line protocol written only against the
//! public API, run as a real process. Every cause loopback can produce, asserted in its close
//! record and in `engine_connections_closed_total`: the library gives a user's protocol the same
//! verdicts as the engine's own.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::Duration;

use serde_json::json;
use socket2::SockRef;
use tests::{assert_fields, closed_key, example_binary, Engine, WAIT};

/// A line client: writes lines, reads replies.
struct Lines {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
}

impl Lines {
    #[track_caller]
    fn connect(engine: &Engine, tag: u64) -> Lines {
        let stream = TcpStream::connect_timeout(&engine.listen, WAIT).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        let mut lines = Lines { stream, reader };
        lines.send(format!("TAG {tag}\n").as_bytes());
        assert_eq!(lines.reply(), "OK");
        lines
    }

    #[track_caller]
    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    #[track_caller]
    fn reply(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("read a reply");
        line.trim_end().to_owned()
    }

    /// Reads to the end of the stream; true for an orderly FIN.
    #[track_caller]
    fn fin(&mut self) -> bool {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(error) => panic!("expected FIN, got {error}"),
        }
    }
}

fn line_server(args: &[&str]) -> Engine {
    Engine::start_program(&example_binary("line"), args)
}

#[test]
fn every_cause_reaches_the_record_and_the_counters() {
    let engine = line_server(&["--max-line", "64"]);
    let before = engine.metrics();

    let mut fin = Lines::connect(&engine, 1);
    fin.send(b"PING\n");
    assert_eq!(fin.reply(), "PONG");
    fin.stream.shutdown(Shutdown::Write).unwrap();
    assert!(fin.fin());

    let mut mid = Lines::connect(&engine, 2);
    mid.send(b"PIN");
    mid.stream.shutdown(Shutdown::Write).unwrap();
    assert!(mid.fin());

    let reset = Lines::connect(&engine, 3);
    SockRef::from(&reset.stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(reset);

    let mut quit = Lines::connect(&engine, 4);
    quit.send(b"PING\nQUIT\nPING\n");
    assert_eq!(quit.reply(), "PONG");
    assert_eq!(quit.reply(), "BYE");
    assert!(quit.fin(), "nothing after BYE, then FIN");

    let mut long = Lines::connect(&engine, 5);
    long.send(&[b'x'; 100]);
    assert_eq!(long.reply(), "ERR line too long");
    assert!(long.fin());

    let expected = [
        (1, "peer_fin", "idle", 0),
        (2, "peer_fin_mid_frame", "header", 3),
        (3, "peer_reset", "idle", 0),
        (4, "peer_close", "idle", 0),
        (5, "protocol_error", "idle", 0),
    ];
    for (tag, cause, phase, partial) in expected {
        let record = engine.wait_record_for_tag(tag, WAIT);
        assert_fields(
            &record,
            &[
                ("cause", json!(cause)),
                ("phase", json!(phase)),
                ("partial_bytes", json!(partial)),
            ],
        );
        engine.wait_metric_delta(&before, &closed_key(cause), 1.0, WAIT);
    }
    let quit_record = engine.wait_record_for_tag(4, WAIT);
    assert_fields(
        &quit_record,
        &[("frames_in", json!(3)), ("frames_out", json!(3))],
    );
}

#[test]
fn timers_reach_the_record_and_the_counters() {
    let engine = line_server(&["--idle-timeout", "200ms", "--read-timeout", "200ms"]);
    let before = engine.metrics();
    let mut idle = Lines::connect(&engine, 11);
    let mut stalled = Lines::connect(&engine, 12);
    stalled.send(b"PI");
    assert!(idle.fin(), "the idle connection is closed");
    assert!(stalled.fin(), "the stalled line is closed");
    for (tag, cause, phase) in [(11, "idle_timeout", "idle"), (12, "read_timeout", "header")] {
        let record = engine.wait_record_for_tag(tag, WAIT);
        assert_fields(&record, &[("cause", json!(cause)), ("phase", json!(phase))]);
        engine.wait_metric_delta(&before, &closed_key(cause), 1.0, WAIT);
    }
}

#[test]
fn the_drain_closes_idle_connections_and_lets_a_started_line_finish() {
    let mut engine = line_server(&[]);
    let before = engine.metrics();
    let mut idle = Lines::connect(&engine, 21);
    let mut started = Lines::connect(&engine, 22);
    started.send(b"PI");
    engine.sigterm();
    assert!(idle.fin(), "an idle connection closes at once");
    engine.wait_metric_delta(&before, &closed_key("shutdown"), 1.0, WAIT);
    started.send(b"NG\n");
    assert_eq!(started.reply(), "PONG", "the line in progress is answered");
    assert!(started.fin(), "then the connection closes");
    assert!(engine.wait_exit(WAIT).success());
    for tag in [21, 22] {
        let record = engine.wait_record_for_tag(tag, WAIT);
        assert_fields(
            &record,
            &[("cause", json!("shutdown")), ("phase", json!("idle"))],
        );
    }
    let finished = engine.wait_record_for_tag(22, WAIT);
    assert_fields(
        &finished,
        &[("frames_in", json!(2)), ("frames_out", json!(2))],
    );
}
