//! With io_uring disabled by the administrator, the engine exits 1 with one line that names
//! what is missing. Flips the global `kernel.io_uring_disabled` sysctl for a moment, so it lives
//! in a test binary of its own (cargo test runs test binaries one at a time) and restores the
//! old value on every path. Skips, saying why, where the sysctl is absent or not writable.

use std::fs;
use std::process::Command;

const SYSCTL: &str = "/proc/sys/kernel/io_uring_disabled";

struct Restore(String);

impl Drop for Restore {
    fn drop(&mut self) {
        fs::write(SYSCTL, &self.0).expect("restore kernel.io_uring_disabled");
    }
}

#[test]
fn disabled_io_uring_is_one_clear_line() {
    let Ok(before) = fs::read_to_string(SYSCTL) else {
        eprintln!("skipped: {SYSCTL} does not exist on this kernel");
        return;
    };
    if fs::write(SYSCTL, "2").is_err() {
        eprintln!("skipped: {SYSCTL} is not writable here (needs root)");
        return;
    }
    let restore = Restore(before);
    let output = Command::new(env!("CARGO_BIN_EXE_engine"))
        .args([
            "--listen",
            "127.0.0.1:0",
            "--admin",
            "127.0.0.1:0",
            "--cores",
            "1",
        ])
        .output()
        .expect("run engine");
    drop(restore);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("engine: "))
        .expect(&stderr);
    assert!(line.contains("io_uring is unavailable"), "{line}");
    assert!(line.contains("kernel.io_uring_disabled = 2"), "{line}");
    assert!(line.contains("Linux 6.0 or later"), "{line}");
    assert!(output.stdout.is_empty());
}
