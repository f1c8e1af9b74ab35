//! With io_uring unavailable, the engine exits 1 with one line that names what is missing.
//!
//! The failure is produced for the engine process alone, never host-wide
//! (`engine::sys::seccomp`): `io_uring_setup` fails with EPERM (what `kernel.io_uring_disabled`
//! does) or ENOSYS (a kernel built without io_uring). Nothing outside the child changes, even if
//! the test is killed midway.

use std::process::{Command, Output};

use engine::sys::seccomp;
use tests::{engine_binary, LOOPBACK_ADDRS};

/// Runs the engine with `io_uring_setup` failing as `errno`.
fn engine_without_io_uring(errno: i32) -> Output {
    let mut command = Command::new(engine_binary());
    command.args(LOOPBACK_ADDRS).args(["--cores", "1"]);
    seccomp::deny_io_uring_setup(&mut command, errno);
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
    let output = engine_without_io_uring(libc::EPERM);
    assert_one_clear_line(&output, "Operation not permitted");
}

#[test]
fn a_kernel_without_io_uring_is_one_clear_line() {
    let output = engine_without_io_uring(libc::ENOSYS);
    assert_one_clear_line(&output, "Function not implemented");
}
