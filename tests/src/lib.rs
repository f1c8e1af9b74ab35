//! Shared helpers of the integration tests: a real engine process, framed clients, polling waits.
//!
//! Every helper is `#[track_caller]` and panics with a message naming what it waited for, so a
//! failing test points at its own line. Every wait is bounded in time.

pub mod http;

use std::collections::{HashMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use protocol::{encode_frame, Decoder, Kind, Progress, PAYLOAD_LEN_MAX};
use serde_json::Value;
use socket2::SockRef;

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
        let mut found = wait_for(timeout, &format!("the close record of tag {tag}"), || {
            let records = self.records();
            let found: Vec<Value> = records
                .iter()
                .filter(|record| record["tag"] == tag)
                .cloned()
                .collect();
            if found.is_empty() {
                Err(format!("have {records:?}"))
            } else {
                Ok(found)
            }
        });
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

/// How a stream ended when read to its end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// Orderly EOF: the server sent FIN.
    Fin,
    /// ECONNRESET: the server sent RST.
    Reset,
    /// Nothing ended the stream before the deadline.
    Timeout,
}

/// A framed client: writes frames, decodes the server's ECHO replies.
#[derive(Debug)]
pub struct Client {
    pub stream: TcpStream,
    decoder: Decoder,
    replies: VecDeque<Vec<u8>>,
    bytes_read: u64,
}

impl Client {
    #[track_caller]
    pub fn connect(addr: SocketAddr) -> Client {
        Client::try_connect(addr, WAIT).unwrap_or_else(|error| panic!("connect {addr}: {error}"))
    }

    pub fn try_connect(addr: SocketAddr, timeout: Duration) -> io::Result<Client> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        Ok(Client {
            stream,
            decoder: Decoder::new(PAYLOAD_LEN_MAX),
            replies: VecDeque::new(),
            bytes_read: 0,
        })
    }

    /// Writes raw bytes (whole frames, pieces of frames or garbage).
    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        send_all(&mut self.stream, bytes);
    }

    #[track_caller]
    pub fn send_hello(&mut self, tag: u64) {
        self.send(&hello_frame(tag));
    }

    #[track_caller]
    pub fn send_echo(&mut self, payload: &[u8]) {
        self.send(&echo_frame(payload));
    }

    #[track_caller]
    pub fn send_close(&mut self) {
        self.send(&close_frame());
    }

    /// Reads exactly one reply frame, which must be an ECHO; returns its payload.
    #[track_caller]
    pub fn read_reply(&mut self, timeout: Duration) -> Vec<u8> {
        self.try_read_reply(timeout)
            .unwrap_or_else(|end| panic!("no reply within {timeout:?}: {end:?}"))
    }

    /// Like [`Client::read_reply`], but says how the stream ended instead of panicking.
    #[track_caller]
    pub fn try_read_reply(&mut self, timeout: Duration) -> Result<Vec<u8>, End> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(payload) = self.replies.pop_front() {
                return Ok(payload);
            }
            read_outcome(self.fill(deadline))?;
        }
    }

    /// Reads until EOF, RST or `timeout`; returns every reply payload and how the stream ended.
    #[track_caller]
    pub fn read_to_end(&mut self, timeout: Duration) -> (Vec<Vec<u8>>, End) {
        let deadline = Instant::now() + timeout;
        let end = loop {
            if let Err(end) = read_outcome(self.fill(deadline)) {
                break end;
            }
        };
        if end != End::Timeout {
            assert_eq!(
                self.decoder.partial_len(),
                0,
                "the stream ended ({end:?}) inside a reply frame, after {} bytes in all",
                self.bytes_read
            );
        }
        (self.replies.drain(..).collect(), end)
    }

    #[track_caller]
    pub fn shutdown_write(&self) {
        self.stream
            .shutdown(Shutdown::Write)
            .expect("shutdown(SHUT_WR)");
    }

    /// Closes with SO_LINGER {1, 0}: the kernel sends RST instead of FIN.
    #[track_caller]
    pub fn reset(self) {
        reset_stream(self.stream);
    }

    /// Sets SO_RCVBUF (which also turns off receive-buffer autotuning).
    #[track_caller]
    pub fn set_recv_buffer(&self, bytes: usize) {
        SockRef::from(&self.stream)
            .set_recv_buffer_size(bytes)
            .expect("SO_RCVBUF");
    }

    /// One read with the time left until `deadline`, decoding every reply it completes.
    fn fill(&mut self, deadline: Instant) -> io::Result<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        self.stream.set_read_timeout(Some(left))?;
        let mut buffer = [0u8; 64 * 1024];
        let count = self.stream.read(&mut buffer)?;
        self.bytes_read += count as u64;
        let replies = &mut self.replies;
        self.decoder
            .feed(&buffer[..count], |frame| {
                assert_eq!(frame.kind, Kind::Echo, "the server only sends ECHO");
                replies.push_back(frame.payload.to_vec());
                Progress::Continue
            })
            .unwrap_or_else(|error| panic!("the server sent a bad frame: {error}"));
        Ok(count)
    }
}

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

/// Writes `frame` over and over on a non-blocking socket until writes have blocked for `stall`
/// without a break, `max_bytes` went out or 10 s passed; returns the bytes written. May stop
/// inside a frame.
#[track_caller]
pub fn pump_until_blocked(
    stream: &mut TcpStream,
    frame: &[u8],
    max_bytes: usize,
    stall: Duration,
) -> usize {
    stream.set_nonblocking(true).expect("O_NONBLOCK");
    let mut written = 0;
    let mut blocked_since: Option<Instant> = None;
    let deadline = Instant::now() + 2 * WAIT;
    while written < max_bytes && Instant::now() < deadline {
        let offset = written % frame.len();
        match stream.write(&frame[offset..]) {
            Ok(count) => {
                written += count;
                blocked_since = None;
            }
            Err(error) if is_timeout(&error) => {
                let since = *blocked_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= stall {
                    break;
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(error) => panic!("write after {written} bytes: {error}"),
        }
    }
    stream.set_nonblocking(false).expect("O_NONBLOCK off");
    written
}

/// Writes all of `bytes`, waiting at most [`WAIT`] for the peer to take them.
#[track_caller]
pub fn send_all(stream: &mut TcpStream, bytes: &[u8]) {
    stream.set_write_timeout(Some(WAIT)).expect("SO_SNDTIMEO");
    stream
        .write_all(bytes)
        .unwrap_or_else(|error| panic!("send {} bytes: {error}", bytes.len()));
}

/// Closes with SO_LINGER {1, 0}: the kernel sends RST instead of FIN.
#[track_caller]
pub fn reset_stream(stream: TcpStream) {
    SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
}

pub fn is_timeout(error: &io::Error) -> bool {
    matches!(error.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// What one read says of the stream: `Ok` if bytes came, else how it ended (EOF, RST, or the
/// read timed out). Panics on any other error.
#[track_caller]
pub fn read_outcome(result: io::Result<usize>) -> Result<(), End> {
    match result {
        Ok(0) => Err(End::Fin),
        Ok(_) => Ok(()),
        Err(error) if error.kind() == ErrorKind::ConnectionReset => Err(End::Reset),
        Err(error) if is_timeout(&error) => Err(End::Timeout),
        Err(error) => panic!("read: {error}"),
    }
}

pub fn frame(kind: Kind, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(kind, payload, &mut out);
    out
}

pub fn echo_frame(payload: &[u8]) -> Vec<u8> {
    frame(Kind::Echo, payload)
}

pub fn hello_frame(tag: u64) -> Vec<u8> {
    frame(Kind::Hello, &tag.to_be_bytes())
}

pub fn close_frame() -> Vec<u8> {
    frame(Kind::Close, &[])
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
