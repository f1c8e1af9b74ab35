//! A reply buffer the kernel may be reading: its bytes cannot be freed or changed while a send
//! of them is in flight.

use super::Completion;

/// Owns the bytes of at most one in-flight send.
///
/// The send SQE points into `bytes`; the allocation stays put because nothing can reach the Vec
/// while `in_flight` is set: every mutating method asserts it is clear, only the send's own
/// completion clears it, and dropping a buffer still in flight leaks it instead of freeing it.
#[derive(Debug, Default)]
pub struct SendBuf {
    bytes: Vec<u8>,
    sent: usize,
    /// user_data of the send in flight.
    in_flight: Option<u64>,
}

impl SendBuf {
    pub fn in_flight(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Bytes not yet taken by the kernel.
    pub fn unsent_len(&self) -> usize {
        self.bytes.len() - self.sent
    }

    /// Bytes the kernel has taken so far.
    pub fn sent_prefix(&self) -> &[u8] {
        &self.bytes[..self.sent]
    }

    /// Replaces the contents with `bytes`, returning the old buffer.
    pub fn refill(&mut self, bytes: Vec<u8>) -> Vec<u8> {
        assert!(self.in_flight.is_none(), "refill while a send is in flight");
        self.sent = 0;
        std::mem::replace(&mut self.bytes, bytes)
    }

    /// Takes the buffer out (empty afterwards).
    pub fn take(&mut self) -> Vec<u8> {
        self.refill(Vec::new())
    }

    /// The unsent bytes, for the send SQE. Marks the buffer in flight under `user_data`.
    pub(super) fn start(&mut self, user_data: u64) -> &[u8] {
        assert!(self.in_flight.is_none(), "one send in flight per buffer");
        assert!(self.unsent_len() > 0, "nothing to send");
        self.in_flight = Some(user_data);
        &self.bytes[self.sent..]
    }

    /// Takes the send's completion: the buffer is ours again. Returns the send's res.
    pub fn complete(&mut self, completion: &Completion) -> i32 {
        assert_eq!(
            self.in_flight,
            Some(completion.user_data()),
            "completion of another send"
        );
        self.in_flight = None;
        let res = completion.res();
        if res > 0 {
            let sent = res as usize;
            assert!(
                sent <= self.unsent_len(),
                "kernel sent {sent} of {} bytes",
                self.unsent_len()
            );
            self.sent += sent;
        }
        res
    }
}

impl Drop for SendBuf {
    fn drop(&mut self) {
        if self.in_flight.is_some() {
            // The kernel may still read these bytes: never free them.
            std::mem::forget(std::mem::take(&mut self.bytes));
        }
    }
}
