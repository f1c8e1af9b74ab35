//! One connection: its buffers, its phase, and the transitions on readiness. Each transition
//! returns the next [`Step`]; the server only applies it (epoll interest, or close).
//!
//! Per read: one `recv`, every complete request answered, one `send` of all the replies. A reply
//! the socket does not take whole is kept and finished on EPOLLOUT; reading pauses meanwhile.

use std::io;
use std::os::fd::{AsFd, OwnedFd};

use crate::http;
use crate::reply::{Close, Replies, REPLY_MAX, REQUEST_MIN};
use crate::sys::{self, Interest, Transfer};

/// Bytes asked for per read.
pub const READ_LEN: usize = 16 * 1024;
/// The input buffer: one read, plus the incomplete request held from earlier reads (grown to
/// this only when a request is that long).
const INPUT_MAX: usize = http::REQUEST_MAX + READ_LEN;
/// Reply bytes one read can produce: the held request and every request of the read.
const OUTPUT_MAX: usize = (1 + READ_LEN / REQUEST_MIN) * REPLY_MAX;
/// Bytes discarded while lingering before giving up on the peer's FIN.
const LINGER_DISCARD_MAX: usize = 256 * 1024;
/// Seconds spent lingering before closing anyway.
pub const LINGER_S: u64 = 2;

/// What the server does with the connection after a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Wait(Interest),
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for requests.
    Reading,
    /// Replies are queued that the socket did not take; then close or read again.
    Writing { close: Option<Close> },
    /// Replies sent and the write side shut: discarding input until the peer's FIN.
    Lingering { since_s: u64, discarded: usize },
}

/// A connection's buffers, kept by the server across connections so that accepting one does
/// not allocate.
#[derive(Debug, Default)]
pub struct Buffers {
    /// Filled up to `held`; its length is its usable size (zeroed once, never per read).
    input: Vec<u8>,
    /// Decoded chunked bodies.
    scratch: Vec<u8>,
    /// Replies not yet sent, from `sent` on.
    output: Vec<u8>,
}

impl Buffers {
    /// Empties the buffers, and gives back what one long request made them grow to.
    fn reset(&mut self) {
        self.input.resize(READ_LEN, 0);
        self.input.shrink_to(READ_LEN);
        self.scratch.clear();
        self.scratch.shrink_to(READ_LEN);
        self.output.clear();
        self.output.shrink_to(OUTPUT_MAX);
    }
}

#[derive(Debug)]
pub struct Conn {
    fd: OwnedFd,
    buffers: Buffers,
    held: usize,
    sent: usize,
    phase: Phase,
}

impl Conn {
    pub fn new(fd: OwnedFd, mut buffers: Buffers) -> Conn {
        buffers.reset();
        Conn {
            fd,
            buffers,
            held: 0,
            sent: 0,
            phase: Phase::Reading,
        }
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Closes the socket and hands the buffers back.
    pub fn close(self) -> Buffers {
        self.buffers
    }

    pub fn on_readable(&mut self, replies: &Replies, now_s: u64) -> io::Result<Step> {
        match self.phase {
            Phase::Reading => self.read_and_answer(replies, now_s),
            Phase::Lingering { since_s, discarded } => self.discard(since_s, discarded),
            Phase::Writing { .. } => Ok(Step::Wait(Interest::Write)),
        }
    }

    pub fn on_writable(&mut self, now_s: u64) -> io::Result<Step> {
        match self.phase {
            Phase::Writing { close } => self.flush(close, now_s),
            Phase::Reading | Phase::Lingering { .. } => Ok(Step::Wait(Interest::Read)),
        }
    }

    /// Lingering since more than [`LINGER_S`]: the peer never sent its FIN.
    pub fn linger_expired(&self, now_s: u64) -> bool {
        matches!(self.phase, Phase::Lingering { since_s, .. } if now_s > since_s + LINGER_S)
    }

    fn read_and_answer(&mut self, replies: &Replies, now_s: u64) -> io::Result<Step> {
        let room = room(&mut self.buffers.input, self.held);
        let len = match sys::recv(self.fd.as_fd(), room)? {
            Transfer::Bytes(len) => len,
            Transfer::WouldBlock => return Ok(Step::Wait(Interest::Read)),
            Transfer::Closed => return Ok(Step::Close),
        };
        self.held += len;
        let Buffers {
            input,
            scratch,
            output,
        } = &mut self.buffers;
        assert!(output.is_empty(), "reading with replies unsent");
        let batch = replies.answer_all(&input[..self.held], scratch, output);
        assert!(
            output.len() <= OUTPUT_MAX,
            "{} reply bytes from one read",
            output.len()
        );
        if batch.close.is_some() {
            self.held = 0;
        } else {
            input.copy_within(batch.consumed..self.held, 0);
            self.held -= batch.consumed;
        }
        self.flush(batch.close, now_s)
    }

    /// Sends what is queued (one `send`: a partial one waits for EPOLLOUT), then goes on as the
    /// batch said.
    fn flush(&mut self, close: Option<Close>, now_s: u64) -> io::Result<Step> {
        let output = &mut self.buffers.output;
        if self.sent < output.len() {
            match sys::send(self.fd.as_fd(), &output[self.sent..])? {
                Transfer::Bytes(len) => self.sent += len,
                Transfer::WouldBlock => {}
                Transfer::Closed => return Ok(Step::Close),
            }
            if self.sent < output.len() {
                self.phase = Phase::Writing { close };
                return Ok(Step::Wait(Interest::Write));
            }
        }
        output.clear();
        self.sent = 0;
        match close {
            None => {
                self.phase = Phase::Reading;
                Ok(Step::Wait(Interest::Read))
            }
            Some(Close::Now) => Ok(Step::Close),
            Some(Close::Linger) => {
                sys::shutdown_write(self.fd.as_fd())?;
                self.phase = Phase::Lingering {
                    since_s: now_s,
                    discarded: 0,
                };
                Ok(Step::Wait(Interest::Read))
            }
        }
    }

    fn discard(&mut self, since_s: u64, discarded: usize) -> io::Result<Step> {
        match sys::recv(self.fd.as_fd(), &mut self.buffers.input)? {
            Transfer::Bytes(len) if discarded + len > LINGER_DISCARD_MAX => Ok(Step::Close),
            Transfer::Bytes(len) => {
                self.phase = Phase::Lingering {
                    since_s,
                    discarded: discarded + len,
                };
                Ok(Step::Wait(Interest::Read))
            }
            Transfer::WouldBlock => Ok(Step::Wait(Interest::Read)),
            Transfer::Closed => Ok(Step::Close),
        }
    }
}

/// Where the next read goes: after the `held` bytes of `input`, at most [`READ_LEN`]; `input`
/// grows when a long request leaves under a quarter of a read's room.
fn room(input: &mut Vec<u8>, held: usize) -> &mut [u8] {
    if input.len() - held < READ_LEN / 4 {
        let grown = (held + READ_LEN).max(input.len() * 2).min(INPUT_MAX);
        assert!(grown > held, "{held} bytes held: over one request");
        input.resize(grown, 0);
    }
    let end = input.len().min(held + READ_LEN);
    &mut input[held..end]
}
