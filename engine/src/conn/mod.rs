//! One connection: its socket, its protocol session, the unconsumed tail of its input, its
//! replies, its life cycle and its counters. No I/O here: the core issues the operations and
//! feeds their results in.

mod life;
mod outbox;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

pub use life::{phase, Action, Closing, Facts, Finish, Life};
pub use outbox::{Outbox, Pool};

use crate::classify::Intent;
use crate::protocol_api::{Context, MessagePhase, Protocol, Verdict};

#[derive(Debug)]
pub struct Conn<S> {
    pub fd: OwnedFd,
    pub generation: u32,
    pub id: u64,
    pub peer: Option<SocketAddr>,
    pub accepted_us: u64,

    pub session: S,
    /// Input the protocol left unconsumed: the start of an incomplete message.
    pub tail: Vec<u8>,
    pub life: Life,
    pub out: Outbox,
    pub in_flush_list: bool,

    pub bytes_in: u64,
    pub bytes_out: u64,
    pub frames_in: u64,
    pub frames_out: u64,

    pub last_active_us: u64,
    pub message_started_us: u64,
    /// The earliest check in the deadline heap for this connection.
    pub armed_check_us: u64,
}

/// What one chunk of received bytes did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fed {
    pub messages: u64,
    /// The intent the protocol's verdict (or the engine's message bound) records.
    pub intent: Option<Intent>,
}

impl<S> Conn<S> {
    pub fn new(
        fd: OwnedFd,
        generation: u32,
        id: u64,
        peer: Option<SocketAddr>,
        session: S,
        now_us: u64,
    ) -> Conn<S> {
        Conn {
            fd,
            generation,
            id,
            peer,
            accepted_us: now_us,
            session,
            tail: Vec::new(),
            life: Life::new(),
            out: Outbox::default(),
            in_flush_list: false,
            bytes_in: 0,
            bytes_out: 0,
            frames_in: 0,
            frames_out: 0,
            last_active_us: now_us,
            message_started_us: now_us,
            armed_check_us: u64::MAX,
        }
    }

    /// Hands `data` (with the tail kept from before) to the protocol and keeps what it leaves;
    /// adds what it did to `fed`. A completion may deliver several pieces (a bundle): once one
    /// of them ends in a verdict, the rest is only counted.
    pub fn feed<P>(&mut self, proto: &P, data: &[u8], pool: &mut Pool, cx: &Context, fed: &mut Fed)
    where
        P: Protocol<Session = S>,
    {
        self.bytes_in += data.len() as u64;
        self.last_active_us = cx.now_us;
        if fed.intent.is_some() || !self.life.serving() {
            return;
        }
        let had_partial = !self.tail.is_empty();
        if had_partial {
            self.tail.extend_from_slice(data);
        }
        let input = if had_partial { &self.tail[..] } else { data };
        let mut out = self.out.output(pool);
        let step = proto.on_input(&mut self.session, input, &mut out, cx);
        assert!(
            step.consumed <= input.len(),
            "{step:?} of {} bytes",
            input.len()
        );
        if had_partial {
            self.tail.drain(..step.consumed);
        } else if step.verdict == Verdict::Continue && step.consumed < data.len() {
            if self.tail.capacity() == 0 {
                self.tail = pool.take();
            }
            self.tail.extend_from_slice(&data[step.consumed..]);
        }
        self.out.settle(pool);
        self.frames_in += step.messages;
        let mut intent = match step.verdict {
            Verdict::Continue => None,
            Verdict::Close if cx.draining => Some(Intent::Shutdown),
            Verdict::Close => Some(Intent::LocalClose),
            Verdict::Violation => Some(Intent::ProtocolError),
        };
        if intent.is_none() && self.tail.len() > proto.message_max() {
            intent = Some(Intent::ProtocolError); // the engine's own bound on one message
        }
        if intent.is_some() {
            self.tail.clear(); // what follows a closing verdict is ignored
        }
        if self.tail.is_empty() {
            pool.give(std::mem::take(&mut self.tail));
        } else if !had_partial || step.messages > 0 {
            self.message_started_us = cx.now_us; // a message started in this chunk
        }
        fed.messages += step.messages;
        fed.intent = intent;
    }

    /// What the life cycle needs to know about this connection now.
    pub fn facts<P>(&self, proto: &P, max_queued_bytes: usize) -> Facts
    where
        P: Protocol<Session = S>,
    {
        let partial_phase = if self.tail.is_empty() {
            MessagePhase::Header
        } else {
            proto.partial_phase(&self.session, &self.tail)
        };
        Facts {
            partial_bytes: self.tail.len(),
            partial_phase,
            send_in_flight: self.out.in_flight().is_some(),
            replies_pending: self.out.pending(),
            drained: self.out.queued_bytes() <= max_queued_bytes / 2,
        }
    }

    /// When this connection next needs attention from the timers.
    pub fn deadline_us(&self, idle_timeout_us: u64, read_timeout_us: u64) -> u64 {
        if let Some(until_us) = self.life.linger_until_us() {
            until_us
        } else if self.message_stalls() {
            self.message_started_us + read_timeout_us
        } else {
            // Idle at a boundary, or a flush that makes no progress.
            self.last_active_us + idle_timeout_us
        }
    }

    /// An incomplete message is the peer's to finish only while the engine reads from it.
    fn message_stalls(&self) -> bool {
        !self.tail.is_empty() && !self.life.is_classified() && !self.life.is_paused()
    }

    /// Gives up every reply not sent, counting those that left whole.
    pub fn drop_replies(&mut self, pool: &mut Pool) {
        self.frames_out += self.out.give_up(pool);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-connection memory is part of the idle-connection budget (≤ 1 KB each, all in).
    #[test]
    fn conn_stays_small() {
        let frame = std::mem::size_of::<Conn<crate::frame::FrameSession>>();
        assert!(frame <= 352, "a frame Conn grew to {frame} bytes"); // 312 today
        let http = std::mem::size_of::<Conn<crate::http::HttpSession>>();
        assert!(http <= 448, "an HTTP Conn grew to {http} bytes"); // 368 today
    }
}
