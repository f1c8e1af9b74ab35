//! One test per close cause that loopback can produce, each asserted in both the close record and
//! the `engine_connections_closed_total{cause=...}` counter.
//!
//! Not here: `error` (no way to provoke an unexpected errno from outside the engine), and the
//! causes the frame protocol never produces: `local_close` (it never closes on its own decision)
//! and `slow_consumer` (it only answers, never pushes into another connection; see
//! `tests/tests/chat.rs`).

use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use tests::{
    assert_fields, closed_key, echo_frame, hello_frame, pump_until_blocked, Client, End, Engine,
    WAIT,
};

/// Every cause the close record and the metrics name.
const CAUSES: [&str; 13] = [
    "peer_fin",
    "peer_fin_mid_frame",
    "peer_reset",
    "idle_timeout",
    "read_timeout",
    "peer_close",
    "local_close",
    "protocol_error",
    "slow_consumer",
    "shutdown",
    "tcp_timeout",
    "aborted",
    "error",
];

/// The engine timers under test fire at 200 ms; a close may come this much earlier when the
/// engine reads a cached clock, never more.
const TIMER_SLACK: Duration = Duration::from_millis(10);

/// HELLO (3 + 8 bytes) on the wire.
const HELLO_BYTES: u64 = 11;

#[test]
fn metrics_list_every_cause_from_zero() {
    let engine = Engine::start(&[]);
    let metrics = engine.metrics();
    for cause in CAUSES {
        assert_eq!(metrics.get(&closed_key(cause)), Some(&0.0), "{cause}");
    }
    let mut listed: Vec<&str> = metrics
        .keys()
        .filter(|key| key.starts_with("engine_connections_closed_total{"))
        .map(String::as_str)
        .collect();
    listed.sort_unstable();
    let mut expected: Vec<String> = CAUSES.iter().map(|cause| closed_key(cause)).collect();
    expected.sort_unstable();
    assert_eq!(listed, expected, "no cause beyond CAUSES");
    for key in [
        "engine_connections_accepted_total",
        "engine_connections_open",
        "engine_frames_received_total",
        "engine_bytes_received_total",
        "engine_bytes_sent_total",
        r#"engine_recv_rearms_total{reason="enobufs"}"#,
        r#"engine_recv_rearms_total{reason="overflow"}"#,
        "engine_connections_rejected_total",
    ] {
        assert_eq!(metrics.get(key), Some(&0.0), "{key}");
    }
}

#[test]
fn peer_fin() {
    const TAG: u64 = 0x1001;
    let engine = Engine::start(&[]);
    let before = engine.metrics();
    let mut client = engine.connect();
    client.send_hello(TAG);
    for payload in [&b"a"[..], b"bb", b"ccc"] {
        client.send_echo(payload);
        assert_eq!(client.read_reply(WAIT), payload);
    }
    assert_eq!(engine.metric("engine_connections_open"), 1.0);
    let peer = client.stream.local_addr().expect("local_addr").to_string();

    client.shutdown_write();
    assert_eq!(client.read_to_end(WAIT), (vec![], End::Fin));

    let record = engine.wait_record_for_tag(TAG, WAIT);
    assert_fields(
        &record,
        &[
            ("core", json!(0)),
            ("peer", json!(peer)),
            ("cause", json!("peer_fin")),
            ("phase", json!("idle")),
            ("res", json!(0)),
            ("frames_in", json!(4)),
            ("frames_out", json!(3)),
            ("bytes_in", json!(HELLO_BYTES + 4 + 5 + 6)),
            ("bytes_out", json!(4 + 5 + 6)),
            ("partial_bytes", json!(0)),
        ],
    );
    assert!(record["duration_us"].as_u64().is_some(), "{record}");
    engine.wait_metric_delta(&before, &closed_key("peer_fin"), 1.0, WAIT);
    engine.wait_metric_delta(&before, "engine_connections_accepted_total", 1.0, WAIT);
    engine.wait_metric_delta(&before, "engine_frames_received_total", 4.0, WAIT);
    engine.wait_metric_delta(&before, "engine_bytes_received_total", 26.0, WAIT);
    engine.wait_metric_delta(&before, "engine_bytes_sent_total", 15.0, WAIT);
    engine.wait_metric("engine_connections_open", 0.0, WAIT);
}

#[test]
fn peer_fin_mid_frame() {
    // (tag, bytes of an unfinished frame, phase): the header cut short, the header alone, the
    // header and part of the payload.
    let cases: [(u64, Vec<u8>, &str); 3] = [
        (0x2001, vec![0x00, 0x0a], "header"),
        (0x2002, vec![0x00, 0x0a, 0x01], "body"),
        (
            0x2003,
            vec![0x00, 0x0a, 0x01, b'w', b'x', b'y', b'z'],
            "body",
        ),
    ];
    let engine = Engine::start(&[]);
    let before = engine.metrics();
    for (tag, partial, phase) in &cases {
        let mut client = engine.greeted_client(*tag);
        client.send(partial);
        client.shutdown_write();
        assert_eq!(client.read_to_end(WAIT), (vec![], End::Fin), "{phase}");

        let record = engine.wait_record_for_tag(*tag, WAIT);
        assert_fields(
            &record,
            &[
                ("cause", json!("peer_fin_mid_frame")),
                ("phase", json!(phase)),
                ("partial_bytes", json!(partial.len())),
                ("res", json!(0)),
                ("frames_in", json!(2)),
                ("frames_out", json!(1)),
                ("bytes_in", json!(HELLO_BYTES + 7 + partial.len() as u64)),
                ("bytes_out", json!(7)),
            ],
        );
    }
    engine.wait_metric_delta(&before, &closed_key("peer_fin_mid_frame"), 3.0, WAIT);
}

#[test]
fn peer_reset() {
    const TAG: u64 = 0x3001;
    let engine = Engine::start(&[]);
    let before = engine.metrics();
    engine.greeted_client(TAG).reset();

    let record = engine.wait_record_for_tag(TAG, WAIT);
    assert_fields(
        &record,
        &[
            ("cause", json!("peer_reset")),
            ("phase", json!("idle")),
            ("res", json!(-libc::ECONNRESET)),
            ("frames_in", json!(2)),
            ("frames_out", json!(1)),
            ("partial_bytes", json!(0)),
        ],
    );
    engine.wait_metric_delta(&before, &closed_key("peer_reset"), 1.0, WAIT);
}

/// The engine has stopped reading (too many reply bytes queued) when the peer resets: no recv
/// is armed to see the RST, yet the close must be recorded as `peer_reset`.
#[test]
fn peer_reset_while_reading_is_paused() {
    const TAG: u64 = 0x3002;
    let engine = Engine::start(&[
        "--max-queued-bytes",
        "131072",
        "--max-frame",
        "16384",
        "--idle-timeout",
        "30s",
        "--read-timeout",
        "30s",
    ]);
    let before = engine.metrics();
    let mut client = engine.connect();
    client.set_recv_buffer(4096);
    client.send_hello(TAG);
    let written = pump_until_blocked(
        &mut client.stream,
        &echo_frame(&[0xab; 16000]),
        256 << 20,
        Duration::from_millis(500),
    );
    assert!(written < 256 << 20, "the writes never blocked");
    // Closing with unread replies sends RST.
    drop(client);

    let record = engine.wait_record_for_tag(TAG, WAIT);
    assert_fields(&record, &[("cause", json!("peer_reset"))]);
    engine.wait_metric_delta(&before, &closed_key("peer_reset"), 1.0, WAIT);
}

#[test]
fn idle_timeout() {
    const TAG: u64 = 0x4001;
    let engine = Engine::start(&["--idle-timeout", "200ms", "--read-timeout", "10s"]);
    let before = engine.metrics();
    let mut client = engine.connect();
    client.send_hello(TAG);
    // The server's timer starts when it receives the last byte, after this instant.
    let last_byte_sent = Instant::now();
    client.send_echo(b"ping");
    assert_eq!(client.read_reply(WAIT), b"ping");

    assert_eq!(client.read_to_end(WAIT), (vec![], End::Fin));
    let idle = last_byte_sent.elapsed();
    assert!(
        idle >= Duration::from_millis(200) - TIMER_SLACK,
        "closed after {idle:?}"
    );

    let record = engine.wait_record_for_tag(TAG, WAIT);
    assert_fields(
        &record,
        &[
            ("cause", json!("idle_timeout")),
            ("phase", json!("idle")),
            ("partial_bytes", json!(0)),
            ("frames_in", json!(2)),
            ("frames_out", json!(1)),
        ],
    );
    let duration_us = record["duration_us"].as_u64().expect("duration_us");
    assert!(duration_us >= 190_000, "{record}");
    engine.wait_metric_delta(&before, &closed_key("idle_timeout"), 1.0, WAIT);
}

#[test]
fn read_timeout() {
    const STALLED_HEADER: u64 = 0x5001;
    const STALLED_BODY: u64 = 0x5002;
    const TRICKLE: u64 = 0x5003;
    let engine = Engine::start(&["--read-timeout", "200ms", "--idle-timeout", "10s"]);
    let before = engine.metrics();

    // Slowloris: two bytes of a header, then nothing.
    let mut header = engine.greeted_client(STALLED_HEADER);
    let first_byte_sent = Instant::now();
    header.send(&[0x00, 0x64]);
    // A header and 10 of its 100 payload bytes, then nothing.
    let mut body = engine.greeted_client(STALLED_BODY);
    body.send(&[0x00, 0x64, 0x01]);
    body.send(&[b'x'; 10]);

    assert_eq!(header.read_to_end(WAIT), (vec![], End::Fin));
    let stalled = first_byte_sent.elapsed();
    assert!(
        stalled >= Duration::from_millis(200) - TIMER_SLACK,
        "closed after {stalled:?}"
    );
    assert_eq!(body.read_to_end(WAIT), (vec![], End::Fin));

    // A frame that keeps trickling (one byte every 50 ms, 5 s for the whole frame) is still
    // bounded by the read timeout from its first byte.
    let mut trickle = engine.greeted_client(TRICKLE);
    trickle.send(&[0x00, 0x64, 0x01]);
    let mut writer = trickle.stream.try_clone().expect("clone");
    let trickler = thread::spawn(move || {
        for _ in 0..40 {
            thread::sleep(Duration::from_millis(50));
            if std::io::Write::write_all(&mut writer, b"t").is_err() {
                return;
            }
        }
    });

    for (tag, phase, partial_bytes) in [(STALLED_HEADER, "header", 2), (STALLED_BODY, "body", 13)] {
        let record = engine.wait_record_for_tag(tag, WAIT);
        assert_fields(
            &record,
            &[
                ("cause", json!("read_timeout")),
                ("phase", json!(phase)),
                ("partial_bytes", json!(partial_bytes)),
                ("frames_in", json!(2)),
                ("frames_out", json!(1)),
            ],
        );
    }
    let record = engine.wait_record_for_tag(TRICKLE, WAIT);
    assert_fields(
        &record,
        &[("cause", json!("read_timeout")), ("phase", json!("body"))],
    );
    let partial_bytes = record["partial_bytes"].as_u64().expect("partial_bytes");
    assert!(
        (3..3 + 100).contains(&partial_bytes),
        "the frame never completed: {record}"
    );
    trickler.join().expect("trickler");
    engine.wait_metric_delta(&before, &closed_key("read_timeout"), 3.0, WAIT);
}

/// A CLOSE frame: the peer asked, so the engine answers what came before it, then closes.
#[test]
fn peer_close() {
    const TAG: u64 = 0x6001;
    let engine = Engine::start(&[]);
    let before = engine.metrics();
    let mut client = engine.connect();
    let mut request = hello_frame(TAG);
    for payload in [&b"one"[..], b"two", b"three"] {
        request.extend(echo_frame(payload));
    }
    request.extend(tests::close_frame());
    client.send(&request);

    let (replies, end) = client.read_to_end(WAIT);
    assert_eq!(replies, [&b"one"[..], b"two", b"three"]);
    assert_eq!(end, End::Fin);

    let record = engine.wait_record_for_tag(TAG, WAIT);
    assert_fields(
        &record,
        &[
            ("cause", json!("peer_close")),
            ("phase", json!("idle")),
            ("partial_bytes", json!(0)),
            ("frames_in", json!(5)),
            ("frames_out", json!(3)),
            ("bytes_in", json!(request.len())),
            ("bytes_out", json!(6 + 6 + 8)),
        ],
    );
    engine.wait_metric_delta(&before, &closed_key("peer_close"), 1.0, WAIT);
    assert_eq!(engine.metric(&closed_key("local_close")), 0.0);
}

#[test]
fn protocol_error() {
    let cases: [(u64, &str, Vec<u8>); 4] = [
        (0x7001, "unknown kind", vec![0x00, 0x00, 0x09]),
        (0x7002, "len > --max-frame", vec![0x04, 0x01, 0x01]),
        (
            0x7003,
            "HELLO len 7",
            vec![0x00, 0x07, 0x03, 1, 2, 3, 4, 5, 6, 7],
        ),
        (0x7004, "CLOSE len 1", vec![0x00, 0x01, 0x02, 0]),
    ];
    let engine = Engine::start(&["--max-frame", "1024"]);
    let before = engine.metrics();
    for (tag, what, bad) in &cases {
        let mut client = engine.connect();
        let mut request = hello_frame(*tag);
        request.extend(echo_frame(b"before"));
        request.extend(bad);
        client.send(&request);

        // The reply queued before the bad frame is flushed; then the server closes. Whether
        // that is a FIN or an RST depends on whether bytes were left unread.
        let (replies, end) = client.read_to_end(WAIT);
        assert_eq!(replies, [b"before"], "{what}");
        assert_ne!(end, End::Timeout, "{what}");

        let record = engine.wait_record_for_tag(*tag, WAIT);
        assert_fields(
            &record,
            &[
                ("cause", json!("protocol_error")),
                ("frames_in", json!(2)),
                ("frames_out", json!(1)),
                ("bytes_out", json!(9)),
            ],
        );
    }
    engine.wait_metric_delta(&before, &closed_key("protocol_error"), 4.0, WAIT);
}

#[test]
fn shutdown_on_sigterm() {
    const TAGS: [u64; 3] = [0x8001, 0x8002, 0x8003];
    let mut engine = Engine::start(&[]);
    let mut clients: Vec<Client> = TAGS.iter().map(|tag| engine.greeted_client(*tag)).collect();
    // The admin endpoint goes away with the process, so the counter is seen only before.
    engine.wait_metric("engine_connections_open", 3.0, WAIT);
    assert_eq!(engine.metric(&closed_key("shutdown")), 0.0);

    engine.sigterm();
    for client in &mut clients {
        assert_eq!(client.read_to_end(WAIT), (vec![], End::Fin));
    }
    let status = engine.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{status}");

    let records = engine.records();
    assert_eq!(records.len(), TAGS.len(), "{records:?}");
    for tag in TAGS {
        let record = engine.wait_record_for_tag(tag, Duration::ZERO);
        assert_fields(
            &record,
            &[
                ("cause", json!("shutdown")),
                ("frames_in", json!(2)),
                ("frames_out", json!(1)),
            ],
        );
    }
}

#[test]
fn tcp_timeout() {
    const TAG: u64 = 0x9001;
    let engine = Engine::start(&[
        "--tcp-user-timeout",
        "500ms",
        "--max-frame",
        "16384",
        "--idle-timeout",
        "30s",
        "--read-timeout",
        "30s",
    ]);
    let before = engine.metrics();
    let mut client = engine.connect();
    // A tiny receive buffer that is never read: the server's replies meet a zero window, and
    // its zero-window probes give up after the user timeout.
    client.set_recv_buffer(4096);
    client.send_hello(TAG);
    let written = pump_until_blocked(
        &mut client.stream,
        &echo_frame(&[0x5a; 16000]),
        256 << 20,
        Duration::from_millis(300),
    );
    assert!(written < 256 << 20, "the writes never blocked");

    // No `res` check: with reading paused, a send may see -ETIMEDOUT first and consume the
    // socket error, leaving the final recv a 0 or a -ECANCELED.
    let record = engine.wait_record_for_tag(TAG, WAIT);
    assert_fields(&record, &[("cause", json!("tcp_timeout"))]);
    engine.wait_metric_delta(&before, &closed_key("tcp_timeout"), 1.0, WAIT);
    drop(client);
}

/// `ss -K` destroys the server's socket (the engine's recv sees -ECONNABORTED). Skipped, with the
/// reason printed, where `ss` or the kernel's INET_DIAG_DESTROY is missing.
#[test]
fn aborted_by_sock_destroy() {
    const TAG: u64 = 0xa001;
    let engine = Engine::start(&[]);
    let before = engine.metrics();
    let mut client = engine.greeted_client(TAG);
    let client_port = client.stream.local_addr().expect("local_addr").port();
    let filter = format!(
        "sport = :{} and dport = :{client_port}",
        engine.listen.port()
    );
    let output = match Command::new("ss")
        .args(["-K", "-t", "-n"])
        .arg(&filter)
        .output()
    {
        Ok(output) => output,
        Err(error) => {
            println!("skipped: cannot run ss: {error}");
            return;
        }
    };
    let listing = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() || !listing.contains(&format!(":{client_port}")) {
        println!(
            "skipped: ss -K destroyed nothing (needs root and CONFIG_INET_DIAG_DESTROY): {} {}",
            listing,
            String::from_utf8_lossy(&output.stderr)
        );
        return;
    }

    assert_eq!(client.read_to_end(WAIT), (vec![], End::Reset));
    let record = engine.wait_record_for_tag(TAG, WAIT);
    assert_fields(
        &record,
        &[
            ("cause", json!("aborted")),
            ("res", json!(-libc::ECONNABORTED)),
            ("frames_in", json!(2)),
            ("frames_out", json!(1)),
        ],
    );
    engine.wait_metric_delta(&before, &closed_key("aborted"), 1.0, WAIT);
}
