//! The io_uring instance of one core: set-up with a fallback, operations, submit, wait, reap.

use std::fmt;
use std::io;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use super::buf_ring::{BufRing, Consumption};
use super::enter::{self, RingRef};
use super::op::{self, Tag};
use super::send_buf::InFlight;
use super::{Completion, SendBuf, SendId};

/// How the ring runs deferred task work (best first).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RingMode {
    /// SINGLE_ISSUER + DEFER_TASKRUN (6.1): completions are run only when this thread waits.
    DeferTaskrun,
    /// COOP_TASKRUN (5.19): no interrupting IPI when a completion is posted.
    CoopTaskrun,
}

/// Why the engine cannot run on this kernel. Each names what is missing.
#[derive(Debug)]
pub enum RingError {
    /// io_uring_setup itself failed: ENOSYS, EPERM (kernel.io_uring_disabled) and the like.
    Setup {
        error: io::Error,
        disabled_sysctl: Option<String>,
    },
    /// An opcode the engine needs is not supported.
    MissingOpcode {
        name: &'static str,
        since: &'static str,
    },
    /// The kernel is older than the multishot-recv floor.
    KernelTooOld { release: String },
    /// Registering the provided-buffer ring failed.
    BufRing { error: io::Error },
}

/// The oldest kernel the engine runs on: multishot recv on a provided-buffer ring.
pub const KERNEL_MIN: (u32, u32) = (6, 0);

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (major, minor) = KERNEL_MIN;
        match self {
            RingError::Setup { error, disabled_sysctl } => {
                write!(f, "io_uring is unavailable: io_uring_setup failed: {error}")?;
                if let Some(value) = disabled_sysctl {
                    write!(f, " (kernel.io_uring_disabled = {value}; set it to 0)")?;
                }
                write!(f, "; the engine needs io_uring on Linux {major}.{minor} or later")
            }
            RingError::MissingOpcode { name, since } => write!(
                f,
                "io_uring opcode {name} is not supported by this kernel; it needs Linux {since} or later"
            ),
            RingError::KernelTooOld { release } => write!(
                f,
                "kernel {release} lacks multishot recv on provided-buffer rings; it needs Linux {major}.{minor} or later"
            ),
            RingError::BufRing { error } => write!(
                f,
                "registering the provided-buffer ring failed: {error}; it needs Linux 5.19 or later"
            ),
        }
    }
}

impl std::error::Error for RingError {}

/// How a wait gathers completions before returning (see [`Ring::submit_and_wait`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Batch {
    pub want: u32,
    pub min_wait_us: u32,
}

/// The id of the next ring set up in this process (completions and buffers name their ring;
/// 64 bits never wrap, so no two rings share one).
static NEXT_RING_ID: AtomicU64 = AtomicU64::new(0);

/// The buffer group id of a ring's provided buffers (one group per ring).
const BUFFER_GROUP: u16 = 0;

/// What a cancel is aimed at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// The multishot accept issued with this user_data.
    Accept(u64),
    /// The multishot recv issued with this user_data.
    Recv(u64),
    /// One send in flight.
    Send(SendId),
}

/// One core's io_uring, and every resource the kernel may use on its behalf: the provided
/// buffers its recvs fill and the bytes of its sends in flight. None of them is freed while an
/// operation may still touch it; on drop with operations in flight, they are leaked instead.
pub struct Ring {
    uring: IoUring,
    mode: RingMode,
    id: u64,
    bufs: Option<BufRing>,
    sends: InFlight,
    /// Recvs pushed whose final CQE (F_MORE clear) has not been reaped.
    recvs_armed: usize,
    /// How `enter` names the ring: its registered fd once [`Ring::register_ring_fd`] succeeded.
    ring_ref: RingRef,
    /// The raw CQEs of one reap (kept for their capacity).
    cqes: Vec<(u64, i32, u32)>,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("mode", &self.mode)
            .field("id", &self.id)
            .field("recvs_armed", &self.recvs_armed)
            .field("sends_in_flight", &self.sends.len())
            .finish_non_exhaustive()
    }
}

impl Ring {
    /// Sets up a ring on the calling thread (SINGLE_ISSUER makes it the only submitter).
    pub fn new(sq_entries: u32, cq_entries: u32) -> Result<Ring, RingError> {
        let deferred = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_cqsize(cq_entries)
            .build(sq_entries);
        let (uring, mode) = match deferred {
            Ok(uring) => (uring, RingMode::DeferTaskrun),
            // EINVAL: the kernel predates DEFER_TASKRUN; fall back to COOP_TASKRUN.
            Err(error) if error.raw_os_error() == Some(libc::EINVAL) => {
                let uring = IoUring::builder()
                    .setup_coop_taskrun()
                    .setup_cqsize(cq_entries)
                    .build(sq_entries)
                    .map_err(setup_error)?;
                (uring, RingMode::CoopTaskrun)
            }
            Err(error) => return Err(setup_error(error)),
        };
        let ring_fd = uring.as_raw_fd();
        let ring = Ring {
            uring,
            mode,
            id: NEXT_RING_ID.fetch_add(1, Ordering::Relaxed),
            bufs: None,
            sends: InFlight::new(),
            recvs_armed: 0,
            ring_ref: RingRef::Fd(ring_fd),
            cqes: Vec::with_capacity(cq_entries as usize),
        };
        ring.check_support()?;
        Ok(ring)
    }

    pub fn mode(&self) -> RingMode {
        self.mode
    }

    /// Registers the ring's own fd (IORING_REGISTER_RING_FDS, Linux 5.18), so every enter skips
    /// the fd lookup. Returns whether it is in use; on a kernel without it nothing changes.
    pub fn register_ring_fd(&mut self) -> bool {
        if let RingRef::Registered(_) = self.ring_ref {
            return true;
        }
        match enter::register_ring_fd(self.uring.as_raw_fd()) {
            Ok(index) => {
                self.ring_ref = RingRef::Registered(index);
                true
            }
            Err(error) => {
                tracing::debug!(%error, "no registered ring fd: entering by fd");
                false
            }
        }
    }

    /// Registers `count` provided buffers of `size` bytes, one per CQE.
    pub fn provide_buffers(&mut self, count: u16, size: u32) -> Result<(), RingError> {
        self.provide_buffers_as(count, size, Consumption::Whole)
            .map(drop)
    }

    /// Registers `count` provided buffers of `size` bytes for this ring's recvs (once), handed
    /// out as `consumption` asks if the kernel can (else whole, one per CQE). Returns how they
    /// are handed out.
    pub fn provide_buffers_as(
        &mut self,
        count: u16,
        size: u32,
        consumption: Consumption,
    ) -> Result<Consumption, RingError> {
        assert!(self.bufs.is_none(), "buffers are provided once per ring");
        let consumption = match consumption {
            Consumption::Bundles if !self.uring.params().is_feature_recvsend_bundle() => {
                tracing::debug!("no recv bundles on this kernel (6.10+): one buffer per CQE");
                Consumption::Whole
            }
            other => other,
        };
        let submitter = self.uring.submitter();
        let bufs = match BufRing::new(&submitter, BUFFER_GROUP, count, size, consumption) {
            // EINVAL: a kernel without IOU_PBUF_RING_INC (6.12) refuses the flag.
            Err(error)
                if consumption == Consumption::Incremental
                    && error.raw_os_error() == Some(libc::EINVAL) =>
            {
                tracing::debug!("no incremental buffers on this kernel (6.12+)");
                BufRing::new(&submitter, BUFFER_GROUP, count, size, Consumption::Whole)
            }
            other => other,
        }
        .map_err(|error| RingError::BufRing { error })?;
        let consumption = bufs.consumption();
        self.bufs = Some(bufs);
        Ok(consumption)
    }

    /// How many provided buffers the ring has (0 before [`Ring::provide_buffers`]).
    pub fn buffer_count(&self) -> u16 {
        self.bufs.as_ref().map_or(0, BufRing::count)
    }

    /// Whether the kernel has `IORING_OP_MSG_RING` (5.18), for [`Ring::msg_ring`].
    pub fn supports_msg_ring(&self) -> bool {
        let mut probe = Probe::new();
        self.uring.submitter().register_probe(&mut probe).is_ok()
            && probe.is_supported(opcode::MsgRingData::CODE)
    }

    /// A second descriptor of this ring, for other threads to aim [`Ring::msg_ring`] at. Held
    /// open, it also keeps the ring's memory alive after this `Ring` is dropped, so a late
    /// wake-up lands in a ring no one reads, never in another file.
    pub fn dup_fd(&self) -> io::Result<OwnedFd> {
        // SAFETY: the ring's descriptor stays open for as long as `self.uring`, which outlives
        // this borrow.
        let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(self.uring.as_raw_fd()) };
        fd.try_clone_to_owned()
    }

    /// Posts a completion with `payload` into the ring behind `target` (another core's
    /// [`Ring::dup_fd`]): there it is an [`Op::Wake`](super::Op::Wake) completion. Nothing is
    /// posted here unless it fails ([`Op::WakeFailed`](super::Op::WakeFailed) with
    /// `user_data`).
    pub fn msg_ring(&mut self, target: &impl AsFd, payload: u64, user_data: u64) -> io::Result<()> {
        let entry = opcode::MsgRingData::new(
            types::Fd(target.as_fd().as_raw_fd()),
            0,
            op::encode(Tag::Wake, payload),
            None,
        )
        .build()
        .flags(squeue::Flags::SKIP_SUCCESS)
        .user_data(op::encode(Tag::WakeFailed, user_data));
        // SAFETY: the entry points to no memory; the target descriptor is the caller's, checked
        // by the kernel when the request is issued.
        unsafe { self.push(&entry) }
    }

    /// Checks the kernel floor and the opcodes the engine needs.
    fn check_support(&self) -> Result<(), RingError> {
        let release = super::socket::kernel_release();
        if !release_at_least(&release, KERNEL_MIN) {
            return Err(RingError::KernelTooOld { release });
        }
        let mut probe = Probe::new();
        self.uring
            .submitter()
            .register_probe(&mut probe)
            .map_err(|error| RingError::Setup {
                error,
                disabled_sysctl: None,
            })?;
        let needed = [
            (opcode::Accept::CODE, "ACCEPT", "5.5"),
            (opcode::Recv::CODE, "RECV", "5.6"),
            (opcode::Send::CODE, "SEND", "5.6"),
            (opcode::AsyncCancel::CODE, "ASYNC_CANCEL", "5.5"),
            (opcode::PollAdd::CODE, "POLL_ADD", "5.1"),
        ];
        for (code, name, since) in needed {
            if !probe.is_supported(code) {
                return Err(RingError::MissingOpcode { name, since });
            }
        }
        Ok(())
    }

    /// Queues one SQE, submitting first if the SQ is full.
    ///
    /// # Safety
    /// Every buffer the entry points to must stay valid and unmoved until its CQE arrives.
    unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the caller guarantees the entry's buffers outlive the operation.
            if unsafe { self.uring.submission().push(entry) }.is_ok() {
                return Ok(());
            }
            // The SQ is full: hand it to the kernel and try again.
            self.submit()?;
        }
    }

    /// Arms a multishot accept on a listening socket. Its completions carry the accepted
    /// sockets ([`Completion::take_accepted`]).
    pub fn accept_multi(&mut self, listener: &impl AsFd, user_data: u64) -> io::Result<()> {
        let entry = opcode::AcceptMulti::new(types::Fd(listener.as_fd().as_raw_fd()))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(op::encode(Tag::Accept, user_data));
        // SAFETY: the entry points to no memory of ours (no peer address is asked for).
        unsafe { self.push(&entry) }
    }

    /// Arms a multishot recv that fills the ring's provided buffers (in bundles, if the buffers
    /// are handed out so).
    pub fn recv_multi(&mut self, socket: &impl AsFd, user_data: u64) -> io::Result<()> {
        let bufs = self
            .bufs
            .as_ref()
            .expect("provide_buffers before recv_multi");
        let (group, fd) = (bufs.group(), types::Fd(socket.as_fd().as_raw_fd()));
        let entry = match bufs.consumption() {
            Consumption::Bundles => opcode::RecvMultiBundle::new(fd, group).build(),
            Consumption::Whole | Consumption::Incremental => {
                opcode::RecvMulti::new(fd, group).build()
            }
        }
        .user_data(op::encode(Tag::Recv, user_data));
        // SAFETY: the kernel writes only into the provided buffers, which this ring keeps mapped
        // until no recv is armed (`recvs_armed`, checked in Drop).
        unsafe { self.push(&entry) }?;
        self.recvs_armed += 1;
        Ok(())
    }

    /// Sends the unsent bytes of `buf` (MSG_NOSIGNAL is implied for io_uring sends). The ring
    /// keeps `buf` until the send's completion hands it back ([`Completion::take_sent`]).
    pub fn send(&mut self, socket: &impl AsFd, buf: SendBuf, user_data: u64) -> io::Result<SendId> {
        let (id, ptr, len) = self.sends.insert(user_data, buf);
        let len = u32::try_from(len).expect("send length fits u32");
        let entry = opcode::Send::new(types::Fd(socket.as_fd().as_raw_fd()), ptr, len)
            .build()
            .user_data(op::encode(Tag::Send, id.key));
        // SAFETY: the bytes live in `self.sends`, which neither frees nor changes them before
        // this send's completion (and leaks them if the ring is dropped first).
        if let Err(error) = unsafe { self.push(&entry) } {
            // Never queued: the kernel has no reference to the bytes; give them back.
            drop(self.sends.complete(id.key, 0));
            return Err(error);
        }
        Ok(id)
    }

    /// Cancels an operation; its own final completion follows, then this cancel's.
    pub fn cancel(&mut self, target: Target, user_data: u64) -> io::Result<()> {
        let target = match target {
            Target::Accept(user_data) => op::encode(Tag::Accept, user_data),
            Target::Recv(user_data) => op::encode(Tag::Recv, user_data),
            Target::Send(id) => op::encode(Tag::Send, id.key),
        };
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(op::encode(Tag::Cancel, user_data));
        // SAFETY: the entry points to no memory.
        unsafe { self.push(&entry) }
    }

    /// One-shot poll for readability (the wake-up eventfd).
    pub fn poll_readable(&mut self, fd: &impl AsFd, user_data: u64) -> io::Result<()> {
        let entry = opcode::PollAdd::new(types::Fd(fd.as_fd().as_raw_fd()), libc::POLLIN as u32)
            .build()
            .user_data(op::encode(Tag::Poll, user_data));
        // SAFETY: the entry points to no memory.
        unsafe { self.push(&entry) }
    }

    pub fn submit(&self) -> io::Result<usize> {
        loop {
            match self.uring.submit() {
                Err(error) if error.raw_os_error() == Some(libc::EINTR) => continue,
                other => return other,
            }
        }
    }

    /// Submits and waits for at least one completion, or until `timeout` passes.
    ///
    /// With `batch`, the wait first gathers up to `batch.want` completions for at most
    /// `batch.min_wait_us`, then returns as soon as one is there: fewer wake-ups at moderate
    /// load, for at most that much added latency (IORING_FEAT_MIN_TIMEOUT, Linux 6.12).
    pub fn submit_and_wait(
        &mut self,
        timeout: Option<Duration>,
        batch: Option<Batch>,
    ) -> io::Result<()> {
        let batch = batch.filter(|_| self.uring.params().is_feature_min_timeout());
        let (want, min_wait_us) = batch.map_or((1, 0), |b| (b.want, b.min_wait_us));
        let to_submit = self.uring.submission().len() as u32;
        match enter::enter(self.ring_ref, to_submit, want, timeout, min_wait_us) {
            Ok(_) => Ok(()),
            Err(error) => match error.raw_os_error() {
                // ETIME: the timeout passed; EINTR: a signal; EBUSY: the CQ overflowed and
                // must be drained first. In all three the caller reaps and comes back.
                Some(libc::ETIME | libc::EINTR | libc::EBUSY) => Ok(()),
                _ => Err(error),
            },
        }
    }

    /// Moves every ready completion into `out` (which must be empty: every completion taken
    /// out before must have been handled).
    pub fn reap(&mut self, out: &mut Vec<Completion>) {
        assert!(out.is_empty(), "completions left unhandled");
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.extend(
            self.uring
                .completion()
                .map(|cqe| (cqe.user_data(), cqe.result(), cqe.flags())),
        );
        for (user_data, res, flags) in cqes.drain(..) {
            let Some((tag, payload)) = op::decode(user_data) else {
                panic!("CQE with user_data {user_data:#x} that was never issued");
            };
            if let Some(completion) = self.completion(tag, payload, res, flags) {
                out.push(completion);
            }
        }
        self.cqes = cqes;
    }

    /// What one CQE tells the caller.
    fn completion(&mut self, tag: Tag, payload: u64, res: i32, flags: u32) -> Option<Completion> {
        let mut completion = Completion {
            op: tag.op(),
            user_data: payload,
            res,
            flags,
            ring: self.id,
            buffer: None,
            piece_at: 0,
            accepted: None,
            sent: None,
        };
        match tag {
            Tag::Accept if res >= 0 => {
                // SAFETY: a successful accept CQE hands us a fresh descriptor that nothing else
                // owns; this completion is its only holder.
                completion.accepted = Some(unsafe { OwnedFd::from_raw_fd(res) });
            }
            Tag::Recv => {
                completion.buffer = cqueue::buffer_select(flags);
                if let (Some(bid), Some(bufs), Ok(len)) =
                    (completion.buffer, self.bufs.as_mut(), usize::try_from(res))
                {
                    completion.piece_at = bufs.reap(bid, len, cqueue::buffer_more(flags));
                }
                if !cqueue::more(flags) {
                    assert!(self.recvs_armed > 0, "final CQE of a recv never armed");
                    self.recvs_armed -= 1;
                }
            }
            Tag::Send => {
                let (user_data, buf) = self.sends.complete(payload, res);
                completion.user_data = user_data;
                completion.sent = Some(buf);
            }
            Tag::Accept | Tag::Cancel | Tag::Poll | Tag::Wake | Tag::WakeFailed => {}
        }
        Some(completion)
    }

    #[cfg(test)]
    fn recvs_armed_for_tests(&self) -> bool {
        self.recvs_armed > 0
    }

    /// Calls `read` with the bytes this recv completion delivered — once per buffer, in order
    /// (a bundle spans several) — then gives the buffers back to the kernel. Returns the bytes
    /// delivered: 0 if the completion carries no buffer (or it was consumed already).
    /// Completions may be consumed in any order, except that the pieces of one incrementally
    /// consumed buffer must be consumed in the order they were reaped (else this panics).
    pub fn consume_buffers(
        &mut self,
        completion: &mut Completion,
        read: impl FnMut(&[u8]),
    ) -> usize {
        assert_eq!(completion.ring, self.id, "a completion of another ring");
        let Some(bid) = completion.buffer.take() else {
            return 0;
        };
        let len = usize::try_from(completion.res).expect("a CQE that names a buffer has res > 0");
        let more = cqueue::buffer_more(completion.flags);
        let bufs = self
            .bufs
            .as_mut()
            .expect("a buffer was delivered, so buffers exist");
        bufs.consume(bid, len, more, completion.piece_at, read);
        len
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        if let RingRef::Registered(index) = self.ring_ref {
            let _ = enter::unregister_ring_fd(self.uring.as_raw_fd(), index);
        }
        if self.sends.len() > 0 {
            // The kernel may still read these bytes (ring teardown is asynchronous).
            self.sends.leak();
        }
        if let Some(bufs) = self.bufs.take() {
            if self.recvs_armed == 0 {
                if let Err(error) = bufs.unregister(&self.uring.submitter()) {
                    debug_assert!(false, "unregister the buffer ring: {error}");
                }
            } else {
                // An armed recv may still write into the buffers: keep them mapped for good.
                bufs.leak();
            }
        }
    }
}

fn setup_error(error: io::Error) -> RingError {
    let disabled_sysctl = std::fs::read_to_string("/proc/sys/kernel/io_uring_disabled")
        .ok()
        .map(|value| value.trim().to_owned())
        .filter(|value| value != "0");
    RingError::Setup {
        error,
        disabled_sysctl,
    }
}

/// Whether a `uname -r` string is at least `major.minor`.
fn release_at_least(release: &str, (major, minor): (u32, u32)) -> bool {
    let mut parts = release
        .split(|c: char| !c.is_ascii_digit())
        .filter(|p| !p.is_empty());
    let have_major = parts
        .next()
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(0);
    let have_minor = parts
        .next()
        .and_then(|p| p.parse::<u32>().ok())
        .unwrap_or(0);
    (have_major, have_minor) >= (major, minor)
}

#[cfg(test)]
mod tests;
