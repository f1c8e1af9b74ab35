//! With io_uring unavailable, the engine exits 1 with one line that names what is missing.
//!
//! The failure is produced for the engine process alone, never host-wide: a seccomp filter
//! installed in the child before exec makes `io_uring_setup` fail with EPERM (what
//! `kernel.io_uring_disabled` does) or ENOSYS (a kernel built without io_uring), and allows
//! every other call. Nothing outside the child changes, even if the test is killed midway.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Command, Output};

use tests::{engine_binary, LOOPBACK_ADDRS};

/// A seccomp-bpf program: `io_uring_setup` fails with `errno`, everything else is allowed.
fn deny_io_uring_setup(errno: u16) -> [libc::sock_filter; 4] {
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
        statement(RET_K, libc::SECCOMP_RET_ERRNO | u32::from(errno)),
        statement(RET_K, libc::SECCOMP_RET_ALLOW),
    ]
}

/// Runs the engine with `io_uring_setup` failing as `errno`.
fn engine_without_io_uring(errno: u16) -> Output {
    let filter = deny_io_uring_setup(errno);
    let mut command = Command::new(engine_binary());
    command.args(LOOPBACK_ADDRS).args(["--cores", "1"]);
    // SAFETY: the closure runs in the forked child before exec and makes only two prctl calls,
    // which are async-signal-safe; `filter` was built before the fork and is only read.
    #[allow(unsafe_code)]
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
    };
    command.output().expect("run engine")
}

#[track_caller]
fn assert_one_clear_line(output: &Output, reason: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line, nothing before it: {stderr}");
    let line = lines[0];
    assert!(
        line.starts_with("engine: io_uring is unavailable"),
        "{line}"
    );
    assert!(line.contains(reason), "{line} should say {reason:?}");
    assert!(line.contains("Linux 6.0 or later"), "{line}");
    assert!(output.stdout.is_empty(), "no ready line");
}

#[test]
fn io_uring_refused_to_the_process_is_one_clear_line() {
    let output = engine_without_io_uring(libc::EPERM as u16);
    assert_one_clear_line(&output, "Operation not permitted");
}

#[test]
fn a_kernel_without_io_uring_is_one_clear_line() {
    let output = engine_without_io_uring(libc::ENOSYS as u16);
    assert_one_clear_line(&output, "Function not implemented");
}
