//! The io_uring instance of one core: set-up with a fallback, SQE builders, submit and wait.

use std::fmt;
use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use super::SendBuf;

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

/// One completion, copied out of the CQ so that handling it can push new SQEs. Only the ring
/// makes them, so a [`SendBuf`] is released only by its own send's completion.
#[derive(Clone, Copy, Debug)]
pub struct Completion {
    user_data: u64,
    res: i32,
    flags: u32,
}

impl Completion {
    pub fn user_data(&self) -> u64 {
        self.user_data
    }

    pub fn res(&self) -> i32 {
        self.res
    }

    /// IORING_CQE_F_MORE: a multishot request stays armed after this CQE.
    pub fn more(&self) -> bool {
        cqueue::more(self.flags)
    }

    /// The provided buffer this CQE filled, if any.
    pub fn buffer_id(&self) -> Option<u16> {
        cqueue::buffer_select(self.flags)
    }
}

/// One core's io_uring.
pub struct Ring {
    uring: IoUring,
    mode: RingMode,
}

impl fmt::Debug for Ring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ring")
            .field("mode", &self.mode)
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
        let ring = Ring { uring, mode };
        ring.check_support()?;
        Ok(ring)
    }

    pub fn mode(&self) -> RingMode {
        self.mode
    }

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

    /// Arms a multishot accept on a listening socket.
    pub fn accept_multi(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let entry = opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_CLOEXEC)
            .build()
            .user_data(user_data);
        // SAFETY: the entry points to no memory of ours (no peer address is asked for).
        unsafe { self.push(&entry) }
    }

    /// Arms a multishot recv that picks its buffers from provided-buffer group `group`.
    pub fn recv_multi(&mut self, fd: RawFd, group: u16, user_data: u64) -> io::Result<()> {
        let entry = opcode::RecvMulti::new(types::Fd(fd), group)
            .build()
            .user_data(user_data);
        // SAFETY: the kernel writes only into the registered buffer ring's memory, which
        // `BufRing` keeps mapped until it is unregistered.
        unsafe { self.push(&entry) }
    }

    /// Sends the unsent bytes of `buf` (MSG_NOSIGNAL is implied for io_uring sends). `buf` stays
    /// in flight, its bytes pinned, until [`SendBuf::complete`] takes this send's completion.
    pub fn send(&mut self, fd: RawFd, buf: &mut SendBuf, user_data: u64) -> io::Result<()> {
        let bytes = buf.start(user_data);
        let len = u32::try_from(bytes.len()).expect("send length fits u32");
        let entry = opcode::Send::new(types::Fd(fd), bytes.as_ptr(), len)
            .build()
            .user_data(user_data);
        // SAFETY: `SendBuf` neither frees nor changes its bytes while in flight (see its docs).
        unsafe { self.push(&entry) }
    }

    /// Cancels the request whose user_data is `target`; its final CQE follows.
    pub fn cancel(&mut self, target: u64, user_data: u64) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(target)
            .build()
            .user_data(user_data);
        // SAFETY: the entry points to no memory.
        unsafe { self.push(&entry) }
    }

    /// One-shot poll for readability (the wake-up eventfd).
    pub fn poll_readable(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let entry = opcode::PollAdd::new(types::Fd(fd), libc::POLLIN as u32)
            .build()
            .user_data(user_data);
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
        &self,
        timeout: Option<Duration>,
        batch: Option<Batch>,
    ) -> io::Result<()> {
        let batch = batch.filter(|_| self.uring.params().is_feature_min_timeout());
        let want = batch.map_or(1, |b| b.want as usize);
        let ts = timeout.map(types::Timespec::from);
        let result = match (&ts, batch) {
            (None, None) => self.uring.submitter().submit_and_wait(1),
            (ts, batch) => {
                let mut args = types::SubmitArgs::new();
                if let Some(batch) = batch {
                    args = args.min_wait_usec(batch.min_wait_us);
                }
                match ts {
                    Some(ts) => self
                        .uring
                        .submitter()
                        .submit_with_args(want, &args.timespec(ts)),
                    None => self.uring.submitter().submit_with_args(want, &args),
                }
            }
        };
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.raw_os_error() {
                // ETIME: the timeout passed; EINTR: a signal; EBUSY: the CQ overflowed and
                // must be drained first. In all three the caller reaps and comes back.
                Some(libc::ETIME | libc::EINTR | libc::EBUSY) => Ok(()),
                _ => Err(error),
            },
        }
    }

    /// Moves every ready completion into `out` (cleared first).
    pub fn reap(&mut self, out: &mut Vec<Completion>) {
        out.clear();
        out.extend(self.uring.completion().map(|cqe| Completion {
            user_data: cqe.user_data(),
            res: cqe.result(),
            flags: cqe.flags(),
        }));
    }

    pub(super) fn submitter(&self) -> io_uring::Submitter<'_> {
        self.uring.submitter()
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
mod tests {
    use super::*;

    #[test]
    fn kernel_release_floor() {
        assert!(release_at_least("6.18.44-fc-v782", (6, 0)));
        assert!(release_at_least("6.0.0", (6, 0)));
        assert!(!release_at_least("5.19.17-generic", (6, 0)));
        assert!(!release_at_least("garbage", (6, 0)));
    }

    #[test]
    fn setup_error_names_the_kernel_floor() {
        let error = RingError::Setup {
            error: io::Error::from_raw_os_error(libc::EPERM),
            disabled_sysctl: Some("2".into()),
        };
        let line = error.to_string();
        assert!(line.contains("io_uring_disabled = 2"), "{line}");
        assert!(line.contains("Linux 6.0 or later"), "{line}");
        let old = RingError::KernelTooOld {
            release: "5.15.0".into(),
        }
        .to_string();
        assert!(old.contains("5.15.0") && old.contains("6.0"), "{old}");
    }
}
