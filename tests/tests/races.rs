//! Races between the peer and the engine's own operations that must not change the verdict.

use tests::{echo_frame, Engine, WAIT};

/// RST while replies are being sent: whichever of the recv and the send reads the socket error
/// first, the verdict is `peer_reset` (a recv that finds the error consumed returns 0).
#[test]
fn reset_with_replies_in_flight_is_always_peer_reset() {
    const CONNECTIONS: u64 = 100;
    let engine = Engine::start(&[]);
    // More replies than a small receive window takes: the engine's send is blocked in flight.
    let burst: Vec<u8> = (0..10).flat_map(|_| echo_frame(&[0x42; 16_000])).collect();
    let mut clients = Vec::new();
    for tag in 1..=CONNECTIONS {
        let mut client = engine.connect();
        client.set_recv_buffer(4096);
        client.send_hello(tag);
        client.send(&burst);
        clients.push(client);
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    for client in clients {
        client.reset();
    }
    let records = engine.wait_records(CONNECTIONS as usize, WAIT);
    let wrong: Vec<_> = records
        .iter()
        .filter(|r| r["cause"] != "peer_reset")
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {CONNECTIONS} misclassified: {wrong:?}",
        wrong.len()
    );
}
