//! One connection's state: its decoder, queued replies, counters, recorded intent and timers.
//! No I/O here: the worker issues the operations and feeds their results in.

use std::net::SocketAddr;
use std::os::fd::OwnedFd;

use protocol::{encode_frame, Decoder, Kind, Progress};

use crate::classify::{Cause, Intent, Phase};
use crate::sys::{Completion, SendBuf};

/// State of the connection's multishot recv.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecvState {
    Armed,
    /// A cancel was issued; the final CQE is on its way.
    Cancelling,
    /// The final CQE arrived; nothing is in flight.
    Stopped,
}

/// The classification, fixed once made; the connection closes when its replies have drained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Closing {
    pub cause: Cause,
    pub phase: Phase,
    pub res: i32,
}

/// Reply buffers kept for reuse, so a busy connection does not allocate per batch and an idle
/// one holds none.
#[derive(Debug, Default)]
pub struct ReplyPool {
    free: Vec<Vec<u8>>,
}

/// Buffers kept in the pool, and the largest capacity worth keeping.
const REPLY_POOL_MAX: usize = 1024;
const REPLY_BUF_KEEP_MAX: usize = 128 * 1024;
const REPLY_BUF_INITIAL: usize = 4 * 1024;

impl ReplyPool {
    pub fn take(&mut self) -> Vec<u8> {
        self.free
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(REPLY_BUF_INITIAL))
    }

    pub fn give(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > 0
            && buf.capacity() <= REPLY_BUF_KEEP_MAX
            && self.free.len() < REPLY_POOL_MAX
        {
            buf.clear();
            self.free.push(buf);
        }
    }
}

#[derive(Debug)]
pub struct Conn {
    pub fd: OwnedFd,
    pub generation: u32,
    pub id: u64,
    pub peer: Option<SocketAddr>,
    pub tag: Option<u64>,
    pub accepted_us: u64,

    pub decoder: Decoder,
    pub recv: RecvState,
    /// res of the recv's latest final CQE (what a stopped recv last said).
    pub last_recv_res: i32,
    pub intent: Intent,
    /// The first errno a send failed with.
    pub send_errno: Option<i32>,
    pub closing: Option<Closing>,
    /// The recv ended with res 0 while a send was in flight: classify when that send completes.
    pub classify_pending: bool,
    /// A local close reads and discards input until the peer has every reply, or until this.
    pub linger_until_us: Option<u64>,
    /// Stop flushing: the peer does not read, or the shutdown bound passed.
    pub abandon_flush: bool,

    /// Replies queued behind the send in flight.
    pub out: Vec<u8>,
    pub out_frames: u64,
    /// The replies being sent (pinned while the kernel reads them).
    pub inflight: SendBuf,
    pub inflight_frames: u64,
    pub in_flush_list: bool,

    pub bytes_in: u64,
    pub bytes_out: u64,
    pub frames_in: u64,
    pub frames_out: u64,

    pub last_active_us: u64,
    pub frame_started_us: u64,
    /// The earliest check in the deadline heap for this connection.
    pub armed_check_us: u64,
}

/// What one chunk of received bytes did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Fed {
    pub frames: u64,
    pub replies: u64,
}

impl Conn {
    pub fn new(
        fd: OwnedFd,
        generation: u32,
        id: u64,
        peer: Option<SocketAddr>,
        max_frame: usize,
        now_us: u64,
    ) -> Conn {
        Conn {
            fd,
            generation,
            id,
            peer,
            tag: None,
            accepted_us: now_us,
            decoder: Decoder::new(max_frame),
            recv: RecvState::Stopped,
            last_recv_res: 0,
            intent: Intent::None,
            send_errno: None,
            closing: None,
            classify_pending: false,
            linger_until_us: None,
            abandon_flush: false,
            out: Vec::new(),
            out_frames: 0,
            inflight: SendBuf::default(),
            inflight_frames: 0,
            in_flush_list: false,
            bytes_in: 0,
            bytes_out: 0,
            frames_in: 0,
            frames_out: 0,
            last_active_us: now_us,
            frame_started_us: now_us,
            armed_check_us: u64::MAX,
        }
    }

    /// Whether received frames should still be served: not once a close is decided or a send
    /// failed.
    pub fn serving(&self) -> bool {
        self.intent.close_cause().is_none() && self.send_errno.is_none() && self.closing.is_none()
    }

    /// Decodes `data`, queueing an ECHO reply per ECHO frame. CLOSE and a bad frame record the
    /// engine's intent; frames after them are ignored.
    pub fn feed(&mut self, data: &[u8], pool: &mut ReplyPool, now_us: u64) -> Fed {
        self.bytes_in += data.len() as u64;
        self.last_active_us = now_us;
        if !self.serving() {
            return Fed::default();
        }
        if self.out.capacity() == 0 {
            self.out = pool.take();
        }
        let partial_before = self.decoder.partial_len();
        let mut fed = Fed::default();
        let Conn {
            decoder,
            out,
            tag,
            intent,
            ..
        } = self;
        let result = decoder.feed(data, |frame| {
            fed.frames += 1;
            match frame.kind {
                Kind::Echo => {
                    encode_frame(Kind::Echo, frame.payload, out);
                    fed.replies += 1;
                    Progress::Continue
                }
                Kind::Hello => {
                    *tag = Some(frame.hello_tag());
                    Progress::Continue
                }
                Kind::Close => {
                    *intent = Intent::LocalClose;
                    Progress::Stop
                }
            }
        });
        if result.is_err() {
            // The decoder keeps the error; a bad frame ends the connection.
            self.intent = Intent::ProtocolError;
        }
        self.frames_in += fed.frames;
        self.out_frames += fed.replies;
        if self.out.is_empty() {
            pool.give(std::mem::take(&mut self.out));
        }
        // A frame started in this chunk: its read deadline runs from now.
        if self.decoder.partial_len() > 0 && (partial_before == 0 || fed.frames > 0) {
            self.frame_started_us = now_us;
        }
        fed
    }

    /// Reply bytes queued or in flight and not yet sent.
    pub fn queued_bytes(&self) -> usize {
        self.out.len() + self.inflight.unsent_len()
    }

    pub fn replies_pending(&self) -> bool {
        self.queued_bytes() > 0
    }

    pub fn send_in_flight(&self) -> bool {
        self.inflight.in_flight()
    }

    /// When this connection next needs attention from the timers.
    pub fn deadline_us(&self, idle_timeout_us: u64, read_timeout_us: u64) -> u64 {
        if let Some(until_us) = self.linger_until_us {
            until_us
        } else if self.frame_stalls() {
            self.frame_started_us + read_timeout_us
        } else {
            // Idle at a boundary, or a flush that makes no progress.
            self.last_active_us + idle_timeout_us
        }
    }

    /// What a due deadline means: a stalled frame, or idleness.
    pub fn timeout_intent(&self) -> Intent {
        if self.frame_stalls() {
            Intent::ReadTimeout
        } else {
            Intent::IdleTimeout
        }
    }

    /// A partial frame is the peer's to finish only while the engine reads from it.
    fn frame_stalls(&self) -> bool {
        self.decoder.partial_len() > 0 && self.closing.is_none() && self.intent != Intent::Pause
    }

    /// Readies the next send: the rest of a partial send, else the queued replies. Returns false
    /// if there is nothing to send or a send is already in flight.
    pub fn start_send(&mut self, pool: &mut ReplyPool) -> bool {
        if self.send_in_flight() || self.abandon_flush || self.send_errno.is_some() {
            return false;
        }
        if self.inflight.unsent_len() > 0 {
            return true; // the rest of a partial send goes first
        }
        if self.out.is_empty() {
            return false;
        }
        pool.give(self.inflight.refill(std::mem::take(&mut self.out)));
        self.inflight_frames = std::mem::take(&mut self.out_frames);
        true
    }

    /// Takes a send's completion. Returns the errno if it failed.
    pub fn send_completed(
        &mut self,
        completion: &Completion,
        pool: &mut ReplyPool,
        now_us: u64,
    ) -> Result<usize, i32> {
        let res = self.inflight.complete(completion);
        if res < 0 {
            return Err(-res);
        }
        let sent = res as usize;
        self.bytes_out += sent as u64;
        self.last_active_us = now_us;
        if self.inflight.unsent_len() == 0 {
            self.frames_out += std::mem::take(&mut self.inflight_frames);
            pool.give(self.inflight.take());
        }
        Ok(sent)
    }

    /// Gives up on every reply not yet sent, counting those that did leave whole.
    pub fn drop_replies(&mut self, pool: &mut ReplyPool) {
        self.frames_out += protocol::count_complete_frames(self.inflight.sent_prefix());
        pool.give(self.inflight.take());
        pool.give(std::mem::take(&mut self.out));
        self.inflight_frames = 0;
        self.out_frames = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Per-connection memory is part of the 100k-idle-connections budget (≤ 64 MB in all).
    #[test]
    fn conn_stays_small() {
        let size = std::mem::size_of::<Conn>();
        assert!(size <= 352, "Conn grew to {size} bytes"); // 100k × 352 B = 35 MB
    }
}
