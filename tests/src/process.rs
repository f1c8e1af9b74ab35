//! The engine as a real process: started on loopback with a fresh close log, read through its
//! ready line, close log and metrics, killed on drop.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{wait_for, Client, LOOPBACK_ADDRS, POLL_INTERVAL, READY_TIMEOUT, RECORD_KEYS, WAIT};

/// A running engine process, killed on drop.
#[derive(Debug)]
pub struct Engine {
    child: Child,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    dir: PathBuf,
}

impl Engine {
    /// Starts the engine on loopback with one core, a fresh close log and the given extra flags.
    #[track_caller]
    pub fn start(args: &[&str]) -> Engine {
        Engine::spawn(&engine_binary(), None, &[], args)
    }

    /// Like [`Engine::start`], for a test that bounds the engine's memory: AddressSanitizer
    /// keeps freed blocks resident in a quarantine (256 MiB by default) that would count as
    /// growth, so it is turned off for this engine (a build without ASan ignores the variable).
    #[track_caller]
    pub fn start_for_memory_bound(args: &[&str]) -> Engine {
        Engine::spawn(
            &engine_binary(),
            None,
            &[("ASAN_OPTIONS", "quarantine_size_mb=0")],
            args,
        )
    }

    /// Like [`Engine::start`], with RLIMIT_NOFILE lowered to `nofile` (through `ulimit -n`).
    #[track_caller]
    pub fn start_with_fd_limit(nofile: u32, args: &[&str]) -> Engine {
        Engine::spawn(&engine_binary(), Some(nofile), &[], args)
    }

    /// Like [`Engine::start`], for another server built on the engine library that takes the
    /// same `--listen`, `--admin`, `--cores` and `--close-log` flags and prints the same ready
    /// line (an example, or a test's own server).
    #[track_caller]
    pub fn start_program(binary: &Path, args: &[&str]) -> Engine {
        Engine::spawn(binary, None, &[], args)
    }

    #[track_caller]
    fn spawn(binary: &Path, nofile: Option<u32>, env: &[(&str, &str)], args: &[&str]) -> Engine {
        let binary = binary.to_path_buf();
        let dir = fresh_temp_dir();
        let mut command = match nofile {
            None => Command::new(&binary),
            Some(limit) => {
                let mut command = Command::new("sh");
                command
                    .arg("-c")
                    .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
                    .arg(&binary);
                command
            }
        };
        command.envs(env.iter().copied());
        command.args(LOOPBACK_ADDRS);
        if !args.contains(&"--cores") {
            command.args(["--cores", "1"]);
        }
        command.arg("--close-log").arg(dir.join("close.jsonl"));
        command.args(args);
        if binary == engine_binary() {
            // Runs the whole suite in another mode of the engine, e.g. `--buffer-mode bundle`
            // (`--flag value` pairs; a test that sets the same flag itself keeps its own).
            if let Ok(extra) = std::env::var("ENGINE_TEST_ARGS") {
                let words: Vec<&str> = extra.split_whitespace().collect();
                for pair in words.chunks(2) {
                    if !args.contains(&pair[0]) {
                        command.args(pair);
                    }
                }
            }
        }
        let stderr = File::create(dir.join("stderr.log")).expect("create stderr.log");
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        let mut child = command
            .spawn()
            .unwrap_or_else(|error| panic!("spawn {}: {error}", binary.display()));

        // Read the ready line on a thread so the wait is bounded; then drain stdout to EOF.
        let stdout = child.stdout.take().expect("stdout is piped");
        let (sender, receiver) = mpsc::channel();
        thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = sender.send(lines.next());
            lines.for_each(drop);
        });
        let line = match receiver.recv_timeout(READY_TIMEOUT) {
            Ok(Some(Ok(line))) => line,
            outcome => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "engine printed no ready line within {READY_TIMEOUT:?} ({outcome:?}, exit \
                     {status:?}); args {args:?}; stderr:\n{}",
                    tail(&dir.join("stderr.log"))
                );
            }
        };
        let Some((listen, admin)) = parse_ready_line(&line) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("bad ready line {line:?}");
        };
        Engine {
            child,
            listen,
            admin,
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The engine's resident set in KiB, from /proc.
    pub fn rss_kb(&self) -> u64 {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    pub fn close_log(&self) -> PathBuf {
        self.dir.join("close.jsonl")
    }

    /// A client connected to the listen address (TCP_NODELAY on).
    #[track_caller]
    pub fn connect(&self) -> Client {
        Client::connect(self.listen)
    }

    /// A client that said HELLO `tag` and got one ECHO `ping` answered: the engine has it.
    #[track_caller]
    pub fn greeted_client(&self, tag: u64) -> Client {
        let mut client = self.connect();
        client.send_hello(tag);
        client.send_echo(b"ping");
        assert_eq!(client.read_reply(WAIT), b"ping");
        client
    }

    /// Sends SIGTERM to the engine.
    #[track_caller]
    pub fn sigterm(&self) {
        // Our own child, not yet reaped (only wait_exit and drop reap it): the pid names no other
        // process.
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed: {status}");
    }

    /// Waits for the engine to exit and returns its status; panics after `timeout`.
    #[track_caller]
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "engine did not exit within {timeout:?}"
            );
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// GET /metrics, parsed: key = metric name with its labels as printed.
    #[track_caller]
    pub fn metrics(&self) -> HashMap<String, f64> {
        parse_metrics(&http_get(self.admin, "/metrics"))
    }

    /// One metric; panics if the engine does not print it.
    #[track_caller]
    pub fn metric(&self, key: &str) -> f64 {
        let metrics = self.metrics();
        match metrics.get(key) {
            Some(value) => *value,
            None => panic!("metric {key} missing; have {:?}", sorted_keys(&metrics)),
        }
    }

    /// Polls /metrics until `key` equals `expected`.
    #[track_caller]
    pub fn wait_metric(&self, key: &str, expected: f64, timeout: Duration) {
        wait_for(timeout, &format!("{key} == {expected}"), || {
            match self.metrics().get(key).copied() {
                Some(value) if value == expected => Ok(()),
                last => Err(format!("last value {last:?}")),
            }
        })
    }

    /// Polls /metrics until `key` is `delta` above its value in `before` (an earlier scrape).
    #[track_caller]
    pub fn wait_metric_delta(
        &self,
        before: &HashMap<String, f64>,
        key: &str,
        delta: f64,
        timeout: Duration,
    ) {
        let Some(start) = before.get(key) else {
            panic!("metric {key} missing; have {:?}", sorted_keys(before));
        };
        self.wait_metric(key, start + delta, timeout);
    }

    /// The close records written so far (complete lines only), each checked for the exact keys.
    #[track_caller]
    pub fn records(&self) -> Vec<Value> {
        let text = match fs::read_to_string(self.close_log()) {
            Ok(text) => text,
            Err(error) if error.kind() == ErrorKind::NotFound => return Vec::new(),
            Err(error) => panic!("read close log: {error}"),
        };
        let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
        complete.lines().map(parse_record).collect()
    }

    /// Polls the close log until it holds at least `count` records; returns them all.
    #[track_caller]
    pub fn wait_records(&self, count: usize, timeout: Duration) -> Vec<Value> {
        wait_for(timeout, &format!("{count} close records"), || {
            let records = self.records();
            if records.len() >= count {
                Ok(records)
            } else {
                Err(format!("have {records:?}"))
            }
        })
    }

    /// Polls the close log until the record of the connection that said HELLO `tag` appears.
    #[track_caller]
    pub fn wait_record_for_tag(&self, tag: u64, timeout: Duration) -> Value {
        self.wait_record_where("tag", tag, timeout)
    }

    /// Polls the close log until the one record whose `key` is `value` appears.
    #[track_caller]
    pub fn wait_record_where(
        &self,
        key: &str,
        value: impl Into<Value>,
        timeout: Duration,
    ) -> Value {
        let value = value.into();
        let mut found = wait_for(
            timeout,
            &format!("the close record with {key} {value}"),
            || {
                let records = self.records();
                let found: Vec<Value> = records
                    .iter()
                    .filter(|record| record[key] == value)
                    .cloned()
                    .collect();
                if found.is_empty() {
                    Err(format!("have {records:?}"))
                } else {
                    Ok(found)
                }
            },
        );
        assert_eq!(found.len(), 1, "one record per connection: {found:?}");
        found.pop().expect("one record")
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if thread::panicking() {
            eprintln!(
                "engine stderr (tail):\n{}\nclose log and stderr kept in {}",
                tail(&self.dir.join("stderr.log")),
                self.dir.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

/// `<target>/<profile>/engine`: the test binary runs from `<target>/<profile>/deps/`.
#[track_caller]
pub fn engine_binary() -> PathBuf {
    built(&profile_dir().join("engine"), "cargo build -p engine")
}

/// `<target>/<profile>/examples/NAME`, an example of the engine crate.
#[track_caller]
pub fn example_binary(name: &str) -> PathBuf {
    built(
        &profile_dir().join("examples").join(name),
        &format!("cargo build -p engine --example {name}"),
    )
}

#[track_caller]
fn profile_dir() -> PathBuf {
    let test_binary = std::env::current_exe().expect("current_exe");
    test_binary
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in <target>/<profile>/deps")
        .to_path_buf()
}

#[track_caller]
fn built(binary: &Path, how: &str) -> PathBuf {
    assert!(
        binary.is_file(),
        "{} is missing: run `{how}` first",
        binary.display()
    );
    binary.to_path_buf()
}

fn fresh_temp_dir() -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "engine-tests-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let dir = std::env::temp_dir().join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// `engine ready listen=ADDR admin=ADDR [key=value ...]` → (listen, admin).
fn parse_ready_line(line: &str) -> Option<(SocketAddr, SocketAddr)> {
    let rest = line.strip_prefix("engine ready ")?;
    let mut words = rest.split(' ');
    let listen = words.next()?.strip_prefix("listen=")?.parse().ok()?;
    let admin = words.next()?.strip_prefix("admin=")?.parse().ok()?;
    words
        .all(|word| {
            word.split_once('=')
                .is_some_and(|(key, value)| !key.is_empty() && !value.is_empty())
        })
        .then_some((listen, admin))
}

#[track_caller]
fn parse_record(line: &str) -> Value {
    let record: Value =
        serde_json::from_str(line).unwrap_or_else(|error| panic!("bad record {line:?}: {error}"));
    let object = record.as_object().expect("a record is a JSON object");
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let mut expected = RECORD_KEYS.to_vec();
    keys.sort_unstable();
    expected.sort_unstable();
    assert_eq!(keys, expected, "record keys of {line}");
    record
}

#[track_caller]
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    let mut metrics = HashMap::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad metrics line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad metric value in {line:?}"));
        metrics.insert(key.trim().to_string(), value);
    }
    metrics
}

/// A plain HTTP GET with `Connection: close`; returns the body of a 200 response.
#[track_caller]
fn http_get(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect_timeout(&addr, WAIT)
        .unwrap_or_else(|error| panic!("connect to admin {addr}: {error}"));
    stream.set_read_timeout(Some(WAIT)).expect("SO_RCVTIMEO");
    stream.set_write_timeout(Some(WAIT)).expect("SO_SNDTIMEO");
    let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .unwrap_or_else(|error| panic!("read GET {path} response: {error}"));
    let (head, body) = response
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {response:?}"));
    let status = head.lines().next().unwrap_or_default();
    assert!(status.contains(" 200"), "GET {path}: {status}");
    body.to_string()
}

fn sorted_keys(metrics: &HashMap<String, f64>) -> Vec<&str> {
    let mut keys: Vec<&str> = metrics.keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

fn tail(path: &Path) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::closed_key;

    #[test]
    fn ready_line() {
        let expected = ("127.0.0.1:7000".parse().ok(), "127.0.0.1:7001".parse().ok());
        for line in [
            "engine ready listen=127.0.0.1:7000 admin=127.0.0.1:7001",
            "engine ready listen=127.0.0.1:7000 admin=127.0.0.1:7001 protocol=frame cores=1",
        ] {
            let parsed = parse_ready_line(line).map(|(listen, admin)| (Some(listen), Some(admin)));
            assert_eq!(parsed, Some(expected), "{line}");
        }
        for bad in [
            "engine ready listen=127.0.0.1:7000",
            "engine ready admin=127.0.0.1:7001 listen=127.0.0.1:7000",
            "engine ready listen=127.0.0.1:7000 admin=127.0.0.1:7001 extra",
            "ready listen=127.0.0.1:7000 admin=127.0.0.1:7001",
        ] {
            assert_eq!(parse_ready_line(bad), None, "{bad}");
        }
    }

    #[test]
    fn metrics_keep_labels_in_the_key() {
        let text = "# HELP engine_connections_open Open connections.\n\
                    # TYPE engine_connections_open gauge\n\
                    engine_connections_open 3\n\
                    engine_connections_closed_total{cause=\"peer_fin\"} 12\n\
                    \n";
        let metrics = parse_metrics(text);
        assert_eq!(metrics.len(), 2);
        assert_eq!(metrics["engine_connections_open"], 3.0);
        assert_eq!(metrics[&closed_key("peer_fin")], 12.0);
    }
}
