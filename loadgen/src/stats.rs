//! What a worker measured: counters, latency histograms, and one result per connection (tag).

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::limits::{LATENCY_SIGFIG, LATENCY_US_MAX};
use crate::mix::CloseMode;
use crate::wire::RecordPhase;

/// What the client saw when a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// EOF: the engine sent FIN.
    Fin,
    /// ECONNRESET / EPIPE: the engine (or the kernel) reset the connection.
    Rst,
    /// The client gave up waiting (connect, end of connection, drain).
    Timeout,
    /// The client closed first, as its mode says (fin, reset, hold).
    Local,
    /// The connect was refused.
    Refused,
    /// Any other error.
    Error,
}

impl Outcome {
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Fin => "fin",
            Outcome::Rst => "rst",
            Outcome::Timeout => "timeout",
            Outcome::Local => "local",
            Outcome::Refused => "refused",
            Outcome::Error => "error",
        }
    }

    /// Whether this end, when its mode did not predict it, is the engine going away: a refused
    /// connect, a reset, or a close the client did not ask for.
    pub const fn is_engine_gone_sign(self) -> bool {
        matches!(self, Outcome::Refused | Outcome::Rst | Outcome::Fin)
    }

    /// What a connection of `mode` should see at its end.
    pub const fn expected_for(mode: CloseMode) -> Outcome {
        if mode.client_closes() {
            Outcome::Local
        } else {
            Outcome::Fin
        }
    }
}

/// One connection's result, keyed by its tag (HELLO, or HTTP's `x-client-tag`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagResult {
    pub tag: u64,
    pub mode: CloseMode,
    pub outcome: Outcome,
    /// Whether the connect succeeded (its first bytes, which carry the tag, were sent): only
    /// then does the engine have a record.
    pub connected: bool,
    pub requests: u64,
    pub replies: u64,
    pub lost: u64,
    pub corrupt: u64,
    /// The client ended it after `--end-timeout` of waiting for the engine to close it
    /// (in the JSON only when true).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ended_by_end_timeout: bool,
    /// The phase its close record must name, where the protocol and mode determine it (HTTP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<RecordPhase>,
    /// The partial bytes its close record must count, likewise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partial_bytes: Option<u64>,
}

/// A histogram of latencies in microseconds.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_US_MAX, LATENCY_SIGFIG).expect("valid bounds")
}

/// Everything one worker counted.
#[derive(Debug)]
pub struct Stats {
    pub requests: u64,
    pub replies: u64,
    /// Bytes the kernel accepted on established connections (send completions), not bytes
    /// queued.
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Reply time minus intended send time (closed loop: the actual send time).
    pub latency_us: Histogram<u64>,
    /// Open loop only: reply time minus actual send time.
    pub latency_uncorrected_us: Histogram<u64>,
    pub opened: u64,
    pub connect_failed: u64,
    pub lost_replies: u64,
    pub corrupt_replies: u64,
    pub errors: BTreeMap<String, u64>,
    pub tags: Vec<TagResult>,
    /// Microseconds from the run's start to this worker's last event.
    pub elapsed_us: u64,
    /// Connects started per second while connections were being opened (with --connect-rate;
    /// the sum over workers).
    pub connect_rate_per_s: f64,
    /// Open loop: requests sent per second while the schedule ran (the sum over workers).
    pub request_rate_per_s: f64,
    /// A connect was due by --connect-rate while every connection slot was busy.
    pub open_blocked: bool,
    /// Open loop: a scheduled request waited because every pipeline was full.
    pub backlog_waited: bool,
    /// The most connections a worker had open at once (summed over workers).
    pub peak_open: u64,
    /// Microseconds from the start to the first refused connect or unexpected reset / close.
    pub first_engine_failure_us: Option<u64>,
    /// ... to the first of the refused connects that went on to the worker's end (no connect
    /// succeeded after it): the engine stopped listening then.
    pub refusing_since_us: Option<u64>,
}

impl Default for Stats {
    fn default() -> Stats {
        Stats {
            requests: 0,
            replies: 0,
            bytes_sent: 0,
            bytes_received: 0,
            latency_us: new_histogram(),
            latency_uncorrected_us: new_histogram(),
            opened: 0,
            connect_failed: 0,
            lost_replies: 0,
            corrupt_replies: 0,
            errors: BTreeMap::new(),
            tags: Vec::new(),
            elapsed_us: 0,
            connect_rate_per_s: 0.0,
            request_rate_per_s: 0.0,
            open_blocked: false,
            backlog_waited: false,
            peak_open: 0,
            first_engine_failure_us: None,
            refusing_since_us: None,
        }
    }
}

impl Stats {
    /// A request was queued (its bytes count as sent once the kernel takes them: see
    /// [`Stats::count_sent`]).
    pub fn count_request(&mut self) {
        self.requests += 1;
    }

    /// A send on an established connection completed with `res`: the bytes the kernel took.
    /// A failed send (the connect failed, the peer reset) took none.
    pub fn count_sent(&mut self, res: i32) {
        if let Ok(bytes) = u64::try_from(res) {
            self.bytes_sent += bytes;
        }
    }

    pub fn error(&mut self, kind: &str) {
        *self.errors.entry(kind.to_owned()).or_default() += 1;
    }

    pub fn record_latency(hist: &mut Histogram<u64>, us: u64) {
        hist.saturating_record(us.clamp(1, LATENCY_US_MAX));
    }

    pub fn merge(&mut self, other: Stats) {
        self.requests += other.requests;
        self.replies += other.replies;
        self.bytes_sent += other.bytes_sent;
        self.bytes_received += other.bytes_received;
        self.latency_us.add(&other.latency_us).expect("same bounds");
        self.latency_uncorrected_us
            .add(&other.latency_uncorrected_us)
            .expect("same bounds");
        self.opened += other.opened;
        self.connect_failed += other.connect_failed;
        self.lost_replies += other.lost_replies;
        self.corrupt_replies += other.corrupt_replies;
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
        self.tags.extend(other.tags);
        self.elapsed_us = self.elapsed_us.max(other.elapsed_us);
        self.connect_rate_per_s += other.connect_rate_per_s;
        self.request_rate_per_s += other.request_rate_per_s;
        self.open_blocked |= other.open_blocked;
        self.backlog_waited |= other.backlog_waited;
        self.peak_open += other.peak_open;
        self.first_engine_failure_us =
            earliest(self.first_engine_failure_us, other.first_engine_failure_us);
        self.refusing_since_us = earliest(self.refusing_since_us, other.refusing_since_us);
    }

    /// Connections per close mode, for the connections that got as far as HELLO.
    pub fn closed_by_mode(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for tag in self.tags.iter().filter(|t| t.connected) {
            *counts.entry(tag.mode.as_str().to_owned()).or_default() += 1;
        }
        counts
    }

    pub fn outcomes(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for tag in &self.tags {
            *counts.entry(tag.outcome.as_str().to_owned()).or_default() += 1;
        }
        counts
    }
}

/// The earlier of two optional times.
fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The symbolic name of an errno for error kinds: the engine's list plus the client-side ones.
pub fn errno_name(errno: i32) -> &'static str {
    match errno {
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::EALREADY => "EALREADY",
        _ => engine::sys::socket::errno_name(errno),
    }
}
