//! Abusive clients: each ends as its own cause while a well-behaved client keeps being served.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use tests::{closed_key, echo_frame, Engine, WAIT};

/// A flood of zero-length frames: every one answered, in order, byte for byte.
#[test]
fn a_flood_of_tiny_frames_is_answered_exactly() {
    const FRAMES: usize = 100_000;
    let engine = Engine::start(&[]);
    let mut client = engine.greeted_client(0xc001);
    let flood: Vec<u8> = (0..FRAMES).flat_map(|_| echo_frame(&[])).collect();
    let mut writer = client.stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || writer.write_all(&flood).expect("write flood"));
    let mut replies = vec![0u8; FRAMES * 3];
    client.stream.set_read_timeout(Some(WAIT)).expect("timeout");
    client.stream.read_exact(&mut replies).expect("every reply");
    sender.join().expect("sender");
    assert!(
        replies.chunks(3).all(|reply| reply == [0, 0, 1]),
        "a reply is not an empty ECHO"
    );

    // The engine still answers another client at once.
    let mut other = engine.greeted_client(0xc002);
    other.send_echo(b"still here");
    assert_eq!(other.read_reply(WAIT), b"still here");
}

/// Connections that connect and never send: each closed as `idle_timeout`, none earlier, while
/// a talking client is served throughout.
#[test]
fn a_connect_and_idle_flood_ends_as_idle_timeouts() {
    const IDLERS: usize = 300;
    let engine = Engine::start(&["--idle-timeout", "200ms"]);
    let before = engine.metrics();
    let started = Instant::now();
    let idlers: Vec<_> = (0..IDLERS).map(|_| engine.connect()).collect();
    let mut talker = engine.greeted_client(0xc101);
    let mut served = 0;
    while started.elapsed() < Duration::from_millis(600) {
        talker.send_echo(b"ping");
        assert_eq!(talker.read_reply(WAIT), b"ping");
        served += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(served >= 10, "the talking client was served {served} times");
    engine.wait_metric_delta(&before, &closed_key("idle_timeout"), IDLERS as f64, WAIT);
    // The idlers sent no HELLO: their records are the untagged ones.
    let records = engine.wait_records(IDLERS, WAIT);
    let untagged: Vec<_> = records.iter().filter(|r| r["tag"].is_null()).collect();
    assert_eq!(untagged.len(), IDLERS);
    for record in untagged {
        assert_eq!(record["cause"], "idle_timeout", "{record}");
        let duration_us = record["duration_us"].as_u64().unwrap();
        assert!(duration_us >= 190_000, "{record}");
    }
    drop(idlers);
}
