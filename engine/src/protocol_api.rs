//! The seam between the engine and a protocol: what a protocol implements ([`Protocol`]) and what
//! the engine hands it ([`Context`], [`Output`]). Everything else — accepting, receiving into
//! provided buffers, batching sends, backpressure, timeouts, the drain, and the close cause of
//! every connection with its record and counters — the engine does for every protocol alike.
//!
//! Input is delivered as byte slices straight from the provided buffers. A protocol answers how
//! many bytes of complete messages it used ([`Step::consumed`]); the engine keeps the rest (the
//! start of an incomplete message) and offers it again, followed by the next bytes. So a
//! protocol copies only what it wants to keep, and the engine always knows how many bytes of an
//! incomplete message are buffered: that is what turns a FIN into `peer_fin_mid_frame` instead
//! of `peer_fin`, and a silence into `read_timeout` instead of `idle_timeout`.
//!
//! Every callback runs on the core that owns the connection (or the per-core state) and gets a
//! [`Context`]: the core's state, writes to any connection of the core ([`ConnId`]), deferred
//! replies, timers, and messages to other cores.

use std::net::SocketAddr;

pub use crate::context::{
    BroadcastError, ConnId, Context, SendError, TimerError, WriteError, CONN_TIMERS, CORE_TIMERS,
    TIMER_AFTER_MAX,
};
use crate::record::CloseRecord;

/// A protocol the engine serves. One value is shared by every core (hence `Sync`); each
/// connection gets its own [`Protocol::Session`] and each core its own
/// [`Protocol::CoreState`], which never leave their core.
///
/// The methods take `&self` for the protocol's configuration and the session explicitly, so a
/// connection's state holds only what differs per connection. Only `on_input` is on the hot path;
/// the other callbacks default to doing nothing.
pub trait Protocol: Send + Sync + 'static {
    /// Per-connection state, created at accept.
    type Session: 'static;
    /// Per-core state (rooms, caches, counters), created on the core's thread before it serves.
    /// `()` if the protocol needs none.
    type CoreState: 'static;
    /// What cores send each other ([`Context::send`], [`Context::broadcast`]). `()` if the
    /// protocol sends none.
    type Message: Send + 'static;

    /// The state of core `core` (of [`Context::cores`]), made on that core's thread.
    fn core_state(&self, core: u16) -> Self::CoreState;

    /// A connection was accepted from `peer` (`None` if it is already gone). `cx.conn()` is its
    /// handle; a greeting may be written with `cx.output()`.
    fn open(&self, peer: Option<SocketAddr>, cx: &mut Context<'_, Self>) -> Self::Session;

    /// Handles received bytes: `input` is whatever the previous call left unconsumed, followed
    /// by the bytes that just arrived. Appends one reply per answered message to
    /// [`Context::output`], or defers it ([`Context::defer`]) to answer later.
    ///
    /// Returns how many leading bytes of `input` complete messages used, how many messages those
    /// were, and the verdict. After a closing verdict the engine feeds this connection nothing
    /// more; the replies already written (and the deferred ones, when they come) are still sent.
    fn on_input(
        &self,
        session: &mut Self::Session,
        input: &[u8],
        cx: &mut Context<'_, Self>,
    ) -> Step;

    /// Timer `timer` of this connection ([`Context::set_timer`]) is due. It does not fire once
    /// the engine has sent its FIN, and dies with the connection.
    fn on_timer(&self, _session: &mut Self::Session, _timer: usize, _cx: &mut Context<'_, Self>) {}

    /// Core timer `timer` ([`Context::set_core_timer`]) is due.
    fn on_core_timer(&self, _timer: usize, _cx: &mut Context<'_, Self>) {}

    /// A message another core (or this one) sent to this core.
    fn on_message(&self, _message: Self::Message, _cx: &mut Context<'_, Self>) {}

    /// The connection ended: `record` is its close record (cause, phase, bytes, messages,
    /// completion code, duration, peer). Called once per connection, in every classify mode,
    /// after the connection is gone (its handle is stale: writes to it fail); the session is
    /// dropped after this returns. Not called for the connections of a core that panicked.
    fn on_close(
        &self,
        _session: Self::Session,
        _record: &CloseRecord,
        _cx: &mut Context<'_, Self>,
    ) {
    }

    /// Which part of a message the unconsumed `tail` (never empty) is: the record's `phase`.
    fn partial_phase(&self, session: &Self::Session, tail: &[u8]) -> MessagePhase;

    /// The client's tag for the close record (`null` when `None`).
    fn tag(&self, _session: &Self::Session) -> Option<u64> {
        None
    }

    /// The most bytes of one incomplete message the engine keeps for this protocol; a message
    /// that grows past it is a protocol violation decided by the engine. A protocol that
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
        Step::with(consumed, messages, Verdict::Continue)
    }

    /// Keep serving, but hold the input after `consumed` (and whatever arrives) until
    /// [`Context::resume`]: the engine stops reading from the connection, and offers the held
    /// input again on resume. For a protocol that must answer one message before it reads the
    /// next (an HTTP response deferred while requests are pipelined behind it). A FIN or reset
    /// that arrives meanwhile is classified after the held input has been read.
    pub const fn hold(consumed: usize, messages: u64) -> Step {
        Step::with(consumed, messages, Verdict::Hold)
    }

    /// The peer asked, in the protocol, to end the connection (a CLOSE frame, `Connection:
    /// close`, `QUIT`): close after the replies (cause `peer_close`).
    pub const fn peer_close(consumed: usize, messages: u64) -> Step {
        Step::with(consumed, messages, Verdict::PeerClose)
    }

    /// The server decided on its own to close, after the replies (cause `local_close`).
    pub const fn close(consumed: usize, messages: u64) -> Step {
        Step::with(consumed, messages, Verdict::Close)
    }

    /// The peer broke the protocol: send what was written (e.g. an error reply), then close
    /// (cause `protocol_error`).
    pub const fn violation(consumed: usize, messages: u64) -> Step {
        Step::with(consumed, messages, Verdict::Violation)
    }

    const fn with(consumed: usize, messages: u64, verdict: Verdict) -> Step {
        Step {
            consumed,
            messages,
            verdict,
        }
    }
}

/// A protocol's verdict on a connection, returned synchronously so that the engine records its
/// intent before it cancels anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Continue,
    /// Keep serving; hold the input until the protocol resumes (see [`Step::hold`]).
    Hold,
    /// The peer asked to end the connection; close after flushing: `peer_close`.
    PeerClose,
    /// Close after flushing, the server's own decision: `local_close`.
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
