//! `--batch-wait`: waits gather completions for a moment; replies and timers stay right.

use std::time::{Duration, Instant};

use serde_json::json;
use tests::{assert_fields, Engine, WAIT};

#[test]
fn batched_waits_serve_every_request_and_keep_timers() {
    const TAG: u64 = 0xd001;
    let engine = Engine::start(&["--batch-wait", "200us", "--idle-timeout", "300ms"]);
    let mut client = engine.greeted_client(TAG);
    let started = Instant::now();
    for round in 0..200u32 {
        let payload = round.to_be_bytes();
        client.send_echo(&payload);
        assert_eq!(client.read_reply(WAIT), payload, "round {round}");
    }
    // 200 round trips with at most 0.2 ms added each.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    let idle_since = Instant::now();
    let record = engine.wait_record_for_tag(TAG, WAIT);
    assert_fields(
        &record,
        &[("cause", json!("idle_timeout")), ("frames_out", json!(201))],
    );
    assert!(
        idle_since.elapsed() >= Duration::from_millis(250),
        "closed early"
    );
}
