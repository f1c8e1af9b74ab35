//! The engine's behaviour beyond single close causes: timers restarted by traffic, half-close,
//! pipelining and arbitrary splits, buffer and fd exhaustion, shutdown under load, backpressure,
//! connection limits and fd leaks.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;
use tests::{
    assert_fields, close_frame, closed_key, echo_frame, fd_count, hello_frame, is_timeout,
    pump_until_blocked, wait_for, wait_until, Client, End, Engine, XorShift, WAIT,
};

/// Payloads of `count` ECHOs with sizes in `0..=size_max`, from a fixed seed.
fn random_payloads(seed: u64, count: usize, size_max: usize) -> Vec<Vec<u8>> {
    let mut rng = XorShift::new(seed);
    (0..count)
        .map(|_| {
            let len = rng.range(0, size_max);
            rng.bytes(len)
        })
        .collect()
}

/// Asserts the replies equal the payloads, one for one, without printing kilobytes.
#[track_caller]
fn assert_replies(replies: &[Vec<u8>], payloads: &[Vec<u8>]) {
    for (index, (reply, payload)) in replies.iter().zip(payloads).enumerate() {
        assert!(
            reply == payload,
            "reply {index} differs: {} bytes, sent {}",
            reply.len(),
            payload.len()
        );
    }
    assert_eq!(replies.len(), payloads.len(), "reply count");
}

#[test]
fn traffic_restarts_the_idle_timer() {
    const TAG: u64 = 0x1_0001;
    let engine = Engine::start(&["--idle-timeout", "300ms", "--read-timeout", "10s"]);
    let mut client = engine.connect();
    client.send_hello(TAG);
    for round in 0..12u8 {
        thread::sleep(Duration::from_millis(100));
        client.send_echo(&[round]);
        assert_eq!(client.read_reply(WAIT), [round], "round {round}");
    }
    assert_eq!(engine.records(), Vec::<serde_json::Value>::new());

    client.shutdown_write();
    assert_eq!(client.read_to_end(WAIT), (vec![], End::Fin));
    let record = engine.wait_record_for_tag(TAG, WAIT);
    assert_fields(
        &record,
        &[
            ("cause", json!("peer_fin")),
            ("frames_in", json!(13)),
            ("frames_out", json!(12)),
        ],
    );
}

#[test]
fn half_close_loses_no_reply() {
    const TAG: u64 = 0x1_0002;
    let engine = Engine::start(&["--max-frame", "4096"]);
    let payloads = random_payloads(7, 100, 1000);
    let mut request = hello_frame(TAG);
    for payload in &payloads {
        request.extend(echo_frame(payload));
    }
    let mut client = engine.connect();
    client.send(&request);
    client.shutdown_write();

    let (replies, end) = client.read_to_end(WAIT);
    assert_replies(&replies, &payloads);
    assert_eq!(end, End::Fin);
    let record = engine.wait_record_for_tag(TAG, WAIT);
    let bytes_out: usize = payloads.iter().map(|payload| 3 + payload.len()).sum();
    assert_fields(
        &record,
        &[
            ("cause", json!("peer_fin")),
            ("frames_in", json!(101)),
            ("frames_out", json!(100)),
            ("bytes_in", json!(request.len())),
            ("bytes_out", json!(bytes_out)),
        ],
    );
}

#[test]
fn close_after_pipelined_echoes_flushes_every_reply() {
    const TAG: u64 = 0x1_0003;
    let engine = Engine::start(&["--max-frame", "4096"]);
    let payloads = random_payloads(11, 200, 1000);
    let mut request = hello_frame(TAG);
    for payload in &payloads {
        request.extend(echo_frame(payload));
    }
    request.extend(close_frame());
    let mut client = engine.connect();
    client.send(&request);

    let (replies, end) = client.read_to_end(WAIT);
    assert_replies(&replies, &payloads);
    assert_eq!(end, End::Fin);
    let record = engine.wait_record_for_tag(TAG, WAIT);
    assert_fields(
        &record,
        &[
            ("cause", json!("peer_close")),
            ("frames_in", json!(202)),
            ("frames_out", json!(200)),
        ],
    );
}

#[test]
fn pipelined_echo_with_random_splits_is_byte_exact() {
    const SEEDS: [u64; 3] = [1, 0xdead_beef, 0x1234_5678_9abc];
    let engine = Engine::start(&["--max-frame", "4096"]);
    for (index, seed) in SEEDS.into_iter().enumerate() {
        let tag = 0x1_0100 + index as u64;
        let payloads = random_payloads(seed, 1000, 3000);
        let mut request = hello_frame(tag);
        for payload in &payloads {
            request.extend(echo_frame(payload));
        }
        request.extend(close_frame());
        let request_len = request.len();

        let mut client = engine.connect();
        let mut writer = client.stream.try_clone().expect("clone");
        writer.set_write_timeout(Some(WAIT)).expect("SO_SNDTIMEO");
        let writing = thread::spawn(move || {
            let mut rng = XorShift::new(seed ^ 0x5eed);
            let mut rest = &request[..];
            while !rest.is_empty() {
                let (piece, tail) = rest.split_at(rng.range(1, 2000).min(rest.len()));
                writer.write_all(piece).expect("write a piece");
                rest = tail;
                if rng.range(0, 15) == 0 {
                    thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let replies: Vec<Vec<u8>> = payloads.iter().map(|_| client.read_reply(WAIT)).collect();
        assert_replies(&replies, &payloads);
        assert_eq!(client.read_to_end(WAIT), (vec![], End::Fin), "seed {seed}");
        writing.join().expect("writer");

        let record = engine.wait_record_for_tag(tag, WAIT);
        assert_fields(
            &record,
            &[
                ("cause", json!("peer_close")),
                ("frames_out", json!(1000)),
                ("bytes_in", json!(request_len)),
            ],
        );
    }
}

/// One connection of a load test: its HELLO tag, the ECHOs it sends, the bytes of its request.
#[derive(Debug)]
struct Talker {
    tag: u64,
    client: Client,
    payloads: Vec<Vec<u8>>,
    request: Vec<u8>,
}

impl Talker {
    #[track_caller]
    fn new(listen: SocketAddr, tag: u64, frames: usize) -> Talker {
        let payloads = random_payloads(tag, frames, 1000);
        let mut request = hello_frame(tag);
        for payload in &payloads {
            request.extend(echo_frame(payload));
        }
        Talker {
            tag,
            client: Client::connect(listen),
            payloads,
            request,
        }
    }
}

#[test]
fn enobufs_is_survived_byte_exact() {
    const THREADS: u64 = 4;
    const CLIENTS_PER_THREAD: u64 = 16;
    const FRAMES: usize = 20;
    let engine = Engine::start(&[
        "--buffers",
        "4",
        "--buffer-size",
        "256",
        "--max-frame",
        "4096",
        "--max-connections",
        "256",
    ]);
    let before = engine.metrics();
    let start = Arc::new(Barrier::new(THREADS as usize));
    let threads: Vec<_> = (0..THREADS)
        .map(|thread_index| {
            let start = Arc::clone(&start);
            let listen = engine.listen;
            thread::spawn(move || {
                let mut talkers: Vec<Talker> = (0..CLIENTS_PER_THREAD)
                    .map(|index| Talker::new(listen, 0x2_0000 + thread_index * 100 + index, FRAMES))
                    .collect();
                // Every connection sends at once: the 4-entry buffer ring runs dry.
                start.wait();
                for talker in &mut talkers {
                    talker.client.send(&talker.request);
                }
                for talker in &mut talkers {
                    let client = &mut talker.client;
                    let replies: Vec<Vec<u8>> = talker
                        .payloads
                        .iter()
                        .map(|_| client.read_reply(WAIT))
                        .collect();
                    assert_replies(&replies, &talker.payloads);
                    client.shutdown_write();
                    assert_eq!(
                        client.read_to_end(WAIT),
                        (vec![], End::Fin),
                        "tag {}",
                        talker.tag
                    );
                }
                talkers
                    .into_iter()
                    .map(|talker| (talker.tag, talker.request.len()))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let sent: Vec<(u64, usize)> = threads
        .into_iter()
        .flat_map(|thread| thread.join().expect("client thread"))
        .collect();

    let records = engine.wait_records(sent.len(), WAIT);
    assert_eq!(records.len(), sent.len());
    for (tag, bytes_in) in sent {
        let record = engine.wait_record_for_tag(tag, Duration::ZERO);
        assert_fields(
            &record,
            &[
                ("cause", json!("peer_fin")),
                ("frames_in", json!(FRAMES + 1)),
                ("frames_out", json!(FRAMES)),
                ("bytes_in", json!(bytes_in)),
            ],
        );
    }
    let enobufs = engine.metric(r#"engine_recv_rearms_total{reason="enobufs"}"#);
    assert!(enobufs > 0.0, "no recv re-armed after -ENOBUFS");
    engine.wait_metric_delta(&before, &closed_key("peer_fin"), records.len() as f64, WAIT);
}

#[test]
fn emfile_on_accept_is_survived() {
    const CLIENTS_MAX: u64 = 100;
    let engine = Engine::start_with_fd_limit(64, &["--max-connections", "1024"]);
    // More connections than the engine has fds: the kernel completes every handshake, the
    // engine accepts until accept(2) fails with EMFILE.
    let mut clients = Vec::new();
    for tag in 0..CLIENTS_MAX {
        let Ok(mut client) = Client::try_connect(engine.listen, Duration::from_secs(1)) else {
            break; // The listen backlog is full.
        };
        client.send_hello(0x3_0000 + tag);
        client.send_echo(b"ping");
        clients.push(client);
    }
    // The engine accepts in order: the first client without an answer is past the fd limit.
    let mut served = 0;
    for client in &mut clients {
        if client.try_read_reply(Duration::from_secs(1)).is_err() {
            break;
        }
        served += 1;
    }
    assert!(served >= 1, "no client served");
    assert!(
        served < clients.len(),
        "all {} clients served",
        clients.len()
    );

    drop(clients);
    wait_until(WAIT, "an EMFILE accept error counted", || {
        engine.metric(r#"engine_accept_errors_total{errno="EMFILE"}"#) > 0.0
    });
    let mut client = engine.greeted_client(0x3_1000);
    client.send_echo(b"after");
    assert_eq!(client.read_reply(WAIT), b"after");
}

/// Payload `index` of load client `client`: 1..=48 bytes, so the receiver can check each reply.
fn load_payload(client: u64, index: u64) -> Vec<u8> {
    let len = 1 + (index * 7 + client) % 48;
    (0..len)
        .map(|byte| (index.wrapping_add(byte) ^ client) as u8)
        .collect()
}

/// Pipelines ECHO batches until the server closes, `stop` is set, or 10 s pass.
fn pipeline_until_stopped(mut stream: TcpStream, client: u64, stop: &AtomicBool) {
    const FRAMES_MAX: u64 = 2_000_000;
    stream
        .set_write_timeout(Some(Duration::from_millis(50)))
        .expect("SO_SNDTIMEO");
    let deadline = Instant::now() + 2 * WAIT;
    let mut next = 0;
    while next < FRAMES_MAX && !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        let mut batch = Vec::new();
        for index in next..next + 16 {
            batch.extend(echo_frame(&load_payload(client, index)));
        }
        next += 16;
        let mut offset = 0;
        while offset < batch.len() {
            match stream.write(&batch[offset..]) {
                Ok(count) => offset += count,
                Err(error) if is_timeout(&error) => {
                    if stop.load(Ordering::Relaxed) || Instant::now() >= deadline {
                        return;
                    }
                }
                Err(_) => return, // The server closed.
            }
        }
    }
}

#[test]
fn sigterm_under_load_flushes_and_records_every_reply() {
    const CLIENTS: u64 = 4;
    let mut engine = Engine::start(&["--idle-timeout", "30s", "--read-timeout", "30s"]);
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client_index| {
            let tag = 0x4_0000 + client_index;
            // Served once before SIGTERM: a connection still in the listen backlog would
            // rightly never be accepted, so it would have no record.
            let mut client = engine.greeted_client(tag);
            let writer = client.stream.try_clone().expect("clone");
            // Named by tag, so that a panic inside says which connection it was.
            let reader = thread::Builder::new().name(format!("tag {tag}"));
            reader
                .spawn(move || {
                    let stop = AtomicBool::new(false);
                    thread::scope(|scope| {
                        scope.spawn(|| pipeline_until_stopped(writer, client_index, &stop));
                        let (replies, end) = client.read_to_end(3 * WAIT);
                        stop.store(true, Ordering::Relaxed);
                        (tag, client_index, replies, end)
                    })
                })
                .expect("spawn")
        })
        .collect();
    wait_until(WAIT, "the clients to pipeline", || {
        engine.metric("engine_frames_received_total") >= 4000.0
    });

    engine.sigterm();
    let results: Vec<_> = clients
        .into_iter()
        .map(|client| client.join().expect("client thread"))
        .collect();
    let status = engine.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{status}");

    for (tag, client_index, replies, end) in results {
        assert_ne!(end, End::Timeout, "tag {tag}: the engine did not close");
        for (index, reply) in (0..).zip(&replies) {
            assert!(
                *reply == load_payload(client_index, index),
                "tag {tag}: reply {index} differs"
            );
        }
        // The greeting's ping reply counts too.
        let record = engine.wait_record_for_tag(tag, Duration::ZERO);
        assert_fields(
            &record,
            &[
                ("cause", json!("shutdown")),
                ("frames_out", json!(replies.len() + 1)),
            ],
        );
    }
}

#[test]
fn a_client_that_never_reads_does_not_stall_others() {
    const STUCK: u64 = 0x5_0001;
    const SERVED: u64 = 0x5_0002;
    let engine = Engine::start_for_memory_bound(&[
        // Small, yet above the floor of one largest reply (3 + 65535 bytes).
        "--max-queued-bytes",
        "131072",
        "--max-frame",
        "16384",
        "--idle-timeout",
        "30s",
        "--read-timeout",
        "30s",
    ]);
    let rss_before_kb = engine.rss_kb();
    let mut stuck = engine.connect();
    stuck.set_recv_buffer(4096);
    stuck.send_hello(STUCK);
    let written = pump_until_blocked(
        &mut stuck.stream,
        &echo_frame(&[0xab; 16000]),
        256 << 20,
        Duration::from_millis(500),
    );
    assert!(
        written < 256 << 20,
        "the engine kept reading from a client that never reads"
    );
    // Bounded: the queued replies (--max-queued-bytes) and what arrived before reading paused,
    // not the megabytes the client tried to send.
    let grown_kb = engine.rss_kb().saturating_sub(rss_before_kb);
    eprintln!("never-reading client: wrote {written} bytes, engine RSS grew {grown_kb} kB");
    assert!(
        grown_kb < 32 * 1024,
        "engine RSS grew by {grown_kb} kB (client wrote {written} bytes)"
    );

    let started = Instant::now();
    let mut served = engine.greeted_client(SERVED);
    for round in 0..100u32 {
        let payload = round.to_be_bytes();
        served.send_echo(&payload);
        assert_eq!(served.read_reply(WAIT), payload, "round {round}");
    }
    assert!(started.elapsed() < WAIT, "took {:?}", started.elapsed());
    served.shutdown_write();
    assert_eq!(served.read_to_end(WAIT), (vec![], End::Fin));
    let record = engine.wait_record_for_tag(SERVED, WAIT);
    assert_fields(&record, &[("cause", json!("peer_fin"))]);
    // How the stuck connection's RST is recorded: closes::peer_reset_while_reading_is_paused.
}

#[test]
fn max_connections_rejects_the_extra_connection() {
    let engine = Engine::start(&["--max-connections", "2"]);
    let before = engine.metrics();
    let mut first = engine.greeted_client(0x6_0001);
    let _second = engine.greeted_client(0x6_0002);

    // The engine may close the extra connection before or while this is written.
    let mut extra = engine.connect();
    let mut request = hello_frame(0x6_0003);
    request.extend(echo_frame(b"ping"));
    let _ = extra.stream.write_all(&request);
    let (replies, end) = extra.read_to_end(WAIT);
    assert!(replies.is_empty(), "the extra connection was served");
    assert_ne!(end, End::Timeout, "the extra connection was left open");
    engine.wait_metric_delta(&before, "engine_connections_rejected_total", 1.0, WAIT);

    // A slot freed is a slot reused.
    first.shutdown_write();
    assert_eq!(first.read_to_end(WAIT), (vec![], End::Fin));
    engine.wait_record_for_tag(0x6_0001, WAIT);
    engine.greeted_client(0x6_0004);
}

#[test]
fn closed_connections_leak_no_fd() {
    let engine = Engine::start(&[]);
    let mut warm_up = engine.greeted_client(0x7_0000);
    warm_up.shutdown_write();
    assert_eq!(warm_up.read_to_end(WAIT), (vec![], End::Fin));
    engine.wait_records(1, WAIT);
    let baseline = fd_count(engine.pid());

    for tag in 0x7_0001..=0x7_0020 {
        let mut client = engine.greeted_client(tag);
        if tag % 2 == 0 {
            client.reset();
        } else {
            client.shutdown_write();
            assert_eq!(client.read_to_end(WAIT), (vec![], End::Fin));
        }
    }
    engine.wait_records(1 + 0x20, WAIT);
    wait_for(
        WAIT,
        &format!("the engine's fd count back to {baseline}"),
        || match fd_count(engine.pid()) {
            count if count == baseline => Ok(()),
            count => Err(format!("{count} fds open")),
        },
    );
}

#[test]
fn two_cores_serve_and_count_as_one_engine() {
    const CLIENTS: u64 = 32;
    let engine = Engine::start(&["--cores", "2"]);
    let before = engine.metrics();
    for tag in 0x8_0000..0x8_0000 + CLIENTS {
        let mut client = engine.greeted_client(tag);
        client.shutdown_write();
        assert_eq!(client.read_to_end(WAIT), (vec![], End::Fin));
    }
    let records = engine.wait_records(CLIENTS as usize, WAIT);
    let cores: Vec<u64> = records
        .iter()
        .map(|record| record["core"].as_u64().expect("core"))
        .collect();
    // SO_REUSEPORT spreads connections by hash: all 32 on one core has odds of 2^-31.
    assert!(cores.contains(&0) && cores.contains(&1), "cores {cores:?}");
    assert!(cores.iter().all(|core| *core < 2), "cores {cores:?}");
    engine.wait_metric_delta(&before, &closed_key("peer_fin"), CLIENTS as f64, WAIT);
    engine.wait_metric_delta(
        &before,
        "engine_connections_accepted_total",
        CLIENTS as f64,
        WAIT,
    );
}

#[test]
fn sigterm_gives_up_on_a_client_that_never_reads() {
    const STUCK: u64 = 0x9_0001;
    let mut engine = Engine::start(&[
        "--shutdown-timeout",
        "300ms",
        "--max-frame",
        "16384",
        "--idle-timeout",
        "30s",
        "--read-timeout",
        "30s",
    ]);
    let mut stuck = engine.connect();
    stuck.set_recv_buffer(4096);
    stuck.send_hello(STUCK);
    pump_until_blocked(
        &mut stuck.stream,
        &echo_frame(&[0xcd; 16000]),
        256 << 20,
        Duration::from_millis(300),
    );

    let signalled = Instant::now();
    engine.sigterm();
    let status = engine.wait_exit(WAIT);
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(
        signalled.elapsed() >= Duration::from_millis(290),
        "exited after {:?}, before the shutdown timeout",
        signalled.elapsed()
    );
    let record = engine.wait_record_for_tag(STUCK, Duration::ZERO);
    assert_fields(&record, &[("cause", json!("shutdown"))]);
    drop(stuck);
}
