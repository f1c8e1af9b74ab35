//! Shared helpers of the loadgen integration tests: a real engine process on loopback and the
//! real loadgen binary, every wait bounded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// How long the engine may take to print its ready line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// The bound of one loadgen run in these tests.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// A running engine, killed on drop.
#[derive(Debug)]
pub struct Engine {
    child: Child,
    pub listen: String,
    pub admin: String,
    pub dir: PathBuf,
}

/// `<target dir>/<profile>/engine`, next to the directory holding this test executable.
#[track_caller]
pub fn engine_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test executable lives in <target>/<profile>/deps");
    let binary = profile_dir.join("engine");
    assert!(
        binary.exists(),
        "engine binary not found at {}: run `cargo build -p engine` (with the same profile and \
         CARGO_TARGET_DIR) first; `cargo test --workspace` builds it",
        binary.display()
    );
    binary
}

/// A fresh, empty directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("loadgen-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

impl Engine {
    /// One core, 200 ms idle and read timeouts, a close log in `dir`.
    #[track_caller]
    pub fn start(dir: &Path) -> Engine {
        let mut child = Command::new(engine_binary())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--admin",
                "127.0.0.1:0",
                "--cores",
                "1",
            ])
            .args(["--idle-timeout", "200ms", "--read-timeout", "200ms"])
            .arg("--close-log")
            .arg(dir.join("close.jsonl"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("engine.stderr")).expect("stderr file"))
            .spawn()
            .expect("spawn the engine");
        let stdout = child.stdout.take().expect("piped");
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = sender.send(lines.next());
            lines.for_each(drop);
        });
        let line = match receiver.recv_timeout(READY_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("engine printed no ready line within {READY_TIMEOUT:?}: {other:?}");
            }
        };
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|part| part.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in ready line {line:?}"))
                .to_owned()
        };
        Engine {
            listen: field("listen="),
            admin: field("admin="),
            dir: dir.to_owned(),
            child,
        }
    }

    pub fn close_log(&self) -> PathBuf {
        self.dir.join("close.jsonl")
    }

    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.admin)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
