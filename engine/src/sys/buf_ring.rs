//! The provided-buffer ring of one [`Ring`](super::Ring): `count` buffers of `size` bytes that
//! its multishot recvs fill.
//!
//! Ownership: a buffer belongs to the kernel from the moment it is published in the ring until a
//! CQE names it; then to the ring's caller for the duration of one
//! [`Ring::consume_buffer`](super::Ring::consume_buffer) call, which recycles it afterwards. A
//! bitmap of the buffers the kernel handed out asserts both directions: the kernel never names a
//! buffer twice without a recycle in between, and nothing recycles a buffer the kernel holds.

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
}

impl BufRing {
    /// Maps `count` buffers of `buf_size` bytes, fills the ring with all of them and registers it
    /// as buffer group `group`.
    pub fn new(
        submitter: &Submitter<'_>,
        group: u16,
        count: u16,
        buf_size: u32,
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
        };
        for bid in 0..count {
            buf_ring.publish_entry(bid);
        }
        buf_ring.publish_tail();
        let addr = buf_ring.entries.ptr.as_ptr() as u64;
        // SAFETY: the entry array is page-aligned (mmap) and holds `count` entries; the ring that
        // owns this value keeps both mappings alive while any recv may use them (see `Ring`'s
        // Drop), so the kernel never reads or writes freed memory.
        unsafe { submitter.register_buf_ring_with_flags(addr, count, group, 0) }?;
        Ok(buf_ring)
    }

    pub fn group(&self) -> u16 {
        self.group
    }

    pub fn count(&self) -> u16 {
        self.count
    }

    /// A CQE named buffer `bid` holding `len` bytes: it is ours until [`BufRing::recycle`].
    pub fn take_delivered(&mut self, bid: u16, len: usize) -> &[u8] {
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
        let offset = usize::from(bid) * self.buf_size as usize;
        // SAFETY: `bid` and `len` are in bounds (asserted); a CQE naming `bid` handed the buffer
        // to us (the bitmap asserts it was not already ours), and the kernel does not touch it
        // again until `recycle(bid)` publishes it, which needs `&mut self` and so cannot run
        // while this borrow lives.
        unsafe { std::slice::from_raw_parts(self.buffers.ptr.as_ptr().add(offset), len) }
    }

    /// Hands buffer `bid` back to the kernel, visible at once (a plain store on x86).
    pub fn recycle(&mut self, bid: u16) {
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
