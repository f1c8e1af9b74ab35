//! `io_uring_enter` done here rather than by the io-uring crate, so that it can go through a
//! registered ring fd (IORING_REGISTER_RING_FDS, 5.18): the kernel then skips the fd-table
//! lookup and file refcount of every enter. (The crate keeps a registration in a `Submitter`
//! that a ring cannot hold next to the `IoUring` it borrows.)

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

// From include/uapi/linux/io_uring.h.
const IORING_ENTER_GETEVENTS: u32 = 1 << 0;
const IORING_ENTER_EXT_ARG: u32 = 1 << 3;
const IORING_ENTER_REGISTERED_RING: u32 = 1 << 4;
const IORING_REGISTER_RING_FDS: u32 = 20;
const IORING_UNREGISTER_RING_FDS: u32 = 21;

/// `struct io_uring_rsrc_update`.
#[repr(C)]
struct RsrcUpdate {
    offset: u32,
    resv: u32,
    data: u64,
}

/// `struct io_uring_getevents_arg` (`min_wait_usec` since 6.12; a kernel without
/// IORING_FEAT_MIN_TIMEOUT must be given 0 there).
#[repr(C)]
struct GetEventsArg {
    sigmask: u64,
    sigmask_sz: u32,
    min_wait_usec: u32,
    ts: u64,
}

/// `struct __kernel_timespec`.
#[repr(C)]
struct KernelTimespec {
    tv_sec: i64,
    tv_nsec: i64,
}

/// How `enter` names the ring.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum RingRef {
    Fd(RawFd),
    /// The index of the ring's registered fd.
    Registered(u32),
}

/// Registers the ring's own fd; returns its index.
pub(super) fn register_ring_fd(ring_fd: RawFd) -> io::Result<u32> {
    let mut update = RsrcUpdate {
        offset: u32::MAX, // the kernel picks a free index
        resv: 0,
        data: ring_fd as u64,
    };
    // SAFETY: the argument is one live, initialised rsrc_update, as the count 1 says; the
    // kernel writes the chosen index into its `offset`.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring_fd,
            IORING_REGISTER_RING_FDS,
            &mut update as *mut RsrcUpdate,
            1,
        )
    };
    if rc != 1 {
        return Err(io::Error::last_os_error());
    }
    Ok(update.offset)
}

/// Undoes [`register_ring_fd`].
pub(super) fn unregister_ring_fd(ring_fd: RawFd, index: u32) -> io::Result<()> {
    let update = RsrcUpdate {
        offset: index,
        resv: 0,
        data: 0,
    };
    // SAFETY: one live, initialised rsrc_update, as the count 1 says; the kernel only reads it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_io_uring_register,
            ring_fd,
            IORING_UNREGISTER_RING_FDS,
            &update as *const RsrcUpdate,
            1,
        )
    };
    if rc != 1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Submits `to_submit` SQEs and waits for `want` completions, at most `timeout`; with
/// `min_wait_us`, the wait first gathers for that long (IORING_FEAT_MIN_TIMEOUT).
pub(super) fn enter(
    ring: RingRef,
    to_submit: u32,
    want: u32,
    timeout: Option<Duration>,
    min_wait_us: u32,
) -> io::Result<u32> {
    let ts = timeout.map(|timeout| KernelTimespec {
        tv_sec: timeout.as_secs() as i64,
        tv_nsec: i64::from(timeout.subsec_nanos()),
    });
    let arg = GetEventsArg {
        sigmask: 0,
        sigmask_sz: 0,
        min_wait_usec: min_wait_us,
        ts: ts
            .as_ref()
            .map_or(0, |ts| ts as *const KernelTimespec as u64),
    };
    let mut flags = IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG;
    let fd = match ring {
        RingRef::Fd(fd) => fd,
        RingRef::Registered(index) => {
            flags |= IORING_ENTER_REGISTERED_RING;
            index as RawFd
        }
    };
    // SAFETY: `arg` (and the timespec it points to, kept alive in `ts`) live across the call;
    // with EXT_ARG the kernel reads exactly one getevents_arg of the size passed, and reads the
    // SQEs the ring's submission queue holds, which `Ring::push` filled under its own contract.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_io_uring_enter,
            fd,
            to_submit,
            want,
            flags,
            &arg as *const GetEventsArg,
            std::mem::size_of::<GetEventsArg>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(rc as u32)
}
