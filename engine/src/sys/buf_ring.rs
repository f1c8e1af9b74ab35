//! The provided-buffer ring of one [`Ring`](super::Ring): `count` buffers of `size` bytes that
//! its multishot recvs fill.
//!
//! Ownership: a buffer belongs to the kernel from the moment it is published in the ring until a
//! CQE names it; then to the ring's caller for the duration of one
//! [`Ring::consume_buffers`](super::Ring::consume_buffers) call, which recycles it afterwards. A
//! bitmap of the buffers the kernel handed out asserts both directions: the kernel never names a
//! buffer twice without a recycle in between, and nothing recycles a buffer the kernel holds.
//!
//! Two kernel options change what a CQE names ([`Consumption`]):
//! - bundles (IORING_RECVSEND_BUNDLE, 6.10): one CQE for several buffers, the ring entries that
//!   follow the named one. The ring remembers which buffer it published in each entry.
//! - incremental consumption (IOU_PBUF_RING_INC, 6.12): a buffer is filled in pieces by several
//!   CQEs (IORING_CQE_F_BUF_MORE: the kernel keeps the rest); each piece starts where the last
//!   ended, and the buffer is recycled after the piece without BUF_MORE.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// The kernel caps a buffer ring at 2^15 entries.
pub const BUF_RING_ENTRIES_MAX: u16 = 1 << 15;

/// An anonymous private mapping, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Mapping> {
        assert!(len > 0);
        // SAFETY: a fresh anonymous mapping aliases nothing; the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).expect("mmap never returns null on success");
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` describe a mapping this value created and nobody else unmaps.
        let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        debug_assert_eq!(rc, 0, "munmap: {}", io::Error::last_os_error());
    }
}

/// How the kernel hands out the ring's buffers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Consumption {
    /// One buffer per CQE, recycled after it.
    Whole,
    /// Recvs take bundles: one CQE may name several consecutive ring entries.
    Bundles,
    /// Buffers are consumed in pieces (IOU_PBUF_RING_INC).
    Incremental,
}

/// IOU_PBUF_RING_INC, from include/uapi/linux/io_uring.h.
const IOU_PBUF_RING_INC: u16 = 2;

/// A registered provided-buffer ring with its buffers.
pub(super) struct BufRing {
    entries: Mapping,
    buffers: Mapping,
    count: u16,
    buf_size: u32,
    group: u16,
    /// Our producer tail, published to the kernel on every recycle.
    tail: u16,
    /// Bit `bid` set: a CQE handed buffer `bid` to us and it is not recycled yet.
    delivered: Vec<u64>,
    consumption: Consumption,
    /// The buffer published in each ring entry (bundles follow entries).
    bid_at: Vec<u16>,
    /// The ring entry (tail counter) each buffer was last published at.
    entry_of: Vec<u16>,
    /// Bytes of each buffer already handed out (incremental consumption).
    offset: Vec<u32>,
    /// The buffers of the bundle being consumed.
    bundle: Vec<u16>,
}

impl BufRing {
    /// Maps `count` buffers of `buf_size` bytes, fills the ring with all of them and registers it
    /// as buffer group `group`.
    pub fn new(
        submitter: &Submitter<'_>,
        group: u16,
        count: u16,
        buf_size: u32,
        consumption: Consumption,
    ) -> io::Result<BufRing> {
        assert!(
            count.is_power_of_two() && count <= BUF_RING_ENTRIES_MAX,
            "count {count}"
        );
        assert!(buf_size > 0);
        let entries = Mapping::new(usize::from(count) * std::mem::size_of::<BufRingEntry>())?;
        let buffers = Mapping::new(usize::from(count) * buf_size as usize)?;
        let mut buf_ring = BufRing {
            entries,
            buffers,
            count,
            buf_size,
            group,
            tail: 0,
            delivered: vec![0; usize::from(count).div_ceil(64)],
            consumption,
            bid_at: vec![0; usize::from(count)],
            entry_of: vec![0; usize::from(count)],
            offset: vec![0; usize::from(count)],
            bundle: Vec::new(),
        };
        for bid in 0..count {
            buf_ring.publish_entry(bid);
        }
        buf_ring.publish_tail();
        let addr = buf_ring.entries.ptr.as_ptr() as u64;
        let flags = match consumption {
            Consumption::Incremental => IOU_PBUF_RING_INC,
            Consumption::Whole | Consumption::Bundles => 0,
        };
        // SAFETY: the entry array is page-aligned (mmap) and holds `count` entries; the ring that
        // owns this value keeps both mappings alive while any recv may use them (see `Ring`'s
        // Drop), so the kernel never reads or writes freed memory.
        unsafe { submitter.register_buf_ring_with_flags(addr, count, group, flags) }?;
        Ok(buf_ring)
    }

    pub fn group(&self) -> u16 {
        self.group
    }

    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn consumption(&self) -> Consumption {
        self.consumption
    }

    /// Hands `read` the `len` bytes a recv CQE delivered starting in buffer `bid`, then gives
    /// the buffers back (`more`: IORING_CQE_F_BUF_MORE, the kernel keeps filling this one).
    pub fn consume(&mut self, bid: u16, len: usize, more: bool, mut read: impl FnMut(&[u8])) {
        match self.consumption {
            Consumption::Whole => {
                read(self.take_delivered(bid, len));
                self.recycle(bid);
            }
            Consumption::Incremental => {
                read(self.take_piece(bid, len, more));
                if !more {
                    self.recycle(bid);
                }
            }
            Consumption::Bundles => self.consume_bundle(bid, len, read),
        }
    }

    /// A bundle: the entries from `bid`'s on, every buffer full but the last.
    fn consume_bundle(&mut self, bid: u16, len: usize, mut read: impl FnMut(&[u8])) {
        let size = self.buf_size as usize;
        let first = self.entry_of[usize::from(bid)];
        let mut bundle = std::mem::take(&mut self.bundle);
        bundle.clear();
        // Read every buffer's id before recycling any: a recycle writes the entry at the tail.
        for i in 0..len.div_ceil(size).max(1) {
            let entry = first.wrapping_add(i as u16) & (self.count - 1);
            bundle.push(self.bid_at[usize::from(entry)]);
        }
        assert_eq!(
            bundle[0], bid,
            "a bundle starts at the buffer its CQE names"
        );
        let mut left = len;
        for &piece in &bundle {
            let take = left.min(size);
            read(self.take_delivered(piece, take));
            self.recycle(piece);
            left -= take;
        }
        self.bundle = bundle;
    }

    /// The next piece of an incrementally consumed buffer.
    fn take_piece(&mut self, bid: u16, len: usize, more: bool) -> &[u8] {
        let at = self.offset[usize::from(bid)] as usize;
        let end = at + len;
        assert!(
            end <= self.buf_size as usize,
            "piece {at}..{end} of buffer {bid}"
        );
        self.offset[usize::from(bid)] = if more { end as u32 } else { 0 };
        let whole = if at == 0 {
            self.take_delivered(bid, end)
        } else {
            self.delivered_slice(bid, end)
        };
        &whole[at..]
    }

    /// A CQE named buffer `bid` holding `len` bytes: it is ours until [`BufRing::recycle`].
    fn take_delivered(&mut self, bid: u16, len: usize) -> &[u8] {
        assert!(
            bid < self.count,
            "buffer id {bid} out of range {}",
            self.count
        );
        assert!(
            len <= self.buf_size as usize,
            "len {len} > buffer size {}",
            self.buf_size
        );
        let (word, bit) = (usize::from(bid) / 64, 1u64 << (bid % 64));
        assert_eq!(
            self.delivered[word] & bit,
            0,
            "buffer {bid} delivered twice"
        );
        self.delivered[word] |= bit;
        self.delivered_slice(bid, len)
    }

    /// The first `len` bytes of buffer `bid`, which a CQE handed to us (asserted by the bitmap).
    fn delivered_slice(&self, bid: u16, len: usize) -> &[u8] {
        let (word, bit) = (usize::from(bid) / 64, 1u64 << (bid % 64));
        assert_ne!(
            self.delivered[word] & bit,
            0,
            "buffer {bid} is the kernel's"
        );
        assert!(len <= self.buf_size as usize);
        let offset = usize::from(bid) * self.buf_size as usize;
        // The kernel writes no byte of a delivered buffer that we hand out until `recycle(bid)`
        // publishes it again (with incremental consumption it appends past the pieces already
        // delivered, never into them), and `recycle` needs `&mut self`: not while this lives.
        // SAFETY: in bounds (asserted), delivered to us (the bitmap), unwritten while borrowed.
        unsafe { std::slice::from_raw_parts(self.buffers.ptr.as_ptr().add(offset), len) }
    }

    /// Hands buffer `bid` back to the kernel, visible at once (a plain store on x86).
    fn recycle(&mut self, bid: u16) {
        assert!(
            bid < self.count,
            "buffer id {bid} out of range {}",
            self.count
        );
        let (word, bit) = (usize::from(bid) / 64, 1u64 << (bid % 64));
        assert_ne!(
            self.delivered[word] & bit,
            0,
            "buffer {bid} recycled but not delivered"
        );
        self.delivered[word] &= !bit;
        self.publish_entry(bid);
        self.publish_tail();
    }

    /// Writes buffer `bid` into the ring slot past the published tail.
    fn publish_entry(&mut self, bid: u16) {
        let slot = usize::from(self.tail & (self.count - 1));
        let addr = self.buffers.ptr.as_ptr() as u64 + u64::from(bid) * u64::from(self.buf_size);
        // SAFETY: `slot < count`, inside the entry mapping; the kernel reads only the slots
        // between its head and the published tail, and this slot is past the published tail.
        let entry = unsafe { &mut *self.entries.ptr.as_ptr().cast::<BufRingEntry>().add(slot) };
        entry.set_addr(addr);
        entry.set_len(self.buf_size);
        entry.set_bid(bid);
        self.bid_at[slot] = bid;
        self.entry_of[usize::from(bid)] = self.tail;
        self.tail = self.tail.wrapping_add(1);
    }

    /// Makes every entry written so far visible to the kernel.
    fn publish_tail(&mut self) {
        let base = self.entries.ptr.as_ptr().cast::<BufRingEntry>();
        // SAFETY: the tail field overlays entry 0 of our page-aligned entry mapping, and the
        // kernel only reads it; AtomicU16 has u16's size and alignment.
        let tail = unsafe { &*BufRingEntry::tail(base).cast::<AtomicU16>() };
        // Release: the entries written by `publish_entry` are visible before the new tail.
        tail.store(self.tail, Ordering::Release);
    }

    /// Unregisters the ring and frees its memory. Only for the owning `Ring` once no recv can
    /// pick a buffer any more.
    pub fn unregister(self, submitter: &Submitter<'_>) -> io::Result<()> {
        match submitter.unregister_buf_ring(self.group) {
            Ok(()) => Ok(()), // `self` drops here: both mappings are unmapped
            Err(error) => {
                self.leak(); // still registered: never unmap
                Err(error)
            }
        }
    }

    /// Keeps the memory mapped for the life of the process: a recv may still write into it.
    pub fn leak(self) {
        std::mem::forget(self);
    }
}
