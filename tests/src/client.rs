//! A framed client of the echo protocol, and the socket helpers every test client shares.

use std::collections::VecDeque;
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use protocol::{encode_frame, Decoder, Kind, Progress, PAYLOAD_LEN_MAX};
use socket2::SockRef;

use crate::WAIT;

/// How a stream ended when read to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Orderly EOF: the server sent FIN.
    Fin,
    /// ECONNRESET: the server sent RST.
    Reset,
    /// Nothing ended the stream before the deadline.
    Timeout,
}

/// A framed client: writes frames, decodes the server's ECHO replies.
#[derive(Debug)]
pub struct Client {
    pub stream: TcpStream,
    decoder: Decoder,
    replies: VecDeque<Vec<u8>>,
    bytes_read: u64,
}

impl Client {
    #[track_caller]
    pub fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr, WAIT).unwrap_or_else(|error| panic!("connect {addr}: {error}"))
    }

    pub fn try_connect(addr: SocketAddr, timeout: Duration) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            decoder: Decoder::new(PAYLOAD_LEN_MAX),
            replies: VecDeque::new(),
            bytes_read: 0,
        })
    }

    /// Writes raw bytes (whole frames, pieces of frames or garbage).
    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        send_all(&mut self.stream, bytes);
    }

    #[track_caller]
    pub fn send_hello(&mut self, tag: u64) {
        self.send(&hello_frame(tag));
    }

    #[track_caller]
    pub fn send_echo(&mut self, payload: &[u8]) {
        self.send(&echo_frame(payload));
    }

    #[track_caller]
    pub fn send_close(&mut self) {
        self.send(&close_frame());
    }

    /// Reads exactly one reply frame, which must be an ECHO; returns its payload.
    #[track_caller]
    pub fn read_reply(&mut self, timeout: Duration) -> Vec<u8> {
        self.try_read_reply(timeout)
            .unwrap_or_else(|end| panic!("no reply within {timeout:?}: {end:?}"))
    }

    /// Like [`Client::read_reply`], but says how the stream ended instead of panicking.
    #[track_caller]
    pub fn try_read_reply(&mut self, timeout: Duration) -> Result<Vec<u8>, End> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(payload) = self.replies.pop_front() {
                return Ok(payload);
            }
            read_outcome(self.fill(deadline))?;
        }
    }

    /// Reads until EOF, RST or `timeout`; returns every reply payload and how the stream ended.
    #[track_caller]
    pub fn read_to_end(&mut self, timeout: Duration) -> (Vec<Vec<u8>>, End) {
        let deadline = Instant::now() + timeout;
        let end = loop {
            if let Err(end) = read_outcome(self.fill(deadline)) {
                break end;
            }
        };
        if end != End::Timeout {
            assert_eq!(
                self.decoder.partial_len(),
                0,
                "the stream ended ({end:?}) inside a reply frame, after {} bytes in all",
                self.bytes_read
            );
        }
        (self.replies.drain(..).collect(), end)
    }

    #[track_caller]
    pub fn shutdown_write(&self) {
        self.stream
            .shutdown(Shutdown::Write)
            .expect("shutdown(SHUT_WR)");
    }

    /// Closes with SO_LINGER {1, 0}: the kernel sends RST instead of FIN.
    #[track_caller]
    pub fn reset(self) {
        reset_stream(self.stream);
    }

    /// Sets SO_RCVBUF (which also turns off receive-buffer autotuning).
    #[track_caller]
    pub fn set_recv_buffer(&self, bytes: usize) {
        SockRef::from(&self.stream)
            .set_recv_buffer_size(bytes)
            .expect("SO_RCVBUF");
    }

    /// One read with the time left until `deadline`, decoding every reply it completes.
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut buffer = [0u8; 64 * 1024];
        let count = self.stream.read(&mut buffer)?;
        self.bytes_read += count as u64;
        let replies = &mut self.replies;
        self.decoder
            .feed(&buffer[..count], |frame| {
                assert_eq!(frame.kind, Kind::Echo, "the server only sends ECHO");
                replies.push_back(frame.payload.to_vec());
                Progress::Continue
            })
            .unwrap_or_else(|error| panic!("the server sent a bad frame: {error}"));
        Ok(count)
    }
}

/// Writes `frame` over and over on a non-blocking socket until writes have blocked for `stall`
/// without a break, `max_bytes` went out or 10 s passed; returns the bytes written. May stop
/// inside a frame.
#[track_caller]
pub fn pump_until_blocked(
    stream: &mut TcpStream,
    frame: &[u8],
    max_bytes: usize,
    stall: Duration,
) -> usize {
    stream.set_nonblocking(true).expect("O_NONBLOCK");
    let mut written = 0;
    let mut blocked_since: Option<Instant> = None;
    let deadline = Instant::now() + 2 * WAIT;
    while written < max_bytes && Instant::now() < deadline {
        let offset = written % frame.len();
        match stream.write(&frame[offset..]) {
            Ok(count) => {
                written += count;
                blocked_since = None;
            }
            Err(error) if is_timeout(&error) => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= stall {
                    break;
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(error) => panic!("write after {written} bytes: {error}"),
        }
    }
    stream.set_nonblocking(false).expect("O_NONBLOCK off");
    written
}

/// Writes all of `bytes`, waiting at most [`WAIT`] for the peer to take them.
#[track_caller]
pub fn send_all(stream: &mut TcpStream, bytes: &[u8]) {
    stream.set_write_timeout(Some(WAIT)).expect("SO_SNDTIMEO");
    stream
        .write_all(bytes)
        .unwrap_or_else(|error| panic!("send {} bytes: {error}", bytes.len()));
}

/// Closes with SO_LINGER {1, 0}: the kernel sends RST instead of FIN.
#[track_caller]
pub fn reset_stream(stream: TcpStream) {
    SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
}

pub fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// What one read says of the stream: `Ok` if bytes came, else how it ended (EOF, RST, or the
/// read timed out). Panics on any other error.
#[track_caller]
pub fn read_outcome(result: io::Result<usize>) -> Result<(), End> {
    match result {
        Ok(0) => Err(End::Fin),
        Ok(_) => Ok(()),
        Err(error) if error.kind() == ErrorKind::ConnectionReset => Err(End::Reset),
        Err(error) if is_timeout(&error) => Err(End::Timeout),
        Err(error) => panic!("read: {error}"),
    }
}

pub fn frame(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(kind, payload, &mut out);
    out
}

pub fn echo_frame(payload: &[u8]) -> Vec<u8> {
    frame(Kind::Echo, payload)
}

pub fn hello_frame(tag: u64) -> Vec<u8> {
    frame(Kind::Hello, &tag.to_be_bytes())
}

pub fn close_frame() -> Vec<u8> {
    frame(Kind::Close, &[])
}
