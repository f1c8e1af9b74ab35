//! The kernel floor and its message, and a real ring delivering a stream through recycled
//! buffers in every receive mode.

use super::*;

#[test]
fn kernel_release_floor() {
    assert!(release_at_least("6.18.44-fc-v782", (6, 0)));
    assert!(release_at_least("6.0.0", (6, 0)));
    assert!(!release_at_least("5.19.17-generic", (6, 0)));
    assert!(!release_at_least("garbage", (6, 0)));
}

#[test]
fn setup_error_names_the_kernel_floor() {
    let error = RingError::Setup {
        error: io::Error::from_raw_os_error(libc::EPERM),
        disabled_sysctl: Some("2".into()),
    };
    let line = error.to_string();
    assert!(line.contains("io_uring_disabled = 2"), "{line}");
    assert!(line.contains("Linux 6.0 or later"), "{line}");
    let old = RingError::KernelTooOld {
        release: "5.15.0".into(),
    }
    .to_string();
    assert!(old.contains("5.15.0") && old.contains("6.0"), "{old}");
}

/// Every byte a peer sends comes out of `consume_buffers` once, in order, in every mode,
/// through a ring of 8 small buffers that must be recycled again and again.
#[test]
fn every_mode_delivers_the_stream_exactly_and_recycles_every_buffer() {
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    const BUFFERS: u16 = 8;
    const SIZE: u32 = 4096;
    const STREAM: usize = 200_000;
    let stream: Vec<u8> = (0..STREAM).map(|i| (i * 7 % 251) as u8).collect();
    for mode in [
        Consumption::Whole,
        Consumption::Bundles,
        Consumption::Incremental,
    ] {
        let mut ring = Ring::new(64, 256).expect("ring");
        let got_mode = ring
            .provide_buffers_as(BUFFERS, SIZE, mode)
            .expect("buffers");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let writer = {
            let stream = stream.clone();
            std::thread::spawn(move || {
                for piece in stream.chunks(10_000) {
                    client.write_all(piece).unwrap();
                }
            })
        };
        let mut received = Vec::new();
        let mut completions = Vec::new();
        let mut widest = 0;
        while received.len() < STREAM {
            if !ring.recvs_armed_for_tests() {
                ring.recv_multi(&server, 1).unwrap();
            }
            ring.submit_and_wait(Some(Duration::from_secs(5)), None)
                .unwrap();
            ring.reap(&mut completions);
            for mut completion in completions.drain(..) {
                let res = completion.res();
                widest = widest.max(res);
                // Data, a dry ring (re-armed above), or the FIN after the last byte.
                let fin_after_all = res == 0 && received.len() == STREAM;
                assert!(
                    res > 0 || res == -libc::ENOBUFS || fin_after_all,
                    "{got_mode:?}: res {res}"
                );
                ring.consume_buffers(&mut completion, |data| received.extend_from_slice(data));
            }
        }
        writer.join().unwrap();
        assert_eq!(received.len(), STREAM, "{got_mode:?}");
        assert!(received == stream, "{got_mode:?}: the bytes differ");
        let bundled = widest > SIZE as i32;
        assert_eq!(
            bundled,
            got_mode == Consumption::Bundles,
            "{got_mode:?}: widest CQE {widest}"
        );
    }
}

/// What a completion holds is fixed when it is reaped: two connections' bundles reaped in one
/// batch and consumed backwards (the second one's recycle reuses the first one's ring entries)
/// still give each connection its own bytes.
#[test]
fn completions_consumed_out_of_order_still_give_their_own_bytes() {
    use std::io::Write;
    use std::net::{Shutdown, TcpListener, TcpStream};
    const EACH: usize = 5000; // two 4 KiB buffers per connection
    for mode in [Consumption::Whole, Consumption::Bundles] {
        let mut ring = Ring::new(64, 256).expect("ring");
        ring.provide_buffers_as(8, 4096, mode).expect("buffers");
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut servers = Vec::new();
        for (index, byte) in [b'a', b'b'].into_iter().enumerate() {
            let mut client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
            let (server, _) = listener.accept().unwrap();
            client.write_all(&[byte; EACH]).unwrap();
            ring.recv_multi(&server, index as u64).unwrap();
            servers.push((server, client));
        }
        std::thread::sleep(Duration::from_millis(20)); // both wait in their sockets
        let (mut received, mut completions) = ([Vec::new(), Vec::new()], Vec::new());
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while received.iter().any(|r| r.len() < EACH) && std::time::Instant::now() < deadline {
            ring.submit_and_wait(Some(Duration::from_millis(100)), None)
                .unwrap();
            ring.reap(&mut completions);
            for mut completion in completions.drain(..).rev() {
                let into = &mut received[completion.user_data() as usize];
                ring.consume_buffers(&mut completion, |data| into.extend_from_slice(data));
            }
        }
        assert_eq!(received[0], [b'a'; EACH], "{mode:?}");
        assert_eq!(received[1], [b'b'; EACH], "{mode:?}");
        // The clients' FINs end both recvs, so the ring is dropped with nothing in flight.
        servers
            .iter()
            .for_each(|(_, client)| client.shutdown(Shutdown::Write).unwrap());
        while ring.recvs_armed_for_tests() && std::time::Instant::now() < deadline {
            ring.submit_and_wait(Some(Duration::from_millis(100)), None)
                .unwrap();
            ring.reap(&mut completions);
            for mut completion in completions.drain(..) {
                assert_eq!(ring.consume_buffers(&mut completion, |_| {}), 0, "{mode:?}");
            }
        }
        assert!(
            !ring.recvs_armed_for_tests(),
            "{mode:?}: the recvs did not end"
        );
    }
}
