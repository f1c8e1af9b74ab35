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
    /// Incremental consumption: where the next reaped piece of each buffer starts, and where
    /// the next consumed one must start. Pieces are consumed in the order they were reaped, so a
    /// buffer's last piece, which recycles it, is never consumed before the others.
    reaped_at: Vec<u32>,
    consumed_at: Vec<u32>,
    /// Bundles: the buffer after each one in the bundle it was reaped in.
    next_in_bundle: Vec<u16>,
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
            reaped_at: vec![0; usize::from(count)],
            consumed_at: vec![0; usize::from(count)],
            next_in_bundle: vec![0; usize::from(count)],
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

    /// A recv CQE delivered `len` bytes starting in buffer `bid` (`more`:
    /// IORING_CQE_F_BUF_MORE, the kernel keeps filling it): the buffers become ours, and the
    /// returned offset is where in `bid` the bytes start. Called once per CQE, in CQ order — the
    /// order the kernel picked the buffers in — so what a CQE holds is fixed before any later
    /// recycle can reuse a ring entry, whatever order the completions are consumed in.
    pub fn reap(&mut self, bid: u16, len: usize, more: bool) -> u32 {
        match self.consumption {
            Consumption::Whole => {
                self.take(bid);
                0
            }
            Consumption::Incremental => {
                let piece_at = self.reaped_at[usize::from(bid)];
                if piece_at == 0 {
                    self.take(bid); // the first piece hands the buffer over
                }
                self.reaped_at[usize::from(bid)] = if more { piece_at + len as u32 } else { 0 };
                piece_at
            }
            Consumption::Bundles => {
                // The entries from `bid`'s on, every buffer full but the last: linked in order.
                let first = self.entry_of[usize::from(bid)];
                let mut previous: Option<u16> = None;
                for i in 0..len.div_ceil(self.buf_size as usize).max(1) {
                    let entry = first.wrapping_add(i as u16);
                    let piece = self.bid_at[usize::from(entry & (self.count - 1))];
                    assert_eq!(
                        self.entry_of[usize::from(piece)],
                        entry,
                        "a bundle is the entries from the buffer its CQE names on"
                    );
                    self.take(piece);
                    if let Some(previous) = previous {
                        self.next_in_bundle[usize::from(previous)] = piece;
                    }
                    previous = Some(piece);
                }
                0
            }
        }
    }

    /// Hands `read` the `len` bytes a reaped CQE delivered starting in buffer `bid` (at
    /// `piece_at`, from [`BufRing::reap`]), then gives the buffers back.
    pub fn consume(
        &mut self,
        bid: u16,
        len: usize,
        more: bool,
        piece_at: u32,
        mut read: impl FnMut(&[u8]),
    ) {
        match self.consumption {
            Consumption::Whole => {
                read(self.delivered_slice(bid, len));
                self.recycle(bid);
            }
            Consumption::Incremental => {
                read(self.take_piece(bid, len, more, piece_at));
                if !more {
                    self.recycle(bid);
                }
            }
            Consumption::Bundles => {
                let (size, mut piece, mut left) = (self.buf_size as usize, bid, len);
                loop {
                    let take = left.min(size);
                    read(self.delivered_slice(piece, take));
                    let next = self.next_in_bundle[usize::from(piece)];
                    self.recycle(piece);
                    left -= take;
                    if left == 0 {
                        break;
                    }
                    piece = next;
                }
            }
        }
    }

    /// The next piece of an incrementally consumed buffer; pieces are consumed in the order
    /// they were reaped, so the last one (which recycles the buffer) comes last.
    fn take_piece(&mut self, bid: u16, len: usize, more: bool, piece_at: u32) -> &[u8] {
        let at = self.consumed_at[usize::from(bid)] as usize;
        assert_eq!(
            at, piece_at as usize,
            "pieces of buffer {bid} consumed out of the order they were reaped"
        );
        let end = at + len;
        assert!(
            end <= self.buf_size as usize,
            "piece {at}..{end} of buffer {bid}"
        );
        self.consumed_at[usize::from(bid)] = if more { end as u32 } else { 0 };
        &self.delivered_slice(bid, end)[at..]
    }

    /// A CQE named buffer `bid`: it is ours until [`BufRing::recycle`].
    fn take(&mut self, bid: u16) {
        assert!(
            bid < self.count,
            "buffer id {bid} out of range {}",
            self.count
        );
        let (word, bit) = (usize::from(bid) / 64, 1u64 << (bid % 64));
        assert_eq!(
            self.delivered[word] & bit,
            0,
            "buffer {bid} delivered twice"
        );
        self.delivered[word] |= bit;
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

    /// Keeps the memory the kernel may use mapped for the life of the process (a recv may
    /// still write into it); the bookkeeping is freed.
    pub fn leak(self) {
        std::mem::forget(self.entries);
        std::mem::forget(self.buffers);
    }
}
