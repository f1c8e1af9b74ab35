//! One client connection: its socket, send queue, outstanding requests and where it is in its
//! life (running, ending as its close mode says, closing).

use std::collections::VecDeque;
use std::io;
use std::net::{IpAddr, SocketAddr};

use engine::sys::{SendBuf, SendId};
use socket2::{Domain, Protocol, Socket, Type};

use crate::mix::CloseMode;
use crate::plan::ConnSpec;
use crate::stats::Outcome;
use crate::wire::{Expect, RecordExpect, ReplyDecoder, RequestSpec, Wire};

/// The multishot recv of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvState {
    /// Not armed yet (the connect is in progress).
    Off,
    Armed,
    /// A cancel is on its way; the final CQE follows.
    Cancelling,
    /// The final CQE arrived.
    Done,
}

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// Sending requests and checking replies.
    Running,
    /// Its last bytes are queued; shutdown(SHUT_WR) once they are sent.
    ShutAfterSend,
    /// Waiting for the engine to close (EOF), bounded by the end timeout.
    AwaitEof,
    /// The client closes: the recv is being cancelled; the socket closes when it is done.
    Closing,
}

/// A request whose reply has not arrived.
#[derive(Clone, Copy, Debug)]
pub struct Request {
    pub seq: u64,
    pub expect: Expect,
    pub sent_ns: u64,
    pub intended_ns: u64,
}

#[derive(Debug)]
pub struct Conn {
    pub spec: ConnSpec,
    pub generation: u32,
    pub socket: Socket,
    /// The send in flight (its bytes are the ring's until its CQE).
    pub send_in_flight: Option<SendId>,
    /// The unsent rest of a send the kernel took in part: sent next.
    pub send_rest: Option<SendBuf>,
    /// Bytes queued behind the send in flight.
    pub pending: Vec<u8>,
    /// A sent buffer kept for the next `pending`.
    pub spare: Vec<u8>,
    pub recv: RecvState,
    pub connected: bool,
    pub decoder: ReplyDecoder,
    pub outstanding: VecDeque<Request>,
    pub next_seq: u64,
    pub replies: u64,
    pub corrupt: u64,
    /// The reply stream could not be decoded: nothing more can be checked.
    pub broken: bool,
    pub step: Step,
    pub outcome: Option<Outcome>,
    /// When the current wait (connect, end) gives up; 0 for none.
    pub deadline_ns: u64,
    /// The client gave up waiting for the engine to close (`--end-timeout`).
    pub end_timed_out: bool,
    /// What its close record must show beyond the cause, where that is determined.
    pub record: Option<RecordExpect>,
}

/// Starts a non-blocking connect to `target`, bound to `source` first if given. The socket is
/// switched back to blocking mode: io_uring polls it either way, and a send issued while the
/// handshake is in progress completes once it is established (or fails with its error).
pub fn start_connect(target: SocketAddr, source: Option<IpAddr>) -> io::Result<Socket> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    socket.set_tcp_nodelay(true)?;
    if let Some(ip) = source {
        socket.bind(&SocketAddr::new(ip, 0).into())?;
    }
    socket.set_nonblocking(true)?;
    match socket.connect(&target.into()) {
        Ok(()) => {}
        Err(error) if error.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(error) => return Err(error),
    }
    socket.set_nonblocking(false)?;
    Ok(socket)
}

impl Conn {
    /// A connection whose first bytes (queued here, for the frame protocol) announce its tag.
    pub fn new(spec: ConnSpec, generation: u32, socket: Socket, wire: &Wire) -> Conn {
        let mut conn = Conn {
            spec,
            generation,
            socket,
            send_in_flight: None,
            send_rest: None,
            pending: Vec::new(),
            spare: Vec::new(),
            recv: RecvState::Off,
            connected: false,
            decoder: wire.decoder(),
            outstanding: VecDeque::new(),
            next_seq: 0,
            replies: 0,
            corrupt: 0,
            broken: false,
            step: Step::Running,
            outcome: None,
            deadline_ns: 0,
            end_timed_out: false,
            record: wire.record_expect(spec.mode),
        };
        wire.hello(spec.tag, &mut conn.pending);
        conn
    }

    /// Whether the request limit allows another request.
    pub fn may_request(&self) -> bool {
        !matches!(self.spec.requests, Some(limit) if self.next_seq >= limit)
    }

    /// Every request this connection will send has been queued.
    pub fn all_requested(&self) -> bool {
        !self.may_request()
    }

    /// Nothing queued and nothing in flight on the send side.
    pub fn send_idle(&self) -> bool {
        self.send_in_flight.is_none() && self.send_rest.is_none() && self.pending.is_empty()
    }

    /// Queues the next request; returns its bytes.
    pub fn queue_request(&mut self, wire: &Wire, now_ns: u64, intended_ns: u64) -> usize {
        let seq = self.next_seq;
        let spec = RequestSpec {
            tag: self.spec.tag,
            seq,
            close: self.spec.mode == CloseMode::CloseRequest && self.spec.requests == Some(seq + 1),
        };
        let start = self.pending.len();
        let expect = wire.request(spec, &mut self.pending);
        self.expect_reply(expect, now_ns, intended_ns);
        self.pending.len() - start
    }

    /// Counts a request (already queued) whose reply must be `expect`.
    pub fn expect_reply(&mut self, expect: Expect, now_ns: u64, intended_ns: u64) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.outstanding.push_back(Request {
            seq,
            expect,
            sent_ns: now_ns,
            intended_ns,
        });
    }

    /// The next bytes to send, if no send is in flight: the rest of a partial send first.
    pub fn next_send(&mut self) -> Option<SendBuf> {
        if self.send_in_flight.is_some() {
            return None;
        }
        if let Some(rest) = self.send_rest.take() {
            return Some(rest);
        }
        if self.pending.is_empty() {
            return None;
        }
        let next = std::mem::replace(&mut self.pending, std::mem::take(&mut self.spare));
        Some(SendBuf::new(next))
    }

    /// A send's buffer came back: keep its unsent rest, or reuse it.
    pub fn send_returned(&mut self, buf: SendBuf) {
        self.send_in_flight = None;
        if buf.unsent_len() > 0 {
            self.send_rest = Some(buf);
        } else {
            let mut bytes = buf.into_bytes();
            bytes.clear();
            self.spare = bytes;
        }
    }

    /// Sets the outcome unless one was already seen (the first evidence wins).
    pub fn set_outcome(&mut self, outcome: Outcome) {
        self.outcome.get_or_insert(outcome);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_request_of_a_close_request_connection_asks_for_the_close() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let socket = start_connect(listener.local_addr().unwrap(), None).unwrap();
        drop(listener);
        let spec = ConnSpec {
            tag: 9,
            mode: CloseMode::CloseRequest,
            requests: Some(3),
            source: None,
        };
        let wire = Wire::Http {
            workload: crate::wire::HttpWorkload::Pipeline,
        };
        let mut conn = Conn::new(spec, 1, socket, &wire);
        assert!(conn.pending.is_empty(), "HTTP has no HELLO");
        let sizes: Vec<usize> = (0..3).map(|_| conn.queue_request(&wire, 0, 0)).collect();
        assert!(conn.all_requested());
        assert_eq!(sizes.iter().sum::<usize>(), conn.pending.len());
        let text = String::from_utf8(conn.pending.clone()).unwrap();
        assert_eq!(text.matches("x-client-tag: 9\r\n").count(), 1, "{text}");
        assert!(text.ends_with("Connection: close\r\n\r\n"), "{text}");
        assert_eq!(text.matches("Connection: close").count(), 1, "{text}");
        let seqs: Vec<u64> = conn.outstanding.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [0, 1, 2]);
    }
}
