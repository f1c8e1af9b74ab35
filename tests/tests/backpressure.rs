//! A peer that reads slowly: reading from it pauses, the kernel takes replies in partial sends,
//! and still every reply arrives, byte for byte, in order.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use serde_json::json;
use tests::{assert_fields, echo_frame, Engine, XorShift, WAIT};

/// Enough requests that the replies far exceed the socket buffers and --max-queued-bytes.
const REQUESTS: usize = 400;
const PAYLOAD: usize = 16_000;

#[test]
fn a_slow_reader_gets_every_reply_after_partial_sends() {
    const TAG: u64 = 0xb001;
    let engine = Engine::start(&["--max-queued-bytes", "131072"]);
    let mut client = engine.greeted_client(TAG);
    client.set_recv_buffer(16 * 1024);

    let mut rng = XorShift::new(99);
    let payloads: Vec<Vec<u8>> = (0..REQUESTS).map(|_| rng.bytes(PAYLOAD)).collect();
    let mut expected = Vec::with_capacity(REQUESTS * (PAYLOAD + 3));
    for payload in &payloads {
        expected.extend_from_slice(&echo_frame(payload));
    }

    // Write everything from a second thread while this one reads slowly at first.
    let mut writer = client.stream.try_clone().expect("clone stream");
    let requests = expected.clone();
    let sender = std::thread::spawn(move || {
        writer.write_all(&requests).expect("write requests");
        writer
            .shutdown(std::net::Shutdown::Write)
            .expect("shutdown write");
    });

    let mut received = Vec::with_capacity(expected.len());
    let mut chunk = vec![0u8; 8192];
    let started = Instant::now();
    client
        .stream
        .set_read_timeout(Some(WAIT))
        .expect("read timeout");
    while received.len() < expected.len() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "replies stalled at {} bytes",
            received.len()
        );
        if received.len() < expected.len() / 4 {
            std::thread::sleep(Duration::from_millis(2)); // slow at first: replies pile up
        }
        let n = client.stream.read(&mut chunk).expect("read replies");
        assert!(
            n > 0,
            "EOF after {} of {} bytes",
            received.len(),
            expected.len()
        );
        received.extend_from_slice(&chunk[..n]);
    }
    sender.join().expect("sender thread");
    assert!(received == expected, "replies differ from the requests");

    // `greeted_client` already had one "ping" echoed.
    let ping_reply = echo_frame(b"ping").len();
    let record = engine.wait_record_for_tag(TAG, WAIT);
    assert_fields(
        &record,
        &[
            ("cause", json!("peer_fin")),
            ("frames_out", json!(REQUESTS + 1)),
            ("bytes_out", json!(expected.len() + ping_reply)),
        ],
    );
}
