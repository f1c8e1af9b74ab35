//! Completions as the ring hands them out: what the operation was, its result, and what it
//! carries (an accepted socket, a provided buffer, a send's bytes), each of which can be taken
//! exactly once because a completion is neither `Copy` nor `Clone`.

use std::os::fd::OwnedFd;

use io_uring::cqueue;

use super::{Op, SendBuf};

/// One completion, copied out of the CQ so that handling it can push new SQEs.
#[derive(Debug)]
pub struct Completion {
    pub(super) op: Op,
    pub(super) user_data: u64,
    pub(super) res: i32,
    pub(super) flags: u32,
    /// Which ring reaped it: its buffer can only be read through that ring.
    pub(super) ring: u64,
    /// The provided buffer this recv CQE filled, until consumed.
    pub(super) buffer: Option<u16>,
    /// Where in `buffer` this CQE's bytes start (incremental consumption; else 0), fixed when
    /// the CQE was reaped.
    pub(super) piece_at: u32,
    /// The socket a successful accept CQE returned, until taken.
    pub(super) accepted: Option<OwnedFd>,
    /// A send's bytes, handed back by its completion, until taken.
    pub(super) sent: Option<SendBuf>,
}

impl Completion {
    pub fn op(&self) -> Op {
        self.op
    }

    /// The caller's user_data of the operation (56 bits).
    pub fn user_data(&self) -> u64 {
        self.user_data
    }

    pub fn res(&self) -> i32 {
        self.res
    }

    /// IORING_CQE_F_MORE: a multishot request stays armed after this CQE.
    pub fn more(&self) -> bool {
        cqueue::more(self.flags)
    }

    /// Whether this recv CQE filled a provided buffer (read it with
    /// [`Ring::consume_buffers`](super::Ring::consume_buffers)).
    pub fn has_buffer(&self) -> bool {
        self.buffer.is_some()
    }

    /// The socket a successful accept returned; dropping the completion closes it instead.
    pub fn take_accepted(&mut self) -> Option<OwnedFd> {
        self.accepted.take()
    }

    /// A send's buffer, advanced by the bytes the kernel took (`res` when positive).
    pub fn take_sent(&mut self) -> Option<SendBuf> {
        self.sent.take()
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        // A buffer never consumed is never recycled: the ring would shrink by one for good.
        debug_assert!(
            self.buffer.is_none() || std::thread::panicking(),
            "a recv completion dropped without consuming buffer {:?}",
            self.buffer
        );
    }
}
