//! Resource exhaustion that must not be mistaken for a close: a CQ ring too small for the
//! completions of one wait (the multishot recv ends with res > 0 and no F_MORE).

use std::io::{Read, Write};

use tests::{echo_frame, Engine, XorShift, WAIT};

const CLIENTS: usize = 64;
const REQUESTS: usize = 200;

#[test]
fn cq_overflow_is_rearmed_and_loses_nothing() {
    // 8 SQ entries, 32 CQ entries: 64 connections sending at once overflow it.
    let engine = Engine::start(&[
        "--ring-entries",
        "8",
        "--buffers",
        "4096",
        "--buffer-size",
        "512",
    ]);
    let before = engine.metrics();
    let mut clients: Vec<_> = (0..CLIENTS as u64)
        .map(|tag| engine.greeted_client(1000 + tag))
        .collect();
    let mut rng = XorShift::new(5);
    let requests: Vec<Vec<u8>> = (0..CLIENTS)
        .map(|_| {
            (0..REQUESTS)
                .flat_map(|_| {
                    let len = rng.range(1, 200);
                    echo_frame(&rng.bytes(len))
                })
                .collect()
        })
        .collect();
    // Every client writes its whole burst in small pieces before anyone reads, so many recv
    // completions are posted in one wait.
    for chunk in 0..REQUESTS {
        for (client, bytes) in clients.iter_mut().zip(&requests) {
            let piece = bytes.len().div_ceil(REQUESTS);
            let start = (chunk * piece).min(bytes.len());
            let end = ((chunk + 1) * piece).min(bytes.len());
            client.stream.write_all(&bytes[start..end]).expect("write");
        }
    }
    for (client, bytes) in clients.iter_mut().zip(&requests) {
        let mut replies = vec![0u8; bytes.len()];
        client.stream.set_read_timeout(Some(WAIT)).expect("timeout");
        client
            .stream
            .read_exact(&mut replies)
            .expect("every reply arrives");
        assert!(&replies == bytes, "replies differ from the requests");
    }
    drop(clients);
    let records = engine.wait_records(CLIENTS, WAIT);
    let wrong: Vec<_> = records
        .iter()
        .filter(|r| r["cause"] != "peer_fin")
        .collect();
    assert!(wrong.is_empty(), "misclassified: {wrong:?}");
    let after = engine.metrics();
    let key = "engine_recv_rearms_total{reason=\"overflow\"}";
    assert!(
        after[key] > before[key],
        "the CQ never overflowed: the test proves nothing"
    );
}
