//! Shared helpers of the loadgen integration tests: a real engine process on loopback and the
//! real loadgen binary, every wait bounded.

// Each test binary uses its own part of these helpers.
#![allow(dead_code)]

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The bound of one loadgen run in these tests.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a running loadgen is looked at.
const POLL: Duration = Duration::from_millis(20);
/// Kernel clock ticks per second of /proc/PID/stat (USER_HZ, fixed in the Linux ABI).
const USER_HZ: u64 = 100;

/// A fresh, empty directory for one test.
/// A close-mix with every mode once.
pub const EVERY_MODE: &str =
    "fin=1,reset=1,mid-frame=1,half-close=1,close-request=1,bad-frame=1,idle=1,stall=1";

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

    /// `engine --protocol http`: one core, 200 ms idle and read timeouts, a close log of its own.
    #[track_caller]
    pub fn start_http() -> Engine {
        Engine::start_with(&[
            "--protocol",
            "http",
            "--idle-timeout",
            "200ms",
            "--read-timeout",
            "200ms",
        ])
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

/// The tags of a JSON report.
pub fn report_tags(report: &serde_json::Value) -> HashSet<u64> {
    report["tags"]
        .as_array()
        .expect("a report lists its tags")
        .iter()
        .map(|t| t["tag"].as_u64().expect("a tag is a u64"))
        .collect()
}

/// Copies the close log `log` to `to` with each edit `(field, from, to)` made once, to the
/// first record of a tag in `ours` whose `field` is `from` (one edit per record); panics if an
/// edit found no record.
#[track_caller]
pub fn doctor_log(log: &Path, ours: &HashSet<u64>, to: &Path, edits: &[(&str, &str, &str)]) {
    let mut done = vec![false; edits.len()];
    let text = std::fs::read_to_string(log).expect("read the close log");
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let mut record: serde_json::Value = serde_json::from_str(line).expect("a record");
            if record["tag"].as_u64().is_some_and(|t| ours.contains(&t)) {
                let edit = (0..edits.len()).find(|&i| !done[i] && record[edits[i].0] == edits[i].1);
                if let Some(i) = edit {
                    record[edits[i].0] = edits[i].2.into();
                    done[i] = true;
                }
            }
            record.to_string()
        })
        .collect();
    for (edit, done) in edits.iter().zip(&done) {
        assert!(done, "no record of ours to edit as {edit:?}");
    }
    std::fs::write(to, lines.join("\n") + "\n").expect("write the doctored log");
}

/// A loadgen started in the background: its outputs are read on threads (no pipe can fill),
/// its CPU time sampled from /proc while it runs.
/// `loadgen verify` of a saved report against `log`, writing its JSON to `json`.
pub fn verify_against(report: &Path, log: &Path, json: &Path) -> Output {
    loadgen(&[
        "verify",
        "--report",
        report.to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
        "--json",
        json.to_str().unwrap(),
    ])
}

#[derive(Debug)]
pub struct Running {
    child: Child,
    args: Vec<String>,
    stdout: Option<JoinHandle<Vec<u8>>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
    started: Instant,
}

/// What a finished background loadgen did.
#[derive(Debug)]
pub struct Finished {
    pub output: Output,
    /// User + system CPU time of the whole process, as last sampled before it exited (at most
    /// one poll, 20 ms, before the end).
    pub cpu: Duration,
    /// From the spawn to that last sample.
    pub wall: Duration,
}

fn read_all(mut pipe: impl Read + Send + 'static) -> JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// utime + stime of /proc/PID/stat (fields 14 and 15, counted after the command name).
fn process_cpu(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat[stat.rfind(')')? + 1..].split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / USER_HZ))
}

impl Running {
    #[track_caller]
    pub fn start(args: &[&str]) -> Running {
        let mut child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn loadgen");
        Running {
            stdout: Some(read_all(child.stdout.take().expect("piped"))),
            stderr: Some(read_all(child.stderr.take().expect("piped"))),
            args: args.iter().map(|a| a.to_string()).collect(),
            child,
            started: Instant::now(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the exit, killing the loadgen if it outlives [`RUN_TIMEOUT`].
    #[track_caller]
    pub fn finish(mut self) -> Finished {
        let (mut cpu, mut wall) = (Duration::ZERO, Duration::ZERO);
        let status = loop {
            if let Some(sample) = process_cpu(self.child.id()) {
                (cpu, wall) = (sample, self.started.elapsed());
            }
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if self.started.elapsed() > RUN_TIMEOUT {
                let _ = self.child.kill();
                let status = self.child.wait().expect("wait");
                let output = self.collect(status);
                panic!(
                    "loadgen {:?} ran longer than {RUN_TIMEOUT:?}: {}",
                    self.args,
                    describe(&output)
                );
            }
            thread::sleep(POLL);
        };
        let output = self.collect(status);
        Finished { output, cpu, wall }
    }

    fn collect(&mut self, status: ExitStatus) -> Output {
        let join = |handle: Option<JoinHandle<Vec<u8>>>| {
            handle.map_or_else(Vec::new, |h| h.join().expect("a pipe reader"))
        };
        Output {
            status,
            stdout: join(self.stdout.take()),
            stderr: join(self.stderr.take()),
        }
    }
}

/// Polls `check` every 20 ms until it holds; panics naming `what` after `timeout`.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !check() {
        assert!(Instant::now() < deadline, "waited {timeout:?} for {what}");
        thread::sleep(POLL);
    }
}
