//! Socket and process syscalls: listeners, accepted fds, the wake-up eventfd, limits, CPUs.

use std::io;
use std::mem::MaybeUninit;
use std::net::{Shutdown, SocketAddr};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use socket2::{Domain, Protocol, SockRef, Socket, Type};

/// Pending connections the kernel queues per listener.
pub const LISTEN_BACKLOG: i32 = 4096;

/// A listening TCP socket bound with SO_REUSEPORT, so each core can have its own.
///
/// TCP_NODELAY and TCP_USER_TIMEOUT are set here once: accepted sockets inherit them.
pub fn listen_reuseport(addr: SocketAddr, user_timeout: Option<Duration>) -> io::Result<OwnedFd> {
    listen(addr, true, user_timeout)
}

/// A listening TCP socket of this process alone (no SO_REUSEPORT): a port in use is an error.
pub fn listen_exclusive(addr: SocketAddr) -> io::Result<OwnedFd> {
    listen(addr, false, None)
}

fn listen(
    addr: SocketAddr,
    reuse_port: bool,
    user_timeout: Option<Duration>,
) -> io::Result<OwnedFd> {
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM.cloexec(),
        Some(Protocol::TCP),
    )?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_tcp_nodelay(true)?;
    if let Some(timeout) = user_timeout {
        socket.set_tcp_user_timeout(Some(timeout))?;
    }
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// The address a socket is bound to.
pub fn local_addr(fd: &impl AsFd) -> io::Result<SocketAddr> {
    SockRef::from(fd)
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "not an inet socket"))
}

/// The peer of a connected socket; `None` if it is already gone (ENOTCONN).
pub fn peer_addr(fd: &impl AsFd) -> Option<SocketAddr> {
    SockRef::from(fd)
        .peer_addr()
        .ok()
        .and_then(|addr| addr.as_socket())
}

/// Sends FIN after everything queued; errors are irrelevant (the socket closes next).
pub fn shutdown_write(fd: &impl AsFd) {
    let _ = SockRef::from(fd).shutdown(Shutdown::Write);
}

/// Discards up to `max_bytes` of unread input without blocking, so that the close that follows
/// sends FIN rather than RST (closing with unread input resets the connection).
pub fn discard_input(fd: &impl AsFd, max_bytes: usize) {
    // SAFETY: with MSG_TRUNC a TCP recv discards the data and writes nothing to the null buffer.
    unsafe {
        libc::recv(
            fd.as_fd().as_raw_fd(),
            std::ptr::null_mut(),
            max_bytes,
            libc::MSG_DONTWAIT | libc::MSG_TRUNC,
        )
    };
}

/// Bytes in the socket's send queue that the peer has not acknowledged (SIOCOUTQ).
pub fn unacked_bytes(fd: &impl AsFd) -> usize {
    let mut queued: libc::c_int = 0;
    // SAFETY: SIOCOUTQ (TIOCOUTQ) writes one int into the pointer, which is live and ours.
    let rc = unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::TIOCOUTQ, &mut queued) };
    if rc != 0 {
        return 0; // not a connected TCP socket any more: nothing left to protect
    }
    usize::try_from(queued).unwrap_or(0)
}

/// An eventfd another thread writes to wake a core blocked in io_uring_enter.
pub fn eventfd() -> io::Result<OwnedFd> {
    // SAFETY: eventfd takes no pointers; the result is checked before use.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Makes an eventfd readable.
pub fn eventfd_signal(fd: &impl AsFd) {
    let one: u64 = 1;
    // SAFETY: writes 8 bytes from a live u64 to an eventfd we hold open.
    let rc = unsafe { libc::write(fd.as_fd().as_raw_fd(), (&one as *const u64).cast(), 8) };
    // EAGAIN means the counter is already non-zero: the wake-up is pending anyway.
    debug_assert!(rc == 8 || io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN));
}

/// Resets an eventfd's counter (it is non-blocking: nothing to read is not an error).
pub fn eventfd_clear(fd: &impl AsFd) {
    let mut count: u64 = 0;
    // SAFETY: reads 8 bytes into a live u64 from an eventfd we hold open.
    let rc = unsafe { libc::read(fd.as_fd().as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
    debug_assert!(rc == 8 || io::Error::last_os_error().raw_os_error() == Some(libc::EAGAIN));
}

/// Raises RLIMIT_NOFILE towards `want` descriptors: the soft limit up to the hard one, and the
/// hard one too where the process may (root, up to `fs.nr_open`). Returns the new soft limit.
pub fn raise_nofile_limit(want: u64) -> io::Result<u64> {
    let mut limit = MaybeUninit::<libc::rlimit>::uninit();
    // SAFETY: getrlimit writes a whole rlimit into the pointer on success (checked).
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, limit.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: getrlimit succeeded, so `limit` is initialised.
    let current = unsafe { limit.assume_init() };
    if current.rlim_cur >= want {
        return Ok(current.rlim_cur);
    }
    let nr_open = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|text| text.trim().parse::<u64>().ok())
        .unwrap_or(current.rlim_max);
    let raised = want.min(nr_open).max(current.rlim_max);
    let attempts = [
        libc::rlimit {
            rlim_cur: raised,
            rlim_max: raised,
        },
        libc::rlimit {
            rlim_cur: current.rlim_max,
            rlim_max: current.rlim_max,
        },
    ];
    for attempt in attempts {
        // SAFETY: passes a pointer to a live, initialised rlimit.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &attempt) } == 0 {
            return Ok(attempt.rlim_cur);
        }
    }
    Err(io::Error::last_os_error())
}

/// The CPUs this process may run on, in ascending order.
pub fn allowed_cpus() -> io::Result<Vec<usize>> {
    let mut set = MaybeUninit::<libc::cpu_set_t>::zeroed();
    // SAFETY: passes the size of the set we own; the kernel fills it on success (checked).
    let rc = unsafe {
        libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set.as_mut_ptr())
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised and then filled by a successful sched_getaffinity.
    let set = unsafe { set.assume_init() };
    let max = 8 * std::mem::size_of::<libc::cpu_set_t>();
    let is_set = |cpu| {
        // SAFETY: CPU_ISSET reads a bit of a live set; `cpu` is below the set's capacity.
        unsafe { libc::CPU_ISSET(cpu, &set) }
    };
    Ok((0..max).filter(|&cpu| is_set(cpu)).collect())
}

/// Pins the calling thread to one CPU.
pub fn pin_current_thread(cpu: usize) -> io::Result<()> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET writes a bit of a live set; callers pass CPUs from `allowed_cpus`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: passes a live set and its size; 0 is the calling thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `uname -r`.
pub fn kernel_release() -> String {
    let mut name = MaybeUninit::<libc::utsname>::zeroed();
    // SAFETY: uname fills the struct we own; on failure it stays zeroed (an empty string).
    unsafe { libc::uname(name.as_mut_ptr()) };
    // SAFETY: zero-initialised and possibly filled by uname: valid either way.
    let name = unsafe { name.assume_init() };
    let bytes: Vec<u8> = name
        .release
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The symbolic name of an errno, for metrics labels and logs.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::EMFILE => "EMFILE",
        libc::ENFILE => "ENFILE",
        libc::ENOBUFS => "ENOBUFS",
        libc::ENOMEM => "ENOMEM",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNRESET => "ECONNRESET",
        libc::EPIPE => "EPIPE",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECANCELED => "ECANCELED",
        libc::EPERM => "EPERM",
        libc::EINVAL => "EINVAL",
        libc::EAGAIN => "EAGAIN",
        libc::EINTR => "EINTR",
        libc::EBADF => "EBADF",
        libc::ENOTCONN => "ENOTCONN",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::EPROTO => "EPROTO",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn accepted_sockets_inherit_nodelay() {
        let fd = listen_reuseport(
            "127.0.0.1:0".parse().unwrap(),
            Some(Duration::from_millis(700)),
        )
        .unwrap();
        let addr = local_addr(&fd).unwrap();
        let listener = TcpListener::from(fd);
        let _client = TcpStream::connect(addr).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(
            accepted.nodelay().unwrap(),
            "TCP_NODELAY is inherited from the listener"
        );
        let timeout = SockRef::from(&accepted).tcp_user_timeout().unwrap();
        assert_eq!(
            timeout,
            Some(Duration::from_millis(700)),
            "TCP_USER_TIMEOUT is inherited"
        );
    }

    #[test]
    fn two_listeners_share_a_port() {
        let first = listen_reuseport("127.0.0.1:0".parse().unwrap(), None).unwrap();
        let addr = local_addr(&first).unwrap();
        let second = listen_reuseport(addr, None).unwrap();
        assert_eq!(local_addr(&second).unwrap(), addr);
    }

    #[test]
    fn errno_names() {
        assert_eq!(errno_name(libc::EMFILE), "EMFILE");
        assert_eq!(errno_name(9999), "other");
    }
}
