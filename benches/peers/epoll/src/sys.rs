//! Every libc call of the peer, each behind a safe function: epoll, `accept4`, `TCP_NODELAY`,
//! `recv`, `send` and `shutdown`. Errno is mapped per call; one that the call does not expect
//! is passed up as an `io::Error`. The only module with `unsafe`.

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

/// What a connection waits for; level-triggered, one at a time (reading pauses while a reply
/// waits for room to be written).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interest {
    Read,
    Write,
}

impl Interest {
    fn bits(self) -> u32 {
        match self {
            Interest::Read => libc::EPOLLIN as u32,
            Interest::Write => libc::EPOLLOUT as u32,
        }
    }
}

/// One readiness report: the token it was registered with and what happened.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct Event(libc::epoll_event);

impl Event {
    pub const EMPTY: Event = Event(libc::epoll_event { events: 0, u64: 0 });

    pub fn token(&self) -> u64 {
        self.0.u64
    }

    /// An error or a hang-up in both directions: nothing more to read or write.
    pub fn failed(&self) -> bool {
        self.0.events & (libc::EPOLLERR | libc::EPOLLHUP) as u32 != 0
    }
}

impl fmt::Debug for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (events, token) = (self.0.events, self.0.u64);
        write!(f, "Event {{ events: {events:#x}, token: {token:#x} }}")
    }
}

/// An epoll instance.
#[derive(Debug)]
pub struct Epoll {
    fd: OwnedFd,
}

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 takes no pointers; a non-negative result is a new fd we own.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by epoll_create1 and nothing else owns it.
        Ok(Epoll {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    pub fn add(&self, fd: BorrowedFd<'_>, interest: Interest, token: u64) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_ADD, fd, interest, token)
    }

    pub fn modify(&self, fd: BorrowedFd<'_>, interest: Interest, token: u64) -> io::Result<()> {
        self.control(libc::EPOLL_CTL_MOD, fd, interest, token)
    }

    fn control(
        &self,
        op: i32,
        fd: BorrowedFd<'_>,
        interest: Interest,
        token: u64,
    ) -> io::Result<()> {
        let mut event = libc::epoll_event {
            events: interest.bits(),
            u64: token,
        };
        // SAFETY: both fds are open for the call (borrowed); `event` is a valid epoll_event that
        // the kernel only reads during the call.
        let result =
            unsafe { libc::epoll_ctl(self.fd.as_raw_fd(), op, fd.as_raw_fd(), &mut event) };
        if result < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` and fills the front of `events`; returns how many. A signal
    /// interrupting the wait is 0 events.
    pub fn wait(&self, events: &mut [Event], timeout_ms: i32) -> io::Result<usize> {
        let capacity = i32::try_from(events.len()).expect("event capacity fits an i32");
        assert!(capacity > 0, "epoll_wait needs room for one event");
        // SAFETY: `Event` is `repr(transparent)` over `epoll_event`, so the pointer is to
        // `capacity` writable epoll_events that outlive the call.
        let count = unsafe {
            libc::epoll_wait(
                self.fd.as_raw_fd(),
                events.as_mut_ptr().cast(),
                capacity,
                timeout_ms,
            )
        };
        match count {
            0.. => Ok(count as usize),
            _ => match io::Error::last_os_error() {
                error if error.raw_os_error() == Some(libc::EINTR) => Ok(0),
                error => Err(error),
            },
        }
    }
}

/// Accepts one connection, non-blocking and close-on-exec; `None` when none is waiting.
/// Connections that fail before being accepted (ECONNABORTED and the network errors
/// accept(2) says to treat like EAGAIN) are skipped.
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<Option<OwnedFd>> {
    loop {
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        // SAFETY: null address and length pointers are allowed (the peer address is not wanted).
        let fd = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                flags,
            )
        };
        if fd >= 0 {
            // SAFETY: `fd` was just returned by accept4 and nothing else owns it.
            return Ok(Some(unsafe { OwnedFd::from_raw_fd(fd) }));
        }
        let error = io::Error::last_os_error();
        match error.raw_os_error().expect("accept4 sets errno") {
            libc::EAGAIN => return Ok(None),
            libc::EINTR
            | libc::ECONNABORTED
            | libc::EPROTO
            | libc::ENETDOWN
            | libc::ENOPROTOOPT
            | libc::EHOSTDOWN
            | libc::ENONET
            | libc::EHOSTUNREACH
            | libc::ENETUNREACH => continue,
            _ => return Err(error),
        }
    }
}

pub fn set_nodelay(fd: BorrowedFd<'_>) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: the option value points to a c_int that lives through the call, with its size.
    let result = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_NODELAY,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// What one `recv` or `send` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transfer {
    /// This many bytes, at least one.
    Bytes(usize),
    /// The socket buffer is empty (recv) or full (send): wait for readiness.
    WouldBlock,
    /// The peer is gone: end of stream, reset, timed out or unreachable.
    Closed,
}

/// One `recv` into `buf` (never empty).
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<Transfer> {
    assert!(!buf.is_empty(), "a zero-length recv cannot tell EOF");
    loop {
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the whole call.
        let len = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        match len {
            1.. => return Ok(Transfer::Bytes(len as usize)),
            0 => return Ok(Transfer::Closed),
            _ => match transfer_errno(io::Error::last_os_error())? {
                Some(transfer) => return Ok(transfer),
                None => continue,
            },
        }
    }
}

/// One `send` of `buf` (never empty), without SIGPIPE.
pub fn send(fd: BorrowedFd<'_>, buf: &[u8]) -> io::Result<Transfer> {
    assert!(!buf.is_empty(), "nothing to send");
    loop {
        // SAFETY: `buf` is valid for reads of `buf.len()` bytes for the whole call.
        let len = unsafe {
            libc::send(
                fd.as_raw_fd(),
                buf.as_ptr().cast(),
                buf.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        match len {
            1.. => return Ok(Transfer::Bytes(len as usize)),
            0 => unreachable!("send of {} bytes sent none", buf.len()),
            _ => match transfer_errno(io::Error::last_os_error())? {
                Some(transfer) => return Ok(transfer),
                None => continue,
            },
        }
    }
}

/// Errno of a failed recv or send: `None` to retry (EINTR), the peer-side failures as
/// `Closed`, anything else passed up.
fn transfer_errno(error: io::Error) -> io::Result<Option<Transfer>> {
    match error.raw_os_error().expect("recv and send set errno") {
        libc::EINTR => Ok(None),
        libc::EAGAIN => Ok(Some(Transfer::WouldBlock)),
        libc::ECONNRESET
        | libc::EPIPE
        | libc::ETIMEDOUT
        | libc::EHOSTUNREACH
        | libc::ENETUNREACH => Ok(Some(Transfer::Closed)),
        _ => Err(error),
    }
}

/// Shuts the write side (a FIN after the queued replies); a peer already gone is fine.
pub fn shutdown_write(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: shutdown takes no pointers; the fd is open (borrowed).
    let result = unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) };
    if result < 0 {
        let error = io::Error::last_os_error();
        if error.raw_os_error() != Some(libc::ENOTCONN) {
            return Err(error);
        }
    }
    Ok(())
}
