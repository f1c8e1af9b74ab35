//! End to end over HTTP/1.1: a real `engine --protocol http` and the real loadgen on loopback.
//! Churn over every close mode verifies clean against the close log (cause, frames out, and the
//! phase and partial bytes of the requests cut short) and /metrics; a doctored log does not;
//! every response of both workloads is checked in closed and open loop, pipelined 16 deep; a
//! server that answers from a cache is caught; bad flag combinations exit 2.

mod support;

use std::collections::HashSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{
    code, describe, doctor_log, loadgen, read_json, report_tags, temp_dir, verify_against, Engine,
    EVERY_MODE,
};

/// A loadgen run over HTTP against `engine` with `extra` flags, verified against its close
/// log and /metrics; returns the JSON report after asserting exit 0 and a clean verification.
#[track_caller]
fn verified_run(engine: &Engine, report: &std::path::Path, extra: &[&str]) -> Value {
    let log = engine.close_log();
    let url = engine.metrics_url();
    let mut args = vec![
        "--target",
        &engine.listen,
        "--protocol",
        "http",
        "--verify-log",
        log.to_str().unwrap(),
        "--verify-metrics",
        &url,
        "--json",
        report.to_str().unwrap(),
        "--quiet",
    ];
    args.extend_from_slice(extra);
    let output = loadgen(&args);
    assert_eq!(code(&output), 0, "{extra:?}: {}", describe(&output));
    let report = read_json(report);
    let verification = &report["verification"];
    assert_eq!(verification["mismatched"], 0, "{verification:#}");
    assert_eq!(verification["lost_replies"], 0, "{verification:#}");
    assert_eq!(verification["corrupt_replies"], 0, "{verification:#}");
    assert_eq!(verification["metrics_checked"], true);
    assert_eq!(report["replies"], report["requests"], "{extra:?}");
    assert_eq!(report["errors"], serde_json::json!({}), "{extra:?}");
    report
}

/// The tags of `report` whose mode is `mode`.
fn tags_of<'a>(report: &'a Value, mode: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
    report["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter(move |t| t["mode"] == mode)
}

#[test]
fn http_churn_over_every_close_mode_verifies_and_a_doctored_log_does_not() {
    let dir = temp_dir("http-churn");
    let engine = Engine::start_http();
    let report_path = dir.join("report.json");
    let report = verified_run(
        &engine,
        &report_path,
        &[
            "--total",
            "160",
            "--connections",
            "40",
            "--requests-per-conn",
            "3",
            "--pipeline",
            "2",
            "--close-mix",
            EVERY_MODE,
        ],
    );
    assert_eq!(report["protocol"], "http baseline");
    assert_eq!(report["verification"]["checked"], 160);
    assert_eq!(report["connections"]["opened"], 160);
    let by_mode = report["connections"]["closed_by_mode"].as_object().unwrap();
    for mode in EVERY_MODE.split(',').map(|m| m.split('=').next().unwrap()) {
        assert!(
            by_mode.contains_key(mode),
            "no connection drew {mode}: {by_mode:?}"
        );
    }
    // 3 requests each, and one more (answered 400) per bad-frame connection.
    let bad = by_mode["bad-frame"].as_u64().unwrap();
    assert_eq!(report["replies"].as_u64().unwrap(), 160 * 3 + bad);
    assert_known_phases(&report);

    // Change one idle connection's cause and one cut-short request's phase (mid-frame or
    // stall): two mismatches.
    let doctored_path = dir.join("doctored.jsonl");
    let edits = [
        ("cause", "idle_timeout", "peer_fin"),
        ("phase", "header", "body"),
    ];
    doctor_log(
        &engine.close_log(),
        &report_tags(&report),
        &doctored_path,
        &edits,
    );
    let verified_path = dir.join("verified.json");
    let output = verify_against(&report_path, &doctored_path, &verified_path);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("cause: expected idle_timeout, got peer_fin")
            && stdout.contains("phase: expected header, got body"),
        "{stdout}"
    );
    let verification = &read_json(&verified_path)["verification"];
    assert_eq!(verification["mismatched"], 2, "{verification:#}");
    let checks: HashSet<&str> = verification["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["check"].as_str().unwrap())
        .collect();
    assert_eq!(checks, HashSet::from(["cause", "phase"]));
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The requests cut short (mid-frame, stall) alternate between the head and the body and say
/// how long they were; the connections that end between requests are in phase idle.
#[track_caller]
fn assert_known_phases(report: &Value) {
    for mode in ["mid-frame", "stall"] {
        let cut: HashSet<(&str, u64)> = tags_of(report, mode)
            .map(|t| {
                (
                    t["phase"].as_str().unwrap(),
                    t["partial_bytes"].as_u64().unwrap(),
                )
            })
            .collect();
        let phases: HashSet<&str> = cut.iter().map(|&(phase, _)| phase).collect();
        assert_eq!(phases, HashSet::from(["header", "body"]), "{mode}: {cut:?}");
        assert!(cut.iter().all(|&(_, bytes)| bytes > 0), "{mode}: {cut:?}");
    }
    for mode in ["fin", "reset", "idle"] {
        assert!(
            tags_of(report, mode).all(|t| t["phase"] == "idle" && t["partial_bytes"] == 0),
            "{mode}"
        );
    }
    for mode in ["half-close", "close-request", "bad-frame"] {
        assert!(
            tags_of(report, mode).all(|t| t.get("phase").is_none()),
            "{mode}"
        );
    }
}

#[test]
fn http_closed_and_open_loop_check_every_response_of_both_workloads() {
    let dir = temp_dir("http-loops");
    let engine = Engine::start_http();
    for workload in ["pipeline", "baseline"] {
        for shape in [&["--pipeline", "4"][..], &["--rate", "1000"]] {
            let path = dir.join(format!("{workload}-{}.json", shape[0].trim_matches('-')));
            let mut extra = vec![
                "--http-workload",
                workload,
                "--connections",
                "4",
                "--threads",
                "2",
                "--duration",
                "400ms",
            ];
            extra.extend_from_slice(shape);
            let report = verified_run(&engine, &path, &extra);
            assert_eq!(report["protocol"], format!("http {workload}"));
            assert!(report["replies"].as_u64().unwrap() > 100, "{report:#}");
            assert_eq!(report["verification"]["checked"], 4);
            assert_eq!(report["connections"]["closed_by_mode"]["fin"], 4);
            assert!(report["latency_us"]["p50"].as_u64().unwrap() > 0);
            if shape[0] == "--rate" {
                assert_eq!(report["rates"][0]["reached"], true, "{report:#}");
                assert!(report["latency_uncorrected_us"]["p50"].is_u64());
            }
        }
    }
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Sixteen requests in flight per connection: answered in order (each response is checked
/// against its own request's sum), also when a connection ends right after its last send.
#[test]
fn http_pipelining_16_is_answered_in_order() {
    let dir = temp_dir("http-pipeline");
    let engine = Engine::start_http();
    let closed = verified_run(
        &engine,
        &dir.join("closed.json"),
        &[
            "--pipeline",
            "16",
            "--connections",
            "2",
            "--duration",
            "300ms",
        ],
    );
    assert!(closed["replies"].as_u64().unwrap() > 16 * 2, "{closed:#}");
    let churn = verified_run(
        &engine,
        &dir.join("churn.json"),
        &[
            "--pipeline",
            "16",
            "--total",
            "24",
            "--connections",
            "8",
            "--requests-per-conn",
            "40",
            "--close-mix",
            "fin,half-close,close-request",
        ],
    );
    assert_eq!(churn["verification"]["checked"], 24);
    assert_eq!(churn["replies"], 24 * 40);
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn http_hold_keeps_tagged_idle_connections_open() {
    let dir = temp_dir("http-hold");
    let engine = Engine::start_http();
    // The hold (100 ms) is shorter than the engine's idle timeout (200 ms): the client closes
    // them between requests, so the engine records peer_fin in phase idle.
    let report = verified_run(
        &engine,
        &dir.join("hold.json"),
        &["--hold", "20", "--duration", "100ms"],
    );
    assert_eq!(report["connections"]["opened"], 20);
    assert_eq!(report["connections"]["closed_by_mode"]["hold"], 20);
    assert_eq!(report["verification"]["checked"], 20);
    assert_eq!(
        report["replies"], 20,
        "one tagged request each carries the tag"
    );
    drop(engine);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A server that answers every request with the same sum: each answer is counted corrupt.
#[test]
fn a_cached_answer_is_counted_corrupt() {
    let dir = temp_dir("http-cached");
    let (addr, server) = cached_answer_server();
    let path = dir.join("report.json");
    let target = addr.to_string();
    let output = loadgen(&[
        "--target",
        &target,
        "--protocol",
        "http",
        "--duration",
        "200ms",
        "--json",
        path.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code(&output), 1, "{}", describe(&output));
    let report = read_json(&path);
    let replies = report["replies"].as_u64().unwrap();
    assert!(replies > 0, "{report:#}");
    assert_eq!(
        report["verification"]["corrupt_replies"], replies,
        "{report:#}"
    );
    assert_eq!(server.join().unwrap(), replies);
    let _ = std::fs::remove_dir_all(&dir);
}

/// One connection answered `55` to every request (counted by request line) until EOF; returns
/// the number of answers.
fn cached_answer_server() -> (SocketAddr, JoinHandle<u64>) {
    const ANSWER: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n55";
    const REQUEST_LINE_END: &[u8] = b" HTTP/1.1\r\n";
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = thread::spawn(move || {
        let mut stream = accept_within(&listener, support::RUN_TIMEOUT);
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (mut answered, mut seen, mut buf) = (0, Vec::new(), [0u8; 16384]);
        while let Ok(n @ 1..) = stream.read(&mut buf) {
            seen.extend_from_slice(&buf[..n]);
            let lines = seen
                .windows(REQUEST_LINE_END.len())
                .filter(|w| *w == REQUEST_LINE_END)
                .count();
            let last = seen
                .windows(REQUEST_LINE_END.len())
                .rposition(|w| w == REQUEST_LINE_END);
            if let Some(at) = last {
                seen.drain(..at + REQUEST_LINE_END.len());
            }
            for _ in 0..lines {
                stream.write_all(ANSWER).unwrap();
            }
            answered += lines as u64;
        }
        answered
    });
    (addr, server)
}

#[track_caller]
fn accept_within(listener: &TcpListener, timeout: Duration) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + timeout;
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                stream.set_nonblocking(false).unwrap();
                return stream;
            }
            Err(error) if error.kind() == ErrorKind::WouldBlock => {
                assert!(
                    Instant::now() < deadline,
                    "no connection within {timeout:?}"
                );
                thread::sleep(Duration::from_millis(10));
            }
            Err(error) => panic!("accept: {error}"),
        }
    }
}

#[test]
fn http_flags_that_do_not_go_together_exit_2() {
    for (args, says) in [
        (
            &["--target", "127.0.0.1:1", "--http-workload", "pipeline"][..],
            "--http-workload needs --protocol http",
        ),
        (
            &[
                "--target",
                "127.0.0.1:1",
                "--protocol",
                "http",
                "--payload",
                "16",
            ],
            "--payload sizes ECHO frames",
        ),
        (
            &[
                "--target",
                "127.0.0.1:1",
                "--protocol",
                "http",
                "--total",
                "2",
                "--requests-per-conn",
                "0",
            ],
            "--requests-per-conn must be at least 1 with --protocol http",
        ),
        (
            &[
                "--target",
                "127.0.0.1:1",
                "--protocol",
                "http",
                "--http-workload",
                "nope",
            ],
            "invalid value 'nope'",
        ),
    ] {
        let output = loadgen(args);
        assert_eq!(code(&output), 2, "{args:?}: {}", describe(&output));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(says) && !stderr.contains("panicked"),
            "{args:?}: {stderr}"
        );
    }
}
