//! A child process in which `io_uring_setup` fails: for testing what a server built on the
//! engine says on a host without io_uring, without changing the host (`kernel.io_uring_disabled`
//! is host-wide). A seccomp filter installed before exec makes that one call fail with a chosen
//! errno — EPERM is what `io_uring_disabled` gives, ENOSYS a kernel built without io_uring —
//! and allows every other call.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// The largest errno a seccomp filter can return (`SECCOMP_RET_DATA` holds the rest, and
/// errnos end at 4095).
const ERRNO_MAX: i32 = 4095;

/// Makes `io_uring_setup` fail with `errno` in the process `command` spawns, and only there.
///
/// # Panics
/// If `errno` is not between 1 and 4095.
pub fn deny_io_uring_setup(command: &mut Command, errno: i32) -> &mut Command {
    assert!(
        (1..=ERRNO_MAX).contains(&errno),
        "errno {errno} out of range"
    );
    let filter = filter(errno as u32);
    // SAFETY: the closure runs in the forked child before exec, makes only two prctl calls
    // (async-signal-safe), allocates nothing, and only reads `filter`, built before the fork.
    unsafe {
        command.pre_exec(move || {
            let program = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr().cast_mut(),
            };
            // An unprivileged process may install a filter once it gives up gaining privileges.
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &program) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// A seccomp-bpf program: `io_uring_setup` fails with `errno`, everything else is allowed.
fn filter(errno: u32) -> [libc::sock_filter; 4] {
    const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
    const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
    const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;
    let statement = |code, k| libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    };
    [
        // The syscall number: offset 0 of struct seccomp_data.
        statement(LD_W_ABS, 0),
        // Equal to io_uring_setup: the next instruction, else skip it.
        libc::sock_filter {
            code: JEQ_K,
            jt: 0,
            jf: 1,
            k: libc::SYS_io_uring_setup as u32,
        },
        statement(RET_K, libc::SECCOMP_RET_ERRNO | errno),
        statement(RET_K, libc::SECCOMP_RET_ALLOW),
    ]
}
