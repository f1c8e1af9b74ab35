//! One connection's replies: queued, in flight as one batch, or the unsent rest of a batch the
//! kernel took in part; and the core's pool of buffers, so a busy connection does not allocate
//! per batch and an idle one holds none.

use crate::protocol_api::Output;
use crate::sys::{SendBuf, SendId};

/// Buffers kept in the pool, and the largest capacity worth keeping.
const POOL_MAX: usize = 1024;
const BUF_KEEP_MAX: usize = 128 * 1024;
const BUF_INITIAL: usize = 4 * 1024;
const LENS_KEEP_MAX: usize = 4096;

/// Reply and input buffers kept for reuse by one core.
#[derive(Debug, Default)]
pub struct Pool {
    bytes: Vec<Vec<u8>>,
    lens: Vec<Vec<u32>>,
}

impl Pool {
    pub fn take(&mut self) -> Vec<u8> {
        self.bytes
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(BUF_INITIAL))
    }

    pub fn give(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > 0 && buf.capacity() <= BUF_KEEP_MAX && self.bytes.len() < POOL_MAX {
            buf.clear();
            self.bytes.push(buf);
        }
    }

    fn take_lens(&mut self) -> Vec<u32> {
        self.lens.pop().unwrap_or_default()
    }

    fn give_lens(&mut self, mut lens: Vec<u32>) {
        if lens.capacity() > 0 && lens.capacity() <= LENS_KEEP_MAX && self.lens.len() < POOL_MAX {
            lens.clear();
            self.lens.push(lens);
        }
    }
}

/// The replies of one connection.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Replies queued behind the batch in flight.
    queued: Vec<u8>,
    /// The length of every reply not yet sent whole: the batch's first, then the queued ones.
    lens: Vec<u32>,
    /// How many of `lens` belong to the batch (in flight, or its unsent rest).
    batch_replies: usize,
    /// Bytes of the batch the kernel has not taken yet.
    batch_unsent: usize,
    /// The send in flight.
    in_flight: Option<SendId>,
    /// The rest of a batch the kernel took in part, to be sent next.
    rest: Option<SendBuf>,
}

/// How a send completion left the replies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sent {
    pub bytes: usize,
    /// Replies that left whole with this send.
    pub replies: u64,
}

impl Outbox {
    /// Where a protocol appends replies; call [`Outbox::settle`] after it is done.
    pub fn output<'a>(&'a mut self, pool: &mut Pool) -> Output<'a> {
        if self.queued.capacity() == 0 {
            self.queued = pool.take();
        }
        if self.lens.capacity() == 0 {
            self.lens = pool.take_lens();
        }
        Output {
            bytes: &mut self.queued,
            lens: &mut self.lens,
        }
    }

    /// Gives unused buffers back to the pool (an idle connection holds none).
    pub fn settle(&mut self, pool: &mut Pool) {
        if self.queued.is_empty() && self.queued.capacity() > 0 {
            pool.give(std::mem::take(&mut self.queued));
        }
        if self.lens.is_empty() && self.lens.capacity() > 0 {
            pool.give_lens(std::mem::take(&mut self.lens));
        }
    }

    /// Reply bytes queued or in the batch and not yet sent.
    pub fn queued_bytes(&self) -> usize {
        self.queued.len() + self.batch_unsent
    }

    pub fn pending(&self) -> bool {
        self.queued_bytes() > 0
    }

    pub fn in_flight(&self) -> Option<SendId> {
        self.in_flight
    }

    /// The next batch to send, if none is in flight: the rest of a partial send first.
    pub fn next_batch(&mut self) -> Option<SendBuf> {
        if self.in_flight.is_some() {
            return None;
        }
        if let Some(rest) = self.rest.take() {
            return Some(rest);
        }
        if self.queued.is_empty() {
            return None;
        }
        assert_eq!(self.batch_replies, 0, "a batch is still unsent");
        self.batch_replies = self.lens.len();
        self.batch_unsent = self.queued.len();
        Some(SendBuf::new(std::mem::take(&mut self.queued)))
    }

    /// The batch from [`Outbox::next_batch`] is in flight as `id`.
    pub fn started(&mut self, id: SendId) {
        assert!(
            self.in_flight.is_none(),
            "one send in flight per connection"
        );
        self.in_flight = Some(id);
    }

    /// The send in flight completed with `res` and gave its buffer back. `Err(errno)` if it
    /// failed; the batch then stays, for [`Outbox::give_up`] to count.
    pub fn completed(&mut self, buf: SendBuf, res: i32, pool: &mut Pool) -> Result<Sent, i32> {
        assert!(self.in_flight.take().is_some(), "no send in flight");
        if res < 0 {
            self.rest = Some(buf);
            return Err(-res);
        }
        self.batch_unsent = buf.unsent_len();
        if buf.unsent_len() > 0 {
            self.rest = Some(buf);
            return Ok(Sent {
                bytes: res as usize,
                replies: 0,
            });
        }
        let replies = self.batch_replies;
        self.lens.drain(..replies);
        self.batch_replies = 0;
        pool.give(buf.into_bytes());
        self.settle(pool);
        Ok(Sent {
            bytes: res as usize,
            replies: replies as u64,
        })
    }

    /// Drops every reply not sent (nothing may be in flight); returns how many replies of the
    /// batch had left whole before it stopped.
    pub fn give_up(&mut self, pool: &mut Pool) -> u64 {
        assert!(
            self.in_flight.is_none(),
            "a batch in flight is the kernel's"
        );
        let sent = self.rest.as_ref().map_or(0, SendBuf::sent_len);
        let mut whole = 0;
        let mut end = 0usize;
        for &len in &self.lens[..self.batch_replies] {
            end += len as usize;
            if end > sent {
                break;
            }
            whole += 1;
        }
        if let Some(rest) = self.rest.take() {
            pool.give(rest.into_bytes());
        }
        self.queued.clear();
        self.lens.clear();
        self.batch_replies = 0;
        self.batch_unsent = 0;
        self.settle(pool);
        whole
    }
}

#[cfg(test)]
impl Outbox {
    /// The queued bytes, taken (with their lengths).
    pub fn take_for_tests(&mut self) -> Vec<u8> {
        self.lens.clear();
        std::mem::take(&mut self.queued)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(outbox: &mut Outbox, pool: &mut Pool, replies: &[&[u8]]) {
        let mut out = outbox.output(pool);
        for reply in replies {
            out.push(reply);
        }
        outbox.settle(pool);
    }

    #[test]
    fn a_whole_batch_counts_every_reply() {
        let (mut outbox, mut pool) = (Outbox::default(), Pool::default());
        queue(&mut outbox, &mut pool, &[b"ab", b"cde"]);
        assert_eq!(outbox.queued_bytes(), 5);
        let batch = outbox.next_batch().unwrap();
        assert_eq!(batch.unsent_len(), 5);
        assert_eq!(outbox.queued_bytes(), 5, "in flight still counts as queued");
        outbox.started(SendId::for_tests());
        assert!(outbox.next_batch().is_none(), "one batch in flight");
        // The ring hands the buffer back advanced by what the kernel took.
        let sent = outbox
            .completed(SendBuf::sent_for_tests(b"abcde".to_vec(), 5), 5, &mut pool)
            .unwrap();
        assert_eq!(sent.replies, 2);
        assert!(!outbox.pending());
    }

    #[test]
    fn a_failed_batch_counts_only_replies_that_left_whole() {
        let (mut outbox, mut pool) = (Outbox::default(), Pool::default());
        queue(&mut outbox, &mut pool, &[b"ab", b"cde", b"f"]);
        let _batch = outbox.next_batch().unwrap();
        outbox.started(SendId::for_tests());
        let partial = SendBuf::sent_for_tests(b"abcdef".to_vec(), 4);
        assert_eq!(
            outbox.completed(partial, 4, &mut pool),
            Ok(Sent {
                bytes: 4,
                replies: 0
            })
        );
        assert_eq!(outbox.queued_bytes(), 2);
        queue(&mut outbox, &mut pool, &[b"gh"]);
        let rest = outbox.next_batch().expect("the rest goes first");
        assert_eq!(rest.unsent_len(), 2);
        outbox.started(SendId::for_tests());
        assert_eq!(
            outbox.completed(rest, -libc::EPIPE, &mut pool),
            Err(libc::EPIPE)
        );
        assert_eq!(outbox.give_up(&mut pool), 1, "only `ab` left whole");
        assert!(!outbox.pending());
    }
}
