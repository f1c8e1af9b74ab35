//! The chat peer as a real process on 127.0.0.1: every row of the protocol table, the order of
//! replies and room lines, the limits, and slow consumers closed.

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a client waits for the bytes it expects.
const WAIT: Duration = Duration::from_secs(5);
/// How long a client listens to be sure nothing more comes.
const QUIET: Duration = Duration::from_millis(200);

/// The peer, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(flags: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_peer-chat-tokio"))
            .args(["--listen", "127.0.0.1:0"])
            .args(flags)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start peer-chat-tokio");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("ready line");
        let addr = line
            .trim()
            .strip_prefix("ready listen=")
            .unwrap_or_else(|| panic!("ready line: {line:?}"))
            .parse()
            .expect("address");
        Server { child, addr }
    }

    fn client(&self) -> Client {
        let stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        Client { stream }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Client {
    stream: TcpStream,
}

impl Client {
    #[track_caller]
    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Reads until exactly `expected` has come (then checks that nothing follows at once).
    #[track_caller]
    fn expect(&mut self, expected: &str) {
        let got = self.read_until(expected.len(), WAIT);
        assert_eq!(String::from_utf8_lossy(&got), expected);
        self.expect_nothing();
    }

    /// Reads exactly these lines, in any order.
    #[track_caller]
    fn expect_lines(&mut self, expected: &[&str]) {
        let len = expected.iter().map(|line| line.len() + 1).sum();
        let got = self.read_until(len, WAIT);
        let got = String::from_utf8_lossy(&got);
        let mut lines: Vec<&str> = got.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, expected);
        self.expect_nothing();
    }

    #[track_caller]
    fn expect_nothing(&mut self) {
        let got = self.read_until(usize::MAX, QUIET);
        assert!(
            got.is_empty(),
            "unexpected {:?}",
            String::from_utf8_lossy(&got)
        );
    }

    /// Reads until the server closes (after `expected`).
    #[track_caller]
    fn expect_close(&mut self, expected: &str) {
        let got = self.read_until(usize::MAX, WAIT);
        assert_eq!(String::from_utf8_lossy(&got), expected);
        let mut byte = [0; 1];
        self.stream.set_read_timeout(Some(QUIET)).expect("timeout");
        assert_eq!(self.stream.read(&mut byte).ok(), Some(0), "closed");
    }

    /// Bytes read until `len` bytes, EOF or `wait` passed.
    fn read_until(&mut self, len: usize, wait: Duration) -> Vec<u8> {
        let deadline = Instant::now() + wait;
        let mut got = Vec::new();
        let mut buf = [0; 64 * 1024];
        while got.len() < len {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            self.stream.set_read_timeout(Some(left)).expect("timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => break,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        got
    }
}

#[test]
fn join_say_leave_quit() {
    let server = Server::start(&[]);
    let (mut a, mut b, mut c) = (server.client(), server.client(), server.client());
    a.send(b"JOIN lobby alice\r\n");
    a.expect("OK\nJOINED lobby alice\n");
    b.send(b"JOIN lobby bob\n");
    b.expect("OK\nJOINED lobby bob\n");
    a.expect("JOINED lobby bob\n");
    c.send(b"SAY lobby hi\nLEAVE lobby\n");
    c.expect("ERR not in room\nERR not in room\n");
    // The sender's own line comes before the OK of its LEAVE; the others hear why it left.
    a.send(b"SAY lobby hello  world\nLEAVE lobby\n");
    a.expect("MSG lobby alice hello  world\nOK\n");
    b.expect("MSG lobby alice hello  world\nLEFT lobby alice leave\n");
    b.send(b"QUIT\nSAY lobby late\n");
    b.expect_close("BYE\n");
}

#[test]
fn a_closed_connection_leaves_every_room() {
    let server = Server::start(&[]);
    let (mut a, mut b) = (server.client(), server.client());
    a.send(b"JOIN r1 a\nJOIN r2 a\n");
    a.expect("OK\nJOINED r1 a\nOK\nJOINED r2 a\n");
    b.send(b"JOIN r1 b1\nJOIN r2 b2\n");
    b.expect("OK\nJOINED r1 b1\nOK\nJOINED r2 b2\n");
    // Lines of one room keep their order; lines of two rooms may come in either.
    a.expect_lines(&["JOINED r1 b1", "JOINED r2 b2"]);
    // A second JOIN of a room only changes the nick.
    b.send(b"JOIN r1 bee\n");
    b.expect("OK\nJOINED r1 bee\n");
    a.expect("JOINED r1 bee\n");
    b.stream.shutdown(Shutdown::Write).expect("FIN");
    b.expect_close("");
    a.expect_lines(&["LEFT r1 bee closed", "LEFT r2 b2 closed"]);
}

#[test]
fn refusals() {
    let server = Server::start(&[]);
    let mut c = server.client();
    let long_name = "n".repeat(33);
    c.send(
        format!("JOIN lobby x.y\nJOIN lobby\nFOO\nJOIN {long_name} n\nSAY\nQUIT now\n").as_bytes(),
    );
    c.expect("ERR bad name\nERR bad name\nERR unknown command\nERR bad name\nERR bad name\nERR unknown command\n");
    let joins: String = (0..=64).map(|i| format!("JOIN r{i} n\n")).collect();
    c.send(joins.as_bytes());
    let mut replies: String = (0..64).map(|i| format!("OK\nJOINED r{i} n\n")).collect();
    replies.push_str("ERR too many rooms\n");
    c.expect(&replies);
}

#[test]
fn line_length_limit() {
    let server = Server::start(&[]);
    // 4096 bytes and a \r: allowed.
    let mut a = server.client();
    a.send(b"JOIN r a\n");
    a.expect("OK\nJOINED r a\n");
    let text = "x".repeat(4096 - "SAY r ".len());
    a.send(format!("SAY r {text}\r\n").as_bytes());
    a.expect(&format!("MSG r a {text}\n"));
    // 4097 bytes, whole or still without its \n: refused and closed.
    let mut b = server.client();
    b.send(format!("SAY r {text}x\n").as_bytes());
    b.expect_close("ERR line too long\n");
    let mut c = server.client();
    c.send(&[b'y'; 5000]);
    c.expect_close("ERR line too long\n");
}

#[test]
fn a_member_that_stops_reading_is_closed() {
    let server = Server::start(&["--max-queued", "16"]);
    let (mut talker, mut stuck) = (server.client(), server.client());
    stuck.send(b"JOIN r stuck\n");
    stuck.expect("OK\nJOINED r stuck\n");
    talker.send(b"JOIN r talker\n");
    talker.expect("OK\nJOINED r talker\n");
    // `stuck` never reads: its writes stall and its receiver lags. A thread reads the talker's
    // copies and looks for the LEFT line while the talker keeps saying 1 KB lines.
    let mut reader = talker.stream.try_clone().expect("clone");
    let left = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut tail = Vec::new();
        let mut buf = vec![0; 1 << 20];
        reader.set_read_timeout(Some(QUIET)).expect("timeout");
        while Instant::now() < deadline {
            if let Ok(n @ 1..) = reader.read(&mut buf) {
                tail.extend_from_slice(&buf[..n]);
                if tail.windows(20).any(|w| w == b"LEFT r stuck closed\n") {
                    return true;
                }
                tail.drain(..tail.len().saturating_sub(32));
            }
        }
        false
    });
    let line = format!("SAY r {}\n", "z".repeat(1000));
    talker
        .stream
        .set_write_timeout(Some(WAIT))
        .expect("timeout");
    while !left.is_finished() {
        talker.send(line.as_bytes());
    }
    assert!(
        left.join().expect("reader"),
        "stuck member still in the room after 20 s"
    );
}
