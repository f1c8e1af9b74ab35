//! Shared helpers of the integration tests: a real engine process, framed clients, polling waits.
//!
//! Every helper is `#[track_caller]` and panics with a message naming what it waited for, so a
//! failing test points at its own line. Every wait is bounded in time.

mod client;
pub mod http;
mod process;

pub use client::*;
pub use process::*;

use std::fs;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Loopback listen and admin addresses on ports the kernel picks.
pub const LOOPBACK_ADDRS: [&str; 4] = ["--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"];

/// How long the engine may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The default bound of every wait: timers fire at ~200 ms, waits allow 5 s.
pub const WAIT: Duration = Duration::from_secs(5);
/// The keys of a close record, exactly.
pub const RECORD_KEYS: [&str; 13] = [
    "core",
    "conn",
    "tag",
    "peer",
    "cause",
    "phase",
    "res",
    "bytes_in",
    "bytes_out",
    "frames_in",
    "frames_out",
    "partial_bytes",
    "duration_us",
];

const POLL_INTERVAL: Duration = Duration::from_millis(10);

/// `engine_connections_closed_total{cause="CAUSE"}`.
pub fn closed_key(cause: &str) -> String {
    format!("engine_connections_closed_total{{cause=\"{cause}\"}}")
}

/// Asserts each `(key, value)` of a close record.
#[track_caller]
pub fn assert_fields(record: &Value, expected: &[(&str, Value)]) {
    for (key, value) in expected {
        assert_eq!(&record[*key], value, "field {key} of {record}");
    }
}

/// Calls `condition` every 10 ms until it holds; panics after `timeout`.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    wait_for(timeout, what, || {
        condition().then_some(()).ok_or_else(String::new)
    });
}

/// Calls `attempt` every 10 ms until it returns `Ok`; panics after `timeout` with the last
/// `Err`, which says what was seen instead.
#[track_caller]
pub fn wait_for<T>(
    timeout: Duration,
    what: &str,
    mut attempt: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        let seen = match attempt() {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}; {seen}"
        );
        thread::sleep(POLL_INTERVAL);
    }
}

/// A small deterministic PRNG (xorshift64*): reproducible splits and payload sizes.
#[derive(Clone, Debug)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> XorShift {
        XorShift(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-enough in `low..=high`.
    pub fn range(&mut self, low: usize, high: usize) -> usize {
        assert!(low <= high);
        let span = (high - low) as u64 + 1;
        low + (self.next_u64() % span) as usize
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

/// Number of open fds of a process, from /proc.
#[track_caller]
pub fn fd_count(pid: u32) -> usize {
    fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("read /proc/PID/fd")
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_is_deterministic_and_in_range() {
        let (mut a, mut b) = (XorShift::new(42), XorShift::new(42));
        for _ in 0..1000 {
            let value = a.range(3, 9);
            assert!((3..=9).contains(&value));
            assert_eq!(value, b.range(3, 9));
        }
    }
}
