//! Shared helpers of the loadgen integration tests: a real engine process on loopback and the
//! real loadgen binary, every wait bounded.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// The bound of one loadgen run in these tests.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// A running engine (the `tests` crate's helper), with the addresses as the loadgen takes them.
#[derive(Debug)]
pub struct Engine {
    inner: tests::Engine,
    pub listen: String,
}

impl Engine {
    /// One core, 200 ms idle and read timeouts, a close log of its own.
    #[track_caller]
    pub fn start() -> Engine {
        Engine::start_with(&["--idle-timeout", "200ms", "--read-timeout", "200ms"])
    }

    /// One core and these engine flags, a close log of its own.
    #[track_caller]
    pub fn start_with(args: &[&str]) -> Engine {
        let inner = tests::Engine::start(args);
        Engine {
            listen: inner.listen.to_string(),
            inner,
        }
    }

    /// The value of one /metrics sample, e.g. `engine_recv_rearms_total{reason="enobufs"}`.
    pub fn metric(&self, key: &str) -> f64 {
        self.inner.metric(key)
    }

    pub fn close_log(&self) -> PathBuf {
        self.inner.close_log()
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.inner.admin)
    }
}

/// Runs the loadgen binary with `args`, killing it if it outlives [`RUN_TIMEOUT`].
#[track_caller]
pub fn loadgen(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loadgen");
    let started = Instant::now();
    loop {
        if let Some(_status) = child.try_wait().expect("try_wait") {
            return child.wait_with_output().expect("loadgen output");
        }
        if started.elapsed() > RUN_TIMEOUT {
            let _ = child.kill();
            let output = child.wait_with_output().expect("loadgen output");
            panic!(
                "loadgen {args:?} ran longer than {RUN_TIMEOUT:?}; stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// The exit code, with both outputs in the message if there is none.
#[track_caller]
pub fn code(output: &Output) -> i32 {
    let status: ExitStatus = output.status;
    status
        .code()
        .unwrap_or_else(|| panic!("loadgen killed by a signal: {}", describe(output)))
}

pub fn describe(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[track_caller]
pub fn read_json(path: &Path) -> serde_json::Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parse {}: {e}", path.display()))
}
