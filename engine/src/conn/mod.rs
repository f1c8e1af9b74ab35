//! One connection: its socket, its protocol session, the unconsumed tail of its input, its
//! replies, its life cycle and its counters. No I/O here: the core issues the operations and
//! feeds their results in.

mod life;
mod outbox;

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

pub use life::{phase, Action, Closing, Facts, Finish, Life};
pub use outbox::{Outbox, Pool};

use crate::context::CONN_TIMERS;
use crate::protocol_api::MessagePhase;

/// The engine's side of one connection (the protocol's session lives beside it, in the core).
#[derive(Debug)]
pub struct Conn {
    pub fd: OwnedFd,
    /// The low bits go into the user_data of this connection's operations.
    pub generation: u32,
    /// Never reused on this core: the close record's `conn`, and what makes a [`ConnId`] stale.
    ///
    /// [`ConnId`]: crate::ConnId
    pub id: u64,
    pub peer: Option<SocketAddr>,
    pub accepted_us: u64,

    /// Input the protocol left unconsumed: the start of an incomplete message.
    pub tail: Vec<u8>,
    pub life: Life,
    pub out: Outbox,
    pub in_flush_list: bool,
    /// Pushes are refused: the connection was found too slow, or a close was asked for.
    pub output_closed: bool,
    /// Replies the protocol deferred and has not written yet.
    pub owed: u32,
    /// The protocol's timers: when each is due (`u64::MAX`: not armed).
    pub timers: [u64; CONN_TIMERS],

    pub bytes_in: u64,
    pub bytes_out: u64,
    pub frames_in: u64,
    pub frames_out: u64,

    pub last_active_us: u64,
    pub message_started_us: u64,
    /// The earliest check in the deadline heap for this connection.
    pub armed_check_us: u64,
}

impl Conn {
    pub fn new(
        fd: OwnedFd,
        generation: u32,
        id: u64,
        peer: Option<SocketAddr>,
        now_us: u64,
    ) -> Conn {
        Conn {
            fd,
            generation,
            id,
            peer,
            accepted_us: now_us,
            tail: Vec::new(),
            life: Life::new(),
            out: Outbox::default(),
            in_flush_list: false,
            output_closed: false,
            owed: 0,
            timers: [u64::MAX; CONN_TIMERS],
            bytes_in: 0,
            bytes_out: 0,
            frames_in: 0,
            frames_out: 0,
            last_active_us: now_us,
            message_started_us: now_us,
            armed_check_us: u64::MAX,
        }
    }

    /// Output may still be written to it: it is not closing for good (no FIN sent, no failed
    /// send, replies not given up) and pushes were not refused.
    pub fn accepts_output(&self) -> bool {
        !self.output_closed && self.life.accepts_output()
    }

    /// The protocol's timers fire until the engine sends its FIN.
    pub fn timers_fire(&self) -> bool {
        self.life.linger_until_us().is_none()
    }

    /// What the life cycle needs to know about this connection now; `partial_phase` is the
    /// protocol's reading of the tail (asked only when there is one).
    pub fn facts(
        &self,
        partial_phase: impl FnOnce(&[u8]) -> MessagePhase,
        max_queued_bytes: usize,
    ) -> Facts {
        let partial_phase = if self.tail.is_empty() {
            MessagePhase::Header
        } else {
            partial_phase(&self.tail)
        };
        Facts {
            partial_bytes: self.tail.len(),
            partial_phase,
            send_in_flight: self.out.in_flight().is_some(),
            replies_pending: self.out.pending(),
            replies_owed: self.owed > 0,
            drained: self.out.queued_bytes() <= max_queued_bytes / 2,
        }
    }

    /// When this connection next needs attention from the timers: its own deadline (idle, read,
    /// linger) or one of the protocol's timers.
    pub fn deadline_us(&self, idle_timeout_us: u64, read_timeout_us: u64) -> u64 {
        let protocol = self.next_timer().map_or(u64::MAX, |(_, at_us)| at_us);
        protocol.min(self.engine_deadline_us(idle_timeout_us, read_timeout_us))
    }

    /// The engine's own deadline for this connection.
    pub fn engine_deadline_us(&self, idle_timeout_us: u64, read_timeout_us: u64) -> u64 {
        if let Some(until_us) = self.life.linger_until_us() {
            until_us
        } else if self.message_stalls() {
            self.message_started_us + read_timeout_us
        } else if self.owed > 0 && !self.life.is_classified() {
            u64::MAX // the protocol owes a reply: its timers decide
        } else {
            // Idle at a boundary, or a flush that makes no progress.
            self.last_active_us + idle_timeout_us
        }
    }

    /// The earliest armed protocol timer, if one is armed and still fires.
    pub fn next_timer(&self) -> Option<(usize, u64)> {
        if !self.timers_fire() {
            return None;
        }
        (0..CONN_TIMERS)
            .map(|timer| (timer, self.timers[timer]))
            .filter(|&(_, at_us)| at_us != u64::MAX)
            .min_by_key(|&(_, at_us)| at_us)
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
        // The protocol's session is kept beside it; the frame protocol's is 16 bytes.
        let conn = std::mem::size_of::<Conn>();
        assert!(conn <= 352, "a Conn grew to {conn} bytes");
        let http = std::mem::size_of::<crate::http::HttpSession<crate::http::NoUpgrade>>();
        assert!(
            conn + http <= 448,
            "an HTTP connection grew to {} bytes",
            conn + http
        );
    }
}
