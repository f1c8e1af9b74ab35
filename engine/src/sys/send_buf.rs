//! Send buffers and the ring's table of sends in flight.
//!
//! A send moves its [`SendBuf`] into the ring ([`Ring::send`](super::Ring::send)); the ring keeps
//! it in [`InFlight`] until the send's own completion hands it back. Nothing outside this module
//! can reach bytes the kernel may be reading, so no caller can free or change them too early, and
//! no replayed or foreign completion can release them: a completion is not `Clone`, and each send
//! has its own key (slot and sequence number) in the user_data.

use slab::Slab;

/// Bytes to send and how many of them the kernel has taken so far.
#[derive(Debug, Default)]
pub struct SendBuf {
    bytes: Vec<u8>,
    sent: usize,
}

impl SendBuf {
    pub fn new(bytes: Vec<u8>) -> SendBuf {
        SendBuf { bytes, sent: 0 }
    }

    /// Bytes not yet taken by the kernel.
    pub fn unsent_len(&self) -> usize {
        self.bytes.len() - self.sent
    }

    /// Bytes the kernel has taken so far.
    pub fn sent_len(&self) -> usize {
        self.sent
    }

    /// The buffer, for reuse.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// A buffer the kernel took `sent` bytes of (for tests of code that handles completions).
    #[cfg(test)]
    pub(crate) fn sent_for_tests(bytes: Vec<u8>, sent: usize) -> SendBuf {
        assert!(sent <= bytes.len());
        SendBuf { bytes, sent }
    }

    fn unsent(&self) -> &[u8] {
        &self.bytes[self.sent..]
    }

    fn advance(&mut self, sent: usize) {
        assert!(
            sent <= self.unsent_len(),
            "kernel sent {sent} of {} bytes",
            self.unsent_len()
        );
        self.sent += sent;
    }
}

/// Names one send in flight, to cancel it. A stale id names nothing (the cancel finds no request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendId {
    pub(super) key: u64,
}

impl SendId {
    /// An id that names no send (for tests of code that tracks sends).
    #[cfg(test)]
    pub(crate) fn for_tests() -> SendId {
        SendId { key: u64::MAX }
    }
}

const SEQ_BITS: u32 = 24;
const SEQ_MASK: u32 = (1 << SEQ_BITS) - 1;

struct Entry {
    user_data: u64,
    seq: u32,
    buf: SendBuf,
}

/// The sends of one ring that the kernel may still be reading.
pub(super) struct InFlight {
    sends: Slab<Entry>,
    next_seq: u32,
}

impl InFlight {
    pub fn new() -> InFlight {
        InFlight {
            sends: Slab::new(),
            next_seq: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.sends.len()
    }

    /// Keeps `buf` until the completion of the send keyed by the returned id; returns the bytes
    /// the SQE points to, which stay put because nothing else can reach the entry meanwhile.
    pub fn insert(&mut self, user_data: u64, buf: SendBuf) -> (SendId, *const u8, usize) {
        assert!(buf.unsent_len() > 0, "nothing to send");
        let seq = self.next_seq;
        self.next_seq = (seq + 1) & SEQ_MASK;
        let index = self.sends.insert(Entry {
            user_data,
            seq,
            buf,
        });
        let index = u32::try_from(index).expect("fewer than 2^32 sends in flight");
        let unsent = self.sends[index as usize].buf.unsent();
        let id = SendId {
            key: u64::from(seq) << 32 | u64::from(index),
        };
        (id, unsent.as_ptr(), unsent.len())
    }

    /// The send keyed `key` completed with `res`: its user_data and its buffer, advanced by what
    /// the kernel took.
    pub fn complete(&mut self, key: u64, res: i32) -> (u64, SendBuf) {
        let entry = self.remove(key);
        let mut buf = entry.buf;
        if res > 0 {
            buf.advance(res as usize);
        }
        (entry.user_data, buf)
    }

    fn remove(&mut self, key: u64) -> Entry {
        let (index, seq) = (key as u32 as usize, (key >> 32) as u32);
        match self.sends.get(index) {
            Some(entry) if entry.seq == seq => self.sends.remove(index),
            _ => panic!("completion of send {key:#x}, which is not in flight"),
        }
    }

    /// Gives up the buffers without freeing them: the kernel may still read them (ring teardown
    /// with sends in flight).
    pub fn leak(&mut self) {
        for (_, entry) in std::mem::take(&mut self.sends) {
            std::mem::forget(entry.buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_comes_back_advanced_once() {
        let mut table = InFlight::new();
        let (id, ptr, len) = table.insert(7, SendBuf::new(b"hello".to_vec()));
        assert_eq!(len, 5);
        assert!(!ptr.is_null());
        let (user_data, buf) = table.complete(id.key, 3);
        assert_eq!(user_data, 7);
        assert_eq!((buf.sent_len(), buf.unsent_len()), (3, 2));
        assert_eq!(table.len(), 0);
        // The rest goes out as a new send with a new key.
        let (second, _, len) = table.insert(7, buf);
        assert_eq!(len, 2);
        assert_ne!(second, id);
    }

    #[test]
    #[should_panic(expected = "not in flight")]
    fn a_replayed_completion_is_refused() {
        let mut table = InFlight::new();
        let (id, _, _) = table.insert(1, SendBuf::new(vec![1]));
        let (_, buf) = table.complete(id.key, 1);
        drop(buf);
        table.complete(id.key, 1);
    }

    #[test]
    #[should_panic(expected = "not in flight")]
    fn a_stale_key_for_a_reused_slot_is_refused() {
        let mut table = InFlight::new();
        let (old, _, _) = table.insert(1, SendBuf::new(vec![1]));
        table.complete(old.key, 1);
        let (_new, _, _) = table.insert(2, SendBuf::new(vec![2])); // same slot, next sequence
        table.complete(old.key, 1);
    }
}
