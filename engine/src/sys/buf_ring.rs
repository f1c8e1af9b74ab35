//! The per-core provided-buffer ring: `count` buffers of `size` bytes that multishot recvs fill.
//!
//! Ownership: a buffer belongs to the kernel from the moment it is published in the ring until a
//! CQE names it; then to the engine until [`BufRing::recycle`] puts it back. The engine copies
//! what it keeps (a partial frame, a reply) before recycling, so no frame ever borrows a buffer
//! the kernel may overwrite.

use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU16, Ordering};

use io_uring::types::BufRingEntry;

use super::Ring;
use super::RingError;

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
        if self.len == 0 {
            return;
        }
        // SAFETY: `ptr`/`len` describe a mapping this value created and nobody else unmaps.
        let rc = unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        debug_assert_eq!(rc, 0, "munmap: {}", io::Error::last_os_error());
    }
}

/// A registered provided-buffer ring with its buffers.
pub struct BufRing {
    entries: Mapping,
    buffers: Mapping,
    count: u16,
    buf_size: u32,
    group: u16,
    /// Our producer tail, published to the kernel on every recycle.
    tail: u16,
    registered: bool,
}

impl std::fmt::Debug for BufRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufRing")
            .field("count", &self.count)
            .field("buf_size", &self.buf_size)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl BufRing {
    /// Maps `count` buffers of `buf_size` bytes, fills the ring with all of them and registers it
    /// as buffer group `group`. Must be unregistered (see [`BufRing::unregister`]) before drop.
    pub fn new(ring: &Ring, group: u16, count: u16, buf_size: u32) -> Result<BufRing, RingError> {
        assert!(
            count.is_power_of_two() && count <= BUF_RING_ENTRIES_MAX,
            "count {count}"
        );
        assert!(buf_size > 0);
        let io = |error| RingError::BufRing { error };
        let entries =
            Mapping::new(usize::from(count) * std::mem::size_of::<BufRingEntry>()).map_err(io)?;
        let buffers = Mapping::new(usize::from(count) * buf_size as usize).map_err(io)?;
        let mut buf_ring = BufRing {
            entries,
            buffers,
            count,
            buf_size,
            group,
            tail: 0,
            registered: false,
        };
        for bid in 0..count {
            buf_ring.recycle(bid);
        }
        let addr = buf_ring.entries.ptr.as_ptr() as u64;
        // SAFETY: the entry array is page-aligned (mmap), holds `count` entries and stays mapped
        // until `unregister` has run (Drop asserts it did).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(addr, count, group, 0)
        }
        .map_err(io)?;
        buf_ring.registered = true;
        Ok(buf_ring)
    }

    pub fn group(&self) -> u16 {
        self.group
    }

    /// How many buffers the ring has.
    pub fn count(&self) -> u16 {
        self.count
    }

    pub fn buf_size(&self) -> u32 {
        self.buf_size
    }

    /// The `len` bytes a recv CQE delivered in buffer `bid`.
    pub fn filled(&self, bid: u16, len: usize) -> &[u8] {
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
        let offset = usize::from(bid) * self.buf_size as usize;
        // SAFETY: `bid` and `len` are in bounds (asserted); a CQE naming `bid` handed the buffer
        // to us, and the kernel does not touch it again until `recycle(bid)`, which needs
        // `&mut self` and so cannot run while this borrow lives.
        unsafe { std::slice::from_raw_parts(self.buffers.ptr.as_ptr().add(offset), len) }
    }

    /// Hands buffer `bid` back to the kernel, visible at once (a plain store on x86).
    pub fn recycle(&mut self, bid: u16) {
        assert!(
            bid < self.count,
            "buffer id {bid} out of range {}",
            self.count
        );
        let slot = usize::from(self.tail & (self.count - 1));
        let addr = self.buffers.ptr.as_ptr() as u64 + u64::from(bid) * u64::from(self.buf_size);
        // SAFETY: `slot < count`, inside the entry mapping; the kernel reads only the slots
        // between its head and the published tail, and this slot is past the published tail.
        let entry = unsafe { &mut *self.entries.ptr.as_ptr().cast::<BufRingEntry>().add(slot) };
        entry.set_addr(addr);
        entry.set_len(self.buf_size);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.publish();
    }

    /// Makes every recycled buffer visible to the kernel.
    fn publish(&mut self) {
        let base = self.entries.ptr.as_ptr().cast::<BufRingEntry>();
        // SAFETY: the tail field overlays entry 0 of our page-aligned entry mapping, and the
        // kernel only reads it; AtomicU16 has u16's size and alignment.
        let tail = unsafe { &*BufRingEntry::tail(base).cast::<AtomicU16>() };
        // Release: the entries written by `recycle` are visible before the new tail.
        tail.store(self.tail, Ordering::Release);
    }

    /// Unregisters the ring from the kernel. Call once no recv on this group is armed.
    pub fn unregister(&mut self, ring: &Ring) -> io::Result<()> {
        if self.registered {
            ring.submitter().unregister_buf_ring(self.group)?;
            self.registered = false;
        }
        Ok(())
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        if self.registered {
            // The kernel may still write into these buffers: keep the memory mapped forever
            // rather than let a later mapping at the same address be written.
            std::mem::forget(std::mem::replace(&mut self.buffers, Mapping::dangling()));
            std::mem::forget(std::mem::replace(&mut self.entries, Mapping::dangling()));
        }
    }
}

impl Mapping {
    /// A placeholder that owns nothing; dropping it unmaps nothing.
    fn dangling() -> Mapping {
        Mapping {
            ptr: NonNull::dangling(),
            len: 0,
        }
    }
}
