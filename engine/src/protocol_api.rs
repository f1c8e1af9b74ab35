//! The seam between the engine and a protocol: what a protocol implements ([`Protocol`]) and what
//! the engine hands it ([`Output`], [`Context`]). Everything else — accepting, receiving into
//! provided buffers, batching sends, backpressure, timers, the drain, and the close cause of
//! every connection with its record and counters — the engine does for every protocol alike.
//!
//! Input is delivered as byte slices straight from the provided buffers. A protocol answers how
//! many bytes of complete messages it used ([`Step::consumed`]); the engine keeps the rest (the
//! start of an incomplete message) and offers it again, followed by the next bytes. So a
//! protocol copies only what it wants to keep, and the engine always knows how many bytes of an
//! incomplete message are buffered: that is what turns a FIN into `peer_fin_mid_frame` instead
//! of `peer_fin`, and a silence into `read_timeout` instead of `idle_timeout`.

use std::net::SocketAddr;

/// A protocol the engine serves. One value is shared by every core (hence `Sync`); each
/// connection gets its own [`Protocol::Session`], which never leaves its core.
///
/// The methods take `&self` for the protocol's configuration and the session explicitly, so a
/// connection's state holds only what differs per connection.
pub trait Protocol: Send + Sync + 'static {
    /// Per-connection state, created at accept.
    type Session: 'static;

    /// A connection was accepted from `peer` (`None` if it is already gone).
    fn open(&self, peer: Option<SocketAddr>) -> Self::Session;

    /// Handles received bytes: `input` is whatever the previous call left unconsumed, followed
    /// by the bytes that just arrived. Appends one reply per answered message to `out`.
    ///
    /// Returns how many leading bytes of `input` complete messages used, how many messages those
    /// were, and the verdict. After [`Verdict::Close`] or [`Verdict::Violation`] the engine feeds
    /// this connection nothing more; the replies already in `out` are still sent.
    fn on_input(
        &self,
        session: &mut Self::Session,
        input: &[u8],
        out: &mut Output<'_>,
        cx: &Context,
    ) -> Step;

    /// Which part of a message the unconsumed `tail` (never empty) is: the record's `phase`.
    fn partial_phase(&self, session: &Self::Session, tail: &[u8]) -> MessagePhase;

    /// The client's tag for the close record (`null` when `None`).
    fn tag(&self, _session: &Self::Session) -> Option<u64> {
        None
    }

    /// The most bytes of one incomplete message the engine keeps for this protocol; a message
    /// that grows past it is a [`Verdict::Violation`] decided by the engine. A protocol that
    /// enforces its own (smaller) limits, and answers them with an error reply, never hits it.
    fn message_max(&self) -> usize {
        MESSAGE_MAX_DEFAULT
    }
}

/// The default of [`Protocol::message_max`].
pub const MESSAGE_MAX_DEFAULT: usize = 1024 * 1024;

/// What a protocol did with the input it was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use]
pub struct Step {
    /// Leading bytes of the input that complete messages used (the rest is kept).
    pub consumed: usize,
    /// Complete messages in those bytes (the record's `frames_in`).
    pub messages: u64,
    pub verdict: Verdict,
}

impl Step {
    /// Keep serving.
    pub const fn more(consumed: usize, messages: u64) -> Step {
        Step {
            consumed,
            messages,
            verdict: Verdict::Continue,
        }
    }

    /// Close after the replies queued so far are sent (cause `local_close`).
    pub const fn close(consumed: usize, messages: u64) -> Step {
        Step {
            consumed,
            messages,
            verdict: Verdict::Close,
        }
    }

    /// The peer broke the protocol: send what `out` holds (e.g. an error reply), then close
    /// (cause `protocol_error`).
    pub const fn violation(consumed: usize, messages: u64) -> Step {
        Step {
            consumed,
            messages,
            verdict: Verdict::Violation,
        }
    }
}

/// A protocol's verdict on a connection, returned synchronously so that the engine records its
/// intent before it cancels anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// Close after flushing: `local_close`.
    Close,
    /// Close after flushing, because the peer broke the protocol: `protocol_error`.
    Violation,
}

/// Which part of an incomplete message the engine holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessagePhase {
    /// The message's header (for HTTP: request line or headers) is incomplete.
    Header,
    /// The header is complete, the body is not.
    Body,
}

/// What the engine tells a protocol along with the input.
#[derive(Clone, Copy, Debug)]
pub struct Context {
    pub(crate) core: u16,
    pub(crate) now_us: u64,
    pub(crate) draining: bool,
}

impl Context {
    /// The core (thread) serving the connection.
    pub fn core(&self) -> u16 {
        self.core
    }

    /// The core's clock in microseconds, read once per loop turn (monotonic, arbitrary epoch):
    /// cheap enough to use per message, e.g. to refresh a cached `Date` once per second.
    pub fn now_us(&self) -> u64 {
        self.now_us
    }

    /// The engine is shutting down: the message in progress is the connection's last one. (An
    /// HTTP server says `Connection: close` in its answer.)
    pub fn draining(&self) -> bool {
        self.draining
    }
}

/// The replies of one connection, owned by the engine and sent in batches. Each reply is
/// appended whole, so the engine knows where every reply ends: the record's `frames_out` counts
/// the replies the kernel took whole even when a send fails half-way.
#[derive(Debug)]
pub struct Output<'a> {
    pub(crate) bytes: &'a mut Vec<u8>,
    pub(crate) lens: &'a mut Vec<u32>,
}

/// The largest single reply.
pub const REPLY_MAX: usize = u32::MAX as usize;

impl Output<'_> {
    /// Appends one reply (at least one byte).
    pub fn push(&mut self, reply: &[u8]) {
        self.push_with(|bytes| bytes.extend_from_slice(reply));
    }

    /// Appends one reply that `write` appends to the buffer (it may only append: the earlier
    /// replies before the buffer's current end are not its to change).
    pub fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        let before = self.bytes.len();
        write(self.bytes);
        let after = self.bytes.len();
        assert!(after >= before, "a reply writer truncated earlier replies");
        assert!(after > before, "a reply has at least one byte");
        let len = u32::try_from(after - before).expect("a reply is at most REPLY_MAX bytes");
        self.lens.push(len);
    }

    /// Replies appended and not yet sent, in bytes.
    pub fn queued_bytes(&self) -> usize {
        self.bytes.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reply_is_one_length() {
        let (mut bytes, mut lens) = (Vec::new(), Vec::new());
        let mut out = Output {
            bytes: &mut bytes,
            lens: &mut lens,
        };
        out.push(b"abc");
        out.push_with(|buf| buf.extend_from_slice(b"de"));
        assert_eq!(out.queued_bytes(), 5);
        assert_eq!(bytes, b"abcde");
        assert_eq!(lens, [3, 2]);
    }

    #[test]
    #[should_panic(expected = "truncated earlier replies")]
    fn a_writer_cannot_take_back_earlier_replies() {
        let (mut bytes, mut lens) = (Vec::new(), Vec::new());
        let mut out = Output {
            bytes: &mut bytes,
            lens: &mut lens,
        };
        out.push(b"abc");
        out.push_with(|buf| buf.clear());
    }
}
